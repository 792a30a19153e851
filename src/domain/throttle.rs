//! Login throttling as arithmetic: when a counter of failed logins (of one user name, or from
//! one address) makes the next attempt wait, and for how long. Times are unix milliseconds
//! given by the caller (no clock here); where counters live and who is logged is elsewhere.
//!
//! A counter holds the failures counted and the time of the last one. It is forgotten once
//! `failure_window` has passed since its last failure. Its first `free` failures cost nothing;
//! from then on each further attempt must come at least `delay(failures)` after the last
//! failure: `first_delay`, doubled for every failure past `free`, at most `max_delay`.

use std::time::Duration;

/// The throttle's settings (`[login]`), validated: `first_delay <= max_delay <= failure_window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures of one user name before its attempts must wait.
    pub user_free_failures: u32,
    /// Failures from one address (whatever the user names) before its attempts must wait.
    pub address_free_failures: u32,
    /// A counter is forgotten this long after its last failure.
    pub failure_window: Duration,
    /// The wait after the first failure past the free ones.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            user_free_failures: 5,
            address_free_failures: 20,
            failure_window: Duration::from_secs(3600),
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(900),
        }
    }
}

/// Whose failures a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// One user name, folded to lower case.
    User,
    /// One client address (an IPv6 client's /64).
    Address,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Address => "address",
        }
    }
}

/// Failed logins counted for one user name or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Failures since the counter was (re)started.
    pub failures: u32,
    /// When the last one happened (unix ms).
    pub last_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Policy {
    /// The failures a counter of `kind` may hold before attempts wait.
    pub fn free(&self, kind: Kind) -> u32 {
        match kind {
            Kind::User => self.user_free_failures,
            Kind::Address => self.address_free_failures,
        }
    }

    /// `counter` as it stands at `now_ms`: `None` once `failure_window` has passed since its
    /// last failure. A last failure in the future (the clock was set back) still counts.
    pub fn live(&self, counter: Option<Counter>, now_ms: i64) -> Option<Counter> {
        counter.filter(|c| now_ms.saturating_sub(c.last_ms) < ms(self.failure_window))
    }

    /// The wait owed after `failures` failures of a counter of `kind`: none up to the free
    /// ones, then `first_delay` doubled for each failure past them, at most `max_delay`.
    pub fn delay(&self, kind: Kind, failures: u32) -> Duration {
        let Some(past) = failures.checked_sub(self.free(kind)) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(past).unwrap_or(u32::MAX);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// How much longer an attempt at `now_ms` must wait because of `counter` (of `kind`):
    /// zero when it may go ahead. Never more than `max_delay`, even when the clock went back.
    pub fn wait(&self, kind: Kind, counter: Option<Counter>, now_ms: i64) -> Duration {
        let Some(c) = self.live(counter, now_ms) else {
            return Duration::ZERO;
        };
        let delay = self.delay(kind, c.failures);
        let since = Duration::from_millis(now_ms.saturating_sub(c.last_ms).max(0).unsigned_abs());
        delay.saturating_sub(since)
    }

    /// The counter after one more failure at `now_ms` (a forgotten one starts again at 1).
    pub fn after_failure(&self, counter: Option<Counter>, now_ms: i64) -> Counter {
        let failures = self
            .live(counter, now_ms)
            .map_or(0, |c| c.failures)
            .saturating_add(1);
        Counter {
            failures,
            last_ms: now_ms,
        }
    }
}

/// A wait as `Retry-After` says it: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn policy() -> Policy {
        Policy {
            user_free_failures: 3,
            address_free_failures: 10,
            failure_window: Duration::from_secs(60),
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        }
    }

    /// One user's attempts in order: (time in ms, whether the attempt fails when it is let
    /// through, the wait in ms it must still do — 0 when let through).
    #[test]
    fn free_failures_then_a_doubling_wait_since_the_last_failure_capped() {
        let p = policy();
        let t0 = 1_000_000 * S;
        let table: &[(i64, bool, i64)] = &[
            (0, true, 0), // 1st failure
            (0, true, 0), // 2nd
            (0, true, 0), // 3rd: the free ones are spent
            (0, true, 1000),
            (999, true, 1),
            (1000, true, 0), // 4th failure, at 1 s: next wait 2 s
            (2500, true, 500),
            (3000, true, 0),   // 5th, at 3 s: 4 s
            (6999, true, 1),   //
            (7000, true, 0),   // 6th, at 7 s: 8 s
            (15_000, true, 0), // 7th, at 15 s: 16 s, capped at 8 s
            (22_999, true, 1),
            (23_000, true, 0), // 8th, at 23 s: still 8 s
            (31_000, true, 0), // 9th
            // A minute after the last failure the counter is forgotten: three free again.
            (91_000, true, 0),
            (91_000, true, 0),
            (91_000, true, 0),
            (91_000, false, 1000),
        ];
        let mut counter = None;
        for (i, &(t, fails, want)) in table.iter().enumerate() {
            let now = t0 + t;
            let wait = p.wait(Kind::User, counter, now);
            assert_eq!(
                wait,
                Duration::from_millis(want.unsigned_abs()),
                "row {i}: at {t} ms after {counter:?}"
            );
            if wait.is_zero() && fails {
                counter = Some(p.after_failure(counter, now));
            }
        }
    }

    #[test]
    fn delays_by_kind_and_their_cap() {
        let p = policy();
        let secs = |kind, n| p.delay(kind, n).as_secs();
        let user: Vec<u64> = (0..9).map(|n| secs(Kind::User, n)).collect();
        assert_eq!(user, [0, 0, 0, 1, 2, 4, 8, 8, 8]);
        assert_eq!(secs(Kind::Address, 9), 0);
        assert_eq!(secs(Kind::Address, 10), 1);
        assert_eq!(secs(Kind::Address, 12), 4);
        // No overflow however many failures.
        assert_eq!(secs(Kind::User, u32::MAX), 8);
        let none_free = Policy {
            user_free_failures: 0,
            ..p
        };
        assert_eq!(none_free.delay(Kind::User, 1).as_secs(), 2);
    }

    #[test]
    fn a_clock_set_back_never_makes_the_wait_longer_than_the_cap() {
        let p = policy();
        let c = Counter {
            failures: 50,
            last_ms: 10_000 * S,
        };
        assert_eq!(p.wait(Kind::User, Some(c), 0), Duration::from_secs(8));
        assert_eq!(
            p.wait(Kind::User, Some(c), 10_000 * S + 60 * S),
            Duration::ZERO,
            "forgotten after the window"
        );
        // A failure after the window starts a new count.
        assert_eq!(p.after_failure(Some(c), 10_060 * S).failures, 1);
        assert_eq!(p.after_failure(Some(c), 10_059 * S).failures, 51);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        for (ms, secs) in [(1, 1), (999, 1), (1000, 1), (1001, 2), (0, 1), (8000, 8)] {
            assert_eq!(retry_after_secs(Duration::from_millis(ms)), secs, "{ms}");
        }
    }
}
