//! The REST interface under `/api/`: originals in (upload), out (bytes, metadata as headers),
//! their metadata and category, deletion with every variant, and search (the category tree is
//! `categories`').
//! Who may call each route (writes: a signed request with the right `Rights`, each signature
//! accepted once; reads: `read` unless `[api] public_reads`) and the body it takes are
//! declared in the route table (`ROUTES` in `api`, checked by `route`), not here; what the
//! caller may do to the image or category at hand is asked of `usecases::permissions` here
//! (view to read, edit to upload into a category, change, move or delete).

use std::io::{self, Read};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::route::{Caller, Matched};
use super::{App, RequestError};
use crate::domain::cursor::Order;
use crate::domain::geometry::Size;
use crate::domain::original::OriginalId;
use crate::domain::permission::Privilege;
use crate::domain::query::{self, QueryError};
use crate::io::catalog::{self, CatalogError, Image, Inserted, Query};
use crate::io::http::{Request, Response, Stream, multipart};
use crate::usecases::browse;
use crate::usecases::error::Error;
use crate::usecases::error::IngestError;
use crate::usecases::ingest::{self, Upload};
use crate::usecases::purge;
use crate::usecases::records::Change;

impl App {
    /// `POST /api/images`: a raw body with its `Content-Type` (`?category=`, `?meta=` JSON), or
    /// a multipart form with a `file` part and optional `meta` and `category` fields.
    pub(super) fn upload(&self, req: &Request, m: &Matched<'_>) -> Result<Response, Error> {
        let pairs = query::pairs(&req.query)?;
        let mut upload = Upload {
            category: query::single(&pairs, "category")?
                .unwrap_or("/")
                .to_string(),
            meta: match query::single(&pairs, "meta")? {
                Some(text) => json_object(text.as_bytes())?,
                None => Map::new(),
            },
            owner: m.caller.user().map(str::to_string),
        };
        let content_type = req.header("content-type").unwrap_or("");
        let limit = self.config.limits.max_source_bytes;
        let bytes = match multipart::boundary(content_type) {
            Some(boundary) => {
                // The form is read part by part; only the file's bytes are kept.
                let mut form = multipart::Form::new(req.body.reader(), &boundary);
                let mut file = None;
                while let Some(head) = form.next_part().map_err(form_error)? {
                    match head.name.as_str() {
                        "meta" => upload.meta = json_object(&field(&mut form)?)?,
                        "category" => {
                            upload.category =
                                String::from_utf8(field(&mut form)?).map_err(|_| {
                                    RequestError::BadBody("category is not UTF-8".into())
                                })?;
                        }
                        _ if head.filename.is_some() || head.name == "file" => {
                            if file.is_some() {
                                return Err(
                                    RequestError::BadBody("more than one file".into()).into()
                                );
                            }
                            file = Some(read_upload(&mut form, limit)?);
                        }
                        _ => {}
                    }
                }
                file.ok_or_else(|| RequestError::BadBody("the form has no file part".into()))?
            }
            None if content_type.starts_with("multipart/") => {
                return Err(RequestError::ContentType(content_type.into()).into());
            }
            None => read_upload(&mut req.body.reader(), limit)?,
        };
        let inserted = self.add_image(&m.caller, &bytes, &upload)?;
        let (status, image) = match &inserted {
            Inserted::New(i) => (201, i),
            Inserted::Existed(i) => (200, i),
        };
        Ok(json(status, image).with_header("Location", format!("/api/images/{}", image.id)))
    }

    /// The image of the route's `{id}`, when the caller may do what `privilege` allows to it.
    fn image(&self, m: &Matched<'_>, privilege: Privilege) -> Result<Image, Error> {
        let id = super::image(m);
        self.with_catalog(|c| {
            let image = self
                .records
                .image(c, id)?
                .ok_or_else(|| catalog::CatalogError::NotFound(id.clone()))?;
            self.require_image(c, &m.caller, privilege, &image)?;
            Ok(image)
        })
    }

