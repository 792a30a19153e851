//! The dashboard's Administration pages through CGI runs of the built binary, without
//! JavaScript: users (add, role, groups, password, disable, delete), groups, API keys (the
//! secret shown once, revocation), the cache and status page with "evict now" — each change
//! checked in the catalog and by what it does (a disabled user's login refused, a revoked key's
//! signature refused); a non-admin gets `403` for every page and every forged form.

use imgserv::io::catalog::Catalog;

use crate::api::load;
use crate::pages::{cookie_of, csrf_of, form, login, page};
use crate::support::{CgiResponse, Site, imgserv_admin};

fn site() -> Site {
    let site = Site::new();
    for (user, role) in [("ann", "admin"), ("bob", "editor")] {
        let args = ["user", "add", user, "--password-stdin", "--role", role];
        let out = imgserv_admin(&site, &args, format!("{user}-pw\n").as_bytes());
        assert!(out.status.success(), "{out:?}");
    }
    site
}

fn session(site: &Site, user: &str, password: &str) -> (String, String) {
    let r = login(site, user, password, "/admin/");
    assert_eq!(r.status, 303, "{user}: {}", r.body_text());
    let cookie = cookie_of(&r);
    let home = page(site, "GET", "/admin/", Some(&cookie), None, &[]);
    (cookie, csrf_of(&home.body_text()))
}

fn get(site: &Site, path: &str, cookie: &str) -> CgiResponse {
    page(site, "GET", path, Some(cookie), None, &[])
}

fn post(site: &Site, path: &str, cookie: &str, fields: &[(&str, &str)]) -> CgiResponse {
    page(site, "POST", path, Some(cookie), Some(&form(fields)), &[])
}

fn catalog(site: &Site) -> Catalog {
    Catalog::open(&load(site).state.catalog_path()).unwrap()
}

