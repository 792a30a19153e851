//! Storage and I/O, above the domain: the catalog of originals and keys, the cache index and its
//! files, the stores of originals (a directory, S3), the sources a render reads (local files,
//! remote copies), the renderer, the replay log, the counters of failed logins, the
//! configuration file, the metrics counters, the LDAP directory.
//! Each hides its medium behind a small type; none of them knows about use cases or transports.

pub mod cache;
pub mod catalog;
pub mod command_auth;
pub mod config;
pub mod db;
pub mod http;
pub mod ldap;
pub mod login_failures;
pub mod malloc;
pub mod metrics;
pub mod object_cache;
pub mod render;
pub mod replay;
pub mod source;
pub mod store;
