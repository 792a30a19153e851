//! A real browser for the tests: headless Chromium (Debian's `chromium`) driven by
//! `chromedriver` (`chromium-driver`) over the W3C WebDriver protocol (HTTP + JSON on a loopback
//! port, spoken with `ureq`). axe-core's checks in its pages are in `support::axe`.
//!
//! It owns starting and stopping the driver and the browser and the WebDriver commands the
//! tests need; it knows nothing about imgserv's pages. Blocking on purpose:
//! the Rust WebDriver clients on crates.io need tokio (DEPENDENCIES.md), and a test reads best as
//! a straight line of commands.
//!
//! One browser per test module: [`shared`] hands out a lazily started session behind a mutex,
//! reset between tests (cookies cleared, window size restored, `about:blank`); a second kind of
//! session (JavaScript off, say) is [`Browser::start`] with [`Options`], stopped when dropped.
//! The driver runs behind a shell that waits for end of file on its stdin ([`Child::spawn_tethered`]),
//! so the shared one — a `static`, never dropped — still goes with the test process.
//!
//! Screenshots go to `target/test-artefacts/browser/` (or `$IMGSERV_TEST_ARTEFACTS/browser/`),
//! the driver's log beside them: CI keeps that directory as the run's artefacts.
//!
//! Missing Chromium, chromedriver or axe-core: the test panics naming `scripts/install-deps.sh`
//! under CI (`CI=true`) or as root (who can install them), and is skipped with a message on
//! stderr on a developer's machine without root.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ureq::http;

use super::axe::AXE_JS;
use super::process::Child;
use super::{free_port, repo_root};

/// The key of an element reference in WebDriver's JSON (W3C WebDriver, "Elements").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian's packages put them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The default window: a laptop screen.
pub const DESKTOP: (u32, u32) = (1280, 800);
/// A phone's viewport in CSS pixels (an iPhone 12–15).
pub const PHONE: (u32, u32) = (390, 844);

/// How a session is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// `false` blocks every page script (Chromium's content setting, as a user who turned
    /// JavaScript off): `<noscript>` shows and forms must work without scripts.
    pub javascript: bool,
    pub window: (u32, u32),
}

impl Default for Options {
    fn default() -> Options {
        Options {
            javascript: true,
            window: DESKTOP,
        }
    }
}

/// A WebDriver error answer (or a transport failure: `error` is then "transport").
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub status: u16,
    /// The W3C error code, e.g. "no such element", "javascript error".
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.message)
    }
}

/// A cookie as the browser holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub path: String,
    pub domain: String,
    pub http_only: bool,
    pub secure: bool,
    /// "Lax", "Strict" or "None".
    pub same_site: Option<String>,
    /// Seconds since the epoch; `None` for a session cookie.
    pub expiry: Option<u64>,
}

/// A WebDriver session in headless Chromium, with its own chromedriver and profile directory.
/// Dropping it ends the session and stops the driver's whole process group (Chromium and its
/// helpers included).
pub struct Browser {
    agent: ureq::Agent,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    options: Options,
    profile: PathBuf,
    artefacts: PathBuf,
    driver: Child,
}

/// The test module's shared session (JavaScript on, desktop window), started on first use and
/// reset for each caller; `None` when the browser is missing on a developer's machine (the
/// reason was printed). Tests using it run one after another.
pub fn shared() -> Option<MutexGuard<'static, Browser>> {
    static SHARED: OnceLock<Option<Mutex<Browser>>> = OnceLock::new();
    let browser = SHARED
        .get_or_init(|| Browser::start(Options::default()).map(Mutex::new))
        .as_ref()?;
    // A test that failed while holding it poisons the mutex; the reset below makes it usable.
    let browser = browser.lock().unwrap_or_else(|e| e.into_inner());
    browser.reset();
    Some(browser)
}

/// Whether the browser, its driver and axe-core are installed; `Err` names what is missing.
fn installed() -> Result<(), String> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).is_file())
        .chain((!repo_root().join(AXE_JS).is_file()).then_some(AXE_JS))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}", missing.join(", ")))
    }
}

