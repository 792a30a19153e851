//! The worker pool of the FastCGI and standalone servers: `[server] workers` threads, started
//! once, run every request's handler; connection threads only read requests and write
//! responses.
//!
//! Why threads of their own rather than a count of connection threads allowed in at once:
//! memory. glibc gives each thread that allocates an arena of its own (up to 8 a core), and an
//! arena keeps the high-water mark of what its thread rendered (`src/io/malloc.rs` raises the trim
//! threshold on purpose, so that the next render reuses the pages). With the handler on the
//! connection threads, every connection that once rendered a large original kept about one
//! render's working set (33 MiB for 2880×2160), so the server's RSS grew with the number of
//! connections the web server had opened, not with `workers`; RELIABILITY.md has the runs. On
//! this pool the retained memory is at most `workers` renders' peaks, whatever the number of
//! connections.

use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use super::cgi::handle_catching;
use crate::io::http::{Handler, Request, Response};

/// A request for a worker and where its answer goes.
type Job = (Request, SyncSender<Response>);

/// `n` threads running one handler; [`Workers::handle`] waits for a free one.
pub struct Workers {
    jobs: SyncSender<Job>,
}

impl Workers {
    /// Starts `n` (at least 1) threads named `worker-N`.
    pub fn start(n: usize, handler: Arc<dyn Handler>) -> io::Result<Workers> {
        // No queue beyond the threads: a sender waits until a worker takes its job, as it
        // waited for a free slot before.
        let (jobs, queue) = mpsc::sync_channel::<Job>(0);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..n.max(1) {
            let (queue, handler) = (Arc::clone(&queue), Arc::clone(&handler));
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(&queue, handler.as_ref()))?;
        }
        Ok(Workers { jobs })
    }

    /// Runs the handler on `req` on a worker thread and returns its response (`500` if the
    /// handler panicked; the worker goes on).
    pub fn handle(&self, req: Request) -> Response {
        let is_head = req.is_head();
        let (reply, answer) = mpsc::sync_channel(1);
        let answered = self
            .jobs
            .send((req, reply))
            .ok()
            .and_then(|()| answer.recv().ok());
        answered.unwrap_or_else(|| {
            // Only if every worker thread is gone, which handle_catching prevents.
            log::error!("no worker thread to run the request");
            let resp = Response::error(500, "panic", "internal error");
            if is_head {
                resp.with_body(Vec::new())
            } else {
                resp
            }
        })
    }
}

fn work(queue: &Mutex<Receiver<Job>>, handler: &dyn Handler) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((req, reply)) = job else {
            return; // the pool was dropped
        };
        // The connection may be gone (its thread ended); nothing to do then.
        let _ = reply.send(handle_catching(handler, req));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Records the threads it ran on and how many ran at once.
    struct Probe {
        threads: Mutex<HashSet<String>>,
        running: AtomicUsize,
        most: AtomicUsize,
    }

    impl Handler for Probe {
        fn handle(&self, req: Request) -> Response {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let name = thread::current().name().unwrap_or("").to_string();
            self.threads.lock().unwrap().insert(name);
            if req.path == "/panic" {
                self.running.fetch_sub(1, Ordering::SeqCst);
                panic!("asked to");
            }
            thread::sleep(Duration::from_millis(20));
            self.running.fetch_sub(1, Ordering::SeqCst);
            Response::new(200).with_body(req.path.into_bytes())
        }
    }

    #[test]
    fn many_callers_share_n_threads_and_a_panic_costs_no_worker() {
        let probe = Arc::new(Probe {
            threads: Mutex::new(HashSet::new()),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        });
        let workers = Arc::new(Workers::start(2, probe.clone()).unwrap());
        let panicked = workers.handle(Request {
            path: "/panic".into(),
            ..Request::default()
        });
        assert_eq!(panicked.status, 500);
        let start = Arc::new(Barrier::new(12));
        let callers: Vec<_> = (0..12)
            .map(|i| {
                let (workers, start) = (workers.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    let path = format!("/{i}");
                    let resp = workers.handle(Request {
                        path: path.clone(),
                        ..Request::default()
                    });
                    assert_eq!((resp.status, resp.body), (200, path.into_bytes()));
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        assert!(probe.most.load(Ordering::SeqCst) <= 2);
        let threads = probe.threads.lock().unwrap().clone();
        assert!(
            threads.iter().all(|t| t == "worker-0" || t == "worker-1"),
            "{threads:?}"
        );
    }
}
