//! `/admin/image/{id}`: one image (preview, facts, metadata, the URLs to embed it with a copy
//! button, its variants in the cache); `/admin/image/{id}/edit` (metadata keys added, changed
//! and removed, the category) and `/admin/image/{id}/delete` (a confirmation listing what
//! goes, then the delete). Every change goes through the same checked calls as REST.

use askama::Template;
use serde_json::{Map, Value};

use crate::domain::original::OriginalId;
use crate::domain::permission::Privilege;
use crate::io::catalog::{self, CatalogError, Image};
use crate::io::http::form::Form;
use crate::io::http::{Request, Response};
use crate::usecases::browse::{self, Thumbnail};
use crate::usecases::error::Error;
use crate::usecases::records::Change;
use crate::usecases::variant::{self, Cached};

use super::embed::{self, Embed};
use super::layout::{Layout, html, redirect};
use super::view::{self, query};
use super::{Site, Visitor};

#[derive(Template)]
#[template(path = "image.html")]
struct ImagePage<'a> {
    layout: Layout<'a>,
    title: String,
    alt: String,
    notice: Option<&'static str>,
    id: &'a str,
    category_href: String,
    image: &'a Image,
    preview: Option<Thumbnail>,
    bytes: String,
    created: String,
    updated: String,
    may_edit: bool,
    meta: Vec<(String, String)>,
    embeds: Vec<Embed>,
    embed_note: String,
    variants: Vec<String>,
}

/// A metadata field of the edit form.
struct Field {
    key: String,
    value: String,
    /// Not a string: shown and read back as JSON.
    json: bool,
    rows: usize,
    remove: bool,
}

#[derive(Template)]
#[template(path = "edit.html")]
struct EditPage<'a> {
    layout: Layout<'a>,
    title: String,
    id: &'a str,
    error: Option<String>,
    updated: i64,
    fields: Vec<Field>,
    new_key: String,
    new_value: String,
    category: String,
    categories: Vec<String>,
}

#[derive(Template)]
#[template(path = "delete.html")]
struct DeletePage<'a> {
    layout: Layout<'a>,
    title: String,
    id: &'a str,
    mime: &'a str,
    width: u32,
    height: u32,
    bytes: String,
    category: &'a str,
    variants: Vec<String>,
}

/// The title a page shows for an image: its `title`, else its id's start.
fn title_of(image: &Image) -> String {
    match image
        .meta
        .get("title")
        .and_then(Value::as_str)
        .map(str::trim)
    {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => format!("Image {}", &image.id.as_str()[..12]),
    }
}

/// A metadata value as text: a string as itself, anything else as JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The image of `id` when the visitor may do what `privilege` allows to it, and whether they
/// may edit it.
fn load<S: Site>(
    site: &S,
    v: &Visitor,
    id: &OriginalId,
    privilege: Privilege,
) -> Result<(Image, bool), Error> {
    site.desk(v, |d| {
        let image = d
            .records
            .image(d.catalog, id)?
            .ok_or_else(|| CatalogError::NotFound(id.clone()))?;
        let held = d.permissions().explain_image(d.catalog, &d.actor, &image)?;
        let held = held.map(|(p, _)| p);
        if held.is_none_or(|p| p < privilege) {
            // The refusal says what the REST route would.
            d.permissions()
                .require_image(d.catalog, &d.actor, privilege, &image)?;
        }
        Ok((image, held.is_some_and(|p| p >= Privilege::Edit)))
    })
}

