//! What a catalog backend provides, as traits by concern; [`CatalogBackend`] is all of them, and
//! [`Catalog`] is a catalog whatever its backend (`dyn CatalogBackend`). Use cases take
//! `&Catalog`/`&mut Catalog` and call these methods (a trait object's methods need no import),
//! so that another database (PostgreSQL, past one machine) is a new implementation of these
//! traits, not a change to them. [`SqliteCatalog`] is the one backend today.
//!
//! Every method is one transaction of the backend's, or a read: a failed call changes nothing.
//! The types it speaks (`Image`, `ApiKey`, `Query`, …) are plain Rust; the errors are
//! [`CatalogError`].

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::removal::UPLOAD_WAIT;
use super::{
    ApiKey, CatalogError, Category, CategoryDeleted, CategoryRenamed, Claim, Claimed, Credentials,
    Deleted, Group, Hit, Image, Inserted, Intent, Listed, NewImage, Page, PendingDelete, Query,
    Rights, Role, SessionRecord, SqliteCatalog, StoredGrant, Swept, User, UserNow,
};
use crate::domain::cursor::{Order, Position};
use crate::domain::original::OriginalId;
use crate::domain::permission::{Grant, Grantee, Node, Privilege};

/// A catalog, whatever its backend: the traits' methods through `Deref`, and what every backend
/// gets from them.
pub struct Catalog {
    backend: Box<dyn CatalogBackend>,
}

/// Every concern of a catalog; implemented for whatever implements them all.
pub trait CatalogBackend:
    Images
    + Deletions
    + Categories
    + Search
    + Browse
    + Removals
    + Users
    + Groups
    + Keys
    + Sessions
    + Grants
    + Send
{
}

impl<T> CatalogBackend for T where
    T: Images
        + Deletions
        + Categories
        + Search
        + Browse
        + Removals
        + Users
        + Groups
        + Keys
        + Sessions
        + Grants
        + Send
{
}

impl Deref for Catalog {
    type Target = dyn CatalogBackend;
    fn deref(&self) -> &(dyn CatalogBackend + 'static) {
        &*self.backend
    }
}

impl DerefMut for Catalog {
    fn deref_mut(&mut self) -> &mut (dyn CatalogBackend + 'static) {
        &mut *self.backend
    }
}

/// What every backend gets from the traits' methods.
impl Catalog {
    /// Opens (creating when missing, with mode 0600) the SQLite catalog at `path`, e.g.
    /// `<state>/catalog.sqlite`, brought up to the latest schema.
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        Ok(Catalog::with(Box::new(SqliteCatalog::open(path)?)))
    }

    /// A catalog on another backend.
    pub fn with(backend: Box<dyn CatalogBackend>) -> Catalog {
        Catalog { backend }
    }

    /// Adds an `editor` without a password (a holder of API keys, as users were before roles).
    pub fn add_user(&mut self, name: &str) -> Result<User, CatalogError> {
        self.add_user_with(name, Role::Editor, None)
    }

    /// Creates a key for `user`: a public id `ak_<16 hex>` and a secret of 32 random bytes
    /// as 64 hex digits, from the kernel's random source. The secret is shown once by the
    /// tool; the catalog keeps it because HMAC needs it to verify.
    pub fn add_key(&mut self, user: &str, rights: Rights) -> Result<ApiKey, CatalogError> {
        self.add_key_expiring(user, rights, None)
    }

    /// Records that an upload of `id` is about to place its original, so that a crash between
    /// placing and [`Images::insert`] leaves a row the sweep acts on, and so that no removal
    /// of the same original starts while the upload is in flight. When a removal of it is
    /// running, waits up to [`UPLOAD_WAIT`] for it to finish (the upload then places the bytes
    /// anew), then gives up with [`CatalogError::Removing`]; nothing is recorded then.
    pub fn begin_upload(&mut self, id: &OriginalId, mime: &str) -> Result<Intent, CatalogError> {
        self.begin_upload_within(id, mime, UPLOAD_WAIT)
    }

    /// Handles one pending row: [`Removals::claim`], then `remove` (which must treat an object
    /// already gone as success) with no transaction open, then [`Removals::finish`] — or
    /// [`Removals::release`] and `remove`'s error.
    pub fn sweep<E: From<CatalogError>>(
        &mut self,
        pending: &PendingDelete,
        grace: Duration,
        remove: impl FnOnce(&PendingDelete) -> Result<(), E>,
    ) -> Result<Swept, E> {
        let claim = match self.claim(pending, grace)? {
            Claimed::Yours(claim) => claim,
            Claimed::Not(swept) => return Ok(swept),
        };
        match remove(claim.pending()) {
            Ok(()) => {
                self.finish(claim)?;
                Ok(Swept::Removed)
            }
            Err(e) => {
                if let Err(release) = self.release(claim) {
                    // The lease ends it anyway; the removal's error is the one to report.
                    log::warn!("release of {}: {release}", pending.image);
                }
                Err(e)
            }
        }
    }
}

