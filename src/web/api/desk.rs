//! What the dashboard's pages (`web::pages`) ask of the application: sessions and logins, a
//! catalog connection with the visitor as an [`Actor`], and the same checked changes the REST
//! routes make (upload, change, delete), so a page and a REST call cannot disagree.

use crate::domain::original::OriginalId;
use crate::domain::permission::Privilege;
use crate::domain::principal::Principal;
use crate::io::catalog::{CatalogError, Image, Inserted};
use crate::io::config::Config;
use crate::io::http::cookie::SetCookie;
use crate::io::http::{Request, Response};
use crate::usecases::error::Error;
use crate::usecases::ingest::Upload;
use crate::usecases::records::Change;
use crate::usecases::session::Session;
use crate::usecases::variant;
use crate::web::pages::{Desk, Site, Visitor};

use super::App;
use super::route::{self, Caller};

/// The route's caller a page's visitor is.
fn caller(visitor: &Visitor) -> Caller {
    match visitor {
        Visitor::Nobody => Caller::Anonymous,
        Visitor::Session(s) => Caller::Session(s.clone()),
        Visitor::Remote(p) => Caller::Remote(p.clone()),
    }
}

impl Site for App {
    fn config(&self) -> &Config {
        &self.config
    }

    fn session(&self, req: &Request) -> Result<Option<Session>, Error> {
        route::Gate::session(self, req)
    }

    fn remote_user(&self, req: &Request) -> Result<Option<Principal>, Error> {
        route::Gate::remote_user(self, req)
    }

    fn log_in(
        &self,
        req: &Request,
        user: &str,
        password: &str,
    ) -> Result<(Session, SetCookie), Error> {
        self.open_session(req, user, password)
    }

    fn log_out(&self, session: &Session) -> Result<SetCookie, Error> {
        self.end_session(session)
    }

    fn desk<T>(
        &self,
        visitor: &Visitor,
        f: impl FnOnce(&mut Desk<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.acting(&caller(visitor), |catalog, actor| {
            f(&mut Desk {
                config: &self.config,
                records: &self.records,
                catalog,
                actor,
            })
        })
    }

    fn upload(&self, visitor: &Visitor, bytes: &[u8], upload: &Upload) -> Result<Inserted, Error> {
        self.add_image(&caller(visitor), bytes, upload)
    }

    fn change(&self, visitor: &Visitor, id: &OriginalId, change: &Change) -> Result<Image, Error> {
        self.change_image(&caller(visitor), id, change)
    }

    fn delete(&self, visitor: &Visitor, id: &OriginalId) -> Result<(), Error> {
        self.delete_image(&caller(visitor), id)
    }

    fn thumbnail(&self, visitor: &Visitor, id: &OriginalId) -> Result<Response, Error> {
        let caller = caller(visitor);
        let image = self.with_catalog(|c| {
            let image =
                (self.records.image(c, id)?).ok_or_else(|| CatalogError::NotFound(id.clone()))?;
            self.require_image(c, &caller, Privilege::View, &image)?;
            Ok(image)
        })?;
        let store = self.store()?;
        let bbox = self.config.dashboard.thumbnail;
        let v = self.with_cache(|cache| {
            let plan = variant::plan_stored(&self.config, cache, store, &image, bbox)?;
            if self.config.cache.variants_on_disk {
                variant::realize(&self.config, cache, plan)
            } else {
                variant::render_only(&self.config, plan)
            }
        })?;
        // Whoever may view it now: never kept by a shared cache, and asked again within a day.
        let mut resp = self.direct(v)?;
        resp.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("cache-control"));
        Ok(resp.with_header("Cache-Control", "private, max-age=86400"))
    }
}
