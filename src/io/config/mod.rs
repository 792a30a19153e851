//! Configuration: the TOML file, `IMGSERV_*` environment overrides and command-line overrides,
//! merged in one place ([`load()`]) and validated into typed values ([`Config`]).
//!
//! Raw serde structs mirror the file (`deny_unknown_fields`); `validate` turns them into sizes in
//! bytes, durations, absolute paths and enums, and every message names its key. This module
//! reads the file and the environment but creates no directories and opens no databases.
//!
//! Each group of sections has its module, which holds the validated settings, the raw struct
//! and the validation: `state` (`[originals]`, `[state]`, `[mirrors]`), `cache` (`[cache]`,
//! `[evict]`), `render` (`[limits]`, `[render]`, `[presets]`), `remote`, `server` (`[server]`,
//! `[metrics]`), `store`, `api` (`[api]`, `[security]`), `auth`, `login`, `object_cache`, `ldap`, `sessions`, `permissions`, `dashboard`. `load` finds and merges the file, the
//! environment and the flags; `value` reads sizes, durations and bounded integers. Settings
//! that a storage module consumes (`StoreConfig`, `MetricsConfig`) are that module's types,
//! re-exported here, so that it need not depend on configuration.

mod api;
mod auth;
mod cache;
mod dashboard;
mod ldap;
mod load;
mod login;
mod object_cache;
mod permissions;
mod remote;
mod render;
mod server;
mod sessions;
mod state;
mod store;
mod value;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::api::{ApiConfig, SecurityConfig};
pub use self::auth::AuthConfig;
pub use self::cache::{CacheConfig, EvictConfig, MIN_UPLOAD_GRACE};
pub use self::dashboard::{DashboardConfig, MAX_PER_PAGE as MAX_DASHBOARD_PER_PAGE};
pub use self::load::{DEFAULT_PATH, config_path, from_str, from_str_env, known_keys, load};
pub use self::login::LoginConfig;
pub use self::permissions::{PermissionsConfig, parse_grant};
pub use self::remote::RemoteConfig;
pub use self::render::Limits;
pub use self::server::ServerConfig;
pub use self::sessions::{SessionStore, SessionsConfig};
pub use self::state::{MirrorsConfig, OriginalsConfig, StateConfig};
pub use self::value::{parse_duration, parse_size};
pub use crate::io::ldap::LdapConfig;
pub use crate::io::metrics::MetricsConfig;
pub use crate::io::object_cache::{Backend as ObjectCacheBackend, ObjectCacheConfig};
pub use crate::io::store::{Secret, StoreConfig};

use self::api::{RawApi, RawSecurity, validate_api, validate_security};
use self::auth::{RawAuth, validate_auth};
use self::cache::{RawCache, RawEvict, validate_cache, validate_evict};
use self::dashboard::{RawDashboard, validate_dashboard};
use self::ldap::{RawLdap, validate_ldap};
use self::login::{RawLogin, validate_login};
use self::object_cache::{RawObjectCache, validate_object_cache};
use self::permissions::{RawPermissions, validate_permissions};
use self::remote::{RawRemote, validate_remote};
use self::render::{RawLimits, RawRender, validate_limits, validate_presets, validate_render};
use self::server::{RawMetrics, RawServer, validate_metrics, validate_server};
use self::sessions::{RawSessions, validate_sessions};
use self::state::{
    RawMirrors, RawOriginals, RawState, validate_mirrors, validate_originals, validate_state,
};
use self::store::{RawStore, validate_store};
use self::value::Problems;
use crate::domain::geometry::Size;
use crate::io::render::RenderOptions;

/// A configuration problem; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has an unusable value (or a required one is missing).
    #[error("{key}: {msg}")]
    Invalid { key: String, msg: String },
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
}

/// Several problems at once, so that `check-config` can report all of them.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages), if any.
    pub path: Option<PathBuf>,
    pub originals: OriginalsConfig,
    pub cache: CacheConfig,
    pub state: StateConfig,
    pub limits: Limits,
    pub render: RenderOptions,
    pub remote: RemoteConfig,
    pub server: ServerConfig,
    pub store: StoreConfig,
    /// Named lists of boxes (`thumb = ["100x100"]`), for `?preset=` and `imgserv-precache`.
    pub presets: BTreeMap<String, Vec<Size>>,
    pub mirrors: MirrorsConfig,
    pub api: ApiConfig,
    pub security: SecurityConfig,
    pub evict: EvictConfig,
    pub metrics: MetricsConfig,
    pub auth: AuthConfig,
    /// `[login]`: how failed logins slow down further attempts.
    pub login: LoginConfig,
    /// `[object_cache]`: where catalog lookups are cached.
    pub object_cache: ObjectCacheConfig,
    /// `[ldap]`: the directory of the `ldap` authentication method, if one is configured.
    pub ldap: Option<LdapConfig>,
    /// `[sessions]`: login sessions.
    pub sessions: SessionsConfig,
    /// `[permissions]`: the creator's privilege and a new root's grants.
    pub permissions: PermissionsConfig,
    /// `[dashboard]`: images per page and the thumbnails' box.
    pub dashboard: DashboardConfig,
}

