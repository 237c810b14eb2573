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
use crate::sync::lock;

/// One join as [`Joins`] sees it.
pub(super) trait Join {
    /// Its tag, when broadcasts to it go straight to the socket: its reply is out and it is
    /// not on its way out.
    fn settled(&self) -> Option<MemberTag>;
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

    struct J(MemberTag, bool);

    impl Join for J {
        fn settled(&self) -> Option<MemberTag> {
            self.1.then_some(self.0)
        }
    }

    #[test]
    fn only_a_lone_settled_join_is_settled() {
        let joins = Joins::<J>::default();
        assert!(!joins.is_settled(0), "no join");
        joins.edit(|list| list.push(J(1, false)));
        assert!(!joins.is_settled(1), "its reply is not out");
        joins.edit(|list| list[0].1 = true);
        assert!(joins.is_settled(1));
        assert!(!joins.is_settled(2));
        joins.edit(|list| list.push(J(2, true)));
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
}
