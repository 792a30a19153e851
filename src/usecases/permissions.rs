//! Permissions stored and enforced: the one place every route and tool asks "may this caller
//! do that to this object" ([`Permissions::may`], [`Permissions::require`]) and "why"
//! ([`Permissions::explain`]), and the only writer of grants and `inherit` flags.
//!
//! The rules are `domain::permission`'s; this adds what only a running server knows:
//! - the chain of an object comes from the catalog (one query), with `[api] public_reads` as an
//!   implicit `public view` at the root;
//! - a signed request acts with at most its key's rights: `read` is `view`, `write` and
//!   `delete` are `edit`, `admin` is `admin` (the route still checks the key's own right bit);
//! - an image's permissions are its category's, and its owner (creator) additionally holds
//!   `[permissions] privilege_for_creator` on it;
//! - effective privileges and a key user's principal are cached through `records` (keys
//!   carrying the permissions generation, which every write here, and every group or role
//!   change, replaces).
//!
//! It knows no HTTP: routes turn a refusal into `401`/`403` through the error table.

use serde::{Deserialize, Serialize};

use crate::domain::permission::{self, Grant, Grantee, Node, Privilege, Reason};
use crate::domain::principal::{Method, Principal, Role};
use crate::io::catalog::{self, Catalog, CatalogError, Category, Image, Rights};
use crate::io::config::Config;
use crate::io::object_cache::Namespace;
use crate::usecases::error::{Error, PermissionError};
use crate::usecases::records::Records;

/// Effective privileges by generation, object and principal.
pub const EFFECTIVE: Namespace = Namespace("perm");
/// Key users' principals (role and groups) by generation and name.
pub const PRINCIPALS: Namespace = Namespace("principal");

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Nobody logged in (only `public` grants reach them).
    Anonymous,
    /// A logged-in user.
    User(Principal),
    /// A signed request: its user, capped by the key's rights.
    Key {
        principal: Principal,
        rights: Rights,
    },
    /// `imgserv-admin`, run by whoever holds the catalog file: may do everything.
    Operator,
}

impl Actor {
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Actor::User(p) | Actor::Key { principal: p, .. } => Some(p),
            Actor::Anonymous | Actor::Operator => None,
        }
    }

    /// The name written as a grant's `granted_by`.
    fn name(&self) -> Option<&str> {
        self.principal().map(|p| p.user.as_str())
    }

    /// How the actor is named in a refusal or a log line.
    pub fn describe(&self) -> String {
        match self {
            Actor::Anonymous => "public".into(),
            Actor::User(p) => format!("user:{}", p.user),
            Actor::Key { principal, .. } => format!("user:{} (with this key)", principal.user),
            Actor::Operator => "the operator".into(),
        }
    }
}

/// The most a key's rights allow: `read` → view, `write`/`delete` → edit, `admin` → admin.
pub fn key_privilege(rights: Rights) -> Option<Privilege> {
    [
        (Rights::ADMIN, Privilege::Admin),
        (Rights::WRITE, Privilege::Edit),
        (Rights::DELETE, Privilege::Edit),
        (Rights::READ, Privilege::View),
    ]
    .into_iter()
    .find(|(r, _)| rights.contains(*r))
    .map(|(_, p)| p)
}

/// What `GET /api/permissions/{object}` and `imgserv-admin explain` show.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub object: String,
    pub inherit: bool,
    /// The caller's effective privilege (`None`: none) and why.
    pub privilege: Option<Privilege>,
    pub reason: Option<String>,
    /// The object's own grants, then those inherited (with the object each comes from), when
    /// the caller administers the object; else `None`.
    pub grants: Option<Vec<Shown>>,
    pub inherited: Option<Vec<Shown>>,
}

/// One grant as shown.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub object: String,
    pub grantee: String,
    pub privilege: Privilege,
    /// Not stored: `[api] public_reads`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

/// The permission checks, with the configuration and the cache they need.
pub struct Permissions<'a> {
    creator: Option<Privilege>,
    root_grants: &'a [Grant],
    public_reads: bool,
    records: &'a Records,
}

