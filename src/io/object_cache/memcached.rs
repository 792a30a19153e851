//! The memcached backend: several servers, each key on one of them (by hash), every call
//! bounded by the configured timeout.
//!
//! A server that fails (refused, reset, timed out) is marked down: the failure is logged once,
//! calls for its keys answer "miss" at once, and it is tried again after a back-off (doubling
//! from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`]), not on every request; its recovery is logged
//! once too. Deletes that could not reach it are kept (up to [`MAX_PENDING`]) and replayed
//! before it is used again, so that a value changed during an outage is not read back stale.
//!
//! A CGI process lives for one request, so what it learns of a server would be lost: given a
//! `shared_dir` (the state directory), processes share it through a small marker file per
//! server (`memcached-down-<hash>`: when to try again and the back-off), created by the first
//! process that finds the server down (the one that logs it) and removed by the first that
//! finds it back (the one that logs that). Long-lived processes keep it in memory only.
//!
//! The `memcache` crate's own pool is built here with its checks turned off: its default
//! `connect` blocks ~30 s on a dead host, it sends a `version` round trip before every call, and
//! a connection whose read timed out would stay in the pool and read the late answer as the
//! next one's. On any error the server's client (pool and connections) is dropped instead.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memcache::{Client, ConnectionManager, Url};

/// The first wait before a server that failed is tried again.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries of a server that stays down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Deletes remembered for a server while it is down; beyond that the TTL bounds staleness.
pub const MAX_PENDING: usize = 4096;
/// Connections kept per server (a FastCGI or standalone server's threads share them).
const POOL_SIZE: u32 = 8;

/// Several memcached servers.
pub struct Memcached {
    servers: Vec<Server>,
    timeout: Duration,
}

struct Server {
    addr: String,
    state: Mutex<State>,
    /// The marker shared with other processes (CGI), if any.
    marker: Option<PathBuf>,
}

#[derive(Default)]
struct State {
    client: Option<Client>,
    /// Set while the server is considered down: when to try it again, and the wait after that.
    down: Option<(Instant, Duration)>,
    /// Keys whose delete did not reach the server.
    pending: Vec<String>,
    /// Whether the shared marker was read (once per process).
    marker_read: bool,
}

impl Memcached {
    /// Contacts nothing: each server is connected on its first use. With `shared_dir`, what
    /// this process learns of a server's outage is shared with other processes there.
    pub fn new(servers: &[String], timeout: Duration, shared_dir: Option<&Path>) -> Memcached {
        Memcached {
            servers: servers
                .iter()
                .map(|addr| Server {
                    addr: addr.clone(),
                    state: Mutex::new(State::default()),
                    marker: shared_dir.map(|d| d.join(marker_name(addr))),
                })
                .collect(),
            timeout,
        }
    }

    fn server(&self, key: &str) -> &Server {
        // A fixed hash (not std's randomised one): every process must pick the same server.
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        key.hash(&mut h);
        &self.servers[(h.finish() % self.servers.len() as u64) as usize]
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.server(key)
            .call(self.timeout, |c| c.get::<Vec<u8>>(key))
            .flatten()
    }

    pub fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        // memcached reads an expiry over 30 days as a unix time; config keeps the TTL below.
        let secs = u32::try_from(ttl.as_secs().max(1)).unwrap_or(u32::MAX);
        self.server(key)
            .call(self.timeout, |c| c.set(key, value, secs));
    }

    pub fn delete(&self, key: &str) {
        let server = self.server(key);
        if server.call(self.timeout, |c| c.delete(key)).is_none() {
            let mut state = server.lock();
            if state.pending.len() < MAX_PENDING {
                state.pending.push(key.to_string());
            }
        }
    }
}

