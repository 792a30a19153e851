//! The pages' routing in process, against a stand-in [`Site`]: who gets a page, a redirect
//! or a refusal, and the headers every answer carries.

use std::cell::Cell;
use std::time::Duration;

use super::*;
use crate::domain::principal::{Method, Role};
use crate::io::http::cookie::SameSite;
use crate::usecases::error::AuthError;

/// A site where the cookie `s=live` is ann's session (CSRF token `t0k3n`) and ann/pw logs in.
struct Fake {
    config: Config,
    _dir: tempfile::TempDir,
    logouts: Cell<u32>,
}

fn fake() -> Fake {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("originals")).unwrap();
    let text = "[originals]\nroot = \"originals\"\n[state]\ndir = \"state\"\n[cache]\ndir = \"cache\"\nurl = \"https://img.example.com/cache\"\n";
    Fake {
        config: crate::io::config::from_str(text, d.path()).unwrap(),
        _dir: d,
        logouts: Cell::new(0),
    }
}

fn ann() -> Session {
    Session {
        principal: Principal::new("ann", vec![], vec![Role::Editor], Method::Local),
        csrf_token: "t0k3n".into(),
        id: "id".into(),
    }
}

impl Site for Fake {
    fn config(&self) -> &Config {
        &self.config
    }
    fn session(&self, req: &Request) -> Result<Option<Session>, Error> {
        Ok((req.cookie("s").as_deref() == Some("live")).then(ann))
    }
    fn remote_user(&self, _: &Request) -> Result<Option<Principal>, Error> {
        Ok(None)
    }
    fn log_in(&self, _: &Request, user: &str, pw: &str) -> Result<(Session, SetCookie), Error> {
        if (user, pw) != ("ann", "pw") {
            return Err(AuthError::Refused.into());
        }
        let c = SetCookie::new("s", "live")
            .unwrap()
            .same_site(SameSite::Lax);
        Ok((ann(), c.max_age(Duration::from_secs(60))))
    }
    fn log_out(&self, _: &Session) -> Result<SetCookie, Error> {
        self.logouts.set(self.logouts.get() + 1);
        Ok(SetCookie::removal("s", "/").unwrap())
    }
    fn desk<T>(
        &self,
        visitor: &Visitor,
        f: impl FnOnce(&mut Desk<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut catalog = Catalog::open(&self.config.state.catalog_path())?;
        let records = Records::new(&self.config, false);
        let actor = match visitor.principal() {
            Some(p) => Actor::User(p.clone()),
            None => Actor::Anonymous,
        };
        f(&mut Desk {
            config: &self.config,
            records: &records,
            catalog: &mut catalog,
            actor,
        })
    }
    fn upload(&self, _: &Visitor, _: &[u8], _: &Upload) -> Result<Inserted, Error> {
        Err(RequestError::NoRoute("upload".into()).into())
    }
    fn change(&self, _: &Visitor, _: &OriginalId, _: &Change) -> Result<Image, Error> {
        Err(RequestError::NoRoute("change".into()).into())
    }
    fn delete(&self, _: &Visitor, _: &OriginalId) -> Result<(), Error> {
        Err(RequestError::NoRoute("delete".into()).into())
    }
    fn thumbnail(&self, _: &Visitor, _: &OriginalId) -> Result<Response, Error> {
        Err(RequestError::NoRoute("thumbnail".into()).into())
    }
}

fn req(method: &str, path: &str, cookie: bool, body: &str) -> Request {
    let mut r = Request::get(path, "");
    r.method = method.into();
    if cookie {
        r.headers.push(("cookie".into(), "s=live".into()));
    }
    if !body.is_empty() {
        r.headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        r.body = body.as_bytes().to_vec().into();
    }
    r
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn a_page_needs_a_login_and_a_form_its_token() {
    let site = fake();
    let r = handle(&site, &req("GET", "/admin/", false, ""));
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("./login?next=%2Fadmin%2F"));
    let r = handle(&site, &req("GET", "/admin/", true, ""));
    assert_eq!(r.status, 200);
    assert!(text(&r).contains("value=\"t0k3n\""), "{}", text(&r));
    for body in ["x=1", "csrf_token=wrong", "csrf_token=t0k3n0"] {
        let r = handle(&site, &req("POST", "/admin/logout", true, body));
        assert_eq!(r.status, 403, "{body}");
        assert!(text(&r).contains("<h1>Forbidden</h1>"));
    }
    assert_eq!(site.logouts.get(), 0);
    let r = handle(
        &site,
        &req("POST", "/admin/logout", true, "csrf_token=t0k3n"),
    );
    assert_eq!((r.status, r.header("location")), (303, Some("./login")));
    assert_eq!(site.logouts.get(), 1);
    // Nobody logged in: nothing to end, back to the login page.
    let r = handle(&site, &req("POST", "/admin/logout", false, "x=1"));
    assert_eq!(r.status, 303);
    assert_eq!(site.logouts.get(), 1);
}

#[test]
fn a_login_goes_on_to_next_or_says_it_failed() {
    let site = fake();
    let body = "user=ann&password=pw&next=%2Fadmin%2Fx%3Fy%3D1";
    let r = handle(&site, &req("POST", "/admin/login", false, body));
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("./x?y=1"));
    assert!(r.header("set-cookie").unwrap().starts_with("s=live"));
    let r = handle(
        &site,
        &req("POST", "/admin/login", false, "user=ann&password=no"),
    );
    assert_eq!(r.status, 401);
    assert!(text(&r).contains("The user name or the password is wrong."));
    let big = format!("user=ann&password={}", "a".repeat(70_000));
    let r = handle(&site, &req("POST", "/admin/login", false, &big));
    assert_eq!(r.status, 413);
}

#[test]
fn every_answer_is_html_with_the_security_headers() {
    let site = fake();
    let cases = [
        ("GET", "/admin/login", 200),
        ("GET", "/admin/nowhere", 404),
        ("GET", "/admin/logout", 405),
        ("DELETE", "/admin/login", 405),
        ("GET", "/admin", 303),
    ];
    for (method, path, status) in cases {
        let r = handle(&site, &req(method, path, false, ""));
        assert_eq!(r.status, status, "{method} {path}");
        let csp = r.header("content-security-policy").unwrap();
        assert!(
            csp.contains("img-src 'self' https://img.example.com;"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("referrer-policy"), Some("same-origin"));
        if status != 303 {
            let ctype = r.header("content-type").unwrap();
            assert_eq!(ctype, "text/html; charset=utf-8", "{method} {path}");
        }
    }
    let r = handle(&site, &req("GET", "/admin/logout", false, ""));
    assert_eq!(r.header("allow"), Some("POST"));
    // A page two levels down links back up to the dashboard.
    let r = handle(&site, &req("GET", "/admin/a/b", true, ""));
    assert_eq!(r.status, 404);
    assert!(text(&r).contains("href=\"../static/"), "{}", text(&r));
}