/// Panics when the suite is expected to have the browser (CI, or root, who can install it);
/// otherwise prints why the test is skipped.
fn unavailable(why: &str) {
    use std::os::unix::fs::MetadataExt;
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let fix = "run scripts/install-deps.sh (as root for the Debian packages chromium and \
               chromium-driver; npm ci in tests/browser for axe-core)";
    if ci || root {
        panic!("browser tests: {why}: {fix}");
    }
    eprintln!("SKIPPED browser test (not root, not CI): {why}: {fix}");
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session; `None` (with
    /// a message on stderr) when they are not installed on a developer's machine without root.
    pub fn start(options: Options) -> Option<Browser> {
        if let Err(why) = installed() {
            unavailable(&why);
            return None;
        }
        let began = Instant::now();
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let artefacts = artefacts_dir();
        remove_stale_logs(&artefacts);
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{tag}"));
        let _ = fs::remove_dir_all(&profile);
        fs::create_dir_all(&profile).unwrap();

        let port = free_port();
        let mut wrapper = std::process::Command::new("/bin/sh");
        // The wrapper stops its group (chromedriver, Chromium and every helper it forked) once
        // the test process closes the pipe on its stdin, then removes the profile.
        wrapper.args([
            "-c",
            // WARNING and up: at INFO it logs every command, axe-core's 650 KB source included.
            r#""$1" --port="$2" --log-level=WARNING </dev/null &
               cat >/dev/null
               trap '' TERM; kill -TERM 0; sleep 1; rm -rf "$3"; kill -KILL 0"#,
            "sh",
            CHROMEDRIVER,
            &port.to_string(),
        ]);
        wrapper.arg(&profile);
        let mut driver = Child::spawn_tethered(&format!("chromedriver-{tag}"), wrapper, &artefacts);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(90)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        driver.wait_ready(Duration::from_secs(20), "chromedriver /status", || {
            call(&agent, "GET", &format!("{base}/status"), None)
                .is_ok_and(|v| v["ready"] == json!(true))
        });

        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            // Without these Chromium keeps calling Google's hosts, which this closed network
            // refuses many at a time.
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            // Screenshots in CSS pixels, whatever the machine's display says.
            "--force-device-scale-factor=1".into(),
            "--lang=en-GB".into(),
            format!("--window-size={},{}", options.window.0, options.window.1),
        ];
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut prefs = serde_json::Map::new();
        if !options.javascript {
            prefs.insert(
                "profile.managed_default_content_settings.javascript".into(),
                json!(2),
            );
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"implicit": 0, "pageLoad": 30000, "script": 30000},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args, "prefs": prefs},
        }}});
        let answer = call(
            &agent,
            "POST",
            &format!("{base}/session"),
            Some(&capabilities),
        )
        .unwrap_or_else(|e| panic!("chromedriver did not start Chromium: {e}\n{}", driver.log()));
        let id = answer["sessionId"].as_str().expect("sessionId").to_string();
        let browser = Browser {
            agent,
            session: format!("{base}/session/{id}"),
            options,
            profile,
            artefacts,
            driver,
        };
        // --window-size is the outer window; the tests reason about the viewport.
        let (w, h) = browser.options.window;
        browser.set_window_size(w, h);
        eprintln!(
            "browser: chromedriver and Chromium (JavaScript {}) ready in {} ms",
            if browser.options.javascript {
                "on"
            } else {
                "off"
            },
            began.elapsed().as_millis()
        );
        Some(browser)
    }

    /// The options this session was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The directory screenshots and the driver's log go to.
    pub fn artefacts(&self) -> &Path {
        &self.artefacts
    }

    /// Any WebDriver command on this session (`path` after `/session/ID`); `Err` for an error
    /// answer.
    pub fn try_command(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebDriverError> {
        call(
            &self.agent,
            method,
            &format!("{}{path}", self.session),
            body,
        )
    }

    /// Any WebDriver command; panics on an error answer, naming the command and the page.
    pub fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_command(method, path, body).unwrap_or_else(|e| {
            let url = self.try_command("GET", "/url", None).unwrap_or_default();
            panic!("WebDriver {method} {path} on {url}: {e}")
        })
    }

    /// A Chrome DevTools Protocol command through chromedriver (`goog/cdp/execute`).
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        let body = json!({"cmd": cmd, "params": params});
        self.command("POST", "/goog/cdp/execute", Some(&body))
    }

    /// Back to a blank page with no cookies and the session's window size.
    fn reset(&self) {
        // An alert left open by a failed test would refuse every other command.
        let _ = self.try_command("POST", "/alert/dismiss", Some(&json!({})));
        self.goto("about:blank");
        self.cdp("Network.clearBrowserCookies", json!({}));
        let (w, h) = self.options.window;
        self.set_window_size(w, h);
    }

    /// Navigates and waits for the page to load (the `load` event).
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        string(self.command("GET", "/url", None))
    }

    pub fn title(&self) -> String {
        string(self.command("GET", "/title", None))
    }

    /// The page's markup as the browser has it now.
    pub fn page_source(&self) -> String {
        string(self.command("GET", "/source", None))
    }

    /// The first element matching `css`; panics (naming the page) when there is none.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css).unwrap_or_else(|| {
            panic!(
                "no element matches `{css}` on {}:\n{}",
                self.current_url(),
                self.page_source()
            )
        })
    }

    /// The first element matching `css`, if any.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let query = json!({"using": "css selector", "value": css});
        match self.try_command("POST", "/element", Some(&query)) {
            Ok(v) => Some(self.element(&v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find `{css}`: {e}"),
        }
    }

    /// Every element matching `css`, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let query = json!({"using": "css selector", "value": css});
        let found = self.command("POST", "/elements", Some(&query));
        found
            .as_array()
            .expect("an array of elements")
            .iter()
            .map(|v| self.element(v))
            .collect()
    }

    /// Runs `action` (a click on a link, a key that submits a form) and waits until it has
    /// replaced the page with a loaded new one. WebDriver's own wait after a click misses
    /// navigations the page schedules (a form's submission), and a `find` right after would
    /// then search the old page. Not for a link to `#fragment`: that keeps the page.
    pub fn navigating<T>(&self, action: impl FnOnce() -> T) -> T {
        // A mark on the page's window object: a new page has a new window object without it.
        // Synchronous scripts run even with JavaScript off.
        static MARKS: AtomicU32 = AtomicU32::new(0);
        let mark = format!(
            "{}-{}",
            std::process::id(),
            MARKS.fetch_add(1, Ordering::Relaxed)
        );
        self.execute(
            "window.__imgserv_test_page = arguments[0]",
            vec![json!(mark)],
        );
        let result = action();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self
                .try_command(
                    "POST",
                    "/execute/sync",
                    Some(&json!({
                        "script": "return [window.__imgserv_test_page || null, document.readyState]",
                        "args": [],
                    })),
                )
                .unwrap_or(Value::Null);
            if state[0] != json!(mark) && state[1] == json!("complete") {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "no new page loaded within 30 s; still on {}",
                self.current_url()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until an element matches `css` (after a script changed the page, say).
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.try_find(css) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no element matched `{css}` on {} within {timeout:?}",
                self.current_url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn element(&self, reference: &Value) -> Element<'_> {
        let id = reference[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {reference}"));
        Element {
            browser: self,
            id: id.to_string(),
        }
    }

    /// Runs `script` as a function body (`return …` gives the result) with `args`
    /// (`arguments[0]`…; an [`Element::to_arg`] is the element itself). Works whatever the
    /// page's Content-Security-Policy says, and with page scripts turned off as long as the
    /// script needs no timer or promise.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({"script": script, "args": args});
        self.command("POST", "/execute/sync", Some(&body))
    }

    /// Like [`Browser::execute`], for a script that ends by calling its last argument (not in a
    /// session with JavaScript off: it would time out after 30 s).
    pub fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({"script": script, "args": args});
        self.command("POST", "/execute/async", Some(&body))
    }

    /// The cookies the page at the current URL can see, `HttpOnly` ones included.
    pub fn cookies(&self) -> Vec<Cookie> {
        let all = self.command("GET", "/cookie", None);
        all.as_array()
            .expect("an array of cookies")
            .iter()
            .map(|c| Cookie {
                name: string(c["name"].clone()),
                value: string(c["value"].clone()),
                path: c["path"].as_str().unwrap_or("/").into(),
                domain: c["domain"].as_str().unwrap_or_default().into(),
                http_only: c["httpOnly"].as_bool().unwrap_or(false),
                secure: c["secure"].as_bool().unwrap_or(false),
                same_site: c["sameSite"].as_str().map(String::from),
                expiry: c["expiry"].as_u64(),
            })
            .collect()
    }

    /// The cookie called `name`, if the current page can see it.
    pub fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies().into_iter().find(|c| c.name == name)
    }

    /// Sizes the window so that the viewport (what media queries and screenshots see) is
    /// `width`×`height` CSS pixels: a phone's width with [`PHONE`]. Headless Chromium keeps some
    /// window furniture (the outer window is taller than the page), measured and added here.
    ///
    /// The furniture is not constant: a page taller than the window has a vertical scrollbar
    /// (15 px off the viewport's width), which comes and goes as the width changes the page's
    /// height. So the window is corrected by the difference, either way, until the viewport
    /// is right (twice is the most seen).
    pub fn set_window_size(&self, width: u32, height: u32) {
        let mut outer = (i64::from(width), i64::from(height));
        let mut now = (0, 0);
        for _ in 0..4 {
            let rect = json!({"width": outer.0, "height": outer.1});
            self.command("POST", "/window/rect", Some(&rect));
            now = self.viewport();
            if now == (width, height) {
                return;
            }
            outer.0 += i64::from(width) - i64::from(now.0);
            outer.1 += i64::from(height) - i64::from(now.1);
        }
        assert_eq!(now, (width, height), "viewport after resizing the window");
    }

    /// The viewport's size in CSS pixels (asked through DevTools, so it works with page scripts
    /// off).
    pub fn viewport(&self) -> (u32, u32) {
        let m = self.cdp("Page.getLayoutMetrics", json!({}));
        let n = |k: &str| m["cssLayoutViewport"][k].as_u64().expect("a size") as u32;
        (n("clientWidth"), n("clientHeight"))
    }

    /// Writes a PNG of the viewport to the artefacts directory as `NAME.png` and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = string(self.command("GET", "/screenshot", None));
        let png = base64_decode(&data);
        let path = self.artefacts.join(format!("{name}.png"));
        fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Presses and releases keys as a keyboard does (`"\u{E004}"` is Tab; see W3C WebDriver,
    /// "Keyboard actions"; a modifier stays down until the end of `keys`).
    pub fn press_keys(&self, keys: &str) {
        const MODIFIERS: [char; 4] = ['\u{E008}', '\u{E009}', '\u{E00A}', '\u{E03D}'];
        let mut actions = Vec::new();
        let mut held = Vec::new();
        for key in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            if MODIFIERS.contains(&key) {
                held.push(key);
            } else {
                actions.push(json!({"type": "keyUp", "value": key.to_string()}));
            }
        }
        for key in held.into_iter().rev() {
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.command("POST", "/actions", Some(&body));
        self.command("DELETE", "/actions", None);
    }

    /// Tab: focus moves to the next element in the page's tab order.
    pub fn press_tab(&self) {
        self.press_keys(keys::TAB);
    }

    /// Shift+Tab: focus moves back.
    pub fn press_shift_tab(&self) {
        self.press_keys(&format!("{}{}", keys::SHIFT, keys::TAB));
    }

    /// The focused element (`document.activeElement`; the body when nothing has focus).
    pub fn active_element(&self) -> Element<'_> {
        let v = self.command("GET", "/element/active", None);
        self.element(&v)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session quits Chromium; stopping the group catches anything left.
        let _ = call(&self.agent, "DELETE", &self.session, None);
        self.driver.stop();
        let _ = fs::remove_dir_all(&self.profile);
    }
}

