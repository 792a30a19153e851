//! Failed logins slowing down further attempts (`[login]`), with the built `imgserv-admin`:
//! each run is its own process, as each CGI request is, so the counters they share are the
//! state directory's, not any process's memory.

use std::time::{Duration, Instant};

use crate::support::{Site, imgserv_admin};

/// `imgserv-admin ARGS` with `stdin`: (exit code, stdout, stderr).
fn admin(site: &Site, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let out = imgserv_admin(site, args, stdin.as_bytes());
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn login(site: &Site, user: &str, password: &str) -> (Option<i32>, String, String) {
    admin(site, &["login", user], &format!("{password}\n"))
}

/// A site with bob (local password `bob-pw`) and the throttle's settings `login` (TOML).
fn site(login: &str) -> Site {
    let site = Site::with_config(&format!("[login]\n{login}"));
    let (code, out, err) = admin(
        &site,
        &["user", "add", "bob", "--password-stdin", "--role", "editor"],
        "bob-pw\n",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    site
}

/// The seconds of "retry in N s" in the tool's message.
fn retry_in(stderr: &str) -> u64 {
    let at = stderr
        .find("imgserv-admin: too many failed logins; retry in ")
        .unwrap_or_else(|| panic!("no throttle message in:\n{stderr}"));
    let rest = &stderr[at..].split("retry in ").nth(1).unwrap();
    rest.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn wrong_passwords_make_even_the_right_one_wait_and_operators_can_lift_it() {
    let site = site(
        "user_free_failures = 2\nfirst_delay = \"2s\"\nmax_delay = \"4s\"\nfailure_window = \"1m\"\n",
    );
    for _ in 0..2 {
        let (code, _, err) = login(&site, "bob", "bob-wrong");
        assert_eq!(code, Some(77), "{err}");
        assert!(
            err.contains("refused by local"),
            "the password was checked: {err}"
        );
        assert!(
            err.contains("login failed: user \"bob\" from -: failure "),
            "{err}"
        );
        assert!(!err.contains("bob-wrong"), "no password in the log: {err}");
    }
    let refused_at = Instant::now();
    // The right password now: refused without being checked, exit 75 (EX_TEMPFAIL).
    let (code, out, err) = login(&site, "Bob", "bob-pw");
    assert_eq!(code, Some(75), "{out}{err}");
    assert!(
        (1..=2).contains(&retry_in(&err)),
        "two seconds from the last failure: {err}"
    );
    assert!(
        err.contains("login refused without checking: user \"Bob\" from -"),
        "{err}"
    );
    // No method ran: the chain logs each method it asks.
    assert!(!err.contains("by local"), "{err}");
    assert!(out.is_empty(), "{out}");
    // A user who does not exist gets the same treatment, and the same words.
    for _ in 0..2 {
        assert_eq!(login(&site, "mallory", "x").0, Some(77));
    }
    let (code, _, stranger) = login(&site, "mallory", "x");
    assert_eq!(code, Some(75), "{stranger}");

    // Operators see the counters and their waits…
    let (code, out, err) = admin(&site, &["login-throttle", "list"], "");
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("user\tmallory\t2 failures\t"), "{out}");
    assert!(lines[1].starts_with("user\tbob\t2 failures\t"), "{out}");
    assert!(lines.iter().all(|l| l.ends_with(" s")), "both wait: {out}");

    // …and the wait passes by itself: then the right password logs bob in and clears him.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(refused_at.elapsed()));
    let (code, out, err) = login(&site, "bob", "bob-pw");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("user:    bob\n"), "{out}");
    let (_, out, _) = admin(&site, &["login-throttle", "list"], "");
    assert!(!out.contains("\tbob\t"), "bob's counter is cleared: {out}");

    // An operator lifts mallory's wait at once; a name without a counter is exit 66.
    let (code, out, err) = admin(&site, &["login-throttle", "clear", "Mallory"], "");
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "cleared the user counter mallory\n"),
        "{err}"
    );
    assert_eq!(login(&site, "mallory", "x").0, Some(77), "checked again");
    let (code, _, err) = admin(&site, &["login-throttle", "clear", "nobody"], "");
    assert_eq!(code, Some(66), "{err}");
    let (code, out, _) = admin(&site, &["login-throttle", "clear", "--all"], "");
    assert_eq!((code, out.as_str()), (Some(0), "cleared 1 counters\n"));
}

#[test]
fn processes_at_once_share_one_counter_and_only_the_free_failures_are_checked() {
    let site = site(
        "user_free_failures = 2\nfirst_delay = \"1h\"\nmax_delay = \"1h\"\nfailure_window = \"1h\"\n",
    );
    let racers = 6;
    let codes: Vec<Option<i32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..racers)
            .map(|_| s.spawn(|| login(&site, "bob", "bob-wrong").0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = codes.iter().filter(|c| **c == Some(77)).count();
    let waited = codes.iter().filter(|c| **c == Some(75)).count();
    assert_eq!((checked, waited), (2, racers - 2), "{codes:?}");
    // One more process, with the right password: still an hour to wait.
    let (code, _, err) = login(&site, "bob", "bob-pw");
    assert_eq!(code, Some(75), "{err}");
    assert!((3599..=3600).contains(&retry_in(&err)), "{err}");
}

#[test]
fn turned_off_every_attempt_is_checked() {
    let site = site("throttle = false\nuser_free_failures = 0\n");
    for _ in 0..3 {
        let (code, _, err) = login(&site, "bob", "bob-wrong");
        assert_eq!(code, Some(77), "{err}");
        // Still logged once, with the user and the address.
        assert!(
            err.contains("login failed: user \"bob\" from - (not throttled)"),
            "{err}"
        );
    }
    let (code, out, err) = login(&site, "bob", "bob-pw");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!site.state().join("login_failures.sqlite").exists());
}
