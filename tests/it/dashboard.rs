//! The dashboard in a real browser (headless Chromium over WebDriver, `support::browser`),
//! served by a real standalone server: the login page, the home page and logout, by keyboard
//! alone, at desktop and phone width, each page checked by axe-core (no "serious" or
//! "critical" violation); screenshots are kept in `target/test-artefacts/browser/`.

use crate::support::browser::{self, DESKTOP, PHONE, keys};
use crate::support::{Site, imgserv_admin, standalone};

const PASSWORD: &str = "ann's password 1";

/// A site with the admin ann.
fn site() -> Site {
    let site = Site::new();
    let args = ["user", "add", "ann", "--password-stdin", "--role", "admin"];
    let out = imgserv_admin(&site, &args, format!("{PASSWORD}\n").as_bytes());
    assert!(out.status.success(), "{out:?}");
    site
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
    b.find("form[action$='logout'] button").click_and_wait();
    assert!(
        b.current_url().contains("/admin/login"),
        "{}",
        b.current_url()
    );
    b.goto(&admin);
    assert!(
        b.current_url().contains("/admin/login"),
        "{}",
        b.current_url()
    );
}
