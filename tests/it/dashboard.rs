//! The dashboard in a real browser (headless Chromium over WebDriver, `support::browser`),
//! served by a real standalone server: the login page, the home page and logout, a login
//! through LDAP, and keyboard-only passes through the upload and edit forms (focus order,
//! visible focus, the error summary), at desktop and phone width, each page checked by
//! axe-core (no "serious" or "critical" violation); screenshots are kept in
//! `target/test-artefacts/browser/`. The content pages' whole flow, a viewer's view and the
//! copy button are in `dashboard_flow`, which shares the helpers here.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::content::{catalog, images, title};
use crate::support::browser::{self, Browser, DESKTOP, PHONE, keys};
use crate::support::{Site, fixture, imgserv_admin, standalone};

const PASSWORD: &str = "ann's password 1";

/// The password the helpers give `user`.
pub(crate) fn password_of(user: &str) -> String {
    format!("{user}'s password 1")
}

/// A site (`extra` added to its configuration) with `users` as (name, role), each with the
/// password [`password_of`] gives.
pub(crate) fn site_with(extra: &str, users: &[(&str, &str)]) -> Site {
    let site = Site::with_config(extra);
    for (user, role) in users {
        let args = ["user", "add", user, "--password-stdin", "--role", role];
        let out = imgserv_admin(&site, &args, format!("{}\n", password_of(user)).as_bytes());
        assert!(out.status.success(), "{out:?}");
    }
    site
}

/// A site with the admin ann.
fn site() -> Site {
    site_with("", &[("ann", "admin")])
}

/// Logs `user` in through the login form (`admin` is the dashboard's URL, ending in `/`) and
/// checks the home page came.
pub(crate) fn log_in(b: &Browser, admin: &str, user: &str, password: &str) {
    b.goto(&format!("{admin}login"));
    b.find("#user").type_text(user);
    b.find("#password").type_text(password);
    b.find("#password").submit();
    assert!(
        b.current_url().ends_with("/admin/"),
        "{user} not logged in: {}\n{}",
        b.current_url(),
        b.find("main").text()
    );
}