/// `GET /admin/image/{id}`.
pub fn show<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    id: &OriginalId,
) -> Result<Response, Error> {
    let (image, may_edit) = load(site, v, id, Privilege::View)?;
    let config = site.config();
    // The page's own origin, as the browser reached it (shown to the visitor only).
    let origin = req
        .header("host")
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!("{}://{h}", if req.https { "https" } else { "http" }));
    let (preview, (embeds, embed_note)) = site.desk(v, |d| {
        let root = super::layout::root(&req.path);
        let preview = browse::cards(d.config, d.records, d.catalog, std::slice::from_ref(&image))?
            .pop()
            .map(|c| match c.thumbnail {
                Some(t) => t,
                None => view::checked_thumbnail(d.config, &root, &c),
            });
        Ok((preview, embed::urls(d, &image, origin.as_deref())?))
    })?;
    let params = view::params(&req.query)?;
    let notice = params.get("saved").map(|_| "Saved.");
    let title = title_of(&image);
    let page = ImagePage {
        layout: Layout::new(&req.path, v),
        alt: title.clone(),
        title,
        notice,
        id: image.id.as_str(),
        category_href: format!("browse?{}", query(&[("category", &image.category)])),
        preview,
        bytes: view::bytes(image.bytes),
        created: view::date(image.created),
        updated: view::date(image.updated),
        may_edit,
        meta: image
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), text_of(v)))
            .collect(),
        embeds,
        embed_note,
        variants: variant_lines(&variant::cached_of(config, &image.id)),
        image: &image,
    };
    Ok(html(200, page.render()))
}

/// The edit form of `image`, with `error` and what was typed when a save failed.
fn edit_page(
    req: &Request,
    v: &Visitor,
    image: &Image,
    categories: Vec<String>,
    typed: Option<(&Form, String)>,
) -> Response {
    let mut fields: Vec<Field> = image
        .meta
        .iter()
        .map(|(key, value)| {
            let value_text = match value {
                Value::String(s) => s.clone(),
                other => serde_json::to_string_pretty(other).unwrap_or_default(),
            };
            Field {
                key: key.clone(),
                rows: value_text.lines().count().clamp(1, 12),
                json: !value.is_string(),
                value: value_text,
                remove: false,
            }
        })
        .collect();
    let (mut new_key, mut new_value, mut category) =
        (String::new(), String::new(), image.category.clone());
    let mut error = None;
    let mut status = 200;
    if let Some((form, message)) = typed {
        for f in &mut fields {
            if let Some(text) = form.get(&format!("meta.{}", f.key)) {
                f.value = text.to_string();
            }
            f.remove = form.all("remove").any(|k| k == f.key);
        }
        new_key = form.get("new_key").unwrap_or("").to_string();
        new_value = form.get("new_value").unwrap_or("").to_string();
        category = form.get("category").unwrap_or("").to_string();
        error = Some(message);
        status = 400;
    }
    let page = EditPage {
        layout: Layout::new(&req.path, v),
        title: title_of(image),
        id: image.id.as_str(),
        error,
        updated: image.updated,
        fields,
        new_key,
        new_value,
        category,
        categories,
    };
    html(status, page.render())
}

/// The category paths the visitor sees, for the form's suggestions.
fn category_paths<S: Site>(site: &S, v: &Visitor) -> Result<Vec<String>, Error> {
    site.desk(v, |d| {
        Ok(browse::tree(d.config, d.records, d.catalog, &d.actor)?
            .into_iter()
            .map(|c| c.path)
            .collect())
    })
}

/// `GET /admin/image/{id}/edit`.
pub fn edit<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    id: &OriginalId,
) -> Result<Response, Error> {
    let (image, _) = load(site, v, id, Privilege::Edit)?;
    Ok(edit_page(req, v, &image, category_paths(site, v)?, None))
}

/// The metadata the edit form asks for: every `meta.KEY` field not marked `remove` (read as
/// JSON when marked `json`), and `new_key`/`new_value`.
fn meta_of(form: &Form) -> Result<Map<String, Value>, String> {
    let mut meta = Map::new();
    for (name, text) in form.fields() {
        let Some(key) = name.strip_prefix("meta.") else {
            continue;
        };
        if form.all("remove").any(|k| k == key) {
            continue;
        }
        let value = if form.all("json").any(|k| k == key) {
            serde_json::from_str(text)
                .map_err(|e| format!("The value of {key} is not valid JSON: {e}."))?
        } else {
            Value::String(text.clone())
        };
        meta.insert(key.to_string(), value);
    }
    let new_key = form.get("new_key").unwrap_or("").trim();
    let new_value = form.get("new_value").unwrap_or("");
    match (new_key.is_empty(), new_value.is_empty()) {
        (true, true) => {}
        (true, false) => return Err("Give the new value a key.".into()),
        (false, _) if meta.contains_key(new_key) => {
            return Err(format!(
                "The image already has the key {new_key}: change it above."
            ));
        }
        (false, _) => {
            meta.insert(new_key.to_string(), Value::String(new_value.to_string()));
        }
    }
    Ok(meta)
}

