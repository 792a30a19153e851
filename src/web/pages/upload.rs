//! `/admin/upload`: several files at once into a category, with metadata for all of them;
//! each file's outcome listed (new, a duplicate of an image already there, or refused and
//! why, in the REST errors' words). The form posts as `multipart/form-data` with the REST
//! upload's field names (`file`, `category`, `meta.KEY` or a JSON `meta`); with
//! `Accept: application/json` the outcomes come back as JSON (the page's script uploads one
//! file a request that way, to show each file's progress).

use std::io::Read;

use askama::Template;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::io::catalog::Inserted;
use crate::io::http::form::{Form, FormError, Limits};
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::browse;
use crate::usecases::error::{Error, IngestError};
use crate::usecases::ingest::Upload;

use super::layout::{Layout, html};
use super::view;
use super::{Site, Visitor};

/// What became of one file.
#[derive(Serialize)]
struct Outcome {
    file: String,
    /// `new`, `duplicate` or `refused`.
    kind: &'static str,
    /// The HTTP status the REST upload would have answered.
    status: u16,
    /// The REST error code when refused.
    code: Option<&'static str>,
    words: String,
    id: Option<String>,
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage<'a> {
    layout: Layout<'a>,
    error: Option<String>,
    summary: String,
    outcomes: Vec<Outcome>,
    category: String,
    categories: Vec<String>,
    title: String,
    description: String,
    max_file: String,
}

fn render<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    form: Option<&Form>,
    outcomes: Vec<Outcome>,
    error: Option<String>,
    status: u16,
) -> Result<Response, Error> {
    let categories = site.desk(v, |d| {
        Ok(browse::tree(d.config, d.records, d.catalog, &d.actor)?
            .into_iter()
            .map(|c| c.path)
            .collect())
    })?;
    let params = view::params(&req.query)?;
    let field = |name: &str| {
        form.and_then(|f| f.get(name))
            .or_else(|| params.get(name))
            .unwrap_or("")
            .to_string()
    };
    let category = match field("category") {
        c if c.is_empty() => "/".to_string(),
        c => c,
    };
    let count = |kind: &str| outcomes.iter().filter(|o| o.kind == kind).count();
    let summary = format!(
        "{} new, {} already there, {} refused",
        count("new"),
        count("duplicate"),
        count("refused")
    );
    let page = UploadPage {
        layout: Layout::new(&req.path, v),
        error,
        summary,
        outcomes,
        category,
        categories,
        title: field("meta.title"),
        description: field("meta.description"),
        max_file: view::bytes(site.config().limits.max_source_bytes),
    };
    Ok(html(status, page.render()))
}

/// `GET /admin/upload` (`?category=` fills the field in).
pub fn show<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    render(site, req, v, None, Vec::new(), None, 200)
}

/// A file part as read: its name and bytes, or why it was refused before the catalog saw it.
struct Incoming {
    name: String,
    bytes: Result<Vec<u8>, Error>,
}

/// The metadata of the form: a JSON `meta` field (as REST takes it), then each non-empty
/// `meta.KEY` field.
fn meta_of(form: &Form) -> Result<Map<String, Value>, Error> {
    let mut meta = match form.get("meta").filter(|m| !m.trim().is_empty()) {
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(RequestError::BadBody("meta is not a JSON object".into()).into());
            }
        },
        None => Map::new(),
    };
    for (name, value) in form.fields() {
        if let Some(key) = name.strip_prefix("meta.")
            && !key.is_empty()
            && !value.trim().is_empty()
        {
            meta.insert(key.to_string(), Value::String(value.trim().to_string()));
        }
    }
    Ok(meta)
}

/// The outcome of one file.
fn outcome(name: String, result: Result<Inserted, Error>) -> Outcome {
    match result {
        Ok(Inserted::New(image)) => Outcome {
            words: format!(
                "added, {} × {} {} into {}",
                image.width, image.height, image.mime, image.category
            ),
            file: name,
            kind: "new",
            status: 201,
            code: None,
            id: Some(image.id.as_str().to_string()),
        },
        Ok(Inserted::Existed(image)) => Outcome {
            words: format!(
                "already there (the same bytes), in {}; nothing changed",
                image.category
            ),
            file: name,
            kind: "duplicate",
            status: 200,
            code: None,
            id: Some(image.id.as_str().to_string()),
        },
        Err(e) => Outcome {
            words: format!("refused: {}", e.public_message()),
            file: name,
            kind: "refused",
            status: e.status(),
            code: Some(e.code()),
            id: None,
        },
    }
}

/// `POST /admin/upload`: every file into the category, each outcome listed (`200` when any
/// file went in or was there, else the first refusal's status).
pub fn submit<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let limit = site.config().limits.max_source_bytes;
    let mut files: Vec<Incoming> = Vec::new();
    let form = Form::read(req, &Limits::default(), |head, part| {
        let name = head.filename.clone().unwrap_or_default();
        let mut bytes = Vec::new();
        part.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(FormError::Io)?;
        // A file input left empty sends a part without a name or bytes.
        if name.is_empty() && bytes.is_empty() {
            return Ok(());
        }
        let bytes = if bytes.len() as u64 > limit {
            let rest = std::io::copy(part, &mut std::io::sink()).map_err(FormError::Io)?;
            let bytes = limit + 1 + rest;
            Err(IngestError::TooLarge { bytes, limit }.into())
        } else {
            Ok(bytes)
        };
        files.push(Incoming { name, bytes });
        Ok(())
    })
    .map_err(RequestError::from)?;
    let json = req
        .header("accept")
        .is_some_and(|a| a.contains("application/json"));
    if files.is_empty() {
        let msg = "Choose at least one file to upload.".to_string();
        if json {
            return Err(RequestError::BadBody(msg).into());
        }
        return render(site, req, v, Some(&form), Vec::new(), Some(msg), 400);
    }
    let upload = Upload {
        category: form.get("category").unwrap_or("/").to_string(),
        meta: meta_of(&form)?,
        owner: v.principal().map(|p| p.user.clone()),
    };
    let outcomes: Vec<Outcome> = files
        .into_iter()
        .map(|f| {
            let result = f.bytes.and_then(|b| site.upload(v, &b, &upload));
            outcome(f.name, result)
        })
        .collect();
    let status = match outcomes.iter().find(|o| o.kind != "refused") {
        Some(_) => 200,
        None => outcomes.first().map_or(400, |o| o.status),
    };
    if json {
        let body =
            serde_json::to_vec(&serde_json::json!({ "files": outcomes })).unwrap_or_default();
        return Ok(Response::new(status)
            .with_header("Content-Type", "application/json")
            .with_body(body));
    }
    render(site, req, v, Some(&form), outcomes, None, status)
}
