//! `/api/categories`: the tree with counts (`GET`), and changes to it for scripts — create
//! (`POST`), rename or move (`POST /api/categories/move`), delete when empty (`DELETE`). The
//! fields come as JSON, as a form (urlencoded or multipart, named as the dashboard's: `category`,
//! `from`, `to`) or, without a body, in the query string. Who may make a change is the use
//! case's (`usecases::categories`); the route table declares the key rights and the body.

use serde_json::{Map, Value, json};

use super::route::Matched;
use super::{App, RequestError};
use crate::domain::query;
use crate::io::http::form::{Form, Limits};
use crate::io::http::{Request, Response};
use crate::usecases::categories;
use crate::usecases::error::Error;

/// The largest body a change reads: two paths, and a form's framing and CSRF token.
pub(super) const MAX_BODY: u64 = 16 << 10;

/// The fields a form may carry besides the route's own (the session's CSRF token).
const FORM_EXTRAS: &[&str] = &["csrf_token"];

/// The values of the fields `names`: from a JSON object body (strings, and no other member),
/// a form body, or, when there is no body, the query string (each at most once). A missing
/// field is `None`.
fn fields<const N: usize>(
    req: &Request,
    names: [&'static str; N],
) -> Result<[Option<String>; N], Error> {
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    if req.body.is_empty() {
        let pairs = query::pairs(&req.query)?;
        for (slot, name) in out.iter_mut().zip(names) {
            *slot = query::single(&pairs, name)?.map(str::to_string);
        }
        return Ok(out);
    }
    let content_type = req.header("content-type").unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        let bytes = req
            .body
            .to_vec(MAX_BODY)
            .map_err(RequestError::BodyIo)?
            .ok_or_else(|| RequestError::BadBody(format!("over {MAX_BODY} bytes")))?;
        let expected = || {
            let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            format!("expected a JSON object with {}", names.join(", "))
        };
        let object: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|e| RequestError::BadBody(format!("{}: {e}", expected())))?;
        for (key, value) in object {
            let Some(i) = names.iter().position(|n| *n == key) else {
                return Err(RequestError::BadBody(format!(
                    "unknown member {key:?}; {}",
                    expected()
                ))
                .into());
            };
            let Value::String(text) = value else {
                return Err(RequestError::BadBody(format!("{key:?} must be a string")).into());
            };
            out[i] = Some(text);
        }
        return Ok(out);
    }
    let form = Form::read(req, &Limits::default(), |_, _| Ok(())).map_err(RequestError::from)?;
    for (name, _) in form.fields() {
        if !names.contains(&name.as_str()) && !FORM_EXTRAS.contains(&name.as_str()) {
            return Err(RequestError::BadBody(format!("unknown form field {name:?}")).into());
        }
    }
    for (slot, name) in out.iter_mut().zip(names) {
        if form.all(name).count() > 1 {
            return Err(RequestError::BadBody(format!("{name:?} given more than once")).into());
        }
        *slot = form.get(name).map(str::to_string);
    }
    Ok(out)
}

/// A field the route needs.
fn required(value: Option<String>, name: &str) -> Result<String, Error> {
    value.ok_or_else(|| RequestError::BadBody(format!("the field {name:?} is missing")).into())
}

impl App {
    /// `GET /api/categories`: the tree with counts, of what the caller may view.
    pub(super) fn categories(&self, m: &Matched<'_>) -> Result<Response, Error> {
        let tree = self.acting(&m.caller, |c, actor| {
            Ok(self.permissions().visible_categories(c, &actor)?)
        })?;
        Ok(super::images::json(200, &tree))
    }

    /// `POST /api/categories` (`category`): `201` and the new, empty category.
    pub(super) fn create_category(
        &self,
        req: &Request,
        m: &Matched<'_>,
    ) -> Result<Response, Error> {
        let [category] = fields(req, ["category"])?;
        let category = required(category, "category")?;
        let path = self.acting(&m.caller, |c, actor| {
            categories::create(&self.config, &self.records, c, &actor, &category)
        })?;
        let body = json!({"path": path, "images": 0, "total": 0});
        Ok(super::images::json(201, &body))
    }

