//! Changes a user makes to the category tree (the dashboard's Edit section, and `POST`/`DELETE
//! /api/categories` for scripts): create an empty category, rename or move one with everything
//! below it, delete one that holds no image. Each change is checked against the permissions,
//! logged with who made it, and leaves no cached answer stale (effective permissions, image
//! records). The tree itself, as a caller may see it, is `browse::tree`; what a change does to
//! the rows is the catalog's (`Categories`).
//!
//! Who may (the rules of `[permissions]` and `imgserv.cgi(8)`):
//! - create: edit on the parent (what an upload into a new category needs); the creator then
//!   holds `[permissions] privilege_for_creator` on it, as the uploader of a category's first
//!   image does;
//! - rename or move: admin on the category (its grants go with it) and, when it changes
//!   parent, edit on the new parent;
//! - delete: admin on the category (its grants go with it).

use crate::domain::permission::Privilege;
use crate::io::catalog::{self, Catalog, CategoryDeleted, CategoryRenamed};
use crate::io::config::Config;
use crate::usecases::error::Error;
use crate::usecases::permissions::{Actor, Permissions};
use crate::usecases::records::Records;

/// The parent of a normalised path (`/` for `/a` and for `/`).
fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((parent, _)) => parent,
    }
}

/// What an actor may do to a category, for a page to offer only those controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Allowed {
    /// Create a category directly below it (edit on it).
    pub create_below: bool,
    /// Rename, move or delete it (admin on it; never the root). A move also needs edit on the
    /// new parent, checked when it is made.
    pub change: bool,
}

/// What `actor` may do to the category `path` (see [`Allowed`]); two cached permission checks.
pub fn allowed(
    config: &Config,
    records: &Records,
    catalog: &Catalog,
    actor: &Actor,
    path: &str,
) -> Result<Allowed, Error> {
    let path = catalog::normalize_category(path)?;
    let object = catalog::category_object(&path);
    let perms = Permissions::new(config, records);
    Ok(Allowed {
        create_below: perms.may(catalog, actor, Privilege::Edit, &object)?,
        change: path != "/" && perms.may(catalog, actor, Privilege::Admin, &object)?,
    })
}

/// Creates an empty category (any missing ancestors show as implied); the actor needs edit on
/// its parent. Returns the normalised path. `409 category-exists` when it shows in the tree
/// already (an ancestor of another included).
pub fn create(
    config: &Config,
    records: &Records,
    catalog: &mut Catalog,
    actor: &Actor,
    path: &str,
) -> Result<String, Error> {
    let path = catalog::normalize_category(path)?;
    let perms = Permissions::new(config, records);
    perms.require(
        catalog,
        actor,
        Privilege::Edit,
        &catalog::category_object(parent(&path)),
    )?;
    let creator = actor
        .principal()
        .zip(config.permissions.privilege_for_creator)
        .map(|(p, privilege)| (p.user.as_str(), privilege));
    catalog.create_category(&path, creator)?;
    if creator.is_some() {
        perms.changed();
    }
    log::info!("category {path:?} created by {}", actor.describe());
    Ok(path)
}

/// Renames (moves) a category and everything below it: its images, the categories below, and
/// the grants and settings of all of them (see `Categories::rename_category`). The actor needs
/// admin on the category and, when its parent changes, edit on the new parent.
pub fn rename(
    config: &Config,
    records: &Records,
    catalog: &mut Catalog,
    actor: &Actor,
    from: &str,
    to: &str,
) -> Result<CategoryRenamed, Error> {
    let (from, to) = (
        catalog::normalize_category(from)?,
        catalog::normalize_category(to)?,
    );
    // What can never be done is said first, whoever asks.
    catalog::check_category_change(&from, Some(&to))?;
    let perms = Permissions::new(config, records);
    perms.require(
        catalog,
        actor,
        Privilege::Admin,
        &catalog::category_object(&from),
    )?;
    if parent(&to) != parent(&from) {
        perms.require(
            catalog,
            actor,
            Privilege::Edit,
            &catalog::category_object(parent(&to)),
        )?;
    }
    let renamed = records.rename_category(catalog, &from, &to)?;
    // Every object below moved: its cached privileges are someone else's now.
    perms.changed();
    log::info!(
        "category {from:?} renamed to {to:?} by {}: {} categories, {} images, {} grants and settings moved, {} dropped",
        actor.describe(),
        renamed.categories,
        renamed.images.len(),
        renamed.grants,
        renamed.dropped
    );
    Ok(renamed)
}