impl Server {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `op` on this server's client; `None` when the server is down (without trying it
    /// before its back-off is over) or the call fails (then it is marked down).
    fn call<T>(
        &self,
        timeout: Duration,
        op: impl FnOnce(&Client) -> Result<T, memcache::MemcacheError>,
    ) -> Option<T> {
        let (client, was_down, pending) = {
            let mut state = self.lock();
            self.read_marker(&mut state);
            // The back-off that ended, when the server was down.
            let was_down = match state.down {
                Some((retry_at, _)) if Instant::now() < retry_at => return None,
                Some((_, backoff)) => Some(backoff),
                None => None,
            };
            let client = match &state.client {
                Some(c) => c.clone(),
                None => match self.connect(timeout) {
                    Ok(c) => state.client.insert(c).clone(),
                    Err(e) => {
                        self.mark_down(&mut state, &e);
                        return None;
                    }
                },
            };
            // While this call tries, concurrent calls see the server as up and try too; each
            // is bounded by the timeout all the same.
            if was_down.is_some() {
                state.down = None;
            }
            (client, was_down, std::mem::take(&mut state.pending))
        };
        let result = pending
            .iter()
            .try_for_each(|k| client.delete(k).map(drop))
            .and_then(|()| op(&client));
        let mut state = self.lock();
        match result {
            Ok(value) => {
                if was_down.is_some() && self.clear_marker() {
                    log::warn!(
                        "object cache: memcached {} answers again; using it",
                        self.addr
                    );
                }
                Some(value)
            }
            Err(e) => {
                // The deletes not known to have reached the server are kept for next time.
                state.pending.extend(pending);
                state.pending.truncate(MAX_PENDING);
                if let Some(backoff) = was_down {
                    // Still down: restore the back-off cleared above, for mark_down to double.
                    state.down = Some((Instant::now(), backoff));
                }
                self.mark_down(&mut state, &e);
                None
            }
        }
    }

    /// Drops the client (its connections may hold a late answer) and schedules the next try;
    /// logs only the transition from up to down.
    fn mark_down(&self, state: &mut State, e: &dyn std::fmt::Display) {
        state.client = None;
        let backoff = match state.down {
            Some((_, last)) => (last * 2).min(MAX_BACKOFF),
            None if !self.create_marker() => FIRST_BACKOFF,
            None => {
                log::warn!(
                    "object cache: memcached {} is unreachable ({e}); reading the catalog meanwhile, \
                     trying it again every {}–{} s",
                    self.addr,
                    FIRST_BACKOFF.as_secs(),
                    MAX_BACKOFF.as_secs()
                );
                FIRST_BACKOFF
            }
        };
        state.down = Some((Instant::now() + backoff, backoff));
        if let Some(marker) = &self.marker {
            let retry_at = unix_ms().saturating_add(backoff.as_millis() as u64);
            let _ = fs::write(marker, format!("{retry_at} {}\n", backoff.as_millis()));
        }
    }

    /// Takes another process's finding that the server is down, once per process.
    fn read_marker(&self, state: &mut State) {
        let Some(marker) = self.marker.as_ref().filter(|_| !state.marker_read) else {
            return;
        };
        state.marker_read = true;
        let Ok(text) = fs::read_to_string(marker) else {
            return;
        };
        let mut numbers = text.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(retry_at)), Some(Ok(backoff))) = (numbers.next(), numbers.next()) {
            let wait = Duration::from_millis(retry_at.saturating_sub(unix_ms()));
            let backoff = Duration::from_millis(backoff).clamp(FIRST_BACKOFF, MAX_BACKOFF);
            state.down = Some((Instant::now() + wait.min(MAX_BACKOFF), backoff));
        }
    }

    /// Whether this process is the first to find the server down (and so logs it): always
    /// without a shared marker, else when it created the marker.
    fn create_marker(&self) -> bool {
        let Some(marker) = &self.marker else {
            return true;
        };
        match fs::File::create_new(marker) {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            // A state directory it cannot write: each process logs, rather than none.
            Err(_) => true,
        }
    }

    /// Whether this process is the first to find the server back (and so logs it).
    fn clear_marker(&self) -> bool {
        match &self.marker {
            None => true,
            Some(marker) => match fs::remove_file(marker) {
                Ok(()) => true,
                Err(e) => e.kind() != ErrorKind::NotFound,
            },
        }
    }

    /// A client whose every connection times out: `timeout` to connect (the pool's wait),
    /// to read and to write (the URL's `timeout`, applied to each new socket).
    fn connect(&self, timeout: Duration) -> Result<Client, memcache::MemcacheError> {
        let url = format!("memcache://{}?timeout={}", self.addr, timeout.as_secs_f64());
        let url = Url::parse(&url).map_err(|e| memcache::MemcacheError::BadURL(e.to_string()))?;
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(ConnectionManager::new(url));
        Client::with_pool(pool)
    }
}

/// The marker's file name for a server.
fn marker_name(addr: &str) -> String {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.write(addr.as_bytes());
    format!("memcached-down-{:016x}", h.finish())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