/// `POST /admin/image/{id}/edit`: replaces the metadata with the form's and moves the image
/// when the category changed; refused (`409`) when the image changed since the form was made.
pub fn save<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    id: &OriginalId,
) -> Result<Response, Error> {
    let form = view::form(req)?;
    let (image, _) = load(site, v, id, Privilege::Edit)?;
    let typed_again = |message: String| -> Result<Response, Error> {
        Ok(edit_page(
            req,
            v,
            &image,
            category_paths(site, v)?,
            Some((&form, message)),
        ))
    };
    if form.get("updated") != Some(image.updated.to_string().as_str()) {
        let mut resp = typed_again(
            "Someone changed this image after you opened the form. \
             Check the values below and save again."
                .into(),
        )?;
        resp.status = 409;
        // The form shows what is there now; the next save carries its time.
        return Ok(resp);
    }
    let meta = match meta_of(&form) {
        Ok(meta) => meta,
        Err(message) => return typed_again(message),
    };
    let wanted = form.get("category").unwrap_or("").trim();
    let category = match catalog::normalize_category(wanted) {
        Ok(c) if c == image.category => None,
        Ok(c) => Some(c),
        Err(e) => return typed_again(format!("The category cannot be used: {e}.")),
    };
    let change = Change {
        meta: (meta != image.meta).then_some(meta),
        merge: false,
        category,
    };
    if change.meta.is_some() || change.category.is_some() {
        site.change(v, id, &change)?;
    }
    Ok(redirect(&format!("../{id}?saved=1")))
}

/// The variants a delete removes, in words.
fn variant_lines(variants: &[Cached]) -> Vec<String> {
    variants
        .iter()
        .map(|c| {
            format!(
                "{} × {} {}, {}",
                c.size.width,
                c.size.height,
                c.format.ext(),
                view::bytes(c.bytes)
            )
        })
        .collect()
}

/// `GET /admin/image/{id}/delete`: what a delete removes, and the button.
pub fn confirm<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    id: &OriginalId,
) -> Result<Response, Error> {
    let (image, _) = load(site, v, id, Privilege::Edit)?;
    let page = DeletePage {
        layout: Layout::new(&req.path, v),
        title: title_of(&image),
        id: image.id.as_str(),
        mime: &image.mime,
        width: image.width,
        height: image.height,
        bytes: view::bytes(image.bytes),
        category: &image.category,
        variants: variant_lines(&variant::cached_of(site.config(), &image.id)),
    };
    Ok(html(200, page.render()))
}

/// `POST /admin/image/{id}/delete`: deletes, then back to its category.
pub fn delete<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    id: &OriginalId,
) -> Result<Response, Error> {
    let (image, _) = load(site, v, id, Privilege::Edit)?;
    site.delete(v, id)?;
    let back = query(&[("category", &image.category), ("deleted", "1")]);
    Ok(redirect(&format!(
        "{}browse?{back}",
        super::layout::root(&req.path)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        crate::io::http::form::urlencoded(
            body.as_bytes(),
            &crate::io::http::form::Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn the_form_adds_changes_and_removes_keys() {
        let meta = meta_of(&form(
            "meta.title=New&meta.old=x&remove=old&meta.n=7&json=n&new_key=k&new_value=v",
        ))
        .unwrap();
        assert_eq!(
            Value::Object(meta),
            serde_json::json!({"title": "New", "n": 7, "k": "v"})
        );
        assert!(
            meta_of(&form("meta.n=%7B&json=n"))
                .unwrap_err()
                .contains("JSON")
        );
        assert!(meta_of(&form("meta.a=1&new_key=a&new_value=2")).is_err());
        assert!(meta_of(&form("new_value=2")).is_err());
    }
}
