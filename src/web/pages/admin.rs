//! Administration (admins only): `/admin/users` (users and groups), `/admin/user?user=NAME`
//! (role, groups, password, disable, delete), `/admin/keys` (API keys: who may use the REST
//! interface; a new key's secret shown once, revocation). Every change is
//! `usecases::people`'s: checked, logged, and forgotten by the caches at once.

use askama::Template;

use crate::domain::principal::Role;
use crate::io::catalog::{ApiKey, Rights};
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::error::Error;
use crate::usecases::people;

use super::layout::{Layout, html, redirect};
use super::view::{self, query};
use super::{Site, Visitor};

/// A user as the list shows them.
struct UserRow {
    name: String,
    href: String,
    role: &'static str,
    state: &'static str,
    groups: String,
    keys: u32,
    created: String,
}

struct GroupRow {
    name: String,
    members: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    layout: Layout<'a>,
    section: &'static str,
    error: Option<String>,
    notice: Option<String>,
    users: Vec<UserRow>,
    groups: Vec<GroupRow>,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage<'a> {
    layout: Layout<'a>,
    section: &'static str,
    error: Option<String>,
    notice: Option<String>,
    name: String,
    role: &'static str,
    roles: Vec<&'static str>,
    state: &'static str,
    disabled: bool,
    keys: u32,
    created: String,
    groups: Vec<(String, bool)>,
}

struct KeyRow {
    id: String,
    user: String,
    rights: String,
    created: String,
    state: String,
    live: bool,
}

/// A key just made: its secret, shown on this one page.
struct Created {
    id: String,
    user: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage<'a> {
    layout: Layout<'a>,
    section: &'static str,
    error: Option<String>,
    notice: Option<String>,
    created: Option<Created>,
    keys: Vec<KeyRow>,
    users: Vec<String>,
    rights: Vec<&'static str>,
}

/// The notice a redirect asked for (`done=CODE&who=NAME`), in words; codes only, so that a
/// link cannot put words of its own on the page.
fn notice(req: &Request) -> Result<Option<String>, Error> {
    let params = view::params(&req.query)?;
    let who = params.get("who").unwrap_or("");
    Ok(match params.get("done") {
        Some("user-added") => Some(format!("Added the user {who}.")),
        Some("user-deleted") => Some(format!("Deleted the user {who}.")),
        Some("role") => Some(format!("Changed the role of {who}.")),
        Some("groups") => Some(format!("Saved the groups of {who}.")),
        Some("password") => Some(format!("Set the password of {who}.")),
        Some("disabled") => Some(format!("Disabled {who}.")),
        Some("enabled") => Some(format!("Enabled {who}.")),
        Some("group-added") => Some(format!("Added the group {who}.")),
        Some("group-deleted") => Some(format!("Deleted the group {who}.")),
        Some("revoked") => Some(format!("Revoked the key {who}.")),
        _ => None,
    })
}

fn done(page: &str, code: &str, who: &str) -> Response {
    redirect(&format!(
        "{page}?{}",
        query(&[("done", code), ("who", who)])
    ))
}

/// `GET /admin/users`, or the same page with a form's error.
pub fn users<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    error: Option<(u16, String)>,
) -> Result<Response, Error> {
    let people::Overview { users, groups, .. } =
        site.desk(v, |d| people::overview(d.catalog, &d.actor))?;
    let page = UsersPage {
        layout: Layout::new(&req.path, v),
        section: "users",
        notice: notice(req)?,
        error: error.as_ref().map(|(_, m)| m.clone()),
        users: users
            .into_iter()
            .map(|u| UserRow {
                href: query(&[("user", &u.name)]),
                role: u.role.as_str(),
                state: match (u.disabled, u.has_password) {
                    (true, _) => "disabled",
                    (false, true) => "enabled",
                    (false, false) => "enabled, no password",
                },
                groups: u.groups.join(", "),
                keys: u.keys,
                created: view::date(u.created),
                name: u.name,
            })
            .collect(),
        groups: groups
            .into_iter()
            .map(|g| GroupRow {
                members: g.members.join(", "),
                name: g.name,
            })
            .collect(),
    };
    Ok(html(error.map_or(200, |(s, _)| s), page.render()))
}