/// The images' records: what is known about each original.
pub trait Images {
    /// One image.
    fn get(&self, id: &OriginalId) -> Result<Option<Image>, CatalogError>;

    /// Whether there is any image, read from the table itself (for `/status`, which must see
    /// a damaged file, not only open it).
    fn probe(&self) -> Result<bool, CatalogError>;

    /// Every image's id and its original object's extension, in id order (for `fsck`).
    fn originals(&self) -> Result<Vec<(OriginalId, String)>, CatalogError>;

    /// Records an image whose original is in place, and drops its upload intent in the same
    /// transaction. The same id twice gives [`Inserted::Existed`] with the first row untouched.
    /// An intent a removal passed over (the upload outlived the grace period, so its original
    /// may be gone) gives [`CatalogError::UploadExpired`]: no image is recorded, and what the
    /// upload placed is left for the sweep.
    fn insert(&mut self, new: &NewImage, intent: Option<Intent>) -> Result<Inserted, CatalogError> {
        self.insert_granting(new, intent, None)
    }

    /// [`insert`](Images::insert), and when its upload makes the category exist (it was not
    /// in the tree, not even as an ancestor of another), a grant of `creator` on the category to its owner,
    /// in the same transaction (`[permissions] privilege_for_creator`; never on the root).
    fn insert_granting(
        &mut self,
        new: &NewImage,
        intent: Option<Intent>,
        creator: Option<Privilege>,
    ) -> Result<Inserted, CatalogError>;

    /// Replaces the metadata object.
    fn replace_meta(
        &mut self,
        id: &OriginalId,
        meta: &Map<String, Value>,
    ) -> Result<Image, CatalogError>;

    /// Merges `patch` into the metadata with JSON Merge Patch (RFC 7396): a `null` removes
    /// its key, an object merges into an object, anything else replaces.
    fn merge_meta(
        &mut self,
        id: &OriginalId,
        patch: &Map<String, Value>,
    ) -> Result<Image, CatalogError>;

    /// Moves an image to another category (normalised).
    fn move_to(&mut self, id: &OriginalId, category: &str) -> Result<Image, CatalogError>;
}

/// Deleting an image: its row goes, what it leaves to remove is recorded.
pub trait Deletions {
    /// Removes an image's row and records its original and its variants as pending deletes,
    /// in one transaction. The caller then passes each pending row to [`Catalog::sweep`];
    /// whatever a crash leaves, `imgserv-evict` sweeps later.
    fn delete(&mut self, id: &OriginalId) -> Result<Deleted, CatalogError>;

    /// Every pending row, oldest first: for the sweep.
    fn pending(&self) -> Result<Vec<PendingDelete>, CatalogError>;
}

/// The category tree: categories stored with the number of images directly in each (kept
/// exact by every write of an image, in its transaction), their implied ancestors, and the
/// changes a user makes to the tree. Paths given to these methods are normalised by them.
pub trait Categories {
    /// Every stored category with its ancestors, in tree order (a parent before its
    /// children, siblings by name); the root `/` comes first and counts everything. A
    /// category emptied by moves or deletions stays (with 0) until deleted.
    fn categories(&self) -> Result<Vec<Category>, CatalogError>;

    /// Whether a normalised category holds an image itself (not below it).
    fn category_has_images(&self, path: &str) -> Result<bool, CatalogError>;

    /// Whether a category shows in the tree: it is stored, or one below it is; the root
    /// always.
    fn category_exists(&self, path: &str) -> Result<bool, CatalogError>;

    /// Stores an empty category and, with `creator` (a user and `[permissions]
    /// privilege_for_creator`), that user's grant on it, in one transaction.
    /// [`CatalogError::CategoryExists`] when it shows in the tree already.
    fn create_category(
        &mut self,
        path: &str,
        creator: Option<(&str, Privilege)>,
    ) -> Result<(), CatalogError>;

    /// Renames (moves) a category and everything below it, in one transaction: the stored
    /// categories, the images' category and its full-text text, and the grants and settings
    /// of `category:FROM` and below. Grants and settings stored at `to` or below (on no
    /// category: it did not exist) are dropped first, so the moved tree keeps exactly its own.
    /// Refused: `from` is the root or `to` is below `from` ([`CatalogError::BadCategoryChange`]),
    /// `from` does not exist ([`CatalogError::CategoryNotFound`]), `to` exists
    /// ([`CatalogError::CategoryExists`]), a path below would pass the limits
    /// ([`CatalogError::BadCategory`]).
    fn rename_category(&mut self, from: &str, to: &str) -> Result<CategoryRenamed, CatalogError>;

