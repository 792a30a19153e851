//! `imgserv-admin` users, groups, passwords and expiring keys through the built binary: what
//! it prints, its sysexits codes, what the catalog holds after (and what a local login and a
//! signed API request then meet).

use std::process::Output;
use std::time::Duration;

use imgserv::io::catalog::{Catalog, Role};
use imgserv::io::http::Handler;
use imgserv::usecases::passwords::local_login;
use imgserv::web::api::App;

use crate::api::{load, sign_with, unsigned};
use crate::support::Site;

fn admin_in(site: &Site, args: &[&str], stdin: &[u8]) -> Output {
    crate::support::imgserv_admin(site, args, stdin)
}

fn admin(site: &Site, args: &[&str]) -> Output {
    admin_in(site, args, b"")
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn catalog(site: &Site) -> Catalog {
    Catalog::open(&load(site).state.catalog_path()).unwrap()
}

#[test]
fn users_with_roles_passwords_and_the_disabled_flag() {
    let site = Site::with_config("");
    let out = admin_in(
        &site,
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--role",
            "viewer",
        ],
        b"correct horse\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("viewer, with a password"), "{out:?}");
    // Without --password-stdin, stdin is not read and the user has no password.
    let out = admin_in(&site, &["user", "add", "keys"], b"not read\n");
    assert!(
        stdout(&out).contains("editor, without a password"),
        "{out:?}"
    );
    // Refusals: an empty password (nothing is added), a bad role, an existing user.
    for input in [&b""[..], b"\n", b"\xff\n"] {
        let out = admin_in(&site, &["user", "add", "bob", "--password-stdin"], input);
        assert_eq!(code(&out), Some(64), "{input:?}: {out:?}");
    }
    assert_eq!(
        code(&admin(&site, &["user", "add", "bob", "--role", "root"])),
        Some(64)
    );
    assert_eq!(code(&admin(&site, &["user", "add", "alice"])), Some(73));
    assert_eq!(
        catalog(&site)
            .users()
            .unwrap()
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        ["alice", "keys"],
        "nothing half-added"
    );
    // The password never appears in the arguments, and it is the one that logs in.
    let c = catalog(&site);
    let alice = local_login(&c, "alice", "correct horse").unwrap().unwrap();
    assert_eq!((alice.role, alice.groups.len()), (Role::Viewer, 0));
    assert!(
        local_login(&c, "alice", "correct horse\n")
            .unwrap()
            .is_none()
    );
    assert!(local_login(&c, "keys", "").unwrap().is_none());
    drop(c);

    // passwd: from stdin, empty refused, unknown user 67.
    let out = admin_in(&site, &["user", "passwd", "alice"], b"battery staple\r\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        code(&admin_in(&site, &["user", "passwd", "alice"], b"")),
        Some(64)
    );
    assert_eq!(
        code(&admin_in(&site, &["user", "passwd", "nobody"], b"x\n")),
        Some(67)
    );
    let c = catalog(&site);
    assert!(local_login(&c, "alice", "correct horse").unwrap().is_none());
    assert!(
        local_login(&c, "alice", "battery staple")
            .unwrap()
            .is_some()
    );
    drop(c);

    // disable / enable.
    assert!(admin(&site, &["user", "disable", "alice"]).status.success());
    assert_eq!(
        code(&admin(&site, &["user", "disable", "nobody"])),
        Some(67)
    );
    assert!(
        local_login(&catalog(&site), "alice", "battery staple")
            .unwrap()
            .is_none()
    );
    let list = stdout(&admin(&site, &["user", "list"]));
    assert!(
        list.contains("alice\tviewer\tdisabled\t-\t0 keys\t"),
        "{list}"
    );
    assert!(
        list.contains("keys\teditor\tenabled,no-password\t-\t0 keys\t"),
        "{list}"
    );
    assert!(admin(&site, &["user", "enable", "alice"]).status.success());
    assert!(
        local_login(&catalog(&site), "alice", "battery staple")
            .unwrap()
            .is_some()
    );
}

#[test]
fn groups_and_members() {
    let site = Site::with_config("");
    for name in ["alice", "bob"] {
        assert!(admin(&site, &["user", "add", name]).status.success());
    }
    assert!(admin(&site, &["group", "add", "staff"]).status.success());
    assert!(admin(&site, &["group", "add", "band"]).status.success());
    assert_eq!(code(&admin(&site, &["group", "add", "staff"])), Some(73));
    assert_eq!(code(&admin(&site, &["group", "add", "a b"])), Some(64));
    for (group, user) in [("staff", "alice"), ("staff", "bob"), ("band", "alice")] {
        let out = admin(&site, &["group", "member", "add", group, user]);
        assert!(out.status.success(), "{out:?}");
    }
    let again = admin(&site, &["group", "member", "add", "staff", "bob"]);
    assert!(again.status.success() && stdout(&again).contains("already"));
    assert_eq!(
        code(&admin(&site, &["group", "member", "add", "nope", "bob"])),
        Some(67)
    );
    assert_eq!(
        code(&admin(&site, &["group", "member", "add", "staff", "carol"])),
        Some(67)
    );
    let groups = stdout(&admin(&site, &["group", "list"]));
    assert!(groups.contains("band\talice\t"), "{groups}");
    assert!(groups.contains("staff\talice,bob\t"), "{groups}");
    let users = stdout(&admin(&site, &["user", "list"]));
    assert!(
        users.contains("alice\teditor\tenabled,no-password\tband,staff\t"),
        "{users}"
    );

    assert!(
        admin(&site, &["group", "member", "del", "staff", "bob"])
            .status
            .success()
    );
    assert_eq!(
        code(&admin(&site, &["group", "member", "del", "staff", "bob"])),
        Some(67),
        "not a member"
    );
    assert!(admin(&site, &["group", "del", "band"]).status.success());
    assert_eq!(code(&admin(&site, &["group", "del", "band"])), Some(67));
    let groups = catalog(&site).groups().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].members, ["alice"]);
    // Deleting a user takes their keys and memberships with them.
    let out = admin(&site, &["key", "add", "alice"]);
    assert!(out.status.success());
    let out = admin(&site, &["user", "del", "alice"]);
    assert!(stdout(&out).contains("and 1 keys"), "{out:?}");
    let c = catalog(&site);
    assert_eq!(c.groups().unwrap()[0].members, Vec::<String>::new());
    assert_eq!(c.keys().unwrap(), []);
}

