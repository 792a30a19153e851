//! Login throttling around the authenticator chain (`[login]`): repeated failures of one user
//! name or from one address make further attempts wait, and an attempt during the wait is
//! refused (`429 too-many-logins`, with `Retry-After`) without its password being checked —
//! the same answer whether the user exists or not. Every failure and every refusal is logged
//! once, with the user name and the address, never the password.
//!
//! The policy's arithmetic is `domain::throttle`'s, the shared counters
//! `io::login_failures`'; this module names the counters (user names folded to lower case, an
//! IPv6 client by its /64), runs a login between counting and settling it, and logs. The chain
//! itself is `auth`'s, given here as a closure.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::throttle::{Kind, retry_after_secs};
use crate::io::config::Config;
use crate::io::http::Request;
use crate::io::login_failures::{Admission, FailureLog, Row};
use crate::io::metrics::Network;
use crate::usecases::error::{AuthError, Error};

/// Longest key kept for a user name (in bytes, cut at a character): a login form may send
/// anything, the counters stay small.
const MAX_KEY_BYTES: usize = 128;

/// The unix time in milliseconds, the clock of the counters.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_KEY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The counter of a user name: folded to lower case, as the directory matches names, so that
/// `Alice` gets no fresh attempts that `alice` has spent.
pub fn user_key(user: &str) -> String {
    cut(&user.to_lowercase())
}

/// The counter of a client address: an IPv4 address as it is (an IPv4-mapped IPv6 one as
/// IPv4, a port dropped); an IPv6 address by its /64 network, as one client usually holds a
/// whole /64; anything else as given. `None` for an empty address.
pub fn address_key(address: &str) -> Option<String> {
    let address = address.trim();
    if address.is_empty() {
        return None;
    }
    let ip = address
        .parse::<IpAddr>()
        .ok()
        .or_else(|| address.parse::<SocketAddr>().ok().map(|s| s.ip()));
    Some(match ip {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let net = Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64));
            format!("{net}/64")
        }
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or(address.into(), |v4| v4.to_string()),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        // Not an address (a transport's own label): escaped, as it goes to the log.
        None => cut(&address.escape_debug().to_string()),
    })
}

/// The address a login came from, as the server believes it: the peer the transport gives
/// (`REMOTE_ADDR`). A peer listed in `[server] trusted_proxies` is a proxy that every client
/// behind it shares, so it is no client's address: `None`, and only the user's counter counts
/// (counting the proxy would let one client's failures make every other one wait).
pub fn client_address<'r>(req: &'r Request, trusted_proxies: &[Network]) -> Option<&'r str> {
    let peer = req.remote_addr.as_deref()?;
    let ip = peer
        .parse::<IpAddr>()
        .ok()
        .or_else(|| peer.parse::<SocketAddr>().ok().map(|s| s.ip()));
    match ip {
        Some(ip) if trusted_proxies.iter().any(|n| n.contains(ip)) => None,
        _ => Some(peer),
    }
}

