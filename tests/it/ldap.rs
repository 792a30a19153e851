//! The `ldap` authentication method against a real slapd (tests/it/support/slapd.rs): both ways
//! of finding users, groups and the admin role re-read at every call, disabled accounts kept
//! out by `user_filter`, injection attempts, StartTLS and ldaps with a generated CA, a wrong CA,
//! a stopped directory and one that never answers; and `imgserv-admin ldap-test`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use imgserv::io::ldap::{
    GroupLookup, LdapConfig, LdapError, LdapIdentity, Refusal, UserLookup, authenticate, check,
};
use imgserv::io::store::Secret;

use crate::support::slapd::{READER_DN, READER_PW};
use crate::support::{Site, Slapd};

const PEOPLE: &str = "ou=people,dc=example,dc=org";

fn groups() -> Option<GroupLookup> {
    Some(GroupLookup {
        base: "ou=groups,dc=example,dc=org".into(),
        filter: "(member={dn})".into(),
    })
}

/// `user_dn` style over StartTLS, trusting the test CA.
fn template(slapd: &Slapd) -> LdapConfig {
    LdapConfig {
        url: slapd.url(),
        starttls: true,
        ca_file: Some(slapd.ca_file()),
        timeout: Duration::from_secs(5),
        lookup: UserLookup::Template {
            user_dn: format!("uid={{user}},{PEOPLE}"),
        },
        groups: groups(),
        admin_group: Some("ImgAdmins".into()),
    }
}

/// Search-then-bind over ldaps as the reader, with disabled accounts filtered out.
fn search(slapd: &Slapd) -> LdapConfig {
    LdapConfig {
        url: slapd.ldaps_url(),
        starttls: false,
        ca_file: Some(slapd.ca_file()),
        timeout: Duration::from_secs(5),
        lookup: UserLookup::Search {
            bind: Some((READER_DN.into(), Secret::new(READER_PW))),
            base_dn: PEOPLE.into(),
            user_filter: "(&(uid={user})(!(employeeType=disabled)))".into(),
        },
        groups: groups(),
        admin_group: Some("imgadmins".into()),
    }
}

fn login(config: &LdapConfig, user: &str, password: &str) -> Option<LdapIdentity> {
    authenticate(config, user, password)
        .unwrap_or_else(|e| panic!("{user:?}: the directory should answer: {e}"))
}

fn refusal(config: &LdapConfig, user: &str, password: &str) -> Refusal {
    match check(config, user, password) {
        Ok(Err(r)) => r,
        other => panic!("{user:?}: expected a refusal, got {other:?}"),
    }
}

fn names(identity: &LdapIdentity) -> Vec<&str> {
    identity.groups.iter().map(String::as_str).collect()
}

#[test]
fn both_styles_log_users_in_with_their_groups_and_role() {
    let slapd = Slapd::start();
    for config in [template(&slapd), search(&slapd)] {
        let style = format!("{:?}", config.lookup);
        let alice = login(&config, "alice", "alice-pw").expect(&style);
        assert_eq!(alice.dn, format!("uid=alice,{PEOPLE}"));
        assert_eq!(alice.user, "alice");
        assert_eq!(names(&alice), ["imgadmins", "photographers"], "{style}");
        assert!(alice.admin, "{style}: admin_group is compared without case");
        let bob = login(&config, "bob", "bob-pw").expect(&style);
        assert_eq!(names(&bob), ["photographers"]);
        assert!(!bob.admin);
        let dave = login(&config, "dave", "dave-pw").expect(&style);
        assert!(dave.groups.is_empty() && !dave.admin);
        // A name with DN and filter metacharacters that really exists logs in, escaped right.
        let doe = login(&config, "doe, j*(x)", "doe-pw").expect(&style);
        assert_eq!(names(&doe), ["photographers"], "{style}");

        // Wrong password, unknown user: the same answer to the caller.
        assert_eq!(login(&config, "alice", "bob-pw"), None, "{style}");
        assert_eq!(login(&config, "mallory", "alice-pw"), None, "{style}");
        assert_eq!(login(&config, "alice", "alice-pw "), None, "{style}");
        // An empty password is never sent (an anonymous bind would "succeed").
        assert_eq!(refusal(&config, "alice", ""), Refusal::EmptyPassword);
        assert_eq!(refusal(&config, "", "x"), Refusal::BadUserName);
        assert_eq!(
            refusal(&config, &"a".repeat(300), "x"),
            Refusal::BadUserName
        );
    }
    // The reasons differ, for the log and ldap-test.
    assert!(matches!(
        refusal(&template(&slapd), "mallory", "x"),
        Refusal::Refused { .. }
    ));
    assert_eq!(refusal(&search(&slapd), "mallory", "x"), Refusal::NoEntry);
    assert!(matches!(
        refusal(&search(&slapd), "alice", "wrong"),
        Refusal::Refused { dn, .. } if dn == format!("uid=alice,{PEOPLE}")
    ));
}