/// Deletes a category that holds no image (nor does anything below it), with the empty
/// categories below it and their grants and settings; the actor needs admin on it.
/// `409 category-not-empty` (saying how many images) otherwise.
pub fn delete(
    config: &Config,
    records: &Records,
    catalog: &mut Catalog,
    actor: &Actor,
    path: &str,
) -> Result<CategoryDeleted, Error> {
    let path = catalog::normalize_category(path)?;
    catalog::check_category_change(&path, None)?;
    let perms = Permissions::new(config, records);
    perms.require(
        catalog,
        actor,
        Privilege::Admin,
        &catalog::category_object(&path),
    )?;
    let deleted = catalog.delete_category(&path)?;
    if deleted.grants > 0 {
        perms.changed();
    }
    log::info!(
        "category {path:?} deleted by {}: {} categories, {} grants and settings",
        actor.describe(),
        deleted.categories,
        deleted.grants
    );
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::domain::principal::{Method, Principal, Role};
    use crate::io::catalog::testing::id;
    use crate::io::catalog::{NewImage, Rights};
    use crate::io::config::from_str;

    /// A configuration with a memory object cache, so that stale answers would show.
    fn config(dir: &Path) -> Config {
        std::fs::create_dir_all(dir.join("originals")).unwrap();
        let text = "[originals]\nroot = \"originals\"\n[state]\ndir = \"state\"\n\
                    [cache]\ndir = \"cache\"\n[object_cache]\ntype = \"memory\"\n";
        from_str(text, dir).unwrap()
    }

    fn user(name: &str, role: Role) -> Actor {
        Actor::User(Principal::new(name, vec![], vec![role], Method::Local))
    }

    fn code(e: Error) -> (u16, &'static str) {
        (e.status(), e.code())
    }

    fn paths(c: &Catalog) -> Vec<String> {
        c.categories()
            .unwrap()
            .into_iter()
            .map(|c| c.path)
            .collect()
    }

    #[test]
    fn parents() {
        for (path, want) in [("/", "/"), ("/a", "/"), ("/a/b", "/a"), ("/a/b/c", "/a/b")] {
            assert_eq!(parent(path), want, "{path}");
        }
    }

    #[test]
    fn who_may_create_rename_and_delete() {
        let t = tempfile::tempdir().unwrap();
        let config = config(t.path());
        let mut c = Catalog::open(&config.state.catalog_path()).unwrap();
        let records = Records::new(&config, true);
        let perms = Permissions::new(&config, &records);
        let (ann, bob, vi) = (
            user("ann", Role::Editor),
            user("bob", Role::Editor),
            user("vi", Role::Viewer),
        );
        for name in ["ann", "bob"] {
            c.add_user(name).unwrap();
        }

        // Creating needs edit on the parent: editors may, a viewer and nobody may not.
        assert_eq!(
            code(create(&config, &records, &mut c, &vi, "/a").unwrap_err()),
            (403, "permission-denied")
        );
        assert_eq!(
            code(create(&config, &records, &mut c, &Actor::Anonymous, "/a").unwrap_err()),
            (401, "login-required")
        );
        // A cached "no" about ann on /trips is forgotten when she creates it.
        assert!(
            !perms
                .may(&c, &ann, Privilege::Admin, "category:/trips")
                .unwrap()
        );
        assert_eq!(
            create(&config, &records, &mut c, &ann, "trips//").unwrap(),
            "/trips"
        );
        assert!(
            perms
                .may(&c, &ann, Privilege::Admin, "category:/trips")
                .unwrap()
        );
        assert_eq!(
            code(create(&config, &records, &mut c, &bob, "/trips").unwrap_err()),
            (409, "category-exists")
        );
        assert_eq!(
            code(create(&config, &records, &mut c, &bob, "/a/../b").unwrap_err()),
            (400, "bad-category")
        );

        // What a page may offer each of them.
        let offered = |actor: &Actor, path: &str| {
            let a = allowed(&config, &records, &c, actor, path).unwrap();
            (a.create_below, a.change)
        };
        assert_eq!(offered(&ann, "/trips"), (true, true));
        assert_eq!(offered(&bob, "/trips"), (true, false));
        assert_eq!(offered(&vi, "/trips"), (false, false));
        assert_eq!(offered(&Actor::Operator, "/"), (true, false));

        // Renaming and deleting need admin on the category: bob (an editor) may not.
        assert_eq!(
            code(rename(&config, &records, &mut c, &bob, "/trips", "/t").unwrap_err()),
            (403, "permission-denied")
        );
        assert_eq!(
            code(delete(&config, &records, &mut c, &bob, "/trips").unwrap_err()),
            (403, "permission-denied")
        );
        // ann's key with only the write right acts with edit at most.
        let ann_key = Actor::Key {
            principal: ann.principal().unwrap().clone(),
            rights: Rights::READ | Rights::WRITE,
        };
        assert_eq!(
            code(rename(&config, &records, &mut c, &ann_key, "/trips", "/t").unwrap_err()),
            (403, "permission-denied")
        );
        // A move also needs edit on the new parent: bob's private category is not ann's.
        create(&config, &records, &mut c, &bob, "/bob").unwrap();
        perms
            .set_inherit(&mut c, &Actor::Operator, "category:/bob", false)
            .unwrap();
        assert_eq!(
            code(rename(&config, &records, &mut c, &ann, "/trips", "/bob/trips").unwrap_err()),
            (403, "permission-denied")
        );
        assert_eq!(paths(&c), ["/", "/bob", "/trips"], "nothing moved");
        // Within the same parent, or under one she may edit, she may; her grant goes along.
        let done = rename(&config, &records, &mut c, &ann, "/trips", "/travel").unwrap();
        assert_eq!(
            (done.from.as_str(), done.to.as_str()),
            ("/trips", "/travel")
        );
        create(&config, &records, &mut c, &ann, "/archive").unwrap();
        rename(
            &config,
            &records,
            &mut c,
            &ann,
            "/travel",
            "/archive/travel",
        )
        .unwrap();
        assert_eq!(paths(&c), ["/", "/archive", "/archive/travel", "/bob"]);
        assert!(
            perms
                .may(&c, &ann, Privilege::Admin, "category:/archive/travel")
                .unwrap()
        );
        // The refusals of the tree itself come through with their codes.
        for (from, to, want) in [
            ("/", "/x", (400, "bad-category-change")),
            (
                "/archive",
                "/archive/travel/x",
                (400, "bad-category-change"),
            ),
            ("/archive/travel", "/bob", (409, "category-exists")),
        ] {
            let e = rename(&config, &records, &mut c, &Actor::Operator, from, to).unwrap_err();
            assert_eq!(code(e), want, "{from} -> {to}");
        }
        assert_eq!(
            code(rename(&config, &records, &mut c, &Actor::Operator, "/nope", "/x").unwrap_err()),
            (404, "category-not-found")
        );

        // Deleting: refused while an image is in it or below it, then done by its admin.
        let image = NewImage {
            id: id(1),
            mime: "image/png".into(),
            width: 2,
            height: 2,
            bytes: 10,
            owner: Some("ann".into()),
            category: "/archive/travel".into(),
            meta: serde_json::Map::new(),
        };
        c.insert(&image, None).unwrap();
        let e = delete(&config, &records, &mut c, &ann, "/archive").unwrap_err();
        assert_eq!(
            e.to_string(),
            "category \"/archive\" holds 1 image(s), in it or below it: move or delete them first"
        );
        assert_eq!(code(e), (409, "category-not-empty"));
        c.delete(&id(1)).unwrap();
        let gone = delete(&config, &records, &mut c, &ann, "/archive").unwrap();
        assert_eq!((gone.categories, gone.grants), (2, 2));
        assert_eq!(paths(&c), ["/", "/bob"]);
        assert!(
            !perms
                .may(&c, &ann, Privilege::Admin, "category:/archive/travel")
                .unwrap(),
            "her grants went with it"
        );
        assert_eq!(
            code(delete(&config, &records, &mut c, &Actor::Operator, "/").unwrap_err()),
            (400, "bad-category-change")
        );
    }

    #[test]
    fn a_rename_leaves_no_cached_image_record_or_privilege_stale() {
        let t = tempfile::tempdir().unwrap();
        let config = config(t.path());
        let mut c = Catalog::open(&config.state.catalog_path()).unwrap();
        let records = Records::new(&config, true);
        let perms = Permissions::new(&config, &records);
        c.add_user("ann").unwrap();
        let image = NewImage {
            id: id(1),
            mime: "image/png".into(),
            width: 2,
            height: 2,
            bytes: 10,
            owner: None,
            category: "/open/photos".into(),
            meta: serde_json::Map::new(),
        };
        c.insert(&image, None).unwrap();
        // /closed is private to ann; the photos are cached as in /open, viewable by anyone.
        create(&config, &records, &mut c, &Actor::Operator, "/closed").unwrap();
        perms
            .set_inherit(&mut c, &Actor::Operator, "category:/closed", false)
            .unwrap();
        let view = crate::domain::permission::Grant {
            grantee: "user:ann".parse().unwrap(),
            privilege: Privilege::View,
        };
        perms
            .grant(&mut c, &Actor::Operator, "category:/closed", &view)
            .unwrap();
        let ann = user("ann", Role::Viewer);
        let bob = user("bob", Role::Viewer);
        let cached = records.image(&c, &id(1)).unwrap().unwrap();
        assert_eq!(cached.category, "/open/photos");
        assert!(
            perms
                .may(&c, &bob, Privilege::View, "category:/open/photos")
                .unwrap()
        );
        assert!(
            perms
                .may(&c, &bob, Privilege::View, "category:/closed/photos")
                .is_ok_and(|v| !v)
        );
        rename(
            &config,
            &records,
            &mut c,
            &Actor::Operator,
            "/open/photos",
            "/closed/photos",
        )
        .unwrap();
        let now = records.image(&c, &id(1)).unwrap().unwrap();
        assert_eq!(now.category, "/closed/photos");
        assert_eq!(
            code(
                perms
                    .require_image(&c, &bob, Privilege::View, &now)
                    .unwrap_err()
            ),
            (403, "permission-denied")
        );
        assert!(perms.require_image(&c, &ann, Privilege::View, &now).is_ok());
    }
}
