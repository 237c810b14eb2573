//! Events on their way to members: [`Outgoing`], encoded at most once per wire format through a
//! typed cache ([`Encoding`]), and the [`Sink`] through which a gateway receives them.

use std::any::{Any, TypeId};
use std::ops::Deref;
use std::sync::OnceLock;

use super::member::MemberTag;
use crate::payload::Payload;

/// How many wire encodings one event keeps (a gateway uses one; a fifth one is encoded for
/// each recipient instead of cached).
const CACHED_ENCODINGS: usize = 4;

/// One event on its way to a channel's members. Each gateway encodes it at most once
/// ([`Outgoing::encoded`]) and hands the same bytes to all of its connections.
pub struct Outgoing {
    channel: String,
    event: String,
    payload: Payload,
    /// Meant for one member (a push, a per-member rewrite), not the whole channel.
    direct: bool,
    /// Its place in the channel history, when the hub keeps one (connection state recovery).
    offset: Option<u64>,
    cache: [OnceLock<(TypeId, Box<dyn Any + Send + Sync>)>; CACHED_ENCODINGS],
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("channel", &self.channel)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

/// A wire format an [`Outgoing`] is encoded into, once per event: what a gateway implements.
/// The [`Encoding::Key`] type is the cache key, so two gateways can never mix up their
/// encodings.
///
/// ```
/// use tidings_runtime::Payload;
/// use tidings_runtime::channels::{Encoding, Outgoing};
///
/// struct Shout;
/// impl Encoding for Shout {
///     type Key = Self;
///     type Output = String;
///     fn encode(&self, message: &Outgoing) -> String {
///         format!("{}!", message.event().to_uppercase())
///     }
/// }
///
/// let message = Outgoing::new("chats/1", "hello", Payload::new());
/// assert_eq!(&*message.encoded(&Shout), "HELLO!");
/// ```
pub trait Encoding {
    /// The type that names this encoding in the cache: `Self`, or a marker type when `Self`
    /// borrows something (a namespace name, say).
    type Key: 'static;

    /// The encoded event (frames, bytes ...), shared by every recipient.
    type Output: Send + Sync + 'static;

    /// Encodes `message`.
    fn encode(&self, message: &Outgoing) -> Self::Output;
}

/// An encoding, cached in the event or (past the cache's room) made for this recipient.
#[derive(Debug)]
pub enum Encoded<'a, T> {
    /// The event's cached encoding.
    Cached(&'a T),
    /// Made for this call only.
    Owned(T),
}

impl<T> Deref for Encoded<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Encoded::Cached(value) => value,
            Encoded::Owned(value) => value,
        }
    }
}

impl Outgoing {
    /// An event for `channel`.
    pub fn new(channel: impl Into<String>, event: impl Into<String>, payload: Payload) -> Self {
        Outgoing {
            channel: channel.into(),
            event: event.into(),
            payload,
            direct: false,
            offset: None,
            cache: Default::default(),
        }
    }

    /// The same event at `offset` in the channel history.
    pub(crate) fn with_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Its offset in the channel history, when the hub keeps one (see
    /// [`HistoryLimits`](crate::channels::HistoryLimits)): gateways send it along so that a
    /// client that comes back can say what it got last.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// An event for one member of `channel` (what [`ChannelContext::push`] sends, or a
    /// broadcast rewritten for one member by `handle_out`). Protocols that tell the two apart
    /// mark it (Phoenix sends it with the member's `join_ref`, a broadcast with none).
    ///
    /// [`ChannelContext::push`]: crate::channels::ChannelContext::push
    ///
    /// ```
    /// use tidings_runtime::Payload;
    /// use tidings_runtime::channels::Outgoing;
    /// assert!(Outgoing::direct("chats/1", "hello", Payload::new()).is_direct());
    /// assert!(!Outgoing::new("chats/1", "hello", Payload::new()).is_direct());
    /// ```
    pub fn direct(channel: impl Into<String>, event: impl Into<String>, payload: Payload) -> Self {
        Outgoing {
            direct: true,
            ..Outgoing::new(channel, event, payload)
        }
    }

    /// The same event, for one member only.
    pub(crate) fn into_direct(mut self) -> Self {
        self.direct = true;
        self
    }

    /// Whether it is meant for one member only ([`Outgoing::direct`]).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The concrete channel name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The event name, without the channel.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The arguments.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// This event in `encoding`'s wire format: encoded the first time it is asked for, the same
    /// value for every later call.
    pub fn encoded<E: Encoding>(&self, encoding: &E) -> Encoded<'_, E::Output> {
        let key = TypeId::of::<E::Key>();
        for cell in &self.cache {
            // Cells fill in order and are never emptied, so the first cell that is empty or
            // holds this encoding is where it lives.
            let (held, value) =
                cell.get_or_init(|| (key, Box::new(encoding.encode(self)) as Box<_>));
            if *held == key
                && let Some(value) = value.downcast_ref()
            {
                return Encoded::Cached(value);
            }
        }
        Encoded::Owned(encoding.encode(self))
    }
}

/// Where a gateway wants a member's channel events delivered.
pub trait Sink: Send + Sync + 'static {
    /// Queues the event for the client without waiting; false when the connection is gone
    /// or too slow (the gateway then closes it and the member disconnects). `tag` is what the
    /// gateway gave the membership when the join succeeded (Phoenix's `join_ref`, say).
    fn deliver(&self, message: &Outgoing, tag: MemberTag) -> bool;

    /// Reads (without locking or writing anything) what [`Sink::deliver`] will write, so that
    /// a broadcast brings the next members' queues into the cache before it queues into them.
    /// See [`Hub::deliver`](super::Hub::deliver).
    fn touch(&self) {}
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counting<const N: usize>(AtomicUsize);

    impl<const N: usize> Encoding for Counting<N> {
        type Key = Self;
        type Output = (usize, String);
        fn encode(&self, message: &Outgoing) -> (usize, String) {
            self.0.fetch_add(1, Ordering::Relaxed);
            (N, message.event().to_owned())
        }
    }

    #[test]
    fn each_encoding_is_made_once_and_kept_apart_from_the_others() {
        let message = Outgoing::new("c", "e", Payload::new());
        let a = Counting::<1>(AtomicUsize::new(0));
        let b = Counting::<2>(AtomicUsize::new(0));
        for _ in 0..3 {
            assert_eq!(message.encoded(&a).0, 1);
            assert_eq!(message.encoded(&b).0, 2);
        }
        assert_eq!(a.0.load(Ordering::Relaxed), 1);
        assert_eq!(b.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn past_the_cache_encodings_are_made_per_call() {
        let message = Outgoing::new("c", "e", Payload::new());
        let fifth = Counting::<5>(AtomicUsize::new(0));
        let _ = message.encoded(&Counting::<1>(AtomicUsize::new(0)));
        let _ = message.encoded(&Counting::<2>(AtomicUsize::new(0)));
        let _ = message.encoded(&Counting::<3>(AtomicUsize::new(0)));
        let _ = message.encoded(&Counting::<4>(AtomicUsize::new(0)));
        assert!(matches!(message.encoded(&fifth), Encoded::Owned((5, _))));
        assert!(matches!(message.encoded(&fifth), Encoded::Owned((5, _))));
        assert_eq!(fifth.0.load(Ordering::Relaxed), 2);
    }
}