#[test]
fn user_filter_keeps_disabled_accounts_out() {
    let slapd = Slapd::start();
    // With the right password, carol is refused because the filter excludes her entry...
    assert_eq!(
        refusal(&search(&slapd), "carol", "carol-pw"),
        Refusal::NoEntry
    );
    assert_eq!(login(&search(&slapd), "carol", "carol-pw"), None);
    // ...which is the filter's doing: without it (user_dn style) the directory accepts her.
    assert!(login(&template(&slapd), "carol", "carol-pw").is_some());
    // Enabling the account lets her in at the next login.
    slapd.modify(&format!(
        "dn: uid=carol,{PEOPLE}\nchangetype: modify\ndelete: employeeType\n"
    ));
    let carol = login(&search(&slapd), "carol", "carol-pw").expect("enabled");
    assert_eq!(names(&carol), ["photographers"]);
}

#[test]
fn injection_attempts_match_only_themselves() {
    let slapd = Slapd::start();
    let attempts = [
        "*",
        "ali*",
        "alice)(uid=*",
        "*)(uid=*))(|(uid=*",
        "alice)(|(employeeType=*",
        "alice\\",
        "alice\\2a",
        "alice\0",
        "alice,ou=people",
        "alice,ou=people,dc=example,dc=org",
        "uid=alice",
        "alice+cn=x",
        " alice",
        "#alice",
    ];
    for config in [template(&slapd), search(&slapd)] {
        for user in attempts {
            assert_eq!(
                login(&config, user, "alice-pw"),
                None,
                "{user:?} must not log in as alice ({:?})",
                config.lookup
            );
        }
        // carol is disabled: no filter trick gets her past it.
        for user in ["carol)(|(uid=carol", "carol)(employeeType=x", "car*"] {
            assert_eq!(login(&search(&slapd), user, "carol-pw"), None, "{user:?}");
        }
    }
}

#[test]
fn group_changes_and_posix_groups_are_seen_at_the_next_call() {
    let slapd = Slapd::start();
    let config = search(&slapd);
    assert!(!login(&config, "bob", "bob-pw").unwrap().admin);
    slapd.modify(&format!(
        "dn: cn=imgadmins,ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\nmember: uid=bob,{PEOPLE}\n-\ndelete: member\nmember: uid=alice,{PEOPLE}\n"
    ));
    let bob = login(&config, "bob", "bob-pw").unwrap();
    assert!(bob.admin);
    assert_eq!(names(&bob), ["imgadmins", "photographers"]);
    let alice = login(&config, "alice", "alice-pw").unwrap();
    assert!(!alice.admin);
    assert_eq!(names(&alice), ["photographers"]);

    // posixGroup membership by name, read as the user in the user_dn style.
    let mut posix = template(&slapd);
    posix.groups = Some(GroupLookup {
        base: "ou=groups,dc=example,dc=org".into(),
        filter: "(&(objectClass=posixGroup)(memberUid={user}))".into(),
    });
    posix.admin_group = Some("staff".into());
    let alice = login(&posix, "alice", "alice-pw").unwrap();
    assert_eq!(names(&alice), ["staff"]);
    assert!(alice.admin);
    assert!(login(&posix, "bob", "bob-pw").unwrap().groups.is_empty());
}

#[test]
fn tls_needs_the_right_ca() {
    let slapd = Slapd::start();
    for mut config in [template(&slapd), search(&slapd)] {
        assert!(login(&config, "alice", "alice-pw").is_some());
        config.ca_file = Some(slapd.wrong_ca_file());
        let err = authenticate(&config, "alice", "alice-pw").unwrap_err();
        assert!(matches!(err, LdapError::Tls { .. }), "{err}");
        // The system's store does not hold the test CA either.
        config.ca_file = None;
        let err = authenticate(&config, "alice", "alice-pw").unwrap_err();
        assert!(matches!(err, LdapError::Tls { .. }), "{err}");
    }
    // A file that holds no certificate is a configuration problem, said before connecting.
    let junk = slapd.dir().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let mut config = search(&slapd);
    config.ca_file = Some(junk);
    let err = authenticate(&config, "alice", "alice-pw").unwrap_err();
    assert!(matches!(err, LdapError::CaFile(_)), "{err}");
}

