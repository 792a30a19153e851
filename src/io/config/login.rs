//! `[login]`: how failed logins slow down further attempts — of the same user name, and from the
//! same address (the arithmetic is `domain::throttle`'s, the counters `io::login_failures`').

use std::time::Duration;

use serde::Deserialize;

use super::value::{DurationValue, Problems};
use crate::domain::throttle::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginConfig {
    /// Whether failures are counted and attempts made to wait at all.
    pub throttle: bool,
    pub policy: Policy,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            throttle: true,
            policy: Policy::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    throttle: Option<bool>,
    user_free_failures: Option<i64>,
    address_free_failures: Option<i64>,
    failure_window: Option<DurationValue>,
    first_delay: Option<DurationValue>,
    max_delay: Option<DurationValue>,
}

pub(super) fn validate_login(raw: &RawLogin, p: &mut Problems) -> LoginConfig {
    let d = Policy::default();
    let policy = Policy {
        user_free_failures: p.int(
            "login.user_free_failures",
            raw.user_free_failures,
            0,
            1000,
            d.user_free_failures,
        ),
        address_free_failures: p.int(
            "login.address_free_failures",
            raw.address_free_failures,
            0,
            100_000,
            d.address_free_failures,
        ),
        failure_window: p.duration(
            "login.failure_window",
            raw.failure_window.as_ref(),
            d.failure_window,
        ),
        first_delay: p.duration("login.first_delay", raw.first_delay.as_ref(), d.first_delay),
        max_delay: p.duration("login.max_delay", raw.max_delay.as_ref(), d.max_delay),
    };
    // A day at most: a longer wait is a lockout, which is `imgserv-admin`'s to decide.
    let day = Duration::from_secs(86_400);
    if policy.first_delay.is_zero() || policy.first_delay > day {
        p.add("login.first_delay", "expected more than 0 and at most 1d");
    } else if policy.max_delay < policy.first_delay || policy.max_delay > day {
        p.add(
            "login.max_delay",
            "expected at least login.first_delay and at most 1d",
        );
    } else if policy.failure_window < policy.max_delay || policy.failure_window > 30 * day {
        p.add(
            "login.failure_window",
            "expected at least login.max_delay (a counter forgotten sooner would cut the wait \
             short) and at most 30d",
        );
    }
    LoginConfig {
        throttle: raw.throttle.unwrap_or(true),
        policy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::config::from_str;
    use crate::io::config::tests::{dirs, minimal};

    #[test]
    fn defaults_and_every_key() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(c.login, LoginConfig::default());
        assert!(c.login.throttle);
        let c = from_str(
            &format!(
                "{}\n[login]\nthrottle = false\nuser_free_failures = 0\naddress_free_failures = 50\n\
                 failure_window = \"2h\"\nfirst_delay = \"500ms\"\nmax_delay = \"30m\"\n",
                minimal()
            ),
            d.path(),
        )
        .unwrap();
        assert_eq!(
            c.login,
            LoginConfig {
                throttle: false,
                policy: Policy {
                    user_free_failures: 0,
                    address_free_failures: 50,
                    failure_window: Duration::from_secs(7200),
                    first_delay: Duration::from_millis(500),
                    max_delay: Duration::from_secs(1800),
                },
            }
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            ("throttle = \"yes\"", "throttle"),
            ("user_free_failures = -1", "login.user_free_failures"),
            (
                "address_free_failures = 1000000",
                "login.address_free_failures",
            ),
            ("failure_window = \"soon\"", "login.failure_window"),
            ("first_delay = \"0s\"", "login.first_delay"),
            ("first_delay = \"2d\"", "login.first_delay"),
            ("max_delay = \"500ms\"", "login.max_delay"),
            ("max_delay = \"2h\"", "login.failure_window"),
            ("failure_window = \"10m\"", "login.failure_window"),
            ("failure_window = \"31d\"", "login.failure_window"),
        ] {
            let err = from_str(&format!("{}\n[login]\n{toml}\n", minimal()), dirs().path())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }
}
