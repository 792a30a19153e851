//! A counting semaphore bounding open connections, here and in the standalone HTTP server.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// A counting semaphore: at most `n` permits out at once.
#[derive(Debug)]
pub(in crate::web::transport) struct Semaphore {
    free: Mutex<usize>,
    freed: Condvar,
}

/// Returns its slot to the semaphore when dropped, also while unwinding.
pub(in crate::web::transport) struct Permit(Arc<Semaphore>);

impl Semaphore {
    pub(in crate::web::transport) fn new(n: usize) -> Arc<Self> {
        Arc::new(Semaphore {
            free: Mutex::new(n),
            freed: Condvar::new(),
        })
    }

    /// Waits for a free slot.
    pub(in crate::web::transport) fn acquire(self: &Arc<Self>) -> Permit {
        // Nothing panics while holding the lock, so a poisoned lock still holds a valid count.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Permit(Arc::clone(self))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}