/// Polls `script` (a function body returning a boolean) until it returns true.
pub(crate) fn wait_until(b: &Browser, script: &str, args: Vec<Value>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.execute(script, args.clone()) != json!(true) {
        assert!(
            Instant::now() < deadline,
            "{what}: not within 20 s on {}:\n{}",
            b.current_url(),
            b.find("main").text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One file's line in the upload page's list, as its script shows it.
#[derive(Debug)]
pub(crate) struct Shown {
    pub name: String,
    /// The line's class: `new`, `duplicate` or `refused`.
    pub kind: String,
    /// The whole line as read.
    pub text: String,
    pub progress: (f64, f64),
}

/// On the upload page (with its script): `category` and the `fields` (element id, text)
/// typed, the fixtures chosen in the file field (WebDriver types their paths, one a line, as
/// a person picks several), Upload clicked; waits until every file's outcome is shown and
/// returns the lines.
pub(crate) fn upload(
    b: &Browser,
    category: &str,
    fields: &[(&str, &str)],
    fixtures: &[&str],
) -> Vec<Shown> {
    assert!(
        b.current_url().ends_with("/admin/upload"),
        "{}",
        b.current_url()
    );
    let field = b.find("#category");
    field.clear();
    field.type_text(category);
    for (id, text) in fields {
        b.find(&format!("#{id}")).type_text(text);
    }
    let paths: Vec<String> = fixtures
        .iter()
        .map(|f| fixture(f).to_str().unwrap().to_string())
        .collect();
    b.find("#file").type_text(&paths.join("\n"));
    assert_eq!(
        b.execute(
            "return document.getElementById('file').files.length",
            vec![]
        ),
        json!(fixtures.len())
    );
    upload_chosen(b, fixtures.len())
}

/// Clicks Upload on the upload page with `files` chosen and waits until the page's script
/// shows every file's outcome; the lines.
pub(crate) fn upload_chosen(b: &Browser, files: usize) -> Vec<Shown> {
    b.find("form[data-upload] button[type=submit]").click();
    wait_until(
        b,
        "const rows = document.querySelectorAll('form[data-upload] .progress li');
         const button = document.querySelector('form[data-upload] button[type=submit]');
         return rows.length === arguments[0] && [...rows].every(r => r.className !== '')
             && !button.disabled;",
        vec![json!(files)],
        "every file's outcome shown",
    );
    let rows = b.execute(
        "return [...document.querySelectorAll('form[data-upload] .progress li')].map(r =>
           [r.querySelector('strong').textContent, r.className, r.textContent,
            r.querySelector('progress').value, r.querySelector('progress').max]);",
        vec![],
    );
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| Shown {
            name: r[0].as_str().unwrap().to_string(),
            kind: r[1].as_str().unwrap().to_string(),
            text: r[2].as_str().unwrap().to_string(),
            progress: (r[3].as_f64().unwrap(), r[4].as_f64().unwrap()),
        })
        .collect()
}

/// Checks the focused element shows its focus: an outline at least 2 CSS pixels thick (WCAG
/// 2.4.13's minimum; the browser's own thin ring does not count) or a box shadow, as the
/// stylesheet's focus style draws; returns the element's description.
pub(crate) fn assert_focus_visible(b: &Browser) -> String {
    let active = b.active_element();
    let style = b.execute(
        "const s = getComputedStyle(arguments[0]);
         return [s.outlineStyle, parseFloat(s.outlineWidth) || 0, s.boxShadow];",
        vec![active.to_arg()],
    );
    let outline = style[0] != json!("none") && style[1].as_f64().unwrap_or(0.0) >= 2.0;
    let shadow = style[2] != json!("none");
    let what = active.describe();
    assert!(
        outline || shadow,
        "focus on {what} is not visible (outline {}, {}; box-shadow {}) on {}",
        style[0],
        style[1],
        style[2],
        b.current_url()
    );
    what
}

/// Logs out with the header's button: back on the login page, and the dashboard (`admin`)
/// sends the browser there again.
pub(crate) fn log_out(b: &Browser, admin: &str) {
    b.find("form[action$='logout'] button").click_and_wait();
    assert!(
        b.current_url().contains("/admin/login"),
        "{}",
        b.current_url()
    );
    b.goto(admin);
    assert!(
        b.current_url().contains("/admin/login"),
        "{}",
        b.current_url()
    );
}

/// Checks the page at phone width: nothing serious for axe, nothing wider than the screen
/// (no sideways scrolling), and a screenshot `NAME-phone`; back to the desktop window after.
pub(crate) fn check_at_phone_width(b: &Browser, name: &str) {
    b.set_window_size(PHONE.0, PHONE.1);
    b.assert_accessible(&format!("{name} at phone width"));
    let widths = b.execute(
        "return [document.documentElement.scrollWidth, window.innerWidth]",
        vec![],
    );
    if widths[0].as_u64() > widths[1].as_u64() {
        let wide = b.execute(
            "return [...document.querySelectorAll('body *')]
               .filter(e => e.getBoundingClientRect().right > window.innerWidth)
               .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' '
                         + Math.round(e.getBoundingClientRect().right))",
            vec![],
        );
        panic!("{name} scrolls sideways on a phone: {widths}; too wide: {wide}");
    }
    b.screenshot(&format!("{name}-phone"));
    b.set_window_size(DESKTOP.0, DESKTOP.1);
}

#[test]
fn login_home_and_logout_by_keyboard_are_accessible() {
    let Some(b) = browser::shared() else { return };
    let site = site();
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin/");

    // Nobody logged in: the dashboard sends the browser to the login page.
    b.goto(&admin);
    assert!(
        b.current_url().contains("/admin/login"),
        "{}",
        b.current_url()
    );
    b.assert_accessible("login");
    b.screenshot("dashboard-login");

    // Keyboard only: the first stop is the skip link, then the form's fields in order.
    b.press_tab();
    assert_eq!(
        b.active_element().attribute("href").as_deref(),
        Some("#main")
    );
    let mut stops = 0;
    while b.active_element().attribute("name").as_deref() != Some("user") {
        b.press_tab();
        stops += 1;
        assert!(stops < 10, "no user field within 10 tab stops");
    }
    b.active_element().type_text("ann");
    b.press_tab();
    assert_eq!(
        b.active_element().attribute("name").as_deref(),
        Some("password")
    );
    // A wrong password: the page says so (without saying whether ann exists), still accessible.
    b.active_element().type_text("not it");
    b.navigating(|| b.press_keys(keys::ENTER));
    let error = b.find("[role=alert]").text();
    assert!(!error.contains("ann"), "{error}");
    // The error summary has the focus (the script moves it there), visibly.
    assert_eq!(b.active_element(), b.find(".error-summary"));
    assert_focus_visible(&b);
    b.assert_accessible("login-failed");
    assert_eq!(b.find("#user").attribute("value").as_deref(), Some("ann"));

    b.find("#password").type_text(PASSWORD);
    b.find("#password").submit();
    assert!(b.current_url().ends_with("/admin/"), "{}", b.current_url());
    assert!(b.find("main").text().contains("ann"));
    let cookie = b.cookie("imgserv_session").expect("a session cookie");
    assert!(cookie.http_only);
    b.assert_accessible("home");
    b.screenshot("dashboard-home");
    b.set_window_size(PHONE.0, PHONE.1);
    b.assert_accessible("home at phone width");
    b.screenshot("dashboard-home-phone");
    b.set_window_size(DESKTOP.0, DESKTOP.1);

    // Log out with the header's button: back on the login page, the session gone.
    log_out(&b, &admin);
}

