//! `/admin/`: who is logged in, with which roles, and the dashboard's sections.

use askama::Template;

use crate::domain::principal::Role;
use crate::io::http::{Request, Response};
use crate::usecases::error::Error;

use super::layout::{Layout, html};
use super::{Site, Visitor};

/// A section of the dashboard: a link once it is built, plain text until then.
pub struct Section {
    pub name: &'static str,
    pub href: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    layout: Layout<'a>,
    user: &'a str,
    method: &'static str,
    roles: Vec<&'static str>,
    groups: &'a [String],
    sections: Vec<Section>,
}

/// The sections `v` may see (Administration for admins only).
fn sections(v: &Visitor) -> Vec<Section> {
    let admin = v.principal().is_some_and(|p| p.has_role(Role::Admin));
    let mut out: Vec<Section> = [
        ("Browse", "browse"),
        ("Upload", "upload"),
        ("Search", "search"),
    ]
    .into_iter()
    .map(|(name, href)| Section {
        name,
        href: Some(href),
    })
    .collect();
    if admin {
        out.push(Section {
            name: "Administration",
            href: Some("users"),
        });
    }
    out
}

/// `GET /admin/`.
pub fn show<S: Site>(_site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let Some(p) = v.principal() else {
        return Err(crate::usecases::error::SessionError::NoSession.into());
    };
    let page = HomePage {
        layout: Layout::new(&req.path, v),
        user: &p.user,
        method: p.method.as_str(),
        roles: p.roles.iter().map(|r| r.as_str()).collect(),
        groups: &p.groups,
        sections: sections(v),
    };
    Ok(html(200, page.render()))
}
