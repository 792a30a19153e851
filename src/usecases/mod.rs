//! Use cases, above storage and I/O: what a request or a tool asks the server to do — store an
//! upload (`ingest`, `upload`), render a variant (`variant`), browse and search page by page (`browse`), change the
//! category tree (`categories`), precache for mirrors, evict, purge
//! and delete, check and repair (`fsck`), report health (`status`), check a signed request
//! (`sign`), read hot catalog rows through the object cache (`records`), hash and check local
//! passwords (`passwords`), log people in (`auth`), slow down repeated failed logins
//! (`throttle`), keep login sessions (`session`) and answer who may do what to which object
//! (`permissions`) — and the one table (`error`) that turns every failure into an HTTP status, an
//! error code and an exit status. They know nothing of CGI, FastCGI or the routes that call
//! them.

pub mod auth;
pub mod browse;
pub mod categories;
pub mod error;
pub mod evict;
pub mod fsck;
pub mod ingest;
pub mod mirror;
pub mod passwords;
pub mod people;
pub mod permissions;
pub mod precache;
pub mod purge;
pub mod records;
pub mod session;
pub mod sign;
pub mod status;
pub mod throttle;
pub mod upload;
pub mod variant;
