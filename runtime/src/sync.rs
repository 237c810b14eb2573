//! Locks a panic elsewhere does not take down. Every critical section in this crate leaves the
//! data behind its lock whole (no user code runs while one is held), so a lock poisoned by a
//! panicking thread is simply used as it is.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `mutex`'s guard, whether or not a panic poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `lock`'s read guard, whether or not a panic poisoned it.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// `lock`'s write guard, whether or not a panic poisoned it.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let shared = Arc::new(Mutex::new(1));
        let poisoner = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock();
            panic!("poisons the lock on purpose");
        })
        .join();
        assert!(shared.is_poisoned());
        *super::lock(&shared) += 1;
        assert_eq!(*super::lock(&shared), 2);
    }

    #[test]
    fn a_poisoned_rwlock_still_gives_its_data() {
        let shared = Arc::new(std::sync::RwLock::new(1));
        let poisoner = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.write();
            panic!("poisons the lock on purpose");
        })
        .join();
        assert!(shared.is_poisoned());
        *super::write(&shared) += 1;
        assert_eq!(*super::read(&shared), 2);
    }
}