#[test]
fn a_directory_user_logs_in_through_ldap_and_browses() {
    use crate::support::slapd::{READER_DN, READER_PW, Slapd};
    let Some(b) = browser::shared() else { return };
    let slapd = Slapd::start();
    let site = Site::new();
    site.write_config(&format!(
        "[auth]\nmethods = [\"ldap\", \"local\"]\n[ldap]\nurl = \"{}\"\nstarttls = true\nca_file = {:?}\ntimeout = \"2s\"\nbind_dn = \"{READER_DN}\"\nbind_password = \"{READER_PW}\"\nbase_dn = \"ou=people,dc=example,dc=org\"\nuser_filter = \"(uid={{user}})\"\ngroup_base = \"ou=groups,dc=example,dc=org\"\ngroup_filter = \"(member={{dn}})\"\nadmin_group = \"imgadmins\"\n",
        slapd.url(),
        slapd.ca_file().to_str().unwrap(),
    ));
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin/");

    // alice is only in the directory (an admin through the group imgadmins).
    log_in(&b, &admin, "alice", "alice-pw");
    let main = b.find("main").text();
    assert!(main.contains("Logged in as alice (ldap)"), "{main}");
    assert!(main.contains("imgadmins"), "{main}");
    assert_eq!(b.find(".who strong").text(), "alice");
    b.screenshot("dashboard-ldap-home");

    // The header's Browse link: the (empty) catalog's page, as alice may see it.
    let browse = b
        .find_all("header nav a")
        .into_iter()
        .find(|a| a.text() == "Browse")
        .expect("a Browse link in the header");
    browse.click_and_wait();
    assert!(
        b.current_url().contains("/admin/browse"),
        "{}",
        b.current_url()
    );
    assert_eq!(
        b.find("h1").text(),
        b.title().trim_end_matches(" – imgserv")
    );
    assert!(b.find("main").text().contains("No images here"));
    b.assert_accessible("browse (LDAP user)");

    // A wrong directory password: the login page again, saying only that it failed.
    b.find("form[action$='logout'] button").click_and_wait();
    b.find("#user").type_text("alice");
    b.find("#password").type_text("not alice's");
    b.find("#password").submit();
    assert!(
        b.find("[role=alert]")
            .text()
            .contains("The user name or the password is wrong."),
        "{}",
        b.find("main").text()
    );
}

/// Tab until the focused element matches `css`, checking every stop shows its focus; the stops'
/// descriptions.
fn tab_to(b: &Browser, css: &str) -> Vec<String> {
    let mut stops = Vec::new();
    loop {
        b.press_tab();
        stops.push(assert_focus_visible(b));
        let here = b.execute(
            "return document.activeElement.matches(arguments[0])",
            vec![json!(css)],
        );
        if here == json!(true) {
            return stops;
        }
        assert!(stops.len() < 30, "no {css} within 30 tab stops: {stops:?}");
    }
}

