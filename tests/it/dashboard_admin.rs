//! The Administration and Categories pages in a real browser (headless Chromium, JavaScript on)
//! against a real standalone server: an admin adds a user, puts them in a group, makes a key
//! (its secret shown once, with a copy button) and revokes it, grants on a category and asks
//! what a user may do there, creates, renames and deletes a category, and evicts the cache —
//! every page checked by axe-core (and at phone width), each change checked in the catalog.

use crate::content::catalog;
use crate::dashboard::{check_at_phone_width, log_in, password_of, site_with};
use crate::support::browser;
use crate::support::standalone;

#[test]
fn an_admin_manages_people_keys_grants_and_categories_in_a_browser() {
    let Some(b) = browser::shared() else { return };
    let site = site_with("", &[("ann", "admin")]);
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin/");
    log_in(&b, &admin, "ann", &password_of("ann"));

    // Users: the header's Administration link, add zoe.
    b.find("header nav a[href$='users']").click_and_wait();
    b.assert_accessible("users");
    b.screenshot("dashboard-users");
    b.find("#new-user").type_text("zoe");
    b.find("#new-password").type_text("zoe's password 1");
    b.find("#new-user").submit();
    assert!(
        b.find("[role=status]")
            .text()
            .contains("Added the user zoe.")
    );
    b.find("#new-group").type_text("press");
    b.find("#new-group").submit();
    assert!(
        b.find("[role=status]")
            .text()
            .contains("Added the group press.")
    );
    // zoe's page: into the group.
    b.find("a[href='user?user=zoe']").click_and_wait();
    b.assert_accessible("user");
    check_at_phone_width(&b, "dashboard-user");
    b.find("input[name=group][value=press]").click();
    b.find("input[name=group][value=press]").submit();
    assert!(
        b.find("[role=status]")
            .text()
            .contains("Saved the groups of zoe.")
    );
    let zoe = catalog(&site)
        .users()
        .unwrap()
        .into_iter()
        .find(|u| u.name == "zoe")
        .unwrap();
    assert_eq!(zoe.groups, ["press"]);

    // A key for zoe: the secret on this page only, with a copy button; then revoked.
    b.find(".subnav a[href$='keys']").click_and_wait();
    b.assert_accessible("keys");
    b.find("#key-user option[value=zoe]").click();
    b.find("#right-write").click();
    b.find("#expires").type_text("7");
    b.find("#expires").submit();
    let key = catalog(&site)
        .keys()
        .unwrap()
        .into_iter()
        .find(|k| k.user == "zoe")
        .unwrap();
    assert_eq!(b.find("#key-secret").property("value"), key.secret.expose());
    assert!(b.find("button.copy[data-copy=key-secret]").is_displayed());
    b.assert_accessible("key created");
    b.screenshot("dashboard-key-created");
    b.goto(&format!("{admin}keys"));
    assert!(!b.page_source().contains(key.secret.expose()));
    b.find(&format!(
        "form:has(input[name=key][value={}]) button",
        key.id
    ))
    .click_and_wait();
    assert!(
        catalog(&site)
            .key(&key.id)
            .unwrap()
            .unwrap()
            .revoked
            .is_some()
    );

    // Categories: create /travel, then /travel/norway below it, rename, delete the empty one.
    b.goto(&format!("{admin}categories"));
    b.assert_accessible("categories");
    b.find("#create-name").type_text("travel");
    b.find("#create-name").submit();
    assert!(
        b.current_url().contains("category=/travel"),
        "{}",
        b.current_url()
    );
    b.find("#create-name").type_text("norway");
    b.find("#create-name").submit();
    let to = b.find("#move-to");
    to.clear();
    to.type_text("/travel/fjords");
    to.submit();
    assert!(b.find("[role=status]").text().contains("Renamed or moved"));
    b.assert_accessible("category changed");
    check_at_phone_width(&b, "dashboard-categories");
    let paths: Vec<String> = catalog(&site)
        .categories()
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert!(paths.contains(&"/travel/fjords".to_string()), "{paths:?}");
    b.find("button.danger").click_and_wait();
    let paths: Vec<String> = catalog(&site)
        .categories()
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert!(
        !paths.iter().any(|p| p.starts_with("/travel/")),
        "{paths:?}"
    );

    // Permissions on /travel: grant zoe's group edit, then ask what zoe may do there.
    b.goto(&format!("{admin}grants?category=/travel"));
    b.assert_accessible("grants");
    b.find("#grantee").type_text("group:press");
    b.find("#privilege option[value=edit]").click();
    b.find("#grantee").submit();
    b.find("#explain-user option[value=zoe]").click();
    b.find("form[method=get][action=grants] button")
        .click_and_wait();
    let said = b.find("[role=status]").text();
    assert!(said.contains("zoe may edit /travel"), "{said}");
    b.assert_accessible("grants explained");
    b.screenshot("dashboard-grants");

    // The cache and status page; evict now.
    b.goto(&format!("{admin}system"));
    b.assert_accessible("system");
    b.find("form[action=system] button").click_and_wait();
    assert!(b.find("[role=status]").text().starts_with("Evicted: "));
    // The run is recorded: the page names its time, no longer "none recorded yet".
    let main = b.find("main").text();
    assert!(
        main.contains("Last eviction") && !main.contains("none recorded yet"),
        "{main}"
    );
    check_at_phone_width(&b, "dashboard-system");
}
