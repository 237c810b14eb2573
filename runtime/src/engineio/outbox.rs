//! A session's outbound queue: bounded, never waiting on the sending side, and holding memory
//! only while frames wait (an idle connection keeps an empty `VecDeque`, no block of slots).
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
    frames: Mutex<VecDeque<Frame>>,
    /// Wakes whichever transport is reading the queue.
    waker: AtomicWaker,
    max: usize,
}

/// Why frames were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

impl Outbox {
    /// A queue of at most `max` frames (at least one).
    pub(crate) fn new(max: usize) -> Outbox {
        Outbox {
            frames: Mutex::new(VecDeque::new()),
            waker: AtomicWaker::new(),
            max: max.max(1),
        }
    }

    fn frames(&self) -> MutexGuard<'_, VecDeque<Frame>> {
        lock(&self.frames)
    }

    /// Queues every frame of `frames`, or none when they do not all fit.
    pub(crate) fn push_all(
        &self,
        frames: impl ExactSizeIterator<Item = Frame>,
    ) -> Result<(), Full> {
        {
            let mut queue = self.frames();
            if queue.len() + frames.len() > self.max {
                return Err(Full);
            }
            queue.extend(frames);
        }
        self.waker.wake();
        Ok(())
    }

    /// Queues one frame, unless the queue is full.
    pub(crate) fn push(&self, frame: Frame) -> Result<(), Full> {
        {
            let mut queue = self.frames();
            if queue.len() >= self.max {
                return Err(Full);
            }
            queue.push_back(frame);
        }
        self.waker.wake();
        Ok(())
    }
}

/// The reading side: one reader at a time (the waker registered is the last reader's).
impl Outbox {
    /// The next frame, if one is queued.
    pub(crate) fn try_recv(&self) -> Option<Frame> {
        let mut queue = self.frames();
        let frame = queue.pop_front();
        release_if_empty(&mut queue);
        frame
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
                    let left = !queue.is_empty();
                    release_if_empty(&mut queue);
                    return Poll::Ready(left);
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

/// An emptied queue gives its memory back at once: an idle connection keeps none, and the next
/// frame allocates a few slots again.
fn release_if_empty(queue: &mut VecDeque<Frame>) {
    if queue.is_empty() && queue.capacity() > 0 {
        *queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_all_or_nothing_and_in_order() {
        let outbox = Outbox::new(3);
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
        let outbox = Outbox::new(1000);
        outbox
            .push_all(
                (0..100u8)
                    .map(|n| Frame::Binary(vec![n].into()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
            .unwrap_or_else(|_| panic!("room for 100"));
        while outbox.try_recv().is_some() {}
        assert_eq!(outbox.frames().capacity(), 0);
    }

    #[test]
    fn drain_hands_frames_over_in_order_and_stops_when_asked() {
        let outbox = Outbox::new(8);
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
        assert_eq!(outbox.frames().capacity(), 0);
    }

    #[test]
    fn push_refuses_beyond_the_bound() {
        let outbox = Outbox::new(2);
        let frame = |n: u8| Frame::Binary(vec![n].into());
        assert_eq!(outbox.push(frame(1)), Ok(()));
        assert_eq!(outbox.push(frame(2)), Ok(()));
        assert_eq!(outbox.push(frame(3)), Err(Full));
    }

    #[tokio::test]
    async fn recv_wakes_on_push() {
        let outbox = std::sync::Arc::new(Outbox::new(4));
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