#[test]
fn the_upload_form_by_keyboard_explains_an_empty_choice() {
    let Some(b) = browser::shared() else { return };
    let site = site();
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin/");
    log_in(&b, &admin, "ann", PASSWORD);
    b.goto(&format!("{admin}upload"));

    // From the top: the skip link, the header, then the form's fields in order, each stop
    // showing its focus; a title typed on the way.
    let stops = tab_to(&b, "#title");
    assert_eq!(stops[0], "a[href=#main]");
    b.press_keys("Typed on the way");
    let stops = tab_to(&b, "form[data-upload] button[type=submit]");
    assert_eq!(stops, ["textarea#description", "input#file", "button"]);
    assert_eq!(b.active_element().text(), "Upload");
    // Nothing chosen, Space on Upload: the server's answer says what is wrong, in an error
    // summary that is announced (role=alert) and has the focus.
    b.navigating(|| b.press_keys(keys::SPACE));
    let summary = b.find(".error-summary");
    assert_eq!(summary.attribute("role").as_deref(), Some("alert"));
    let said = summary.text();
    assert!(
        said.contains("Choose at least one file to upload."),
        "{said}"
    );
    assert_eq!(
        b.active_element(),
        summary,
        "the error summary has the focus"
    );
    assert_focus_visible(&b);
    assert_eq!(
        b.find("#title").property("value"),
        json!("Typed on the way")
    );
    assert!(images(&site).is_empty());
    b.assert_accessible("upload with an error");
    b.screenshot("dashboard-upload-error");

    // Tab: the summary's link to the field in error; Enter on it: that field has the focus.
    b.press_tab();
    assert_eq!(
        b.active_element().attribute("href").as_deref(),
        Some("#file")
    );
    assert_focus_visible(&b);
    b.press_keys(keys::ENTER);
    assert_eq!(b.active_element().describe(), "input#file");
    // Shift+Tab back up through the fields, Tab down again to the button.
    let mut back = Vec::new();
    for _ in 0..3 {
        b.press_shift_tab();
        back.push(assert_focus_visible(&b));
    }
    assert_eq!(
        back,
        ["textarea#description", "input#title", "input#category"]
    );
    let stops = tab_to(&b, "form[data-upload] button[type=submit]");
    assert_eq!(
        stops,
        [
            "input#title",
            "textarea#description",
            "input#file",
            "button"
        ]
    );
}

#[test]
fn the_edit_form_by_keyboard_reaches_every_field_and_saves_with_enter() {
    let Some(b) = browser::shared() else { return };
    let site = site();
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin/");
    log_in(&b, &admin, "ann", PASSWORD);
    b.goto(&format!("{admin}upload"));
    let shown = upload(
        &b,
        "/kb",
        &[("title", "Rocket"), ("description", "A launch")],
        &["photo-rocket-640x427.jpg"],
    );
    assert_eq!(shown[0].kind, "new", "{shown:?}");
    let id = images(&site)[0].id.clone();
    b.goto(&format!("{admin}image/{id}/edit"));

    // The header, the link back, then every field in order: the keys (description, title)
    // each with its Remove box, the new key and value, the category, Save.
    let stops = tab_to(&b, ".crumbs a");
    assert_eq!(stops[0], "a[href=#main]");
    let mut order = Vec::new();
    // Space ticks "Remove description"; the title, new key, value and category are typed
    // (Ctrl+A selects what is there); Enter on Save submits.
    let select_all = format!("{}a", keys::CONTROL);
    for want in [
        "textarea#meta-1",
        "input#remove-1",
        "textarea#meta-2",
        "input#remove-2",
        "input#new-key",
        "textarea#new-value",
        "input#category",
        "button",
    ] {
        b.press_tab();
        let here = assert_focus_visible(&b);
        order.push(here.clone());
        match here.as_str() {
            "input#remove-1" => b.press_keys(keys::SPACE),
            "textarea#meta-2" => {
                b.press_keys(&select_all);
                b.press_keys("Typed by keyboard");
            }
            "input#new-key" => b.press_keys("photographer"),
            "textarea#new-value" => b.press_keys("Ana"),
            "input#category" => {
                b.press_keys(&select_all);
                b.press_keys("/keyboard");
            }
            _ => {}
        }
        assert_eq!(here, want, "tab order so far: {order:?}");
    }
    assert_eq!(b.active_element().text(), "Save");
    assert_eq!(b.find("#remove-1").property("checked"), json!(true));
    b.press_shift_tab();
    assert_eq!(assert_focus_visible(&b), "input#category");
    b.press_tab();
    b.navigating(|| b.press_keys(keys::ENTER));

    assert!(
        b.current_url().ends_with(&format!("/image/{id}?saved=1")),
        "{}",
        b.current_url()
    );
    assert_eq!(b.find("[role=status]").text(), "Saved.");
    let image = catalog(&site).get(&id).unwrap().unwrap();
    assert_eq!(title(&image), "Typed by keyboard");
    assert_eq!(image.meta.get("description"), None, "{:?}", image.meta);
    assert_eq!(image.meta["photographer"], "Ana");
    assert_eq!(image.category, "/keyboard");
}