/// Key codes for [`Browser::press_keys`] and [`Element::type_text`] (W3C WebDriver, "Keys").
pub mod keys {
    pub const TAB: &str = "\u{E004}";
    pub const ENTER: &str = "\u{E007}";
    pub const ESCAPE: &str = "\u{E00C}";
    pub const SPACE: &str = "\u{E00D}";
    pub const SHIFT: &str = "\u{E008}";
    pub const CONTROL: &str = "\u{E009}";
    pub const ARROW_DOWN: &str = "\u{E015}";
}

/// An element of the current page.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

impl Element<'_> {
    fn path(&self, tail: &str) -> String {
        format!("/element/{}{tail}", self.id)
    }

    /// The element as an argument to [`Browser::execute`].
    pub fn to_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    /// Clicks it as a mouse would (scrolled into view; refused when something covers it). A
    /// click that loads another page: [`Element::click_and_wait`].
    pub fn click(&self) {
        self.browser
            .command("POST", &self.path("/click"), Some(&json!({})));
    }

    /// Clicks a link or a submit button and waits until the page it leads to has loaded
    /// ([`Browser::navigating`]).
    pub fn click_and_wait(&self) {
        self.browser.navigating(|| self.click());
    }

    /// Types `text` into it (focusing it first); [`keys`] codes press those keys.
    pub fn type_text(&self, text: &str) {
        let body = json!({"text": text});
        self.browser
            .command("POST", &self.path("/value"), Some(&body));
    }

    /// Empties a text field.
    pub fn clear(&self) {
        self.browser
            .command("POST", &self.path("/clear"), Some(&json!({})));
    }

    /// Submits the form this field is in by pressing Enter in it, as a person does (no script
    /// involved, so it works in a session with JavaScript off), and waits for the answer's page.
    pub fn submit(&self) {
        self.browser.navigating(|| self.type_text(keys::ENTER));
    }

    /// The rendered text (what a person sees: hidden parts left out).
    pub fn text(&self) -> String {
        string(self.browser.command("GET", &self.path("/text"), None))
    }

    /// The attribute as written in the markup, `None` when absent.
    pub fn attribute(&self, name: &str) -> Option<String> {
        let v = self
            .browser
            .command("GET", &self.path(&format!("/attribute/{name}")), None);
        v.as_str().map(String::from)
    }

    /// The DOM property (`value` of a field as typed, `checked`, `naturalWidth`…).
    pub fn property(&self, name: &str) -> Value {
        self.browser
            .command("GET", &self.path(&format!("/property/{name}")), None)
    }

    /// The lower-case tag name.
    pub fn tag_name(&self) -> String {
        string(self.browser.command("GET", &self.path("/name"), None)).to_ascii_lowercase()
    }

    pub fn is_displayed(&self) -> bool {
        self.browser.command("GET", &self.path("/displayed"), None) == json!(true)
    }

    /// Position and size in CSS pixels relative to the document: (x, y, width, height).
    pub fn rect(&self) -> (f64, f64, f64, f64) {
        let r = self.browser.command("GET", &self.path("/rect"), None);
        let n = |k: &str| r[k].as_f64().expect("a number");
        (n("x"), n("y"), n("width"), n("height"))
    }

    /// `tag#id.class` (or `tag[name=…]`): enough to tell which element has focus in a message.
    pub fn describe(&self) -> String {
        string(self.browser.execute(
            "const e = arguments[0];
             let d = e.tagName.toLowerCase();
             if (e.id) d += '#' + e.id;
             else if (e.getAttribute('name')) d += '[name=' + e.getAttribute('name') + ']';
             else if (e.getAttribute('href')) d += '[href=' + e.getAttribute('href') + ']';
             return d;",
            vec![self.to_arg()],
        ))
    }
}

