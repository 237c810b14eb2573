//! A session's outbound queue: bounded, never waiting on the sending side, and holding memory
//! only while frames wait (an idle connection keeps an empty `VecDeque`, no block of slots).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::packet::Frame;

/// Above this capacity, a queue that has emptied gives its memory back.
const KEEP_CAPACITY: usize = 16;

/// The shared state of one queue.
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
    /// A queue of at most `max` frames (at least one), and the handle that reads it.
    pub(crate) fn new(max: usize) -> (Arc<Outbox>, Receiver) {
        let outbox = Arc::new(Outbox {
            frames: Mutex::new(VecDeque::new()),
            waker: AtomicWaker::new(),
            max: max.max(1),
        });
        (outbox.clone(), Receiver(outbox))
    }

    fn frames(&self) -> MutexGuard<'_, VecDeque<Frame>> {
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
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
}

/// The reading end of an [`Outbox`].
#[derive(Debug)]
pub(crate) struct Receiver(Arc<Outbox>);

impl Receiver {
    /// The next frame, if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Frame> {
        let mut queue = self.0.frames();
        let frame = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEEP_CAPACITY {
            *queue = VecDeque::new();
        }
        frame
    }

    /// The next frame, or `Pending` with the task registered to be woken by the next push.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Frame> {
        if let Some(frame) = self.try_recv() {
            return Poll::Ready(frame);
        }
        self.0.waker.register(cx.waker());
        // A push between the first look and the registration must not be missed.
        match self.try_recv() {
            Some(frame) => Poll::Ready(frame),
            None => Poll::Pending,
        }
    }

    /// Waits for the next frame.
    pub(crate) async fn recv(&mut self) -> Frame {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_all_or_nothing_and_in_order() {
        let (outbox, mut rx) = Outbox::new(3);
        let frame = |n: u8| Frame::Binary(vec![n].into());
        assert_eq!(outbox.push_all([frame(1), frame(2)].into_iter()), Ok(()));
        assert_eq!(outbox.push_all([frame(3), frame(4)].into_iter()), Err(Full));
        assert_eq!(outbox.push_all([frame(3)].into_iter()), Ok(()));
        assert_eq!(rx.try_recv(), Some(frame(1)));
        assert_eq!(rx.try_recv(), Some(frame(2)));
        assert_eq!(rx.try_recv(), Some(frame(3)));
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn an_emptied_queue_gives_its_memory_back() {
        let (outbox, mut rx) = Outbox::new(1000);
        outbox
            .push_all(
                (0..100u8)
                    .map(|n| Frame::Binary(vec![n].into()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
            .unwrap_or_else(|_| panic!("room for 100"));
        while rx.try_recv().is_some() {}
        assert_eq!(outbox.frames().capacity(), 0);
    }

    #[tokio::test]
    async fn recv_wakes_on_push() {
        let (outbox, mut rx) = Outbox::new(4);
        let reader = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        outbox
            .push_all([Frame::message("hi")].into_iter())
            .unwrap_or_else(|_| panic!("room"));
        let frame = reader.await.unwrap_or_else(|e| panic!("reader: {e}"));
        assert_eq!(frame, Frame::message("hi"));
    }
}