impl<'a> Permissions<'a> {
    pub fn new(config: &'a Config, records: &'a Records) -> Permissions<'a> {
        Permissions {
            creator: config.permissions.privilege_for_creator,
            root_grants: &config.permissions.root_grants,
            public_reads: config.api.public_reads,
            records,
        }
    }

    /// These checks with `public view` at the root whatever `[api] public_reads` says: for
    /// variants, public unless a rule hides them (the 404 handler's files are served to
    /// anyone by the web server).
    pub fn for_variants(self) -> Permissions<'a> {
        Permissions {
            public_reads: true,
            ..self
        }
    }

    /// Writes `[permissions] root_grants` on the root when it was never set up; call it once
    /// per catalog connection.
    pub fn seed_root(&self, catalog: &mut Catalog) -> Result<(), CatalogError> {
        if catalog.seed_root(self.root_grants)? {
            self.records.bump_generation();
        }
        Ok(())
    }

    /// An object's chain from the catalog, with `[api] public_reads` as a grant at the root.
    pub fn chain(&self, catalog: &Catalog, object: &str) -> Result<Vec<Node>, CatalogError> {
        let mut chain = catalog.chain(object)?;
        self.add_implicit(&mut chain);
        Ok(chain)
    }

    fn add_implicit(&self, chain: &mut [Node]) {
        if let (true, Some(root)) = (self.public_reads, chain.last_mut())
            && !root.grants.iter().any(|g| g.grantee == Grantee::Public)
        {
            root.grants.push(Grant {
                grantee: Grantee::Public,
                privilege: Privilege::View,
            });
        }
    }

    /// The actor's effective privilege on a normalised object, and why.
    pub fn explain(
        &self,
        catalog: &Catalog,
        actor: &Actor,
        object: &str,
    ) -> Result<Option<(Privilege, Reason)>, CatalogError> {
        if bench::skip_checks() {
            return Ok(Some((Privilege::Admin, Reason::AdminRole)));
        }
        let who = match actor {
            Actor::Operator => return Ok(Some((Privilege::Admin, Reason::AdminRole))),
            _ => actor.principal(),
        };
        let id = format!(
            "{}:{}:{}:{object}",
            self.records.generation(),
            u8::from(self.public_reads),
            principal_key(who)
        );
        let held = self
            .records
            .cached::<_, Cached, _>(EFFECTIVE, &id, || {
                let chain = self.chain(catalog, object)?;
                Ok::<_, CatalogError>(Some(Cached::from(permission::effective(who, &chain))))
            })?
            .and_then(|c| c.0);
        Ok(cap(actor, held))
    }

    /// Whether the actor may do what `privilege` allows on a normalised object.
    pub fn may(
        &self,
        catalog: &Catalog,
        actor: &Actor,
        privilege: Privilege,
        object: &str,
    ) -> Result<bool, CatalogError> {
        Ok(self
            .explain(catalog, actor, object)?
            .is_some_and(|(held, _)| held >= privilege))
    }

    /// `Ok` when the actor may; else `login-required` (nobody logged in) or
    /// `permission-denied`.
    pub fn require(
        &self,
        catalog: &Catalog,
        actor: &Actor,
        privilege: Privilege,
        object: &str,
    ) -> Result<(), Error> {
        if self.may(catalog, actor, privilege, object)? {
            return Ok(());
        }
        Err(refusal(actor, privilege, object).into())
    }

    /// The actor's effective privilege on an image: its category's, or, for its owner,
    /// `[permissions] privilege_for_creator` when that is more (a key still caps it).
    pub fn explain_image(
        &self,
        catalog: &Catalog,
        actor: &Actor,
        image: &Image,
    ) -> Result<Option<(Privilege, Reason)>, CatalogError> {
        let held = self.explain(catalog, actor, &catalog::category_object(&image.category))?;
        let owner = actor
            .principal()
            .is_some_and(|p| image.owner.as_deref() == Some(p.user.as_str()));
        let created = match (owner, self.creator) {
            (true, Some(c)) if held.as_ref().is_none_or(|(h, _)| c > *h) => Some((
                c,
                Reason::Creator {
                    object: format!("image:{}", image.id),
                },
            )),
            _ => None,
        };
        Ok(match created {
            Some(c) => cap(actor, Some(c)).or(held),
            None => held,
        })
    }

    /// [`Permissions::require`] for an image.
    pub fn require_image(
        &self,
        catalog: &Catalog,
        actor: &Actor,
        privilege: Privilege,
        image: &Image,
    ) -> Result<(), Error> {
        let held = self.explain_image(catalog, actor, image)?;
        if held.is_some_and(|(h, _)| h >= privilege) {
            return Ok(());
        }
        Err(refusal(actor, privilege, &format!("image:{}", image.id)).into())
    }

    /// The categories holding images the actor may not view (for a search to leave out).
    pub fn hidden_categories(
        &self,
        catalog: &Catalog,
        actor: &Actor,
    ) -> Result<Vec<String>, CatalogError> {
        // Grants only add: with view at the root and no `inherit = false` anywhere, nothing is
        // hidden, and the category tree need not be read.
        let cut = catalog.all_nodes()?.values().any(|n| !n.inherit);
        if !cut && self.may(catalog, actor, Privilege::View, catalog::ROOT_OBJECT)? {
            return Ok(Vec::new());
        }
        let tree = catalog.categories()?;
        let viewable = self.viewable(catalog, actor, &tree)?;
        Ok(tree
            .into_iter()
            .zip(viewable)
            .filter(|(c, v)| c.images > 0 && !v)
            .map(|(c, _)| c.path)
            .collect())
    }

    /// The category tree with what the actor may not view left out: a category shows when
    /// the actor may view it or one below it (so an empty category they may view shows too),
    /// counting only the images they may view; the root always shows.
    pub fn visible_categories(
        &self,
        catalog: &Catalog,
        actor: &Actor,
    ) -> Result<Vec<Category>, CatalogError> {
        let tree = catalog.categories()?;
        let viewable = self.viewable(catalog, actor, &tree)?;
        // Each viewable category adds its images to itself and its ancestors, and shows them:
        // one pass, in the number of categories times their depth.
        let mut below: std::collections::HashMap<&str, (u64, bool)> =
            std::collections::HashMap::with_capacity(tree.len());
        for (c, v) in tree.iter().zip(&viewable) {
            if !*v {
                continue;
            }
            let path = c.path.as_str();
            // The root (`/`, from the first slash), each ancestor (up to each later slash),
            // then the category itself.
            let mut ends: Vec<usize> = path.match_indices('/').map(|(i, _)| i.max(1)).collect();
            if path != "/" {
                ends.push(path.len());
            }
            for end in ends {
                let entry = below.entry(&path[..end]).or_default();
                entry.0 += c.images;
                entry.1 = true;
            }
        }
        let shown: Vec<(u64, bool)> = tree
            .iter()
            .map(|c| below.get(c.path.as_str()).copied().unwrap_or_default())
            .collect();
        Ok(tree
            .into_iter()
            .zip(viewable)
            .zip(shown)
            .filter_map(|((c, v), (total, shown))| {
                (shown || c.path == "/").then_some(Category {
                    images: if v { c.images } else { 0 },
                    total,
                    path: c.path,
                })
            })
            .collect())
    }

    /// Whether the actor may view each category of `tree`, from one read of every grant.
    fn viewable(
        &self,
        catalog: &Catalog,
        actor: &Actor,
        tree: &[Category],
    ) -> Result<Vec<bool>, CatalogError> {
        if matches!(actor, Actor::Operator) {
            return Ok(vec![true; tree.len()]);
        }
        let nodes = catalog.all_nodes()?;
        let who = actor.principal();
        Ok(tree
            .iter()
            .map(|c| {
                let mut chain: Vec<Node> =
                    catalog::object_ancestors(&catalog::category_object(&c.path))
                        .into_iter()
                        .map(|name| {
                            nodes.get(&name).cloned().unwrap_or(Node {
                                object: name,
                                grants: Vec::new(),
                                inherit: true,
                            })
                        })
                        .collect();
                self.add_implicit(&mut chain);
                let held = permission::effective(who, &chain).map(|(p, _)| p);
                cap(actor, held.map(|p| (p, Reason::AdminRole)))
                    .is_some_and(|(p, _)| p >= Privilege::View)
            })
            .collect())
    }

    /// Grants (or replaces the grantee's grant) on an object; `by` needs admin on it.
    pub fn grant(
        &self,
        catalog: &mut Catalog,
        by: &Actor,
        object: &str,
        grant: &Grant,
    ) -> Result<(), Error> {
        let object = catalog::normalize_object(object)?;
        self.require(catalog, by, Privilege::Admin, &object)?;
        catalog.grant(&object, grant, by.name())?;
        self.records.bump_generation();
        Ok(())
    }

    /// Removes the grantee's grant on an object; `by` needs admin on it.
    pub fn revoke(
        &self,
        catalog: &mut Catalog,
        by: &Actor,
        object: &str,
        grantee: &Grantee,
    ) -> Result<(), Error> {
        let object = catalog::normalize_object(object)?;
        self.require(catalog, by, Privilege::Admin, &object)?;
        catalog.revoke_grant(&object, grantee)?;
        self.records.bump_generation();
        Ok(())
    }

    /// Sets whether an object inherits its ancestors' grants; `by` needs admin on it.
    pub fn set_inherit(
        &self,
        catalog: &mut Catalog,
        by: &Actor,
        object: &str,
        inherit: bool,
    ) -> Result<(), Error> {
        let object = catalog::normalize_object(object)?;
        self.require(catalog, by, Privilege::Admin, &object)?;
        catalog.set_inherit(&object, inherit)?;
        self.records.bump_generation();
        Ok(())
    }

    /// Call after a change of groups, memberships or roles made elsewhere in this process.
    pub fn changed(&self) {
        self.records.bump_generation();
    }

    /// The actor's privilege on an object and why, and (for an administrator of it) its own
    /// and inherited grants.
    pub fn describe(
        &self,
        catalog: &Catalog,
        actor: &Actor,
        object: &str,
    ) -> Result<Description, Error> {
        let object = catalog::normalize_object(object)?;
        let held = self.explain(catalog, actor, &object)?;
        let admin = held.as_ref().is_some_and(|(p, _)| *p == Privilege::Admin);
        let chain = self.chain(catalog, &object)?;
        let stored = catalog.chain(&object)?;
        let shown = |node: &Node, stored: &Node| -> Vec<Shown> {
            node.grants
                .iter()
                .map(|g| Shown {
                    object: node.object.clone(),
                    grantee: g.grantee.to_string(),
                    privilege: g.privilege,
                    implicit: !stored.grants.contains(g),
                })
                .collect()
        };
        let own = shown(&chain[0], &stored[0]);
        let mut inherited = Vec::new();
        if chain[0].inherit {
            for (node, stored) in chain.iter().zip(&stored).skip(1) {
                inherited.extend(shown(node, stored));
                if !node.inherit {
                    break;
                }
            }
        }
        Ok(Description {
            inherit: chain[0].inherit,
            privilege: held.as_ref().map(|(p, _)| *p),
            reason: held.map(|(_, r)| r.to_string()),
            grants: admin.then_some(own),
            inherited: admin.then_some(inherited),
            object,
        })
    }

    /// The principal of a key's user (role and groups from the catalog, cached); `None` when
    /// the user is gone.
    pub fn principal_of(
        &self,
        catalog: &Catalog,
        user: &str,
        method: Method,
    ) -> Result<Option<Principal>, CatalogError> {
        let id = format!("{}:{user}", self.records.generation());
        let found = self
            .records
            .cached::<_, CachedPrincipal, _>(PRINCIPALS, &id, || {
                Ok::<_, CatalogError>(catalog.credentials(user)?.map(|c| CachedPrincipal {
                    role: c.role.as_str().to_string(),
                    groups: c.groups,
                }))
            })?;
        Ok(found.and_then(|c| {
            let role: Role = c.role.parse().ok()?;
            Some(Principal::new(user, c.groups, vec![role], method))
        }))
    }
}

