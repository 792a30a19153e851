//! Logging in through `[auth] methods` in order (`imgserv-admin login USER`, the chain a login
//! form uses): local users, an external program, a real slapd; a refusal goes on to the next
//! method, and an outage is told apart from a wrong password.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::slapd::{READER_DN, READER_PW, Slapd};
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

/// A `command` program: accepts carol/carol-pw (groups and a role), refuses everyone else; or
/// hangs when `hang`.
fn program(site: &Site, hang: bool) -> String {
    let path = site.dir().join(if hang { "hang" } else { "check" });
    let body = if hang {
        "exec sleep 30".to_string()
    } else {
        "read u; read p\n[ \"$u\" = carol ] && [ \"$p\" = carol-pw ] || exit 1\nprintf 'role=editor\\nprinters\\n'".to_string()
    };
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_string()
}

fn add_local_user(site: &Site) {
    let (code, out, err) = admin(
        site,
        &["user", "add", "bob", "--password-stdin", "--role", "editor"],
        "bob-local\n",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, ..) = admin(site, &["group", "add", "darkroom"], "");
    assert_eq!(code, Some(0));
    let (code, ..) = admin(site, &["group", "member", "add", "darkroom", "bob"], "");
    assert_eq!(code, Some(0));
}

#[test]
fn methods_are_tried_in_order_and_refusals_say_nothing_more() {
    let site = Site::new();
    let check = program(&site, false);
    site.write_config(&format!(
        "[auth]\nmethods = [\"command\", \"local\"]\ncommand = [{check:?}]\n"
    ));
    add_local_user(&site);

    let (code, out, err) = login(&site, "bob", "bob-local");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("user:    bob\n") && out.contains("method:  local\n"),
        "{out}"
    );
    assert!(
        out.contains("roles:   editor\n") && out.contains("groups:  darkroom\n"),
        "{out}"
    );
    // The program refused bob first: logged, then local accepted.
    assert!(
        err.contains("refused by command") && err.contains("accepted by local"),
        "{err}"
    );

    let (code, out, err) = login(&site, "carol", "carol-pw");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("method:  command\n") && out.contains("groups:  printers\n"),
        "{out}"
    );
    assert!(out.contains("roles:   editor\n"), "{out}");

    // A wrong password and an unknown user: the same answer.
    let wrong = login(&site, "bob", "bob-wrong");
    let unknown = login(&site, "mallory", "bob-local");
    assert_eq!((wrong.0, unknown.0), (Some(77), Some(77)));
    let message = |stderr: &str| {
        stderr
            .lines()
            .filter(|l| l.starts_with("imgserv-admin:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        message(&wrong.2),
        "imgserv-admin: wrong user name or password"
    );
    assert_eq!(message(&wrong.2), message(&unknown.2));
}

#[test]
fn an_outage_is_not_a_wrong_password_and_does_not_stop_other_methods() {
    let site = Site::new();
    let hang = program(&site, true);
    site.write_config(&format!(
        "[auth]\nmethods = [\"command\", \"local\"]\ncommand = [{hang:?}]\ncommand_timeout = \"500ms\"\n"
    ));
    add_local_user(&site);
    // The program hangs and is killed; local still decides for its user.
    let (code, out, err) = login(&site, "bob", "bob-local");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(err.contains("command could not decide"), "{err}");
    // For anyone else nobody could decide: 69, not 77.
    let (code, _, err) = login(&site, "carol", "carol-pw");
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("logins cannot be checked now"), "{err}");
}

#[test]
fn a_directory_and_the_catalog_in_one_chain() {
    let mut slapd = Slapd::start();
    let site = Site::new();
    site.write_config(&format!(
        "[auth]\nmethods = [\"ldap\", \"local\"]\n[ldap]\nurl = \"{}\"\nstarttls = true\nca_file = {:?}\ntimeout = \"2s\"\nbind_dn = \"{READER_DN}\"\nbind_password = \"{READER_PW}\"\nbase_dn = \"ou=people,dc=example,dc=org\"\nuser_filter = \"(uid={{user}})\"\ngroup_base = \"ou=groups,dc=example,dc=org\"\ngroup_filter = \"(member={{dn}})\"\nadmin_group = \"imgadmins\"\n",
        slapd.url(),
        slapd.ca_file().to_str().unwrap(),
    ));
    add_local_user(&site);

    // alice is in the directory (and its admin group); the name is folded to lower case.
    let (code, out, err) = login(&site, "Alice", "alice-pw");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("user:    alice\n") && out.contains("method:  ldap\n"),
        "{out}"
    );
    assert!(out.contains("roles:   admin\n"), "{out}");
    assert!(out.contains("groups:  imgadmins, photographers\n"), "{out}");
    // bob's directory password is not his local one: the directory refuses, local accepts.
    let (code, out, _) = login(&site, "bob", "bob-local");
    assert_eq!(code, Some(0));
    assert!(out.contains("method:  local\n"), "{out}");

    slapd.stop();
    let (code, _, err) = login(&site, "alice", "alice-pw");
    assert_eq!(code, Some(69), "the directory is down: {err}");
    let (code, out, _) = login(&site, "bob", "bob-local");
    assert_eq!(code, Some(0), "local users still log in");
    assert!(out.contains("method:  local\n"), "{out}");
}
