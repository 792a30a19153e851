//! Long-lived helper threads for the second band of a split decode
//! ([`super::jpeg::decode_resized_split`]).
//!
//! The band used to run on a thread spawned for each render. Each new thread takes a glibc
//! arena (one left by a thread that ended, or a new one), and its band's buffers stay resident
//! in that arena (`src/io/malloc.rs` keeps freed memory on purpose); a server whose connection
//! threads come and go handed the bands one arena after another, so what renders left resident
//! grew with the arenas touched, not with the threads that render (tests/it/memory.rs). These
//! threads are started once, so the bands' memory stays in their arenas.
//!
//! A job is handed over only to a helper that is idle at that moment: when all are busy (as many
//! renders as cores already running), [`try_run`] declines, and the caller decodes on its own
//! thread, which is then the faster choice anyway.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

static HELPERS: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();

/// One fewer than the cores (at least one): with every core rendering, the caller's own thread
/// does the whole decode.
fn count() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

fn start() -> Option<SyncSender<Job>> {
    // A rendezvous channel: a send succeeds only into a helper waiting in `recv`.
    let (jobs, queue) = mpsc::sync_channel::<Job>(0);
    let queue: &'static Mutex<Receiver<Job>> = Box::leak(Box::new(Mutex::new(queue)));
    let mut started = 0;
    for i in 0..count() {
        let spawned = thread::Builder::new()
            .name(format!("render-helper-{i}"))
            .spawn(move || {
                loop {
                    let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        match spawned {
            Ok(_) => started += 1,
            Err(e) => log::warn!("cannot start a render helper thread: {e}"),
        }
    }
    (started > 0).then_some(jobs)
}

/// Runs `job` on an idle helper thread and returns where its result will arrive (`Err` if it
/// panicked), or `None` when no helper is idle (or none could be started).
pub(super) fn try_run<R: Send + 'static>(
    job: impl FnOnce() -> R + Send + 'static,
) -> Option<Receiver<thread::Result<R>>> {
    let jobs = HELPERS.get_or_init(start).as_ref()?;
    let (done, result) = mpsc::sync_channel(1);
    let wrapped: Job = Box::new(move || {
        // The caller may have gone (it unwound); nothing to tell it then.
        let _ = done.send(panic::catch_unwind(AssertUnwindSafe(job)));
    });
    if cfg!(test) {
        // The unit tests run many renders at once and check that each one splits: there, wait
        // for a helper rather than decline.
        return jobs.send(wrapped).ok().map(|()| result);
    }
    // A helper that just sent its result is back in `recv` a moment later: let it get there,
    // so that back-to-back renders keep splitting.
    let mut wrapped = wrapped;
    for attempt in 0..2 {
        match jobs.try_send(wrapped) {
            Ok(()) => return Some(result),
            Err(TrySendError::Full(job)) if attempt == 0 => {
                wrapped = job;
                thread::yield_now();
            }
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_on_a_helper_thread_and_a_panic_is_returned() {
        let name = try_run(|| thread::current().name().map(str::to_string))
            .expect("a helper")
            .recv()
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(name.starts_with("render-helper-"), "{name}");
        let panicked = try_run(|| panic!("asked to")).expect("a helper");
        assert!(panicked.recv().unwrap().is_err());
    }
}