/// A refusal: anonymous callers are told to authenticate, others that they may not.
fn refusal(actor: &Actor, privilege: Privilege, object: &str) -> PermissionError {
    match actor {
        Actor::Anonymous => PermissionError::LoginRequired {
            privilege,
            object: object.to_string(),
        },
        _ => PermissionError::Denied {
            privilege,
            object: object.to_string(),
            who: actor.describe(),
        },
    }
}

/// A key's cap on what its user holds (the reason stays the user's).
fn cap(actor: &Actor, held: Option<(Privilege, Reason)>) -> Option<(Privilege, Reason)> {
    match actor {
        Actor::Key { rights, .. } => {
            let (p, reason) = held?;
            permission::capped(Some(p), key_privilege(*rights)).map(|p| (p, reason))
        }
        _ => held,
    }
}

/// What identifies a principal for the rules: name, roles and groups.
fn principal_key(who: Option<&Principal>) -> String {
    match who {
        None => "-".into(),
        Some(p) => {
            let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
            format!("{}|{}|{}", p.user, roles.join(","), p.groups.join(","))
        }
    }
}

/// A key user's role and groups, as cached.
#[derive(Clone, Serialize, Deserialize)]
struct CachedPrincipal {
    role: String,
    groups: Vec<String>,
}

/// An effective privilege as cached (none included).
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
struct Cached(Option<(Privilege, Reason)>);

