//! The one way this crate takes a lock.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: the pool's state stays consistent across panics
/// in user code, which never runs under these locks.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
