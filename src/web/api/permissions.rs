//! `GET`, `POST` and `DELETE /api/permissions/{object}` (the object as the rest of the path,
//! e.g. `/api/permissions/category:/travel/norway`, or URL-encoded as one segment), and the
//! bridge from a route's [`Caller`] to the use case's [`Actor`] that every other route uses
//! to ask `usecases::permissions`.

use serde::Deserialize;

use super::route::{Caller, Matched};
use super::{App, RequestError};
use crate::domain::permission::{Grant, Grantee, Privilege};
use crate::domain::principal::Method;
use crate::io::catalog::{Catalog, Image};
use crate::io::http::{Request, Response};
use crate::usecases::error::Error;
use crate::usecases::permissions::{Actor, Permissions};
use crate::usecases::sign::SignError;

/// The body of `POST` and `DELETE`: `{"grantee": …, "privilege": …}` (`DELETE` needs no
/// privilege).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    grantee: String,
    privilege: Option<String>,
}

impl App {
    pub(super) fn permissions(&self) -> Permissions<'_> {
        Permissions::new(&self.config, &self.records)
    }

    /// Who the caller is for the permission rules: a signed request is its key's user (role
    /// and groups from the catalog, cached), capped by the key's rights; a session or
    /// `REMOTE_USER` is its user.
    pub(super) fn actor(&self, catalog: &Catalog, caller: &Caller) -> Result<Actor, Error> {
        match caller {
            Caller::Anonymous => Ok(Actor::Anonymous),
            Caller::Key(v) => {
                let principal = self
                    .permissions()
                    .principal_of(catalog, &v.user, Method::Key)?
                    // The user went between the key's check and this: as if the key had.
                    .ok_or_else(|| SignError::UnknownKey(v.key_id.clone()))?;
                Ok(Actor::Key {
                    principal,
                    rights: v.rights,
                })
            }
            // A session's principal is read at each request (role, groups, disabled: the
            // catalog's now); the web server's user likewise.
            Caller::Session(s) => Ok(Actor::User(s.principal.clone())),
            Caller::Remote(p) => Ok(Actor::User(p.clone())),
        }
    }

    /// Runs `f` with a pooled catalog connection and the caller as the permission rules see
    /// them (what most routes start with).
    pub(super) fn acting<T>(
        &self,
        caller: &Caller,
        f: impl FnOnce(&mut Catalog, Actor) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.with_catalog(|c| {
            let actor = self.actor(c, caller)?;
            f(c, actor)
        })
    }

    /// `Ok` when the caller may do what `privilege` allows to `image`.
    pub(super) fn require_image(
        &self,
        catalog: &Catalog,
        caller: &Caller,
        privilege: Privilege,
        image: &Image,
    ) -> Result<(), Error> {
        let actor = self.actor(catalog, caller)?;
        self.permissions()
            .require_image(catalog, &actor, privilege, image)
    }

    /// `GET /api/permissions/{object}`: the caller's privilege and why; for an administrator
    /// of the object, its own and inherited grants.
    pub(super) fn describe_permissions(&self, m: &Matched<'_>) -> Result<Response, Error> {
        let described = self.acting(&m.caller, |c, actor| {
            self.permissions().describe(c, &actor, &object(m))
        })?;
        Ok(super::images::json(200, &described))
    }

    /// `POST` (grant) and `DELETE` (revoke) `/api/permissions/{object}`.
    pub(super) fn change_permissions(
        &self,
        req: &Request,
        m: &Matched<'_>,
    ) -> Result<Response, Error> {
        let body = req
            .body
            .to_vec(MAX_BODY)
            .map_err(RequestError::BodyIo)?
            .ok_or_else(|| RequestError::BadBody(format!("over {MAX_BODY} bytes")))?;
        let body: Body = serde_json::from_slice(&body).map_err(|e| {
            RequestError::BadBody(format!(
                "expected {{\"grantee\": …, \"privilege\": …}}: {e}"
            ))
        })?;
        let grantee: Grantee = body.grantee.parse().map_err(RequestError::BadBody)?;
        let object = &object(m);
        let described = self.acting(&m.caller, |c, actor| {
            let perms = self.permissions();
            if req.method == "DELETE" {
                perms.revoke(c, &actor, object, &grantee)?;
            } else {
                let privilege = body
                    .privilege
                    .as_deref()
                    .ok_or_else(|| RequestError::BadBody("privilege is missing".into()))?
                    .parse()
                    .map_err(RequestError::BadBody)?;
                perms.grant(c, &actor, object, &Grant { grantee, privilege })?;
            }
            perms.describe(c, &actor, object)
        })?;
        log::info!(
            "permissions {} {} {} by {:?}",
            req.method,
            described.object,
            body.grantee,
            m.caller.user()
        );
        Ok(super::images::json(200, &described))
    }
}

/// The route's object: the rest of the (decoded) path, or one URL-encoded segment
/// (`category%3A%2Fa`) when a transport passed it undecoded — recognised by having no `:`,
/// which every object name has.
fn object<'m>(m: &'m Matched<'_>) -> std::borrow::Cow<'m, str> {
    let raw = m.params[0];
    if raw.contains(':') {
        return raw.into();
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .unwrap_or(raw.into())
}

/// The largest grant body read.
const MAX_BODY: u64 = 4096;