/// The id printed by `key add`.
fn key_id(out: &Output) -> String {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn expiring_keys_and_disabled_users_are_refused_by_the_api() {
    let site = Site::with_config("");
    assert!(admin(&site, &["user", "add", "alice"]).status.success());
    let short = admin(&site, &["key", "add", "alice", "--expires", "1s"]);
    assert!(short.status.success(), "{short:?}");
    assert!(stdout(&short).contains("expires: "), "{short:?}");
    let long = admin(&site, &["key", "add", "alice", "--expires", "30d"]);
    assert_eq!(
        code(&admin(&site, &["key", "add", "alice", "--expires", "soon"])),
        Some(64)
    );
    let (short, long) = (key_id(&short), key_id(&long));
    let app = App::new(load(&site));
    let c = catalog(&site);
    let call = |id: &str| {
        let key = c.key(id).unwrap().unwrap();
        let resp = app
            .handle(sign_with(&key, unsigned("GET", "/api/images", "", b"")))
            .collect()
            .unwrap();
        (
            resp.status,
            String::from_utf8_lossy(&resp.body).into_owned(),
        )
    };
    assert_eq!(call(&long).0, 200);
    std::thread::sleep(Duration::from_millis(2100));
    let (status, body) = call(&short);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired-key"), "{body}");
    assert_eq!(call(&long).0, 200);
    let list = stdout(&admin(&site, &["key", "list"]));
    assert!(
        list.contains(&format!("{short}\talice\tread\t")) && list.contains("\texpired "),
        "{list}"
    );
    // A disabled user's keys are refused, and work again once the user is enabled.
    assert!(admin(&site, &["user", "disable", "alice"]).status.success());
    let (status, body) = call(&long);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("disabled-user"), "{body}");
    assert!(admin(&site, &["user", "enable", "alice"]).status.success());
    assert_eq!(call(&long).0, 200);
}
