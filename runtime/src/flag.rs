//! A boolean that tasks can wait for.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A flag that is set once, from anywhere, and awaited by tasks; reading it is one atomic load.
#[derive(Debug, Default)]
pub(crate) struct Flag {
    value: AtomicBool,
    notify: Notify,
}

impl Flag {
    /// Sets the flag and wakes every waiter.
    pub(crate) fn set(&self) {
        self.value.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.value.load(Ordering::Acquire)
    }

    /// Resolves once the flag is set.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before looking at the flag, so a `set` in between is not missed.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn wait_returns_once_set() {
        let flag = Arc::new(Flag::default());
        let waiter = tokio::spawn({
            let flag = flag.clone();
            async move { flag.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        flag.set();
        waiter.await.unwrap_or_else(|e| panic!("waiter: {e}"));
        assert!(flag.is_set());
    }
}