/// `POST /admin/users`: `user`, `role`, `password` (optional).
pub fn add_user<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let form = view::form(req)?;
    let name = form.get("user").unwrap_or("").trim().to_string();
    let role: Role = form
        .get("role")
        .unwrap_or("editor")
        .parse()
        .map_err(|e: String| RequestError::BadBody(e))?;
    let password = form.get("password").filter(|p| !p.is_empty());
    match site.desk(v, |d| {
        people::add_user(d.catalog, &d.actor, &name, role, password)
    }) {
        Ok(_) => Ok(done("users", "user-added", &name)),
        Err(e) => users(site, req, v, Some(view::shown(e)?)),
    }
}

/// `POST /admin/groups`: `action` `add` or `delete`, `group`.
pub fn groups<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let form = view::form(req)?;
    let name = form.get("group").unwrap_or("").trim().to_string();
    let result = match form.get("action") {
        Some("add") => site
            .desk(v, |d| people::add_group(d.catalog, &d.actor, &name))
            .map(|_| "group-added"),
        Some("delete") => site
            .desk(v, |d| {
                people::del_group(d.records, d.catalog, &d.actor, &name)
            })
            .map(|_| "group-deleted"),
        _ => return Err(RequestError::BadBody("action: add or delete".into()).into()),
    };
    match result {
        Ok(code) => Ok(done("users", code, &name)),
        Err(e) => users(site, req, v, Some(view::shown(e)?)),
    }
}

/// `GET /admin/user?user=NAME`, or the same page with a form's error.
pub fn user<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    name: &str,
    error: Option<(u16, String)>,
) -> Result<Response, Error> {
    let people::Overview { users, groups, .. } =
        site.desk(v, |d| people::overview(d.catalog, &d.actor))?;
    let Some(u) = users.into_iter().find(|u| u.name == name) else {
        return Err(crate::io::catalog::CatalogError::UserNotFound(name.to_string()).into());
    };
    let page = UserPage {
        layout: Layout::new(&req.path, v),
        section: "users",
        notice: notice(req)?,
        error: error.as_ref().map(|(_, m)| m.clone()),
        role: u.role.as_str(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        state: if u.disabled { "disabled" } else { "enabled" },
        disabled: u.disabled,
        keys: u.keys,
        created: view::date(u.created),
        groups: groups
            .into_iter()
            .map(|g| {
                let member = u.groups.contains(&g.name);
                (g.name, member)
            })
            .collect(),
        name: u.name,
    };
    Ok(html(error.map_or(200, |(s, _)| s), page.render()))
}

/// `GET /admin/user?user=NAME`.
pub fn show_user<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let params = view::params(&req.query)?;
    let name = params.get("user").unwrap_or("").to_string();
    user(site, req, v, &name, None)
}

/// `POST /admin/user`: `user` and `action`: `role` (`role`), `groups` (`group` for each),
/// `password` (`password`), `disable`, `enable`, `delete`.
pub fn change_user<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let form = view::form(req)?;
    let name = form.get("user").unwrap_or("").to_string();
    let page = format!("user?{}", query(&[("user", &name)]));
    let result = site.desk(v, |d| {
        let (records, actor) = (d.records, &d.actor);
        match form.get("action").unwrap_or("") {
            "role" => {
                let role: Role = form
                    .get("role")
                    .unwrap_or("")
                    .parse()
                    .map_err(|e: String| RequestError::BadBody(e))?;
                people::set_role(records, d.catalog, actor, &name, role)?;
                Ok("role")
            }
            "groups" => {
                let groups = people::overview(d.catalog, actor)?.groups;
                let wanted: Vec<&str> = form.all("group").collect();
                for g in groups {
                    let member = g.members.contains(&name);
                    let want = wanted.contains(&g.name.as_str());
                    if member != want {
                        people::set_member(records, d.catalog, actor, &g.name, &name, want)?;
                    }
                }
                Ok("groups")
            }
            "password" => {
                let password = form.get("password").unwrap_or("");
                people::set_password(d.catalog, actor, &name, password)?;
                Ok("password")
            }
            "disable" | "enable" => {
                let disable = form.get("action") == Some("disable");
                people::set_disabled(records, d.catalog, actor, &name, disable)?;
                Ok(if disable { "disabled" } else { "enabled" })
            }
            "delete" => {
                people::del_user(records, d.catalog, actor, &name)?;
                Ok("user-deleted")
            }
            other => Err(RequestError::BadBody(format!("unknown action {other:?}")).into()),
        }
    });
    match result {
        Ok("user-deleted") => Ok(done("users", "user-deleted", &name)),
        Ok(code) => Ok(redirect(&format!(
            "{page}&{}",
            query(&[("done", code), ("who", &name)])
        ))),
        Err(e) => user(site, req, v, &name, Some(view::shown(e)?)),
    }
}

