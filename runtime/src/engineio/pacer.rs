//! Wakes the writers of connections that were just given frames, a handful at a time, so
//! that what arrives meanwhile (the next emit, a client's frame) is handled before every
//! writer has run, and the frames of several emits leave a connection in one write.
//!
//! Why: a broadcast to N connections queues one frame in each and wakes N writers. Woken at
//! once, they all run before the runtime looks at its sockets again, so with emits arriving
//! one after another (each request waiting for its answer) every connection writes each
//! frame alone: one system call and one TCP segment per delivery, which on loopback costs the
//! server's core several microseconds each. Woken [`BATCH`] at a time by one task that then
//! steps back behind them, the writers share the thread with the request that brings the next
//! emit: its frame joins the queues of the connections not yet written, and they write both
//! in one call. Nothing waits on a timer: a lone frame's writer is woken at the pacer's next
//! turn, right after the task that queued it yields.
//!
//! The pacer is per thread, a task among the writers' own: every WebSocket writer runs in its
//! worker thread's `LocalSet` (in actix-http's dispatcher, or on `tidings::HttpServer` in a
//! task of its own), and the first writer to wait for frames on a thread starts the thread's
//! pacer there ([`start_here`]); a runtime task would take all its turns before the writers'
//! next one. Frames queued on a thread without a pacer (no WebSocket writer there yet, a thread
//! with no runtime) wake their writer at once.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// How many writers one turn of the pacer wakes before it yields.
const BATCH: usize = 64;

#[derive(Default)]
struct Pacer {
    /// Writers to wake, in the order their first frame was queued.
    pending: VecDeque<Waker>,
    /// The pacer task, while it waits for writers to wake.
    idle: Option<Waker>,
    /// Whether this thread's pacer task exists.
    running: bool,
}

thread_local! {
    static PACER: RefCell<Pacer> = RefCell::new(Pacer::default());
}

/// Wakes `waker` (a connection's writer, which has frames to write) through this thread's
/// pacer, or at once where there is none.
pub(crate) fn wake(waker: Waker) {
    let mut waker = Some(waker);
    let idle = PACER.try_with(|pacer| {
        let mut pacer = pacer.try_borrow_mut().ok()?;
        if !pacer.running {
            return None;
        }
        pacer.pending.extend(waker.take());
        pacer.idle.take()
    });
    if let Some(waker) = waker {
        waker.wake();
    }
    if let Ok(Some(idle)) = idle {
        idle.wake();
    }
}

/// Starts this thread's pacer unless it runs already. Called by a WebSocket writer about to
/// take frames, so from inside the `LocalSet` that polls the writers.
pub(crate) fn start_here() {
    let start = PACER
        .try_with(|pacer| {
            let mut pacer = pacer.try_borrow_mut().ok()?;
            (!pacer.running).then(|| pacer.running = true)
        })
        .ok()
        .flatten()
        .is_some();
    if start {
        tokio::task::spawn_local(PacerTask);
    }
}

/// The task that wakes a thread's pending writers, [`BATCH`] per turn.
struct PacerTask;

impl Future for PacerTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (batch, more) = PACER.with(|pacer| {
            let mut pacer = pacer.borrow_mut();
            let take = pacer.pending.len().min(BATCH);
            let batch: smallvec::SmallVec<[Waker; BATCH]> = pacer.pending.drain(..take).collect();
            let more = !pacer.pending.is_empty();
            if !more {
                pacer.idle = Some(cx.waker().clone());
            }
            (batch, more)
        });
        for waker in batch {
            waker.wake();
        }
        if more {
            // Behind the writers just woken, and whatever the runtime found ready meanwhile.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Drop for PacerTask {
    /// The runtime is going away: whoever is still waiting is woken now, and a later runtime
    /// on this thread starts a pacer of its own.
    fn drop(&mut self) {
        let pending = PACER
            .try_with(|pacer| {
                let mut pacer = pacer.borrow_mut();
                pacer.running = false;
                pacer.idle = None;
                std::mem::take(&mut pacer.pending)
            })
            .unwrap_or_default();
        for waker in pending {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    /// Steps back once behind the tasks already queued (as a writer's turn does).
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `n` wakers that count their wakes, each already handed to [`wake`].
    fn woken_through_the_pacer(n: usize) -> Vec<Arc<Count>> {
        let counts: Vec<Arc<Count>> = (0..n)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        for count in &counts {
            wake(Waker::from(count.clone()));
        }
        counts
    }

    /// A current-thread runtime and a `LocalSet`, as an actix worker has.
    fn worker() -> (tokio::runtime::Runtime, tokio::task::LocalSet) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        (runtime, tokio::task::LocalSet::new())
    }

    #[test]
    fn without_a_runtime_the_writer_is_woken_at_once() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        wake(Waker::from(count.clone()));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn writers_are_woken_in_batches_in_order_by_the_pacer_of_their_thread() {
        let (runtime, local) = worker();
        let seen = local.block_on(&runtime, async {
            // The observer is a task of the `LocalSet`, as the writers are.
            let observer = tokio::task::spawn_local(async {
                start_here();
                let counts = woken_through_the_pacer(200);
                // Nothing is woken before the pacer's turn.
                assert!(counts.iter().all(|c| c.0.load(Ordering::SeqCst) == 0));
                let mut seen = Vec::new();
                while counts.iter().any(|c| c.0.load(Ordering::SeqCst) == 0) {
                    YieldOnce(false).await;
                    let woken: Vec<bool> = counts
                        .iter()
                        .map(|c| c.0.load(Ordering::SeqCst) == 1)
                        .collect();
                    // In the order they were queued: the woken ones are a prefix.
                    assert!(woken.windows(2).all(|w| w[0] || !w[1]), "{woken:?}");
                    seen.push(woken.iter().filter(|w| **w).count());
                    assert!(seen.len() < 100, "the pacer stalled");
                }
                seen
            });
            observer.await.expect("the observer")
        });
        // Between two turns of this task the pacer takes at most one: never more than BATCH
        // writers woken at once.
        assert!(seen.windows(2).all(|w| w[1] - w[0] <= BATCH), "{seen:?}");
        assert!(seen.len() >= 200 / BATCH, "{seen:?}");
        assert_eq!(seen.last(), Some(&200));
        drop(local);
        drop(runtime);
        // The pacer went with its runtime: a later writer on this thread is woken at once.
        let count = Arc::new(Count(AtomicUsize::new(0)));
        wake(Waker::from(count.clone()));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn writers_still_waiting_when_the_runtime_goes_are_woken() {
        let (runtime, local) = worker();
        let counts = local.block_on(&runtime, async {
            start_here();
            let counts = woken_through_the_pacer(3);
            // Deferred to the pacer, which has not had a turn yet.
            assert!(counts.iter().all(|c| c.0.load(Ordering::SeqCst) == 0));
            counts
        });
        drop(local);
        assert!(counts.iter().all(|c| c.0.load(Ordering::SeqCst) == 1));
        drop(runtime);
    }
}
