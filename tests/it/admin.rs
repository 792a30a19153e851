//! `imgserv-admin` users, keys and signed URLs through the built binary: what it prints, what
//! the catalog holds after, and sysexits codes for the failures.

use std::process::{Command, Output};

use imgserv::io::http::{Handler, Request};

use crate::api::{get_404, load};
use crate::support::Site;

fn admin(site: &Site, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imgserv-admin"))
        .arg("--config")
        .arg(site.config_path())
        .args(args)
        .env_remove("GATEWAY_INTERFACE")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn users_keys_and_signed_urls() {
    let site = Site::with_config("[security]\nrequire_signed_urls = true\n");
    site.add_original("photo-rocket-640x427.jpg");
    assert!(admin(&site, &["user", "add", "alice"]).status.success());
    assert_eq!(
        admin(&site, &["user", "add", "alice"]).status.code(),
        Some(73)
    );
    assert_eq!(
        admin(&site, &["user", "add", "a b"]).status.code(),
        Some(64)
    );
    let out = admin(&site, &["key", "add", "alice", "--rights", "read,write"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let key_id = text
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap()
        .trim()
        .to_string();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(secret.len(), 64);
    assert_eq!(admin(&site, &["key", "add", "bob"]).status.code(), Some(67));
    assert_eq!(
        admin(&site, &["key", "add", "alice", "--rights", "fly"])
            .status
            .code(),
        Some(64)
    );
    let list = stdout(&admin(&site, &["key", "list"]));
    assert!(
        list.contains(&key_id) && list.contains("read,write") && !list.contains(&secret),
        "{list}"
    );
    assert!(
        stdout(&admin(&site, &["user", "list"]))
            .contains("alice\teditor\tenabled,no-password\t-\t1 keys\t")
    );

    // sign-url: a redirector URL the server then accepts, and a tampered copy it refuses.
    let out = admin(
        &site,
        &[
            "sign-url",
            "https://img.example.org/cgi-bin/imgserv.cgi?src=photo-rocket-640x427.jpg&width=300&height=300",
            "--expires",
            "1h",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let signed = stdout(&out).trim().to_string();
    let query = signed.split_once('?').unwrap().1.to_string();
    assert!(
        query.contains("exp=") && query.contains(&format!("sig={key_id}.")),
        "{signed}"
    );
    let app = imgserv::web::api::App::new(load(&site));
    assert_eq!(app.handle(Request::get("", &query)).status, 302);
    assert_eq!(
        app.handle(Request::get("", &query.replace("300", "301")))
            .status,
        401
    );
    // A 404-handler URL is signed below the cache URL.
    let id = "0".repeat(40);
    let out = admin(
        &site,
        &[
            "sign-url",
            &format!("/cache/{id}/300/300.jpg"),
            "--key",
            &key_id,
        ],
    );
    let signed = stdout(&out).trim().to_string();
    let (path, query) = signed.split_once('?').unwrap();
    let resp = get_404(&app, path, query);
    assert_eq!(
        resp.status,
        404,
        "signature accepted, no such image: {}",
        String::from_utf8_lossy(&resp.body)
    );

    assert!(admin(&site, &["key", "revoke", &key_id]).status.success());
    assert_eq!(
        admin(&site, &["key", "revoke", "ak_nope"]).status.code(),
        Some(66)
    );
    assert!(stdout(&admin(&site, &["key", "list"])).contains("revoked"));
    assert_eq!(
        admin(&site, &["sign-url", "/x?a=1"]).status.code(),
        Some(66),
        "no valid key left"
    );
    assert!(admin(&site, &["user", "del", "alice"]).status.success());
    assert_eq!(
        admin(&site, &["user", "del", "alice"]).status.code(),
        Some(67)
    );
}