/// Runs `check` (a login of `user`) unless failures of that user name or from `address` make
/// it wait at `now_ms`, in which case it is refused with [`AuthError::Throttled`] and `check`
/// is not run. A refusal by `check` is counted; a success clears the user's counter; an
/// error that is no refusal (an outage) counts nothing. With `[login] throttle = false`,
/// `check` alone.
pub fn attempt<T>(
    config: &Config,
    user: &str,
    address: Option<&str>,
    now_ms: i64,
    check: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    let address_key = address.and_then(address_key);
    let address = address_key.as_deref();
    let from = address.unwrap_or("-");
    if !config.login.throttle {
        let outcome = check();
        if let Err(Error::Auth(AuthError::Refused)) = &outcome {
            log::warn!("login failed: user {user:?} from {from} (not throttled)");
        }
        return outcome;
    }
    let policy = &config.login.policy;
    let user_key = user_key(user);
    let mut log = FailureLog::open(&config.state.login_failures_path())?;
    let counted = match log.admit(policy, &user_key, address, now_ms)? {
        Admission::Wait(wait) => {
            let retry_after = retry_after_secs(wait);
            log::warn!(
                "login refused without checking: user {user:?} from {from}: too many failures, \
                 {retry_after} s to wait"
            );
            return Err(AuthError::Throttled { retry_after }.into());
        }
        Admission::Counted { user, address } => (user, address),
    };
    let outcome = check();
    let settled = match &outcome {
        Ok(_) => log.succeeded(&user_key, address),
        Err(Error::Auth(AuthError::Refused)) => {
            let waits = [
                Some((Kind::User, counted.0)),
                counted.1.map(|n| (Kind::Address, n)),
            ];
            let next = waits
                .into_iter()
                .flatten()
                .map(|(kind, n)| policy.delay(kind, n))
                .max()
                .unwrap_or_default();
            let from_address = counted
                .1
                .map(|n| format!(", {n} from the address"))
                .unwrap_or_default();
            log::warn!(
                "login failed: user {user:?} from {from}: failure {} of the user{from_address}; \
                 next attempt {}",
                counted.0,
                if next.is_zero() {
                    "at once".to_string()
                } else {
                    format!("in {} s", retry_after_secs(next))
                }
            );
            Ok(())
        }
        Err(_) => log.undo(&user_key, address),
    };
    // The login's own answer stands: a counter that could not be settled errs on the safe side
    // (one failure too many), and is logged.
    if let Err(e) = settled {
        log::error!("login of {user:?}: settling the failure counters: {e}");
    }
    outcome
}

/// `imgserv-admin login-throttle list`: the counters not yet forgotten at `now_ms`, each with
/// the wait it asks of an attempt now.
pub fn list(config: &Config, now_ms: i64) -> Result<Vec<(Row, std::time::Duration)>, Error> {
    let policy = &config.login.policy;
    let log = FailureLog::open(&config.state.login_failures_path())?;
    let window = i64::try_from(policy.failure_window.as_millis()).unwrap_or(i64::MAX);
    Ok(log
        .list(now_ms.saturating_sub(window))?
        .into_iter()
        .map(|row| {
            let counter = crate::domain::throttle::Counter {
                failures: row.failures,
                last_ms: row.last_ms,
            };
            let wait = policy.wait(row.kind, Some(counter), now_ms);
            (row, wait)
        })
        .collect())
}

/// `imgserv-admin login-throttle clear NAME`: the counters of NAME taken as a user name and as
/// an address (`10.0.0.1` may be either); the ones there were.
pub fn clear(config: &Config, name: &str) -> Result<Vec<(Kind, String)>, Error> {
    let mut log = FailureLog::open(&config.state.login_failures_path())?;
    let mut cleared = Vec::new();
    let keys = [
        Some((Kind::User, user_key(name))),
        address_key(name).map(|a| (Kind::Address, a)),
    ];
    for (kind, key) in keys.into_iter().flatten() {
        if log.clear(kind, &key)? {
            cleared.push((kind, key));
        }
    }
    Ok(cleared)
}

