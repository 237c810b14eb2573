//! A session's outbound queue: bounded in frames and in bytes, never waiting on the sending
//! side, and holding memory only while frames wait (an idle connection keeps an empty
//! `VecDeque`, no block of slots).
//!
//! Any number of senders push; one reader at a time takes frames out (the session hands out
//! that right: see `session::Reader`).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::packet::Frame;
use crate::sync::lock;

/// One queue, kept inside its session.
#[derive(Debug)]
pub(crate) struct Outbox {
    frames: Mutex<Queue>,
    /// Wakes whichever transport is reading the queue.
    waker: AtomicWaker,
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

/// The frames and how many bytes they hold.
#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Frame>,
    bytes: usize,
}

impl Queue {
    fn pop_front(&mut self) -> Option<Frame> {
        let frame = self.frames.pop_front()?;
        self.bytes -= frame.len();
        if self.frames.is_empty() {
            // An emptied queue gives its memory back at once: an idle connection keeps none,
            // and the next frame allocates a few slots again.
            self.frames = VecDeque::new();
            self.bytes = 0;
        }
        Some(frame)
    }

    fn len(&self) -> usize {
        self.frames.len()
    }

    fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether `count` more frames of `bytes` bytes in all stay within `limits`.
    fn fits(&self, count: usize, bytes: usize, limits: Limits) -> bool {
        self.frames.len() + count <= limits.frames
            && (self.frames.is_empty() || self.bytes + bytes <= limits.bytes)
    }
}

/// Why frames were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

impl Outbox {
    /// A queue within `limits`.
    pub(crate) fn new(limits: Limits) -> Outbox {
        Outbox {
            frames: Mutex::new(Queue::default()),
            waker: AtomicWaker::new(),
            limits: Limits {
                frames: limits.frames.max(1),
                bytes: limits.bytes,
            },
        }
    }

    fn frames(&self) -> MutexGuard<'_, Queue> {
        lock(&self.frames)
    }

    /// Queues every frame of `frames`, or none when they do not all fit.
    pub(crate) fn push_all(
        &self,
        frames: impl ExactSizeIterator<Item = Frame>,
    ) -> Result<(), Full> {
        {
            let mut queue = self.frames();
            let count = frames.len();
            // Collected (inline: binary packets have few parts) so that their bytes are known
            // before any of them is queued.
            let frames: smallvec::SmallVec<[Frame; 4]> = frames.collect();
            let bytes = frames.iter().map(Frame::len).sum();
            if !queue.fits(count, bytes, self.limits) {
                return Err(Full);
            }
            queue.bytes += bytes;
            queue.frames.extend(frames);
        }
        if let Some(writer) = self.waker.take() {
            super::pacer::wake(writer);
        }
        Ok(())
    }

    /// Queues one frame, unless the queue is full.
    pub(crate) fn push(&self, frame: Frame) -> Result<(), Full> {
        {
            let mut queue = self.frames();
            if !queue.fits(1, frame.len(), self.limits) {
                return Err(Full);
            }
            queue.bytes += frame.len();
            queue.frames.push_back(frame);
        }
        if let Some(writer) = self.waker.take() {
            super::pacer::wake(writer);
        }
        Ok(())
    }
}

/// The reading side: one reader at a time (the waker registered is the last reader's).
impl Outbox {
    /// The next frame, if one is queued.
    pub(crate) fn try_recv(&self) -> Option<Frame> {
        self.frames().pop_front()
    }

    /// The next frame, or `Pending` with the task registered to be woken by the next push.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Frame> {
        if let Some(frame) = self.try_recv() {
            return Poll::Ready(frame);
        }
        self.waker.register(cx.waker());
        // A push between the first look and the registration must not be missed.
        match self.try_recv() {
            Some(frame) => Poll::Ready(frame),
            None => Poll::Pending,
        }
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
        for attempt in 0..2 {
            {
                let mut queue = self.frames();
                if !queue.is_empty() {
                    while let Some(frame) = queue.pop_front() {
                        if !each(frame, queue.len() + 1) {
                            break;
                        }
                    }
                    return Poll::Ready(!queue.is_empty());
                }
            }
            if attempt == 0 {
                // A push between the first look and the registration must not be missed.
                self.waker.register(cx.waker());
            }
        }
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
        assert_eq!(outbox.frames().frames.capacity(), 0);
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
        assert_eq!(outbox.frames().frames.capacity(), 0);
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
        assert_eq!(outbox.frames().bytes, 10);
        while outbox.try_recv().is_some() {}
        assert_eq!(outbox.frames().bytes, 0);
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
