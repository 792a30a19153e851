//! `/admin/grants?category=PATH` (administrators of the category): what is granted on it and
//! inherited from above, grant and revoke, stop or resume inheriting, and what a chosen user
//! may do there and why (their effective permission and where it comes from).

use askama::Template;

use crate::domain::permission::{Grant, Grantee, Privilege};
use crate::domain::principal::Method;
use crate::io::catalog;
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::browse;
use crate::usecases::error::Error;
use crate::usecases::people;
use crate::usecases::permissions::{Actor, Shown};

use super::layout::{Layout, html, redirect};
use super::view::{self, TreeRow, query};
use super::{Site, Visitor};

#[derive(Template)]
#[template(path = "grants.html")]
struct GrantsPage<'a> {
    layout: Layout<'a>,
    section: &'static str,
    error: Option<String>,
    notice: Option<String>,
    category: String,
    tree: Vec<TreeRow>,
    tree_open: usize,
    own: Vec<Shown>,
    inherited: Vec<Shown>,
    inherit: bool,
    users: Vec<String>,
    groups: Vec<String>,
    explained_user: String,
    explained: Option<String>,
}

/// `GET /admin/grants?category=&user=`, or the page with a form's error.
pub fn show<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    error: Option<(u16, String)>,
) -> Result<Response, Error> {
    let params = view::params(&req.query)?;
    let raw = params.get("category").unwrap_or("/");
    let explained_user = params.get("user").unwrap_or("").to_string();
    let page = site.desk(v, |d| {
        let category = catalog::normalize_category(raw)?;
        let object = catalog::category_object(&category);
        let perms = d.permissions();
        perms.require(d.catalog, &d.actor, Privilege::Admin, &object)?;
        let described = perms.describe(d.catalog, &d.actor, &object)?;
        let categories = browse::tree(d.config, d.records, d.catalog, &d.actor)?;
        // Names to offer: everyone for an administrator, else nobody's list is shown.
        let (users, groups) = match people::overview(d.catalog, &d.actor) {
            Ok(o) => (
                o.users.into_iter().map(|u| u.name).collect(),
                o.groups.into_iter().map(|g| g.name).collect(),
            ),
            Err(_) => (Vec::new(), Vec::new()),
        };
        let explained = if explained_user.is_empty() {
            None
        } else {
            let who = perms.principal_of(d.catalog, &explained_user, Method::Local)?;
            Some(match who {
                None => format!("There is no user {explained_user}."),
                Some(p) => match perms.explain(d.catalog, &Actor::User(p), &object)? {
                    Some((privilege, reason)) => {
                        format!("{explained_user} may {privilege} {category}: {reason}.")
                    }
                    None => format!("{explained_user} may do nothing in {category}."),
                },
            })
        };
        let (tree, tree_open) = view::tree(&categories, &category);
        let tree = tree
            .into_iter()
            .map(|mut row| {
                row.href = format!("grants?{}", query(&[("category", &row.path)]));
                row
            })
            .collect();
        Ok(GrantsPage {
            layout: Layout::new(&req.path, v),
            section: "grants",
            error: error.as_ref().map(|(_, m)| m.clone()),
            notice: None,
            own: described.grants.unwrap_or_default(),
            inherited: described.inherited.unwrap_or_default(),
            inherit: described.inherit,
            category,
            tree,
            tree_open,
            users,
            groups,
            explained_user: explained_user.clone(),
            explained,
        })
    })?;
    Ok(html(error.map_or(200, |(s, _)| s), page.render()))
}

/// `POST /admin/grants`: `category` and `action`: `grant` (`grantee`, `privilege`), `revoke`
/// (`grantee`) or `inherit` (`inherit` `on`/`off`); logged, back to the page.
pub fn change<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let form = view::form(req)?;
    let raw = form.get("category").unwrap_or("/").to_string();
    let bad = |e: String| Error::from(RequestError::BadBody(e));
    let result = site.desk(v, |d| {
        let category = catalog::normalize_category(&raw)?;
        let object = catalog::category_object(&category);
        let perms = crate::usecases::permissions::Permissions::new(d.config, d.records);
        let who = d
            .actor
            .principal()
            .map_or_else(|| "the operator".to_string(), |p| p.user.clone());
        let grantee = || -> Result<Grantee, Error> {
            form.get("grantee")
                .unwrap_or("")
                .trim()
                .parse()
                .map_err(bad)
        };
        match form.get("action").unwrap_or("") {
            "grant" => {
                let grant = Grant {
                    grantee: grantee()?,
                    privilege: form.get("privilege").unwrap_or("").parse().map_err(bad)?,
                };
                perms.grant(d.catalog, &d.actor, &object, &grant)?;
                log::info!(
                    "{who} granted {} {} on {object}",
                    grant.grantee,
                    grant.privilege
                );
            }
            "revoke" => {
                let grantee = grantee()?;
                perms.revoke(d.catalog, &d.actor, &object, &grantee)?;
                log::info!("{who} revoked the grant of {grantee} on {object}");
            }
            "inherit" => {
                let inherit = form.get("inherit") == Some("on");
                perms.set_inherit(d.catalog, &d.actor, &object, inherit)?;
                log::info!("{who} set inherit = {inherit} on {object}");
            }
            other => return Err(bad(format!("unknown action {other:?}"))),
        }
        Ok(category)
    });
    match result {
        Ok(category) => Ok(redirect(&format!(
            "grants?{}",
            query(&[("category", &category)])
        ))),
        Err(e) => {
            let shown = view::shown(e)?;
            let req = view::again(req, query(&[("category", &raw)]));
            show(site, &req, v, Some(shown))
        }
    }
}