impl PartialEq for Element<'_> {
    /// The same node: chromedriver gives one node one reference for the session.
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl std::fmt::Debug for Element<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `target/test-artefacts/browser/` or `$IMGSERV_TEST_ARTEFACTS/browser/`, created.
pub fn artefacts_dir() -> PathBuf {
    let root = std::env::var_os("IMGSERV_TEST_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("target/")
                .join("test-artefacts")
        });
    let dir = root.join("browser");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Removes the driver logs (`chromedriver-PID-N.log`) of test processes that have ended.
fn remove_stale_logs(dir: &Path) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("chromedriver-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !super::pid_alive(pid)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// One WebDriver request; the answer's `value`, or the error it carries.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, WebDriverError> {
    let transport = |message: String| WebDriverError {
        status: 0,
        error: "transport".into(),
        message,
    };
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(bytes)
        .expect("build request");
    let response = agent
        .run(request)
        .map_err(|e| transport(format!("{method} {url}: {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .map_err(|e| transport(format!("{method} {url}: reading the answer: {e}")))?;
    let answer: Value = serde_json::from_str(&text)
        .map_err(|e| transport(format!("{method} {url}: not JSON ({e}): {text}")))?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if status == 200 {
        return Ok(value);
    }
    Err(WebDriverError {
        status,
        error: value["error"].as_str().unwrap_or("unknown error").into(),
        message: value["message"].as_str().unwrap_or(&text).into(),
    })
}

fn string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Standard base64 (RFC 4648, with padding), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    fn sextet(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    }
    let digits: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= sextet(c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_base64() {
        let d = super::base64_decode;
        assert_eq!(d(""), b"");
        assert_eq!(d("Zg=="), b"f");
        assert_eq!(d("Zm8="), b"fo");
        assert_eq!(d("Zm9v"), b"foo");
        assert_eq!(d("Zm9vYmFy"), b"foobar");
        assert_eq!(d("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
    }
}
