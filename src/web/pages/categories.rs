//! `/admin/categories?category=PATH`: the category tree to manage — create a category below
//! one, rename or move one with everything in and below it, delete one that is empty — offering
//! only what the visitor may do (`usecases::categories::allowed`); each change checked, logged
//! and made by `usecases::categories`.

use askama::Template;

use crate::domain::permission::Privilege;
use crate::io::catalog;
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::browse;
use crate::usecases::categories::{self, Allowed};
use crate::usecases::error::Error;

use super::layout::{Layout, html, redirect};
use super::view::{self, TreeRow, query};
use super::{Site, Visitor};

#[derive(Template)]
#[template(path = "categories.html")]
struct CategoriesPage<'a> {
    layout: Layout<'a>,
    error: Option<String>,
    notice: Option<String>,
    category: String,
    images: u64,
    total: u64,
    tree: Vec<TreeRow>,
    tree_open: usize,
    allowed: Allowed,
    may_grant: bool,
    browse_href: String,
    grants_href: String,
}

fn href(category: &str) -> String {
    format!("categories?{}", query(&[("category", category)]))
}

/// `GET /admin/categories?category=`, or the page with a form's error.
pub fn show<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    error: Option<(u16, String)>,
) -> Result<Response, Error> {
    let params = view::params(&req.query)?;
    let raw = params.get("category").unwrap_or("/");
    let notice = match params.get("done") {
        Some("created") => Some("Created."),
        Some("moved") => Some("Renamed or moved, with everything in it."),
        Some("deleted") => Some("Deleted."),
        _ => None,
    };
    let page = site.desk(v, |d| {
        let category = catalog::normalize_category(raw)?;
        let tree = browse::tree(d.config, d.records, d.catalog, &d.actor)?;
        let (images, total) = tree
            .iter()
            .find(|c| c.path == category)
            .map_or((0, 0), |c| (c.images, c.total));
        let allowed = categories::allowed(d.config, d.records, d.catalog, &d.actor, &category)?;
        let may_grant = d.permissions().may(
            d.catalog,
            &d.actor,
            Privilege::Admin,
            &catalog::category_object(&category),
        )?;
        let (mut rows, tree_open) = view::tree(&tree, &category);
        for row in &mut rows {
            row.href = href(&row.path);
        }
        Ok(CategoriesPage {
            layout: Layout::new(&req.path, v),
            error: error.as_ref().map(|(_, m)| m.clone()),
            notice: notice.map(str::to_string),
            browse_href: format!("browse?{}", query(&[("category", &category)])),
            grants_href: format!("grants?{}", query(&[("category", &category)])),
            category,
            images,
            total,
            tree: rows,
            tree_open,
            allowed,
            may_grant,
        })
    })?;
    Ok(html(error.map_or(200, |(s, _)| s), page.render()))
}

/// `POST /admin/categories`: `category` and `action`: `create` (`name`, a new category
/// below it), `move` (`to`, its new path) or `delete`.
pub fn change<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let form = view::form(req)?;
    let category = form.get("category").unwrap_or("/").to_string();
    let result = site.desk(v, |d| {
        let (config, records) = (d.config, d.records);
        match form.get("action").unwrap_or("") {
            "create" => {
                let name = form.get("name").unwrap_or("").trim();
                if name.is_empty() || name.contains('/') {
                    return Err(RequestError::BadBody(
                        "name the new category (one name, without a slash)".into(),
                    )
                    .into());
                }
                let path = format!("{}/{name}", category.trim_end_matches('/'));
                let made = categories::create(config, records, d.catalog, &d.actor, &path)?;
                Ok((made, "created"))
            }
            "move" => {
                let to = form.get("to").unwrap_or("").trim();
                let moved =
                    categories::rename(config, records, d.catalog, &d.actor, &category, to)?;
                Ok((moved.to, "moved"))
            }
            "delete" => {
                let gone = categories::delete(config, records, d.catalog, &d.actor, &category)?;
                let parent = match gone.path.rsplit_once('/') {
                    Some(("", _)) | None => "/".to_string(),
                    Some((p, _)) => p.to_string(),
                };
                Ok((parent, "deleted"))
            }
            other => Err(RequestError::BadBody(format!("unknown action {other:?}")).into()),
        }
    });
    match result {
        Ok((path, done)) => Ok(redirect(&format!(
            "categories?{}",
            query(&[("category", &path), ("done", done)])
        ))),
        Err(e) => {
            let shown = view::shown(e)?;
            let req = view::again(req, query(&[("category", &category)]));
            show(site, &req, v, Some(shown))
        }
    }
}