/// The rights a key may carry, as the form offers them.
const RIGHTS: [&str; 4] = ["read", "write", "delete", "admin"];

fn keys_page<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    created: Option<ApiKey>,
    error: Option<(u16, String)>,
) -> Result<Response, Error> {
    let people::Overview { users, keys, .. } =
        site.desk(v, |d| people::overview(d.catalog, &d.actor))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let page = KeysPage {
        layout: Layout::new(&req.path, v),
        section: "keys",
        notice: notice(req)?,
        error: error.as_ref().map(|(_, m)| m.clone()),
        created: created.map(|k| Created {
            secret: k.secret.expose().to_string(),
            id: k.id,
            user: k.user,
        }),
        keys: keys
            .into_iter()
            .map(|k| {
                let state = match (k.revoked, k.expires) {
                    (Some(t), _) => format!("revoked {}", view::date(t)),
                    (None, Some(t)) if t <= now => format!("expired {}", view::date(t)),
                    (None, Some(t)) => format!("expires {}", view::date(t)),
                    (None, None) if k.user_disabled => "its user is disabled".into(),
                    (None, None) => "valid".into(),
                };
                KeyRow {
                    live: k.revoked.is_none(),
                    rights: k.rights.to_string(),
                    created: view::date(k.created),
                    state,
                    id: k.id,
                    user: k.user,
                }
            })
            .collect(),
        users: users.into_iter().map(|u| u.name).collect(),
        rights: RIGHTS.to_vec(),
    };
    Ok(html(error.map_or(200, |(s, _)| s), page.render()))
}

/// `GET /admin/keys`.
pub fn keys<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    keys_page(site, req, v, None, None)
}

/// The most days a key may be made to last from the form.
const MAX_DAYS: i64 = 36_500;

/// `POST /admin/keys`: `action=add` with `user`, `rights` (each), `expires_days` — the page
/// answers with the secret (shown once, never stored in a URL) — or `action=revoke` with `key`.
pub fn change_keys<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let form = view::form(req)?;
    match form.get("action") {
        Some("revoke") => {
            let id = form.get("key").unwrap_or("").to_string();
            match site.desk(v, |d| {
                people::revoke_key(d.records, d.catalog, &d.actor, &id)
            }) {
                Ok(_) => Ok(done("keys", "revoked", &id)),
                Err(e) => keys_page(site, req, v, None, Some(view::shown(e)?)),
            }
        }
        Some("add") => {
            let user = form.get("user").unwrap_or("").to_string();
            let rights: Vec<&str> = form.all("rights").collect();
            let parsed = if rights.is_empty() {
                Err("choose at least one right".to_string())
            } else {
                rights
                    .join(",")
                    .parse::<Rights>()
                    .map_err(|e| e.to_string())
            };
            let days = match form.get("expires_days").map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) => match t.parse::<i64>() {
                    Ok(n) if (1..=MAX_DAYS).contains(&n) => Ok(Some(n)),
                    _ => Err(format!("expires: a number of days from 1 to {MAX_DAYS}")),
                },
            };
            let (rights, days) = match (parsed, days) {
                (Ok(r), Ok(d)) => (r, d),
                (Err(e), _) | (_, Err(e)) => {
                    return keys_page(site, req, v, None, Some((400, e)));
                }
            };
            let expires = days.map(|n| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                now + n * 86_400_000
            });
            match site.desk(v, |d| {
                people::add_key(d.catalog, &d.actor, &user, rights, expires)
            }) {
                Ok(key) => keys_page(site, req, v, Some(key), None),
                Err(e) => keys_page(site, req, v, None, Some(view::shown(e)?)),
            }
        }
        _ => Err(RequestError::BadBody("action: add or revoke".into()).into()),
    }
}