#[test]
fn an_admin_manages_users_groups_and_keys() {
    let site = site();
    let (ann, token) = session(&site, "ann", "ann-pw");
    let home = get(&site, "/admin/", &ann).body_text();
    assert!(home.contains(">Administration</a>"), "{home}");
    let users = get(&site, "/admin/users", &ann);
    assert_eq!(users.status, 200);
    assert!(users.body_text().contains(">bob</a>"));

    // A new user who logs in with the password set here.
    let r = post(
        &site,
        "/admin/users",
        &ann,
        &[
            ("csrf_token", &token),
            ("user", "zoe"),
            ("role", "viewer"),
            ("password", "zoe-pw"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert!(r.header("location").unwrap().contains("done=user-added"));
    let notice = get(&site, "/admin/users?done=user-added&who=zoe", &ann).body_text();
    assert!(notice.contains("Added the user zoe."), "{notice}");
    session(&site, "zoe", "zoe-pw");
    // The same name again: the form says so (409), nothing else changes.
    let r = post(
        &site,
        "/admin/users",
        &ann,
        &[("csrf_token", &token), ("user", "zoe"), ("role", "admin")],
    );
    assert_eq!(r.status, 409, "{}", r.body_text());
    assert!(r.body_text().contains("role=\"alert\""));

    // A group, zoe in it, her role and password changed.
    let r = post(
        &site,
        "/admin/groups",
        &ann,
        &[
            ("csrf_token", &token),
            ("action", "add"),
            ("group", "press"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    for fields in [
        vec![("action", "groups"), ("group", "press")],
        vec![("action", "role"), ("role", "editor")],
        vec![("action", "password"), ("password", "zoe-new-pw")],
    ] {
        let mut fields = fields;
        fields.extend([("csrf_token", token.as_str()), ("user", "zoe")]);
        let r = post(&site, "/admin/user", &ann, &fields);
        assert_eq!(r.status, 303, "{fields:?}: {}", r.body_text());
    }
    let zoe = catalog(&site)
        .users()
        .unwrap()
        .into_iter()
        .find(|u| u.name == "zoe")
        .unwrap();
    assert_eq!(zoe.groups, ["press"]);
    assert_eq!(zoe.role.as_str(), "editor");
    assert_eq!(login(&site, "zoe", "zoe-pw", "/admin/").status, 401);
    session(&site, "zoe", "zoe-new-pw");
    let user_page = get(&site, "/admin/user?user=zoe", &ann).body_text();
    assert!(user_page.contains("value=\"press\" checked"), "{user_page}");

    // A key: its secret on the answer to the form only.
    let r = post(
        &site,
        "/admin/keys",
        &ann,
        &[
            ("csrf_token", &token),
            ("action", "add"),
            ("user", "zoe"),
            ("rights", "read"),
            ("rights", "write"),
            ("expires_days", "30"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let keys = catalog(&site).keys().unwrap();
    let key = keys.iter().find(|k| k.user == "zoe").unwrap();
    assert!(key.expires.is_some());
    assert_eq!(key.rights.to_string(), "read,write");
    let secret = key.secret.expose().to_string();
    assert!(r.body_text().contains(&secret));
    let listing = get(&site, "/admin/keys", &ann).body_text();
    assert!(
        listing.contains(&key.id) && !listing.contains(&secret),
        "{listing}"
    );
    let r = post(
        &site,
        "/admin/keys",
        &ann,
        &[
            ("csrf_token", &token),
            ("action", "revoke"),
            ("key", &key.id),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert!(
        catalog(&site)
            .key(&key.id)
            .unwrap()
            .unwrap()
            .revoked
            .is_some()
    );

    // Disabled: zoe's login is refused; enabled again, it works; deleted, gone.
    let act = |action: &str| {
        post(
            &site,
            "/admin/user",
            &ann,
            &[("csrf_token", &token), ("user", "zoe"), ("action", action)],
        )
    };
    assert_eq!(act("disable").status, 303);
    assert_eq!(login(&site, "zoe", "zoe-new-pw", "/admin/").status, 401);
    assert_eq!(act("enable").status, 303);
    session(&site, "zoe", "zoe-new-pw");
    assert_eq!(act("delete").status, 303);
    assert!(
        catalog(&site)
            .users()
            .unwrap()
            .iter()
            .all(|u| u.name != "zoe")
    );
    let r = post(
        &site,
        "/admin/groups",
        &ann,
        &[
            ("csrf_token", &token),
            ("action", "delete"),
            ("group", "press"),
        ],
    );
    assert_eq!(r.status, 303);
    assert!(catalog(&site).groups().unwrap().is_empty());

    // The cache and status page, and evict now.
    let system = get(&site, "/admin/system", &ann);
    assert_eq!(system.status, 200);
    let html = system.body_text();
    for want in [
        "catalog",
        "cache_index",
        "store",
        "auth.methods",
        "Evict now",
        "none recorded yet",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    let r = post(
        &site,
        "/admin/system",
        &ann,
        &[("csrf_token", &token), ("action", "evict")],
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(r.body_text().contains("Evicted: "));
    let html = get(&site, "/admin/system", &ann).body_text();
    assert!(
        !html.contains("none recorded yet"),
        "the run is recorded: {html}"
    );
    assert!(site.state().join("last-evict.txt").is_file());
}

#[test]
fn a_non_admin_gets_403_everywhere_and_changes_nothing() {
    let site = site();
    let (bob, token) = session(&site, "bob", "bob-pw");
    let home = get(&site, "/admin/", &bob).body_text();
    assert!(!home.contains("Administration"), "{home}");
    for path in [
        "/admin/users",
        "/admin/user?user=ann",
        "/admin/keys",
        "/admin/system",
    ] {
        assert_eq!(get(&site, path, &bob).status, 403, "{path}");
    }
    let forged: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "/admin/users",
            vec![("user", "eve"), ("role", "admin"), ("password", "x")],
        ),
        (
            "/admin/user",
            vec![("user", "bob"), ("action", "role"), ("role", "admin")],
        ),
        ("/admin/user", vec![("user", "ann"), ("action", "delete")]),
        ("/admin/groups", vec![("action", "add"), ("group", "g")]),
        (
            "/admin/keys",
            vec![("action", "add"), ("user", "bob"), ("rights", "admin")],
        ),
        ("/admin/system", vec![("action", "evict")]),
    ];
    let before = (
        catalog(&site).users().unwrap(),
        catalog(&site).keys().unwrap().len(),
    );
    for (path, mut fields) in forged {
        fields.push(("csrf_token", &token));
        let r = post(&site, path, &bob, &fields);
        assert_eq!(r.status, 403, "{path}: {}", r.body_text());
    }
    assert_eq!(catalog(&site).users().unwrap(), before.0);
    assert_eq!(catalog(&site).keys().unwrap().len(), before.1);
    assert!(catalog(&site).groups().unwrap().is_empty());
}

#[test]
fn an_admin_grants_revokes_and_sees_where_a_permission_comes_from() {
    let site = site();
    let (ann, token) = session(&site, "ann", "ann-pw");
    let grants = |query: &str| get(&site, &format!("/admin/grants?{query}"), &ann);
    let root = grants("category=/");
    assert_eq!(root.status, 200, "{}", root.body_text());
    // bob's editor role acts as a grant at the root.
    let html = grants("category=/shop&user=bob").body_text();
    assert!(html.contains("bob may edit /shop"), "{html}");

    let change = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrf_token", token.as_str()), ("category", "/shop")];
        all.extend_from_slice(fields);
        post(&site, "/admin/grants", &ann, &all)
    };
    let r = change(&[
        ("action", "grant"),
        ("grantee", "user:bob"),
        ("privilege", "admin"),
    ]);
    assert_eq!(r.status, 303, "{}", r.body_text());
    let stored = catalog(&site).grants_on("category:/shop").unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let html = grants("category=/shop&user=bob").body_text();
    assert!(html.contains("bob may admin /shop"), "{html}");
    assert!(html.contains("Revoke admin from user:bob"), "{html}");

    // Private: no inheritance; bob keeps his own grant, the public's view is cut.
    assert_eq!(
        change(&[("action", "inherit"), ("inherit", "off")]).status,
        303
    );
    let html = grants("category=/shop").body_text();
    assert!(html.contains("does not inherit"), "{html}");
    // A bad grantee: the form says why.
    let r = change(&[
        ("action", "grant"),
        ("grantee", "bobby"),
        ("privilege", "view"),
    ]);
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert!(r.body_text().contains("is not a grantee"));
    assert_eq!(
        change(&[("action", "revoke"), ("grantee", "user:bob")]).status,
        303
    );
    assert!(
        catalog(&site)
            .grants_on("category:/shop")
            .unwrap()
            .is_empty()
    );
    let html = grants("category=/shop&user=bob").body_text();
    assert!(html.contains("bob may do nothing in /shop"), "{html}");

    // bob, an editor, administers nothing: 403, and his forged grant changes nothing.
    let (bob, bob_token) = session(&site, "bob", "bob-pw");
    assert_eq!(get(&site, "/admin/grants?category=/", &bob).status, 403);
    let r = post(
        &site,
        "/admin/grants",
        &bob,
        &[
            ("csrf_token", &bob_token),
            ("category", "/"),
            ("action", "grant"),
            ("grantee", "user:bob"),
            ("privilege", "admin"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert!(
        catalog(&site)
            .grants_on("category:/")
            .unwrap()
            .iter()
            .all(|g| g.grant.grantee.to_string() != "user:bob")
    );
}