    /// `GET /api/images/{id}`: the original's bytes; `HEAD`: its facts as headers.
    pub(super) fn original(&self, req: &Request, m: &Matched<'_>) -> Result<Response, Error> {
        let image = self.image(m, Privilege::View)?;
        let id = &image.id;
        let etag = format!("\"{}\"", image.id);
        let modified = UNIX_EPOCH + Duration::from_millis(image.created.max(0) as u64);
        let resp = Response::new(200)
            .with_header("ETag", etag.clone())
            .with_header("Last-Modified", httpdate::fmt_http_date(modified))
            .with_header("Cache-Control", "private, max-age=31536000, immutable");
        if not_modified(req, &etag, modified) {
            return Ok(Response {
                status: 304,
                ..resp
            }
            .with_header("Content-Length", "0"));
        }
        let resp = resp
            .with_header("Content-Type", image.mime.clone())
            .with_header("X-Imgserv-Width", image.width.to_string())
            .with_header("X-Imgserv-Height", image.height.to_string())
            .with_header("X-Imgserv-Mime", image.mime.clone())
            .with_header("X-Imgserv-Bytes", image.bytes.to_string())
            .with_header("X-Imgserv-Category", image.category.clone());
        if req.is_head() {
            return Ok(resp.with_header("Content-Length", image.bytes.to_string()));
        }
        let format = catalog::format_of(&image.mime).ok_or_else(|| {
            crate::io::render::RenderError::Unsupported(format!("catalogued as {}", image.mime))
        })?;
        // Streamed from the store as the client reads it, never held whole.
        let object = self.store()?.open(id, format)?;
        let resp = resp.with_header("Content-Length", object.len.to_string());
        Ok(resp.with_stream(Stream::new(object.reader, object.len)))
    }

    /// `GET /api/images/{id}/meta`: the catalog row as JSON.
    pub(super) fn meta(&self, m: &Matched<'_>) -> Result<Response, Error> {
        Ok(json(200, &self.image(m, Privilege::View)?))
    }

    /// `POST` (replace) or `PATCH` (merge, RFC 7396) the metadata with a JSON object body;
    /// `?category=PATH` moves the image. An empty body changes no metadata.
    /// The caller needs edit on the image and, for a move, on the target category.
    pub(super) fn change_meta(&self, req: &Request, m: &Matched<'_>) -> Result<Response, Error> {
        let id = super::image(m);
        let pairs = query::pairs(&req.query)?;
        let category = query::single(&pairs, "category")?;
        let body = req
            .body
            .to_vec(MAX_FIELD)
            .map_err(RequestError::BodyIo)?
            .ok_or_else(|| RequestError::BadBody(format!("metadata over {MAX_FIELD} bytes")))?;
        let meta = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(json_object(&body)?)
        };
        let change = Change {
            meta,
            merge: req.method == "PATCH",
            category: category.map(str::to_string),
        };
        let image = self.change_image(&m.caller, id, &change)?;
        Ok(json(200, &image))
    }

    /// `DELETE /api/images/{id}`: the row and pending rows in one transaction, then the
    /// original and every variant; what fails now is left to the sweep.
    pub(super) fn delete(&self, m: &Matched<'_>) -> Result<Response, Error> {
        self.delete_image(&m.caller, super::image(m))?;
        Ok(Response::new(204))
    }

    /// `DELETE /api/images/{id}/variants/{w}x{h}`: the variant for that box (the canonical
    /// file and the 404 handler's link); 404 when there was none.
    pub(super) fn delete_variant(&self, req: &Request, m: &Matched<'_>) -> Result<Response, Error> {
        let size = m.params[0];
        let bbox: Size = size.parse().map_err(|reason| QueryError::Invalid {
            name: "size",
            reason,
        })?;
        let image = self.image(m, Privilege::Edit)?;
        let removed = self.remove_variant(&image, bbox)?;
        if removed {
            Ok(Response::new(204))
        } else {
            Err(RequestError::NoRoute(req.path.clone()).into())
        }
    }

    /// `GET /api/images?q=&category=&order=&per_page=&after=`: a page of the images in a
    /// category and below it (newest first, or `order=name`), or of full-text matches (best
    /// first), and `next`, the cursor of the page after it (`null` on the last). `total`
    /// comes with the first page only. Deprecated: `page=N`, the offset pages of before
    /// (`{items, total, page, per_page}`), kept for old clients; deep pages cost more.
    /// Images in categories the caller may not view are left out (totals too).
    pub(super) fn search(&self, req: &Request, m: &Matched<'_>) -> Result<Response, Error> {
        let pairs = query::pairs(&req.query)?;
        let number = |name: &'static str, default: u32| -> Result<u32, QueryError> {
            match query::single(&pairs, name)? {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| QueryError::Invalid {
                    name,
                    reason: format!("expected a positive integer, got {v:?}"),
                }),
            }
        };
        let after = query::single(&pairs, "after")?.map(str::to_string);
        let words = query::single(&pairs, "q")?
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_string);
        let category = query::single(&pairs, "category")?.map(str::to_string);
        if query::single(&pairs, "page")?.is_some() {
            if after.is_some() {
                return Err(QueryError::Invalid {
                    name: "page",
                    reason: "give either page (deprecated) or after, not both".into(),
                }
                .into());
            }
            return self.search_by_offset(
                m,
                words,
                category,
                number("page", 1)?,
                number("per_page", 20)?,
            );
        }
        let per_page = number("per_page", self.config.dashboard.per_page)?;
        let order = match query::single(&pairs, "order")? {
            None => Order::Newest,
            Some(text) => Order::parse(text)?,
        };
        let body = self.acting(&m.caller, |c, actor| {
            let first = after.is_none();
            let (items, next) = match &words {
                Some(q) => {
                    let page = browse::find(
                        &self.config,
                        &self.records,
                        c,
                        &actor,
                        &browse::Search {
                            q: q.clone(),
                            category: category.clone(),
                            after,
                            per_page,
                        },
                    )?;
                    let items: Vec<Value> = page
                        .items
                        .into_iter()
                        .map(|f| {
                            let mut v = serde_json::to_value(&f.image).unwrap_or_default();
                            if let Value::Object(o) = &mut v {
                                o.insert(
                                    "snippet".into(),
                                    serde_json::to_value(&f.snippet).unwrap_or_default(),
                                );
                            }
                            v
                        })
                        .collect();
                    (items, page.next)
                }
                None => {
                    let page = browse::list(
                        &self.config,
                        &self.records,
                        c,
                        &actor,
                        &browse::Listing {
                            category: category.clone().unwrap_or_else(|| "/".into()),
                            below: true,
                            order,
                            after,
                            per_page,
                        },
                    )?;
                    let items = page
                        .items
                        .iter()
                        .map(|i| serde_json::to_value(i).unwrap_or_default())
                        .collect();
                    (items, page.next)
                }
            };
            let mut body = serde_json::json!({
                "items": items,
                "next": next,
                "per_page": per_page,
            });
            if first {
                // What old clients read; counted on the first page only (a count costs what
                // the listing's categories hold; nothing is ranked for it).
                let q = Query {
                    q: words.clone(),
                    category: category.clone(),
                    page: 1,
                    per_page: 1,
                    hidden: self.permissions().hidden_categories(c, &actor)?,
                };
                body["total"] = c.count(&q)?.into();
            }
            Ok(body)
        })?;
        Ok(json(200, &body))
    }

    /// The deprecated `page=` form of [`search`](App::search): `OFFSET` pages.
    fn search_by_offset(
        &self,
        m: &Matched<'_>,
        q: Option<String>,
        category: Option<String>,
        page: u32,
        per_page: u32,
    ) -> Result<Response, Error> {
        let mut q = Query {
            q,
            category,
            page,
            per_page,
            hidden: Vec::new(),
        };
        let page = self.acting(&m.caller, |c, actor| {
            q.hidden = self.permissions().hidden_categories(c, &actor)?;
            Ok(c.search(&q)?)
        })?;
        let body = serde_json::json!({
            "items": page.items,
            "total": page.total,
            "page": q.page,
            "per_page": q.per_page,
        });
        Ok(json(200, &body))
    }
}