/// `imgserv-admin login-throttle clear --all`: every counter; how many there were.
pub fn clear_all(config: &Config) -> Result<usize, Error> {
    Ok(FailureLog::open(&config.state.login_failures_path())?.clear_all()?)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::domain::principal::{Method, Role};
    use crate::io::catalog::Catalog;
    use crate::usecases::passwords::tests::verifies_in;
    use crate::usecases::{auth, passwords};

    const T: i64 = 1_700_000_000_000;

    /// Two free failures per user, three per address, then a minute doubling up to ten.
    fn config(t: &tempfile::TempDir, login: &str) -> Config {
        for d in ["originals", "cache", "state"] {
            fs::create_dir_all(t.path().join(d)).unwrap();
        }
        crate::io::config::from_str(
            &format!(
                "[originals]\nroot = \"originals\"\n[cache]\ndir = \"cache\"\n[state]\n\
                 dir = \"state\"\n[login]\nuser_free_failures = 2\naddress_free_failures = 3\n\
                 first_delay = \"1m\"\nmax_delay = \"10m\"\nfailure_window = \"1h\"\n{login}"
            ),
            t.path(),
        )
        .unwrap()
    }

    fn ok() -> Result<(), Error> {
        Ok(())
    }

    fn refused() -> Result<(), Error> {
        Err(AuthError::Refused.into())
    }

    /// `attempt`'s answer as (status, Retry-After).
    fn answer(r: Result<(), Error>) -> (u16, Option<u64>) {
        match r {
            Ok(()) => (200, None),
            Err(e) => (e.status(), e.retry_after()),
        }
    }

    #[test]
    fn keys_fold_names_and_group_ipv6_clients_by_their_64() {
        assert_eq!(user_key("Alice"), "alice");
        assert_eq!(user_key("ÉLODIE"), "élodie");
        assert_eq!(user_key(&"é".repeat(100)).len(), 128);
        for (addr, key) in [
            ("192.0.2.7", Some("192.0.2.7")),
            ("192.0.2.7:51234", Some("192.0.2.7")),
            ("::ffff:192.0.2.7", Some("192.0.2.7")),
            (
                "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
                Some("2001:db8:1:2::/64"),
            ),
            ("[2001:db8:1:2::9]:443", Some("2001:db8:1:2::/64")),
            ("unix-socket", Some("unix-socket")),
            ("a\nb", Some("a\\nb")),
            ("", None),
        ] {
            assert_eq!(address_key(addr).as_deref(), key, "{addr}");
        }
    }

    #[test]
    fn a_trusted_proxy_is_no_clients_address() {
        let trusted: Vec<Network> = vec!["10.0.0.0/8".parse().unwrap()];
        let req = |peer: Option<&str>| Request {
            remote_addr: peer.map(String::from),
            ..Request::default()
        };
        let r = req(Some("192.0.2.7"));
        assert_eq!(client_address(&r, &trusted), Some("192.0.2.7"));
        let r = req(Some("10.1.2.3:4567"));
        assert_eq!(client_address(&r, &trusted), None);
        let r = req(Some("10.1.2.3"));
        assert_eq!(client_address(&r, &[]), Some("10.1.2.3"));
        assert_eq!(client_address(&req(None), &trusted), None);
    }

    /// One table of attempts against the real counters, each at its own time: who, from where,
    /// what the login would answer if run, and what `attempt` answers (status, Retry-After).
    #[test]
    fn failures_slow_down_the_user_and_the_address_and_a_success_clears_the_user() {
        let t = tempfile::tempdir().unwrap();
        let c = config(&t, "");
        let a = Some("192.0.2.7");
        let b = Some("198.51.100.1");
        type Check = fn() -> Result<(), Error>;
        type Answer = (u16, Option<u64>);
        let table: &[(i64, &str, Option<&str>, Check, Answer)] = &[
            (0, "bob", a, refused, (401, None)),
            (1, "Bob", a, refused, (401, None)), // the same name, folded
            // bob's two free failures are spent: a minute from the last one, even with the
            // right password, from anywhere.
            (2, "bob", a, ok, (429, Some(59))),
            (30, "bob", b, ok, (429, Some(31))),
            (61, "bob", b, refused, (401, None)), // waited: checked, failed: two minutes now
            (62, "bob", b, ok, (429, Some(119))),
            // Address a: two failures; carol's is its third, the last free one.
            (63, "carol", a, refused, (401, None)),
            (64, "dave", a, ok, (429, Some(59))),
            (64, "dave", None, ok, (200, None)), // no address: dave's own counter only
            // An outage counts nothing: carol still has her second free failure.
            (
                65,
                "carol",
                b,
                || Err(AuthError::Unavailable.into()),
                (503, Some(30)),
            ),
            (66, "carol", b, refused, (401, None)),
            (67, "carol", b, ok, (429, Some(59))),
            // bob logs in after his wait: his counter is cleared; address b keeps his failure.
            (181, "bob", b, ok, (200, None)),
            (182, "bob", b, refused, (401, None)), // bob 1; b 3, its last free one
            (183, "bob", None, refused, (401, None)), // bob 2
            (184, "bob", None, ok, (429, Some(59))), // bob's own wait
            (185, "erin", b, ok, (429, Some(57))), // b's wait, from 182
            // An hour after its last failure a counter is forgotten.
            (183 + 3600, "bob", b, ok, (200, None)),
        ];
        for (i, &(secs, user, from, check, want)) in table.iter().enumerate() {
            let got = answer(attempt(&c, user, from, T + secs * 1000, check));
            assert_eq!(got, want, "row {i}: {user} from {from:?} at {secs} s");
        }
    }

    #[test]
    fn a_refused_attempt_runs_no_argon2_for_a_user_or_a_stranger() {
        let t = tempfile::tempdir().unwrap();
        let c = config(&t, "");
        let mut catalog = Catalog::open(&c.state.catalog_path()).unwrap();
        let hash = passwords::hash("alice-pw").unwrap();
        catalog
            .add_user_with("alice", Role::Viewer, Some(&hash))
            .unwrap();
        let login = |user: &str, password: &str, now: i64| {
            let mut r = None;
            let verifies = verifies_in(|| {
                r = Some(attempt(&c, user, None, now, || {
                    auth::login(&c, &catalog, user, password)
                }));
            });
            (r.unwrap(), verifies)
        };
        for user in ["alice", "nobody"] {
            for _ in 0..2 {
                let (r, verifies) = login(user, "wrong", T);
                assert_eq!(r.unwrap_err().code(), "bad-credentials");
                assert_eq!(verifies.0 + verifies.1, 1, "{user}: one argon2 per check");
            }
            // The right password or not, the user existing or not: refused unchecked.
            let (r, verifies) = login(user, "alice-pw", T + 1000);
            let e = r.unwrap_err();
            assert_eq!((e.status(), e.code()), (429, "too-many-logins"));
            assert_eq!(e.to_string(), "too many failed logins; retry in 59 s");
            assert_eq!(verifies, (0, 0), "{user}: no argon2 while waiting");
        }
        let (r, verifies) = login("alice", "alice-pw", T + 60_000);
        let p = r.unwrap();
        assert_eq!((p.user.as_str(), p.method), ("alice", Method::Local));
        assert_eq!(verifies, (1, 0));
    }

    #[test]
    fn turned_off_it_counts_nothing_and_opens_no_file() {
        let t = tempfile::tempdir().unwrap();
        let c = config(&t, "throttle = false\n");
        for _ in 0..5 {
            assert_eq!(answer(attempt(&c, "bob", None, T, refused)), (401, None));
        }
        assert_eq!(answer(attempt(&c, "bob", None, T, ok)), (200, None));
        assert!(!c.state.login_failures_path().exists());
    }

    #[test]
    fn operators_list_and_clear_counters_by_name_or_address() {
        let t = tempfile::tempdir().unwrap();
        let c = config(&t, "");
        for _ in 0..3 {
            let _ = attempt(&c, "Bob", Some("192.0.2.7"), T, refused);
        }
        let rows = list(&c, T + 1000).unwrap();
        let shown: Vec<_> = rows
            .iter()
            .map(|(r, wait)| (r.kind, r.key.as_str(), r.failures, wait.as_secs()))
            .collect();
        assert_eq!(
            shown,
            [
                (Kind::Address, "192.0.2.7", 2, 0),
                (Kind::User, "bob", 2, 59)
            ]
        );
        assert_eq!(clear(&c, "BOB").unwrap(), [(Kind::User, "bob".into())]);
        assert!(clear(&c, "bob").unwrap().is_empty());
        assert_eq!(answer(attempt(&c, "bob", None, T + 1000, ok)), (200, None));
        assert_eq!(
            clear(&c, "192.0.2.7").unwrap(),
            [(Kind::Address, "192.0.2.7".into())]
        );
        let _ = attempt(&c, "x", Some("192.0.2.8"), T, refused);
        assert_eq!(clear_all(&c).unwrap(), 2);
        assert!(list(&c, T).unwrap().is_empty());
    }
}
