//! A session's outbound queue: bounded in frames and in bytes, never waiting on the sending
//! side, and holding memory only while frames wait (an idle connection keeps nothing beyond
//! the queue's own cache line).
//!
//! Any number of senders push; one reader at a time takes frames out (the session hands out
//! that right: see `session::Reader`).
//!
//! Laid out for the broadcast. A broadcast queues one frame into each of thousands of queues
//! that the cores' caches have long lost, and each push takes the queue's lock: an atomic
//! instruction, which waits for every store before it to reach the cache. A push that writes
//! into a second cold line (a freshly allocated slot, the reader's waker elsewhere) pays for
//! that miss in full, once per delivery. So the lock, the oldest frame when it is a
//! broadcast's (the usual case when emits come one at a time) and the reader's waker live in
//! one line, which the lock has just fetched: queueing into an empty queue touches nothing
//! else and allocates nothing.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::packet::{Frame, SharedText};
use crate::sync::lock;

/// One queue, kept inside its session, on a cache line of its own.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    limits: Limits,
}

/// How much may wait in one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Frames (at least one).
    pub(crate) frames: usize,
    /// Bytes, as [`Frame::len`] counts them; a shared broadcast frame counts in full in every
    /// queue that holds it. A lone frame is always taken, whatever its size.
    pub(crate) bytes: usize,
}

/// The frames, oldest first: `head` (when set), then `rest`.
#[derive(Debug, Default)]
struct Queue {
    /// The oldest frame, when it is a broadcast's and was queued into an empty queue.
    head: Option<Arc<SharedText>>,
    /// Every other frame; `None` when there is none (never an empty box).
    rest: Option<Box<Rest>>,
    /// Wakes whichever transport is reading the queue, once, at the next push.
    waker: Option<Waker>,
}

/// Frames behind the head, and how many bytes they hold.
#[derive(Debug, Default)]
struct Rest {
    frames: VecDeque<Frame>,
    bytes: usize,
}

impl Queue {
    fn pop_front(&mut self) -> Option<Frame> {
        if let Some(head) = self.head.take() {
            return Some(Frame::Shared(head));
        }
        let rest = self.rest.as_mut()?;
        let frame = rest.frames.pop_front()?;
        rest.bytes -= frame.len();
        if rest.frames.is_empty() {
            // An emptied queue gives its memory back at once: an idle connection keeps none.
            self.rest = None;
        }
        Some(frame)
    }

    /// Queues `frame` behind the others.
    fn push_back(&mut self, frame: Frame) {
        match frame {
            Frame::Shared(shared) if self.is_empty() => self.head = Some(shared),
            frame => {
                let rest = self.rest.get_or_insert_with(Box::default);
                rest.bytes += frame.len();
                rest.frames.push_back(frame);
            }
        }
    }

    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.as_ref().map_or(0, |rest| rest.frames.len())
    }

    fn is_empty(&self) -> bool {
        self.head.is_none() && self.rest.is_none()
    }

    fn bytes(&self) -> usize {
        self.head.as_ref().map_or(0, |head| head.text().len())
            + self.rest.as_ref().map_or(0, |rest| rest.bytes)
    }

    /// Whether `count` more frames of `bytes` bytes in all stay within `limits`.
    fn fits(&self, count: usize, bytes: usize, limits: Limits) -> bool {
        self.len() + count <= limits.frames
            && (self.is_empty() || self.bytes() + bytes <= limits.bytes)
    }

    /// Registers `waker` for the next push; returns the waker it replaces, to be dropped once
    /// the lock is let go.
    fn register(&mut self, waker: &Waker) -> Option<Waker> {
        match &self.waker {
            Some(current) if current.will_wake(waker) => None,
            _ => self.waker.replace(waker.clone()),
        }
    }
}

/// Why frames were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

impl Outbox {
    /// A queue within `limits`.
    pub(crate) fn new(limits: Limits) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue::default()),
            limits: Limits {
                frames: limits.frames.max(1),
                bytes: limits.bytes,
            },
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    /// Reads the queue's cache line without taking the lock (see `Session::touch`).
    pub(crate) fn touch(&self) -> bool {
        self.queue.is_poisoned()
    }

    /// Queues every frame of `frames`, or none when they do not all fit.
    pub(crate) fn push_all(
        &self,
        frames: impl ExactSizeIterator<Item = Frame>,
    ) -> Result<(), Full> {
        // Collected (inline: binary packets have few parts) so that their bytes are known
        // before any of them is queued, and outside the lock.
        let count = frames.len();
        let frames: smallvec::SmallVec<[Frame; 4]> = frames.collect();
        let bytes = frames.iter().map(Frame::len).sum();
        let waker = {
            let mut queue = self.queue();
            if !queue.fits(count, bytes, self.limits) {
                return Err(Full);
            }
            for frame in frames {
                queue.push_back(frame);
            }
            queue.waker.take()
        };
        wake(waker);
        Ok(())
    }

    /// Queues one frame, unless the queue is full.
    pub(crate) fn push(&self, frame: Frame) -> Result<(), Full> {
        let len = frame.len();
        let waker = {
            let mut queue = self.queue();
            if !queue.fits(1, len, self.limits) {
                return Err(Full);
            }
            queue.push_back(frame);
            queue.waker.take()
        };
        wake(waker);
        Ok(())
    }
}