/// The largest metadata document or form field (other than the file) read.
const MAX_FIELD: u64 = 1 << 20;

/// What the REST routes and the dashboard's pages both do: each checks the caller's
/// permission, changes the catalog (and store), and logs who did it.
impl App {
    /// Adds an original: edit on its category; a new category's creator grant is written with
    /// the image.
    pub(super) fn add_image(
        &self,
        caller: &Caller,
        bytes: &[u8],
        upload: &Upload,
    ) -> Result<Inserted, Error> {
        let store = self.store()?;
        let inserted = self.with_catalog(|catalog| {
            let category = catalog::normalize_category(&upload.category)?;
            let actor = self.actor(catalog, caller)?;
            let perms = self.permissions();
            perms.require(
                catalog,
                &actor,
                Privilege::Edit,
                &catalog::category_object(&category),
            )?;
            let new_category = !catalog.category_exists(&category)?;
            let inserted = ingest::ingest(&self.config, store.as_ref(), catalog, bytes, upload)?;
            if new_category && matches!(inserted, Inserted::New(_)) {
                // The creator's grant was written with the image: forget cached answers.
                perms.changed();
            }
            Ok(inserted)
        })?;
        let (image, how) = match &inserted {
            Inserted::New(i) => (i, "new"),
            Inserted::Existed(i) => (i, "existed"),
        };
        log::info!(
            "upload {} {} {}x{} {} bytes into {} by {} ({how})",
            image.id,
            image.mime,
            image.width,
            image.height,
            image.bytes,
            image.category,
            caller.user().unwrap_or("-"),
        );
        Ok(inserted)
    }

