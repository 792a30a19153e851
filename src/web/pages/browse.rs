//! `/admin/browse`: the category tree with counts beside a page of a category's images (and,
//! by default, those below it), newest first or by name, page after page by cursor; and
//! `POST /admin/move`, which moves the selected images to another category.

use askama::Template;

use crate::domain::cursor::Order;
use crate::domain::original::OriginalId;
use crate::domain::permission::Privilege;
use crate::io::catalog::{self, CatalogError};
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::browse::{self, Card, Listing};
use crate::usecases::error::Error;
use crate::usecases::records::Change;

use super::layout::{Layout, html, redirect};
use super::view::{self, TreeRow, query};
use super::{Site, Visitor};

/// The links of the Browse page, relative to it.
struct Links {
    newest: String,
    name: String,
    toggle: String,
    first: String,
    next: Option<String>,
    /// The category's page in the Categories section.
    manage: String,
}

#[derive(Template)]
#[template(path = "browse.html")]
struct BrowsePage<'a> {
    layout: Layout<'a>,
    heading: String,
    notice: Option<String>,
    category: String,
    order: &'static str,
    below: bool,
    after: Option<String>,
    tree: Vec<TreeRow>,
    tree_open: usize,
    cards: Vec<Card>,
    /// Whether cards have a checkbox for the move form (the visitor may edit here).
    selectable: bool,
    links: Links,
}

/// `browse?category=…&order=…&below=…` (with `after` when given).
fn href(category: &str, order: &str, below: bool, after: Option<&str>) -> String {
    let below = if below { "" } else { "0" };
    format!(
        "browse?{}",
        query(&[
            ("category", category),
            ("order", if order == "newest" { "" } else { order }),
            ("below", below),
            ("after", after.unwrap_or("")),
        ])
    )
}

/// `GET /admin/browse?category=&order=newest|name&below=0&after=`.
pub fn show<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let params = view::params(&req.query)?;
    let raw = params.get("category").unwrap_or("/");
    let order = Order::parse(params.get("order").unwrap_or("newest"))?;
    let below = params.get("below") != Some("0");
    let after = params
        .get("after")
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let per_page = site.config().dashboard.per_page;
    let (category, categories, page, selectable) = site.desk(v, |d| {
        let category = catalog::normalize_category(raw)?;
        let categories = browse::tree(d.config, d.records, d.catalog, &d.actor)?;
        let listing = Listing {
            category: category.clone(),
            below,
            order,
            after: after.clone(),
            per_page,
        };
        let page = browse::browse(d.config, d.records, d.catalog, &d.actor, &listing)?;
        let object = catalog::category_object(&category);
        let edit = d
            .permissions()
            .may(d.catalog, &d.actor, Privilege::Edit, &object)?;
        Ok((category, categories, page, edit))
    })?;
    let (tree, tree_open) = view::tree(&categories, &category);
    let notice = params
        .get("moved")
        .and_then(|n| n.parse::<u32>().ok())
        .map(|n| {
            let s = if n == 1 { "" } else { "s" };
            format!("Moved {n} image{s} to {category}.")
        })
        // Where a delete lands (`image::delete`): say it happened.
        .or_else(|| {
            params
                .get("deleted")
                .map(|_| "Deleted the image.".to_string())
        });
    let o = order.as_str();
    let links = Links {
        newest: href(&category, "newest", below, None),
        name: href(&category, "name", below, None),
        toggle: href(&category, o, !below, None),
        first: href(&category, o, below, None),
        next: page
            .next
            .as_deref()
            .map(|n| href(&category, o, below, Some(n))),
        manage: format!("categories?{}", query(&[("category", &category)])),
    };
    let heading = match category.as_str() {
        "/" => "Browse".to_string(),
        c => format!("Browse {c}"),
    };
    let layout = Layout::new(&req.path, v);
    let mut cards = page.items;
    view::thumbnails(site.config(), &layout.root, cards.iter_mut());
    let view = BrowsePage {
        layout,
        heading,
        notice,
        category,
        order: o,
        below,
        after,
        tree,
        tree_open,
        cards,
        selectable,
        links,
    };
    Ok(html(200, view.render()))
}

/// The most images one move form may carry (a form has at most 256 fields).
const MAX_MOVE: usize = 200;

/// `POST /admin/move` (`id` once per image, `category`): every image is checked first (edit
/// on it and on the target), then all are moved; back to the target category.
pub fn submit<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let form = view::form(req)?;
    let target = form.get("category").unwrap_or("").trim();
    if target.is_empty() {
        return Err(
            RequestError::BadBody("say which category to move the images to".into()).into(),
        );
    }
    let ids = form
        .all("id")
        .map(|id| {
            id.parse::<OriginalId>()
                .map_err(|_| RequestError::BadBody(format!("not an image id: {id:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(RequestError::BadBody("select the images to move".into()).into());
    }
    if ids.len() > MAX_MOVE {
        return Err(RequestError::BadBody(format!("at most {MAX_MOVE} images at once")).into());
    }
    let target = site.desk(v, |d| {
        let target = catalog::normalize_category(target)?;
        let perms = d.permissions();
        perms.require(
            d.catalog,
            &d.actor,
            Privilege::Edit,
            &catalog::category_object(&target),
        )?;
        for id in &ids {
            let image = d
                .records
                .image(d.catalog, id)?
                .ok_or_else(|| CatalogError::NotFound(id.clone()))?;
            perms.require_image(d.catalog, &d.actor, Privilege::Edit, &image)?;
        }
        Ok(target)
    })?;
    let change = Change {
        category: Some(target.clone()),
        ..Change::default()
    };
    for id in &ids {
        site.change(v, id, &change)?;
    }
    let moved = ids.len().to_string();
    Ok(redirect(&format!(
        "browse?{}",
        query(&[("category", &target), ("moved", &moved)])
    )))
}
