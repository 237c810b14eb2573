//! A socket's joins, for the gateways whose clients join channels one by one (Phoenix and
//! plain WebSocket), readable by a broadcast without a lock in the usual case.
//!
//! A broadcast asks each member's sink whether the membership it reaches is still joined and
//! whether its join's reply is out (until then its frames are held, to follow the reply).
//! Under the list's lock that is two more atomic instructions per delivery, on a line the
//! caches have lost. Most sockets have one join, answered long ago: its tag is kept in an
//! atomic, rewritten under the lock after every change, so that a broadcast to it reads one
//! word and queues its frame.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use smallvec::SmallVec;

use crate::channels::MemberTag;
use crate::engineio::Frame;
use crate::sync::lock;

/// How many frames of one join may wait for its reply (the `joined` hook's pushes and the
/// channel's broadcasts while `pass` and `joined` run), as many as a connection's queue.
const MAX_HELD: usize = 4096;

/// One join as [`Joins`] sees it.
pub(super) trait Join {
    /// Its tag in the channel layer.
    fn tag(&self) -> MemberTag;

    /// The frames for it that came before its reply went out; `None` once the reply is out.
    fn held(&mut self) -> Option<&mut Vec<Frame>>;

    /// Its tag, when broadcasts to it go straight to the socket: its reply is out and it is
    /// not on its way out.
    fn settled(&self) -> Option<MemberTag>;
}

/// What [`Joins::deliver`] did with a frame.
pub(super) enum Delivery<T> {
    /// Held for the join's reply, or dropped: the join is gone (left, replaced).
    Done,
    /// Too many frames already wait for the join's reply: as with any queue the client cannot
    /// drain, the connection is to be cut.
    Full,
    /// To be sent now that the lock is let go.
    Send(T),
}

/// The list of a socket's joins (most sockets join few), and the tag of its only join when
/// that join is settled (`0` otherwise; tags start at 1).
pub(super) struct Joins<J> {
    list: Mutex<SmallVec<[J; 2]>>,
    settled: AtomicU64,
}

impl<J> Default for Joins<J> {
    fn default() -> Self {
        Joins {
            list: Mutex::default(),
            settled: AtomicU64::new(0),
        }
    }
}

impl<J: Join> Joins<J> {
    /// Runs `edit` on the list under its lock; the settled tag is brought up to date before
    /// the lock is let go, so a broadcast that reads it also sees what `edit` sent (a join's
    /// reply and its held frames).
    pub(super) fn edit<R>(&self, edit: impl FnOnce(&mut SmallVec<[J; 2]>) -> R) -> R {
        let mut list = lock(&self.list);
        let out = edit(&mut list);
        let settled = match list.as_slice() {
            [only] => only.settled().unwrap_or(0),
            _ => 0,
        };
        if self.settled.load(Ordering::Relaxed) != settled {
            self.settled.store(settled, Ordering::Release);
        }
        out
    }

    /// Delivers to the join with `tag`, under the lock: `make` makes what it gets (from the
    /// join: a push carries its join_ref), held as `frame` makes it until the join's reply is
    /// out, handed back to be sent after. A broadcast to a settled join
    /// ([`Joins::is_settled`]) needs none of this.
    pub(super) fn deliver<T>(
        &self,
        tag: MemberTag,
        make: impl FnOnce(&J) -> T,
        frame: impl FnOnce(&T) -> Frame,
    ) -> Delivery<T> {
        self.edit(|joins| {
            let Some(join) = joins.iter_mut().find(|join| join.tag() == tag) else {
                return Delivery::Done;
            };
            let out = make(join);
            match join.held() {
                Some(held) if held.len() >= MAX_HELD => Delivery::Full,
                Some(held) => {
                    held.push(frame(&out));
                    Delivery::Done
                }
                None => Delivery::Send(out),
            }
        })
    }

    /// Reads the list under its lock.
    pub(super) fn read<R>(&self, read: impl FnOnce(&[J]) -> R) -> R {
        read(&lock(&self.list))
    }

    /// Whether `tag` is the socket's one join and settled: its broadcasts need no lock. As
    /// with the lock, a leave that comes right after this answer may still see the frame
    /// queued.
    pub(super) fn is_settled(&self, tag: MemberTag) -> bool {
        tag != 0 && self.settled.load(Ordering::Acquire) == tag
    }

    /// Reads the word a broadcast reads first (see `Sink::touch`).
    pub(super) fn touch(&self) -> u64 {
        self.settled.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A join and its held frames (`None`: settled).
    struct J(MemberTag, Option<Vec<Frame>>);

    impl Join for J {
        fn tag(&self) -> MemberTag {
            self.0
        }

        fn held(&mut self) -> Option<&mut Vec<Frame>> {
            self.1.as_mut()
        }

        fn settled(&self) -> Option<MemberTag> {
            self.1.is_none().then_some(self.0)
        }
    }

    fn held() -> Option<Vec<Frame>> {
        Some(Vec::new())
    }

    #[test]
    fn only_a_lone_settled_join_is_settled() {
        let joins = Joins::<J>::default();
        assert!(!joins.is_settled(0), "no join");
        joins.edit(|list| list.push(J(1, held())));
        assert!(!joins.is_settled(1), "its reply is not out");
        joins.edit(|list| list[0].1 = None);
        assert!(joins.is_settled(1));
        assert!(!joins.is_settled(2));
        joins.edit(|list| list.push(J(2, None)));
        assert!(
            !joins.is_settled(1) && !joins.is_settled(2),
            "two joins: the lock decides"
        );
        joins.edit(|list| list.retain(|j| j.0 != 1));
        assert!(joins.is_settled(2));
        joins.edit(SmallVec::clear);
        assert!(!joins.is_settled(2), "left");
        assert_eq!(joins.read(<[J]>::len), 0);
    }

    #[test]
    fn a_delivery_is_held_until_the_reply_sent_after_it_and_cut_when_too_many_wait() {
        let joins = Joins::<J>::default();
        let frame = |n: &u64| Frame::Binary(n.to_be_bytes().to_vec().into());
        assert!(
            matches!(joins.deliver(1, |_| 1, frame), Delivery::Done),
            "no such join"
        );
        joins.edit(|list| list.push(J(1, held())));
        for n in 0..256 {
            assert!(matches!(joins.deliver(1, |_| n, frame), Delivery::Done));
        }
        let waiting = joins.read(|list| list[0].1.as_ref().map(Vec::len));
        assert_eq!(waiting, Some(256), "held for the reply");
        joins.edit(|list| list[0].1 = Some(vec![frame(&0); MAX_HELD]));
        assert!(matches!(joins.deliver(1, |_| 0, frame), Delivery::Full));
        joins.edit(|list| list[0].1 = None);
        assert!(matches!(
            joins.deliver(1, |j| j.0, frame),
            Delivery::Send(1)
        ));
        assert!(
            matches!(joins.deliver(2, |_| 0, frame), Delivery::Done),
            "another join"
        );
    }
}