    /// Deletes a category that holds no image, nor does anything below it: its row, the
    /// (empty) rows below it, and the grants and settings of it and below, in one transaction.
    /// Refused: the root, an unknown category, and one with images
    /// ([`CatalogError::CategoryNotEmpty`], saying how many).
    fn delete_category(&mut self, path: &str) -> Result<CategoryDeleted, CatalogError>;
}

/// Full-text search over the images' metadata and categories. A backend brings its own
/// index (SQLite's FTS5 here); what a query means is [`Query`]'s, the same everywhere.
pub trait Search {
    /// A page of images: newest first, or by relevance (bm25) when `q` has words.
    fn search(&self, query: &Query) -> Result<Page, CatalogError>;

    /// How many images `query` matches (its `page` and `per_page` aside): the count alone,
    /// without ranking or reading any.
    fn count(&self, query: &Query) -> Result<u64, CatalogError>;
}

/// Pages after a cursor (keyset pagination): what the dashboard's Browse and Search pages and
/// `GET /api/images?after=` read. A page after any position costs what the first costs.
pub trait Browse {
    /// Up to `limit` images (at most [`MAX_BROWSE_LIMIT`](super::MAX_BROWSE_LIMIT)) of
    /// exactly these normalised `categories` (not those below them: list them too), in
    /// `order`, after `after` (a position of the same order, else `bad-cursor`).
    fn listing(
        &self,
        categories: &[String],
        order: Order,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Listed>, CatalogError>;

    /// What [`listing`](Browse::listing) of every category in the subtree of the normalised
    /// `category` (it and those below it) that holds images, `hidden` ones (exact paths)
    /// left out, would return — found without listing the subtree's categories first when it
    /// is large.
    fn listing_below(
        &self,
        category: &str,
        hidden: &[String],
        order: Order,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Listed>, CatalogError>;

    /// Up to `limit` images whose metadata or category match every one of `words` (as
    /// [`Search`] reads them), within `category` and below, leaving out `hidden` categories,
    /// after `after` (a [`Position::Rank`] or [`Position::Recent`]), each with a highlighted
    /// snippet: the [`RANKED_MATCHES`](super::RANKED_MATCHES) newest best match first, then
    /// the older ones newest first.
    fn matching(
        &self,
        words: &str,
        category: Option<&str>,
        hidden: &[String],
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Hit>, CatalogError>;
}

/// The protocol between uploads and removals of the same bytes (see `removal` for the
/// SQLite catalog's reasoning): upload intents and removal claims. A backend must give the
/// same guarantee: an intent and a claim of one original never both live.
pub trait Removals {
    /// [`Catalog::begin_upload`] with another wait.
    fn begin_upload_within(
        &mut self,
        id: &OriginalId,
        mime: &str,
        wait: Duration,
    ) -> Result<Intent, CatalogError>;

    /// Claims one pending row for removal, in a short write transaction: unless another
    /// process holds a live claim on it, the image is back (the row is dropped: nothing to
    /// remove) or, for an original, an upload of it younger than `grace` is in flight.
    /// Variants are claimed whatever happened since: they can always be rendered again.
    fn claim(&mut self, pending: &PendingDelete, grace: Duration) -> Result<Claimed, CatalogError>;

    /// The objects of a claimed row are gone: drops the row (and the claim with it). A claim
    /// taken over since changes nothing.
    fn finish(&mut self, claim: Claim) -> Result<(), CatalogError>;

    /// The removal failed: the row stays for the next sweep, and uploads stop waiting for it.
    fn release(&mut self, claim: Claim) -> Result<(), CatalogError>;
}

/// Users: their roles, password hashes and disabled flag.
pub trait Users {
    /// Adds a user with `role` and, when given, a password hash (a PHC string).
    fn add_user_with(
        &mut self,
        name: &str,
        role: Role,
        password_hash: Option<&str>,
    ) -> Result<User, CatalogError>;

    /// Sets (or, with `None`, removes) a user's password hash.
    fn set_password(&mut self, name: &str, hash: Option<&str>) -> Result<(), CatalogError>;

    /// Disables or enables a user. Disabling is at once: their next login and their keys'
    /// next requests are refused.
    fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<(), CatalogError>;

    /// Changes a user's role.
    fn set_role(&mut self, name: &str, role: Role) -> Result<(), CatalogError>;

    /// All users by name, with their groups and number of valid keys.
    fn users(&self) -> Result<Vec<User>, CatalogError>;

    /// What a local login of `name` checks; `None` for an unknown user.
    fn credentials(&self, name: &str) -> Result<Option<Credentials>, CatalogError>;

    /// Deletes a user, their keys (they stop verifying at once: an unknown key) and their
    /// group memberships, in one transaction; images they own keep the name as their owner.
    /// Returns how many keys went with them.
    fn del_user(&mut self, name: &str) -> Result<u64, CatalogError>;
}

/// Groups and their members.
pub trait Groups {
    /// Adds an empty group. Names follow the rule of user names.
    fn add_group(&mut self, name: &str) -> Result<Group, CatalogError>;

    /// Deletes a group and its memberships (the users stay). Returns how many members it had.
    fn del_group(&mut self, name: &str) -> Result<u64, CatalogError>;

    /// All groups by name, with their members.
    fn groups(&self) -> Result<Vec<Group>, CatalogError>;

    /// Makes `user` a member of `group`. Returns false when they were one already.
    fn add_member(&mut self, group: &str, user: &str) -> Result<bool, CatalogError>;

    /// Removes `user` from `group`.
    fn del_member(&mut self, group: &str, user: &str) -> Result<(), CatalogError>;
}

/// API keys: their rights, expiry and revocation.
pub trait Keys {
    /// [`add_key`](Catalog::add_key) for a key that stops verifying at `expires` (unix
    /// milliseconds), when given.
    fn add_key_expiring(
        &mut self,
        user: &str,
        rights: Rights,
        expires: Option<i64>,
    ) -> Result<ApiKey, CatalogError>;

    /// All keys, revoked ones included, by user then creation.
    fn keys(&self) -> Result<Vec<ApiKey>, CatalogError>;

    /// One key, revoked or not.
    fn key(&self, id: &str) -> Result<Option<ApiKey>, CatalogError>;

    /// Revokes a key; revoking it again keeps the first time.
    fn revoke(&mut self, id: &str) -> Result<ApiKey, CatalogError>;
}

/// Login sessions, found by a hash of their token (see `usecases::session`).
pub trait Sessions {
    /// The session whose token hashes to `token_hash`, and its user's catalog row now (`None`
    /// when there is none), in one read.
    fn session(
        &self,
        token_hash: &str,
    ) -> Result<Option<(SessionRecord, Option<UserNow>)>, CatalogError>;

    /// Stores a new session; in the same transaction deletes the one it replaces (the
    /// session cookie the login came with, if any) and every session idle since before
    /// `idle_before` or created before `created_before` (unix ms). Returns how many went.
    fn insert_session(
        &mut self,
        token_hash: &str,
        s: &SessionRecord,
        replaces: Option<&str>,
        idle_before: i64,
        created_before: i64,
    ) -> Result<u64, CatalogError>;

    /// Records a use of the session at `now` (unix ms).
    fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), CatalogError>;

    /// Deletes a session; whether there was one.
    fn delete_session(&self, token_hash: &str) -> Result<bool, CatalogError>;

    /// Deletes every session idle since before `idle_before` or created before
    /// `created_before` (unix ms); how many.
    fn sweep_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64, CatalogError>;
}

/// Grants of privileges on objects (`category:/PATH`) and their settings (`inherit`).
pub trait Grants {
    /// The chain of a normalised object: a [`Node`] for it and each ancestor up to the root,
    /// with their grants and `inherit` flags, read in one query.
    fn chain(&self, object: &str) -> Result<Vec<Node>, CatalogError>;

    /// Every object that has grants or settings, as nodes (for checking many objects at once:
    /// a search's categories), in one query.
    fn all_nodes(&self) -> Result<HashMap<String, Node>, CatalogError>;

    /// The grants stored on one normalised object, by grantee.
    fn grants_on(&self, object: &str) -> Result<Vec<StoredGrant>, CatalogError>;

    /// Grants `grant` on a normalised object, replacing the grantee's earlier grant there (one
    /// privilege per grantee per object). A user or group grantee must exist.
    fn grant(
        &mut self,
        object: &str,
        grant: &Grant,
        granted_by: Option<&str>,
    ) -> Result<(), CatalogError>;

    /// Removes the grantee's grant on a normalised object; [`CatalogError::GrantNotFound`]
    /// when it held none there.
    fn revoke_grant(&mut self, object: &str, grantee: &Grantee) -> Result<(), CatalogError>;

    /// Sets whether a normalised object inherits its ancestors' grants.
    fn set_inherit(&mut self, object: &str, inherit: bool) -> Result<(), CatalogError>;

    /// Writes `grants` on the root when the root was never set up (no settings row for it: a
    /// new catalog, or one from before grants), and marks it set up, in one transaction; later
    /// changes to the root's grants are then the administrator's. Whether it wrote anything.
    fn seed_root(&mut self, grants: &[Grant]) -> Result<bool, CatalogError>;
}