impl From<Option<(Privilege, Reason)>> for Cached {
    fn from(v: Option<(Privilege, Reason)>) -> Self {
        Cached(v)
    }
}

/// [`Cached`] in plain strings.
#[derive(Serialize, Deserialize)]
struct Stored {
    privilege: Option<String>,
    /// `admin-role`, `role:NAME`, `creator:OBJECT` or `grant:GRANTEE:PRIVILEGE:OBJECT`.
    reason: Option<String>,
}

impl From<Cached> for Stored {
    fn from(c: Cached) -> Self {
        let Some((p, reason)) = c.0 else {
            return Stored {
                privilege: None,
                reason: None,
            };
        };
        let reason = match reason {
            Reason::AdminRole => "admin-role".to_string(),
            Reason::Role(r) => format!("role {r}"),
            Reason::Creator { object } => format!("creator {object}"),
            Reason::Grant { grant, object } => {
                format!("grant {} {} {object}", grant.grantee, grant.privilege)
            }
        };
        Stored {
            privilege: Some(p.as_str().into()),
            reason: Some(reason),
        }
    }
}

impl TryFrom<Stored> for Cached {
    type Error = String;
    fn try_from(s: Stored) -> Result<Self, String> {
        let (Some(p), Some(reason)) = (s.privilege, s.reason) else {
            return Ok(Cached(None));
        };
        let privilege: Privilege = p.parse()?;
        let words: Vec<&str> = reason.splitn(4, ' ').collect();
        let reason = match words.as_slice() {
            ["admin-role"] => Reason::AdminRole,
            ["role", r] => Reason::Role(r.parse()?),
            ["creator", o] => Reason::Creator {
                object: o.to_string(),
            },
            ["grant", g, p, o] => Reason::Grant {
                grant: Grant {
                    grantee: g.parse()?,
                    privilege: p.parse()?,
                },
                object: o.to_string(),
            },
            _ => return Err(format!("cached reason {reason:?}")),
        };
        Ok(Cached(Some((privilege, reason))))
    }
}

/// `make bench`'s baseline (bench/people.py): with `--features bench-fixtures` only, the
/// environment variable `IMGSERV_BENCH_SKIP_PERMISSIONS=1` lets every check pass without
/// looking, so that a route can be measured with and without its check in one build.
mod bench {
    #[cfg(feature = "bench-fixtures")]
    pub fn skip_checks() -> bool {
        static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *SKIP.get_or_init(|| std::env::var_os("IMGSERV_BENCH_SKIP_PERMISSIONS").is_some())
    }

    #[cfg(not(feature = "bench-fixtures"))]
    pub fn skip_checks() -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
