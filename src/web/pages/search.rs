//! `/admin/search?q=&category=&after=`: full-text search over every image's metadata and
//! category, within a category and below, best matches first, the matched words marked, page
//! after page by cursor (`usecases::browse::search`).

use askama::Template;

use crate::io::http::{Request, Response};
use crate::usecases::browse::{self, Card, Found, Search};
use crate::usecases::error::Error;

use super::layout::{Layout, html};
use super::view::{self, query};
use super::{Site, Visitor};

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage<'a> {
    layout: Layout<'a>,
    q: String,
    category: String,
    categories: Vec<String>,
    after: Option<String>,
    results: Vec<Found<Card>>,
    first: String,
    next: Option<String>,
}

/// `search?q=…&category=…` (with `after` when given).
fn href(q: &str, category: &str, after: Option<&str>) -> String {
    let category = if category == "/" { "" } else { category };
    format!(
        "search?{}",
        query(&[
            ("q", q),
            ("category", category),
            ("after", after.unwrap_or(""))
        ])
    )
}

/// `GET /admin/search`: the form, and with `q` the matches.
pub fn show<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let params = view::params(&req.query)?;
    let q = params.get("q").unwrap_or("").trim().to_string();
    let raw = params.get("category").unwrap_or("").trim();
    let after = params
        .get("after")
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let per_page = site.config().dashboard.per_page;
    let (category, categories, page) = site.desk(v, |d| {
        let category = match raw {
            "" => "/".to_string(),
            c => crate::io::catalog::normalize_category(c)?,
        };
        let categories = browse::tree(d.config, d.records, d.catalog, &d.actor)?
            .into_iter()
            .map(|c| c.path)
            .collect();
        let page = if q.is_empty() {
            None
        } else {
            let search = Search {
                q: q.clone(),
                category: Some(category.clone()),
                after: after.clone(),
                per_page,
            };
            Some(browse::search(
                d.config, d.records, d.catalog, &d.actor, &search,
            )?)
        };
        Ok((category, categories, page))
    })?;
    let (mut results, next) = page.map_or((Vec::new(), None), |p| (p.items, p.next));
    let layout = Layout::new(&req.path, v);
    view::thumbnails(
        site.config(),
        &layout.root,
        results.iter_mut().map(|f| &mut f.image),
    );
    let page = SearchPage {
        layout,
        first: href(&q, &category, None),
        next: next.as_deref().map(|n| href(&q, &category, Some(n))),
        q,
        category,
        categories,
        after,
        results,
    };
    Ok(html(200, page.render()))
}