#[test]
fn misconfiguration_is_an_error_not_a_refusal() {
    let slapd = Slapd::start();
    let mut config = search(&slapd);
    config.lookup = UserLookup::Search {
        bind: Some((READER_DN.into(), Secret::new("wrong"))),
        base_dn: PEOPLE.into(),
        user_filter: "(uid={user})".into(),
    };
    let err = authenticate(&config, "alice", "alice-pw").unwrap_err();
    assert!(matches!(err, LdapError::ServiceBind { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("wrong"), "{err:?}");
    config.lookup = UserLookup::Search {
        bind: Some((READER_DN.into(), Secret::new(""))),
        base_dn: PEOPLE.into(),
        user_filter: "(uid={user})".into(),
    };
    let err = authenticate(&config, "alice", "alice-pw").unwrap_err();
    assert!(err.to_string().contains("empty bind_password"), "{err}");
    config.lookup = UserLookup::Search {
        bind: Some((READER_DN.into(), Secret::new(READER_PW))),
        base_dn: "ou=nobody,dc=example,dc=org".into(),
        user_filter: "(uid={user})".into(),
    };
    let err = authenticate(&config, "alice", "alice-pw").unwrap_err();
    assert!(matches!(err, LdapError::Directory { .. }), "{err}");
    let mut config = search(&slapd);
    config.groups = Some(GroupLookup {
        base: "ou=nothing,dc=example,dc=org".into(),
        filter: "(member={dn})".into(),
    });
    let err = authenticate(&config, "alice", "alice-pw").unwrap_err();
    assert!(matches!(err, LdapError::Directory { .. }), "{err}");
}

#[test]
fn a_stopped_directory_fails_at_once() {
    let mut slapd = Slapd::start();
    let configs = [template(&slapd), search(&slapd)];
    assert!(login(&configs[0], "alice", "alice-pw").is_some());
    slapd.stop();
    for config in &configs {
        let start = Instant::now();
        let err = authenticate(config, "alice", "alice-pw").unwrap_err();
        assert!(matches!(err, LdapError::Unavailable { .. }), "{err}");
        assert!(start.elapsed() < config.timeout, "{:?}", start.elapsed());
    }
}

#[test]
fn a_directory_that_never_answers_fails_within_the_timeout() {
    // Accepts TCP connections (the kernel completes the handshake) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let ca = Slapd::start();
    let timeout = Duration::from_millis(800);
    for (url, starttls, lookup) in [
        (format!("ldap://127.0.0.1:{port}"), false, 0),
        (format!("ldap://127.0.0.1:{port}"), true, 0),
        (format!("ldaps://127.0.0.1:{port}"), false, 1),
        (format!("ldap://127.0.0.1:{port}"), false, 1),
    ] {
        let mut config = if lookup == 0 {
            template(&ca)
        } else {
            search(&ca)
        };
        config.url = url.clone();
        config.starttls = starttls;
        config.timeout = timeout;
        let start = Instant::now();
        let err = authenticate(&config, "alice", "alice-pw").unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, LdapError::Unavailable { .. }), "{url}: {err}");
        assert!(
            took >= timeout - Duration::from_millis(50) && took < timeout * 2,
            "{url} starttls={starttls}: {took:?}"
        );
    }
}

/// `imgserv-admin ldap-test USER` with the password on standard input.
fn ldap_test(site: &Site, user: &str, password: &str) -> (Option<i32>, String, String) {
    let out = crate::support::imgserv_admin(
        site,
        &["ldap-test", user],
        format!("{password}\n").as_bytes(),
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ldap_test_tells_operators_what_happened() {
    let mut slapd = Slapd::start();
    let site = Site::with_config(&format!(
        "[ldap]\nurl = \"{}\"\nstarttls = true\nca_file = {:?}\ntimeout = \"2s\"\nbind_dn = \"{READER_DN}\"\nbind_password = \"{READER_PW}\"\nbase_dn = \"{PEOPLE}\"\nuser_filter = \"(&(uid={{user}})(!(employeeType=disabled)))\"\ngroup_base = \"ou=groups,dc=example,dc=org\"\ngroup_filter = \"(member={{dn}})\"\nadmin_group = \"imgadmins\"\n",
        slapd.url(),
        slapd.ca_file().to_str().unwrap(),
    ));
    let (code, out, err) = ldap_test(&site, "alice", "alice-pw");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("dn:      uid=alice,{PEOPLE}")),
        "{out}"
    );
    assert!(out.contains("groups:  imgadmins, photographers"), "{out}");
    assert!(out.contains("admin:   yes"), "{out}");

    let (code, out, _) = ldap_test(&site, "alice", "nope");
    assert_eq!(code, Some(77));
    assert!(
        out.contains("refused: the directory refused the password"),
        "{out}"
    );
    let (code, out, _) = ldap_test(&site, "carol", "carol-pw");
    assert_eq!(code, Some(77));
    assert!(
        out.contains("no entry under base_dn matches user_filter"),
        "{out}"
    );
    let (code, out, _) = ldap_test(&site, "alice", "");
    assert_eq!(code, Some(77));
    assert!(out.contains("empty password"), "{out}");

    slapd.stop();
    let (code, _, err) = ldap_test(&site, "alice", "alice-pw");
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("unavailable"), "{err}");

    // No [ldap] section: a configuration problem.
    let plain = Site::with_config("");
    let (code, _, err) = ldap_test(&plain, "alice", "alice-pw");
    assert_eq!(code, Some(78));
    assert!(err.contains("no [ldap] section"), "{err}");
}