    /// Replaces or merges an image's metadata and/or moves it: edit on the image and, for a
    /// move, on the target category.
    pub(super) fn change_image(
        &self,
        caller: &Caller,
        id: &OriginalId,
        change: &Change,
    ) -> Result<Image, Error> {
        let image = self.with_catalog(|c| {
            let mut image = c
                .get(id)?
                .ok_or_else(|| catalog::CatalogError::NotFound(id.clone()))?;
            self.require_image(c, caller, Privilege::Edit, &image)?;
            if let Some(category) = &change.category {
                let object = catalog::category_object(&catalog::normalize_category(category)?);
                let actor = self.actor(c, caller)?;
                self.permissions()
                    .require(c, &actor, Privilege::Edit, &object)?;
            }
            if let Some(meta) = &change.meta {
                image = self.records.change_meta(c, id, meta, change.merge)?;
            }
            if let Some(category) = &change.category {
                image = self.records.move_image(c, id, category)?;
            }
            Ok(image)
        })?;
        log::info!(
            "change {id} by {}:{}{}",
            caller.user().unwrap_or("-"),
            match (&change.meta, change.merge) {
                (None, _) => String::new(),
                (Some(m), merge) => format!(
                    " metadata {} ({} keys)",
                    if merge { "merged" } else { "replaced" },
                    m.len()
                ),
            },
            match &change.category {
                Some(_) => format!(" moved to {}", image.category),
                None => String::new(),
            }
        );
        Ok(image)
    }

    /// Deletes an image: the row and pending rows in one transaction, then the original and
    /// every variant; what fails now is left to the sweep. Edit on the image.
    pub(super) fn delete_image(&self, caller: &Caller, id: &OriginalId) -> Result<(), Error> {
        let store = self.store()?;
        // Edit on the image; an image already gone (a retry finishing its removals) was
        // checked by the request that deleted it.
        self.with_catalog(|c| match self.records.image(c, id)? {
            Some(image) => self.require_image(c, caller, Privilege::Edit, &image),
            None => Ok(()),
        })?;
        // A DELETE that died after its transaction (a crash, a kill) left its removals
        // pending, the image's files still served until the next sweep: the client's retry
        // finishes them, rather than answering 404 with the job half done.
        let pending = self.with_catalog(|c| match self.records.delete_image(c, id) {
            Ok(deleted) => Ok(deleted.pending),
            Err(CatalogError::NotFound(_)) => {
                let left: Vec<_> = c
                    .pending()?
                    .into_iter()
                    .filter(|p| p.image == *id)
                    .collect();
                if left.is_empty() {
                    Err(CatalogError::NotFound(id.clone()).into())
                } else {
                    Ok(left)
                }
            }
            Err(e) => Err(e.into()),
        })?;
        self.with_cache(|cache| {
            self.with_catalog(|c| {
                purge::finish_delete(&self.config, store.as_ref(), cache, c, &pending);
                Ok(())
            })
        })?;
        log::info!("delete {id} by {}", caller.user().unwrap_or("-"));
        Ok(())
    }
}

/// A form field's bytes, up to [`MAX_FIELD`].
fn field(form: &mut impl Read) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    form.take(MAX_FIELD + 1)
        .read_to_end(&mut out)
        .map_err(read_error)?;
    if out.len() as u64 > MAX_FIELD {
        return Err(
            RequestError::BadBody(format!("a form field is over {MAX_FIELD} bytes")).into(),
        );
    }
    Ok(out)
}

/// The uploaded file, refused as soon as it passes `limit` (its size is then counted, not
/// kept).
fn read_upload(input: &mut impl Read, limit: u64) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    input
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(read_error)?;
    if out.len() as u64 > limit {
        let rest = io::copy(input, &mut io::sink()).map_err(read_error)?;
        let bytes = out.len() as u64 + rest;
        return Err(IngestError::TooLarge { bytes, limit }.into());
    }
    Ok(out)
}

fn form_error(e: multipart::FormError) -> Error {
    match e {
        multipart::FormError::Malformed(why) => RequestError::BadBody(why).into(),
        multipart::FormError::Io(e) => read_error(e),
    }
}

/// A malformed form shows up as `InvalidData` from a part's reader.
fn read_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData {
        RequestError::BadBody(e.to_string()).into()
    } else {
        RequestError::BodyIo(e).into()
    }
}

fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, Error> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RequestError::BadBody("metadata must be a JSON object".into()).into()),
        Err(e) => Err(RequestError::BadBody(format!("metadata is not JSON: {e}")).into()),
    }
}

pub(super) fn json(status: u16, value: &impl serde::Serialize) -> Response {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    Response::new(status)
        .with_header("Content-Type", "application/json")
        .with_header("Cache-Control", "no-store")
        .with_body(body)
}

/// `If-None-Match` (takes precedence) or `If-Modified-Since` (seconds resolution).
fn not_modified(req: &Request, etag: &str, modified: std::time::SystemTime) -> bool {
    if let Some(list) = req.header("if-none-match") {
        return list
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag);
    }
    match req
        .header("if-modified-since")
        .map(httpdate::parse_http_date)
    {
        Some(Ok(since)) => {
            let secs =
                |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            secs(modified) <= secs(since)
        }
        _ => false,
    }
}