    /// `POST /api/categories/move` (`from`, `to`): what moved.
    pub(super) fn move_category(&self, req: &Request, m: &Matched<'_>) -> Result<Response, Error> {
        let [from, to] = fields(req, ["from", "to"])?;
        let (from, to) = (required(from, "from")?, required(to, "to")?);
        let done = self.acting(&m.caller, |c, actor| {
            categories::rename(&self.config, &self.records, c, &actor, &from, &to)
        })?;
        let body = json!({
            "from": done.from,
            "to": done.to,
            "categories": done.categories,
            "images": done.images.len(),
            "grants": done.grants,
            "dropped": done.dropped,
        });
        Ok(super::images::json(200, &body))
    }

    /// `DELETE /api/categories` (`category`): what went.
    pub(super) fn delete_category(
        &self,
        req: &Request,
        m: &Matched<'_>,
    ) -> Result<Response, Error> {
        let [category] = fields(req, ["category"])?;
        let category = required(category, "category")?;
        let done = self.acting(&m.caller, |c, actor| {
            categories::delete(&self.config, &self.records, c, &actor, &category)
        })?;
        let body = json!({
            "path": done.path,
            "categories": done.categories,
            "grants": done.grants,
        });
        Ok(super::images::json(200, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>, query: &str, body: &[u8]) -> Request {
        let mut req = Request {
            method: "POST".into(),
            path: "/api/categories/move".into(),
            query: query.into(),
            body: body.to_vec().into(),
            ..Request::default()
        };
        if let Some(t) = content_type {
            req.headers.push(("content-type".into(), t.into()));
        }
        req
    }

    #[test]
    fn fields_come_as_json_a_form_or_the_query() {
        let json_type = Some("application/json; charset=utf-8");
        let form_type = Some("application/x-www-form-urlencoded");
        type Case<'a> = (
            Option<&'a str>,
            &'a str,
            &'a [u8],
            Option<[Option<&'a str>; 2]>,
        );
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (json_type, "", br#"{"from": "/a", "to": "/b"}"#, Some([Some("/a"), Some("/b")])),
            (json_type, "", br#"{"from": "/a"}"#,             Some([Some("/a"), None])),
            (json_type, "", br#"{"from": "/a", "x": "1"}"#,   None),
            (json_type, "", br#"{"from": 1}"#,                None),
            (json_type, "", br#"["/a"]"#,                     None),
            (form_type, "", b"from=%2Fa+b&to=/c&csrf_token=t", Some([Some("/a b"), Some("/c")])),
            (form_type, "", b"from=/a&from=/b",               None),
            (form_type, "", b"category=/a",                   None),
            (None,      "from=/a&to=%2Fb", b"",               Some([Some("/a"), Some("/b")])),
            (None,      "from=/a&from=/b", b"",               None),
            (Some("text/plain"), "", b"from=/a",              None),
        ];
        for (content_type, query, body, want) in cases {
            let got = fields(&request(*content_type, query, body), ["from", "to"]);
            let text = String::from_utf8_lossy(body);
            match want {
                Some(want) => {
                    let want = want.map(|v| v.map(str::to_string));
                    assert_eq!(got.unwrap(), want, "{query} {text}");
                }
                None => assert!(got.is_err(), "{query} {text}"),
            }
        }
        let boundary = "XyZ";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\n/a\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n/b\r\n--{boundary}--\r\n"
        );
        let ct = format!("multipart/form-data; boundary={boundary}");
        let got = fields(&request(Some(&ct), "", body.as_bytes()), ["from", "to"]).unwrap();
        assert_eq!(got, [Some("/a".into()), Some("/b".into())]);
    }
}