/// Wakes the reader of a queue that was just given frames, through its thread's pacer.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        super::pacer::wake(waker);
    }
}

/// The reading side: one reader at a time (the waker registered is the last reader's).
impl Outbox {
    /// The next frame, if one is queued.
    pub(crate) fn try_recv(&self) -> Option<Frame> {
        self.queue().pop_front()
    }

    /// The next frame, or `Pending` with the task registered to be woken by the next push.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Frame> {
        let replaced = {
            let mut queue = self.queue();
            if let Some(frame) = queue.pop_front() {
                return Poll::Ready(frame);
            }
            queue.register(cx.waker())
        };
        drop(replaced);
        Poll::Pending
    }

    /// Hands queued frames to `each` (with how many are queued, itself included), oldest first
    /// and under one lock, until the queue is empty or `each` returns `false`. `Ready(true)`
    /// when frames are left, `Ready(false)` when all were taken, `Pending` (the task registered
    /// for the next push) when none was queued.
    pub(crate) fn poll_drain(
        &self,
        cx: &mut Context<'_>,
        mut each: impl FnMut(Frame, usize) -> bool,
    ) -> Poll<bool> {
        let replaced = {
            let mut queue = self.queue();
            if !queue.is_empty() {
                while let Some(frame) = queue.pop_front() {
                    if !each(frame, queue.len() + 1) {
                        break;
                    }
                }
                return Poll::Ready(!queue.is_empty());
            }
            queue.register(cx.waker())
        };
        drop(replaced);
        Poll::Pending
    }

    /// Waits for the next frame.
    pub(crate) async fn recv(&self) -> Frame {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize) -> Limits {
        Limits {
            frames: max,
            bytes: usize::MAX,
        }
    }

    #[test]
    fn bounded_all_or_nothing_and_in_order() {
        let outbox = Outbox::new(frames(3));
        let frame = |n: u8| Frame::Binary(vec![n].into());
        assert_eq!(outbox.push_all([frame(1), frame(2)].into_iter()), Ok(()));
        assert_eq!(outbox.push_all([frame(3), frame(4)].into_iter()), Err(Full));
        assert_eq!(outbox.push_all([frame(3)].into_iter()), Ok(()));
        assert_eq!(outbox.try_recv(), Some(frame(1)));
        assert_eq!(outbox.try_recv(), Some(frame(2)));
        assert_eq!(outbox.try_recv(), Some(frame(3)));
        assert_eq!(outbox.try_recv(), None);
    }

    #[test]
    fn an_emptied_queue_gives_its_memory_back() {
        let outbox = Outbox::new(frames(1000));
        outbox
            .push_all(
                (0..100u8)
                    .map(|n| Frame::Binary(vec![n].into()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
            .unwrap_or_else(|_| panic!("room for 100"));
        while outbox.try_recv().is_some() {}
        assert!(outbox.queue().rest.is_none());
    }

    #[test]
    fn drain_hands_frames_over_in_order_and_stops_when_asked() {
        let outbox = Outbox::new(frames(8));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let frame = |n: u8| Frame::Binary(vec![n].into());
        assert_eq!(outbox.poll_drain(&mut cx, |_, _| true), Poll::Pending);
        for n in 1..=3 {
            assert_eq!(outbox.push(frame(n)), Ok(()));
        }
        let mut seen = Vec::new();
        let left = outbox.poll_drain(&mut cx, |frame, queued| {
            seen.push((frame, queued));
            seen.len() < 2
        });
        assert_eq!(left, Poll::Ready(true));
        assert_eq!(seen, vec![(frame(1), 3), (frame(2), 2)]);
        seen.clear();
        let left = outbox.poll_drain(&mut cx, |frame, queued| {
            seen.push((frame, queued));
            true
        });
        assert_eq!(left, Poll::Ready(false));
        assert_eq!(seen, vec![(frame(3), 1)]);
        assert!(outbox.queue().rest.is_none());
    }

    #[test]
    fn the_queue_fits_one_cache_line() {
        // The lock, the head and the waker must share the line the lock fetches.
        assert_eq!(std::mem::align_of::<Outbox>(), 64);
        assert_eq!(std::mem::size_of::<Outbox>(), 64);
    }

    #[test]
    fn shared_and_own_frames_leave_in_the_order_queued() {
        let outbox = Outbox::new(frames(10));
        let shared = |text: &str| Frame::message(text).shared();
        let own = |n: u8| Frame::Binary(vec![n].into());
        let queued = [shared("a"), own(1), shared("b"), own(2)];
        for frame in queued.clone() {
            assert_eq!(outbox.push(frame), Ok(()));
        }
        assert!(
            outbox.queue().head.is_some(),
            "the first shared frame is inline"
        );
        assert_eq!(outbox.try_recv(), Some(queued[0].clone()));
        // The head is gone, frames wait behind it: a new shared frame queues after them.
        assert_eq!(outbox.push(shared("c")), Ok(()));
        assert!(outbox.queue().head.is_none());
        let mut left = Vec::new();
        while let Some(frame) = outbox.try_recv() {
            left.push(frame);
        }
        assert_eq!(
            left,
            vec![
                queued[1].clone(),
                queued[2].clone(),
                queued[3].clone(),
                shared("c")
            ]
        );
        assert!(outbox.queue().is_empty());
        assert!(outbox.queue().rest.is_none());
    }

    #[test]
    fn an_inline_frame_counts_in_the_bounds() {
        let shared = Frame::message("12345678").shared();
        let outbox = Outbox::new(Limits {
            frames: 2,
            bytes: 2 * shared.len(),
        });
        assert_eq!(outbox.push(shared.clone()), Ok(()));
        assert_eq!(outbox.queue().bytes(), shared.len());
        assert_eq!(outbox.push(shared.clone()), Ok(()));
        assert_eq!(outbox.push(shared.clone()), Err(Full), "two frames at most");
        assert_eq!(outbox.try_recv(), Some(shared.clone()));
        assert_eq!(outbox.queue().bytes(), shared.len());
        let over = Frame::Binary(vec![0; shared.len() + 1].into());
        assert_eq!(outbox.push(over), Err(Full), "one byte over");
    }

    #[test]
    fn push_refuses_beyond_the_bound() {
        let outbox = Outbox::new(frames(2));
        let frame = |n: u8| Frame::Binary(vec![n].into());
        assert_eq!(outbox.push(frame(1)), Ok(()));
        assert_eq!(outbox.push(frame(2)), Ok(()));
        assert_eq!(outbox.push(frame(3)), Err(Full));
    }

    #[test]
    fn bytes_are_bounded_too_and_counted_back_as_frames_leave() {
        let outbox = Outbox::new(Limits {
            frames: 100,
            bytes: 10,
        });
        let frame = |n: usize| Frame::Binary(vec![0; n].into());
        // A lone frame is always taken, even one beyond the bound.
        assert_eq!(outbox.push(frame(25)), Ok(()));
        assert_eq!(outbox.push(frame(1)), Err(Full));
        assert_eq!(outbox.try_recv(), Some(frame(25)));
        assert_eq!(outbox.push(frame(6)), Ok(()));
        assert_eq!(outbox.push(frame(4)), Ok(()));
        assert_eq!(outbox.push(frame(1)), Err(Full), "11 bytes would wait");
        assert_eq!(outbox.push_all([frame(1)].into_iter()), Err(Full));
        assert_eq!(outbox.try_recv(), Some(frame(6)));
        assert_eq!(
            outbox.push_all([frame(3), frame(3)].into_iter()),
            Ok(()),
            "4 + 3 + 3 bytes fit"
        );
        assert_eq!(outbox.queue().bytes(), 10);
        while outbox.try_recv().is_some() {}
        assert_eq!(outbox.queue().bytes(), 0);
    }

    #[test]
    fn a_shared_frame_counts_in_full_in_every_queue() {
        let shared = Frame::message(&"x".repeat(99)).shared();
        let limits = Limits {
            frames: 100,
            bytes: 250,
        };
        let (a, b) = (Outbox::new(limits), Outbox::new(limits));
        for _ in 0..2 {
            assert_eq!(a.push(shared.clone()), Ok(()));
            assert_eq!(b.push(shared.clone()), Ok(()));
        }
        assert_eq!(a.push(shared.clone()), Err(Full));
        assert_eq!(b.push(shared), Err(Full));
    }

    #[tokio::test]
    async fn recv_wakes_on_push() {
        let outbox = std::sync::Arc::new(Outbox::new(frames(4)));
        let reader = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.recv().await }
        });
        tokio::task::yield_now().await;
        outbox
            .push_all([Frame::message("hi")].into_iter())
            .unwrap_or_else(|_| panic!("room"));
        let frame = reader.await.unwrap_or_else(|e| panic!("reader: {e}"));
        assert_eq!(frame, Frame::message("hi"));
    }
}