// ---------------------------------------------------------------------------------------------
// Raw structs: the file as written (each section's in its module).

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    originals: RawOriginals,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    render: RawRender,
    #[serde(default)]
    remote: RawRemote,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    presets: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    mirrors: RawMirrors,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    security: RawSecurity,
    #[serde(default)]
    evict: RawEvict,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    login: RawLogin,
    #[serde(default)]
    object_cache: RawObjectCache,
    ldap: Option<RawLdap>,
    #[serde(default)]
    sessions: RawSessions,
    #[serde(default)]
    permissions: RawPermissions,
    #[serde(default)]
    dashboard: RawDashboard,
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Validates every section and reports all problems at once. A section that reads another's
/// value comes after it: `state` and `store` need `cache.dir`, `render`, `remote`, `presets`
/// and `api` need `[limits]`.
fn validate(raw: Raw, base: &Path) -> Result<Config, ConfigErrors> {
    let mut p = Problems(Vec::new());
    let originals = validate_originals(raw.originals, base, &mut p);
    let cache = validate_cache(raw.cache, base, &mut p);
    let state = validate_state(raw.state, &cache.dir, base, &mut p);
    let limits = validate_limits(&raw.limits, &mut p);
    let render = validate_render(&raw.render, limits.max_pixels, &mut p);
    let remote = validate_remote(raw.remote, limits.max_source_bytes, &mut p);
    let server = validate_server(&raw.server, &mut p);
    let presets = validate_presets(raw.presets, &limits, &mut p);
    let mirrors = validate_mirrors(raw.mirrors, base);
    let store = validate_store(raw.store, &cache.dir, base, &mut p);
    let api = validate_api(raw.api, limits.max_source_bytes, &mut p);
    let security = validate_security(&raw.security, &mut p);
    let evict = validate_evict(&raw.evict, &mut p);
    let metrics = validate_metrics(raw.metrics, &mut p);
    let auth = validate_auth(raw.auth, &mut p);
    let login = validate_login(&raw.login, &mut p);
    let sessions = validate_sessions(
        raw.sessions,
        raw.object_cache.servers(),
        raw.object_cache.timeout(),
        &mut p,
    );
    let object_cache = validate_object_cache(raw.object_cache, &state, &mut p);
    let ldap = validate_ldap(raw.ldap, base, &mut p);
    let permissions = validate_permissions(raw.permissions, &mut p);
    let dashboard = validate_dashboard(&raw.dashboard, &limits, &mut p);

    if !p.0.is_empty() {
        return Err(ConfigErrors(p.0));
    }
    Ok(Config {
        path: None,
        originals,
        cache,
        state,
        limits,
        render,
        remote,
        server,
        presets,
        mirrors,
        store,
        api,
        security,
        evict,
        metrics,
        auth,
        login,
        object_cache,
        ldap,
        sessions,
        permissions,
        dashboard,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::io::render::ColorManagement;

    pub(super) fn dirs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("originals")).unwrap();
        d
    }

    pub(super) fn minimal() -> &'static str {
        "[originals]\nroot = \"originals\"\n[state]\ndir = \"state\"\n[cache]\ndir = \"cache\"\n"
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(
            c.originals.root,
            fs::canonicalize(d.path().join("originals")).unwrap()
        );
        assert_eq!(c.cache.dir, d.path().join("cache"));
        assert_eq!(c.cache.raster.get(), 50);
        assert_eq!(c.cache.max_bytes, 2 << 30);
        assert_eq!(c.cache.url, "/cache");
        assert_eq!(c.limits.max_pixels, 50_000_000);
        assert_eq!(c.render.quality, 85);
        assert_eq!(c.render.color, ColorManagement::Convert);
        assert!(c.remote.allow_hosts.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let d = dirs();
        let text = format!(
            "{}raster = 0\nmax_bytes = \"2 gigs\"\nurl = \"cache url\"\n[limits]\nmax_width = -5\n[render]\nfilter = \"sinc\"\nquality = 101\ncolor_management = \"vivid\"\n[remote]\nallow_hosts = [\"http://x\"]\nttl = \"soon\"\n",
            minimal()
        );
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        for want in [
            "cache.raster: expected an integer from 1 to 10000, got 0",
            "cache.max_bytes: expected a size like \"2 GiB\"",
            "cache.url: expected a path",
            "limits.max_width: expected an integer from 1 to 65535, got -5",
            "render.filter: expected one of",
            "render.quality: expected an integer from 1 to 100, got 101",
            "render.color_management: expected one of convert, keep, off, got \"vivid\"",
            "remote.allow_hosts: expected host names",
            "remote.ttl: expected a duration",
        ] {
            assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
        }
    }
}
