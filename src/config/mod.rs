//! Configuration: the TOML file, `IMGSERV_*` environment overrides and command-line overrides,
//! merged in one place ([`load`]) and validated into typed values ([`Config`]).
//!
//! Raw serde structs mirror the file (`deny_unknown_fields`); `validate` turns them into sizes in
//! bytes, durations, absolute paths and enums, and every message names its key. This module
//! reads the file and the environment but creates no directories and opens no databases.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::geometry::{Raster, Size};
pub use crate::metrics::MetricsConfig;
use crate::render::{ColorManagement, Filter, RenderOptions};
use crate::source::remote::RemoteOptions;
pub use crate::store::{Secret, StoreConfig};

/// Where the configuration is read from when neither `--config` nor `IMGSERV_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/imgserv/imgserv.toml";

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
}

/// The REST interface (`[api]`).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Whether API reads (originals, metadata, search, categories) need no signature; off by
    /// default, since originals keep their EXIF (GPS included). Variants are always public.
    pub public_reads: bool,
    /// Original formats an upload may have, checked by content.
    pub types: Vec<crate::render::Format>,
    /// Largest request body every transport receives; a larger `Content-Length` gets `413`
    /// before the body is read.
    pub max_body_bytes: u64,
}

/// Signatures (`[security]`).
#[derive(Debug, Clone, Copy)]
pub struct SecurityConfig {
    /// Redirector and 404-handler URLs need a `sig` (presets excepted).
    pub require_signed_urls: bool,
    /// Largest difference between a signed request's date and the server's clock.
    pub max_clock_skew: Duration,
}

/// `imgserv-evict` (`[evict]`); every limit is optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvictConfig {
    /// Remove variants not accessed for longer than this.
    pub max_idle: Option<Duration>,
    /// Remove variants created longer ago than this.
    pub max_age: Option<Duration>,
    /// Remove the least recently used variants until all together take at most this.
    pub max_bytes: Option<u64>,
    /// An upload that never committed is cleaned up after this long.
    pub upload_grace: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct MirrorsConfig {
    /// The mirror map file; `None` when no mirrors are configured.
    pub map: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct OriginalsConfig {
    /// Absolute directory that local `src` paths are resolved under.
    pub root: PathBuf,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Absolute directory the variants are written to (served statically by the web server).
    pub dir: PathBuf,
    /// URL prefix under which the web server serves `dir`, without a trailing slash.
    pub url: String,
    pub raster: Raster,
    /// Space limit in bytes for all variants together.
    pub max_bytes: u64,
    /// A miss that takes the total over `max_bytes` evicts down to this many bytes (at most
    /// `max_bytes`), so that the misses after it do not evict.
    pub low_water: u64,
    /// `Cache-Control` of the redirect.
    pub redirect_cache_control: String,
    /// `Cache-Control` of cached files when this program serves them itself.
    pub file_cache_control: String,
    /// Answer with the bytes (`200`) instead of a redirect.
    pub serve_direct: bool,
    /// A hit refreshes an entry's last-access time at most this often.
    pub access_interval: Duration,
    /// The 404 handler writes what it renders where the web server looks next time (`false`:
    /// it renders every request and writes nothing).
    pub variants_on_disk: bool,
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Absolute directory for the SQLite index and local copies of remote originals.
    pub dir: PathBuf,
}

impl StateConfig {
    /// The cache index database.
    pub fn index_path(&self) -> PathBuf {
        self.dir.join("cache.sqlite")
    }

    /// The catalog of uploaded originals, users and keys.
    pub fn catalog_path(&self) -> PathBuf {
        self.dir.join("catalog.sqlite")
    }

    /// The signatures of accepted signed writes, against replays.
    pub fn replay_path(&self) -> PathBuf {
        self.dir.join("replay.sqlite")
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest original, in pixels, read from the header before decoding.
    pub max_pixels: u64,
    /// Largest `width` a request may ask for.
    pub max_width: u32,
    /// Largest `height` a request may ask for.
    pub max_height: u32,
    /// Largest original file, in bytes.
    pub max_source_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub allow_hosts: Vec<String>,
    pub allow_private: bool,
    pub max_redirects: u32,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub ttl: Duration,
    /// Local copies of remote originals together keep within this many bytes.
    pub max_bytes: u64,
}

impl Config {
    /// The options for fetching remote originals; local copies live under the state directory.
    pub fn remote_options(&self) -> RemoteOptions {
        RemoteOptions {
            allow_hosts: self.remote.allow_hosts.clone(),
            allow_private: self.remote.allow_private,
            max_redirects: self.remote.max_redirects,
            connect_timeout: self.remote.connect_timeout,
            timeout: self.remote.timeout,
            max_source_bytes: self.limits.max_source_bytes,
            max_bytes: self.remote.max_bytes,
            access_interval: self.cache.access_interval,
            ttl: self.remote.ttl,
            dir: self.state.dir.join("remote"),
            user_agent: concat!("imgserv/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Requests handled at once by the FastCGI and standalone servers, when set; see
    /// [`ServerConfig::workers`].
    workers: Option<usize>,
    /// Open connections at once.
    pub max_conns: usize,
    /// How long a FastCGI or standalone connection may send nothing while a request (its head,
    /// records or body) is being read before it is closed; also the standalone server's idle
    /// keep-alive time.
    pub read_timeout: Duration,
}

impl ServerConfig {
    /// Requests handled at once by the FastCGI and standalone servers: `workers`, or one per
    /// core. The cores are counted only when asked (reading the cgroup limits costs a CGI
    /// request, which never needs them, ~6 % of a cache hit).
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Raw structs: the file as written.

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enabled: Option<bool>,
    allow: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    public_reads: Option<bool>,
    types: Option<Vec<String>>,
    max_body_bytes: Option<SizeValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    require_signed_urls: Option<bool>,
    max_clock_skew: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvict {
    max_idle: Option<DurationValue>,
    max_age: Option<DurationValue>,
    max_bytes: Option<SizeValue>,
    upload_grace: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirrors {
    map: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOriginals {
    root: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    dir: Option<String>,
    url: Option<String>,
    raster: Option<i64>,
    max_bytes: Option<SizeValue>,
    low_water: Option<SizeValue>,
    cache_control: Option<String>,
    file_cache_control: Option<String>,
    serve_direct: Option<bool>,
    access_interval: Option<DurationValue>,
    variants_on_disk: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_pixels: Option<i64>,
    max_width: Option<i64>,
    max_height: Option<i64>,
    max_source_bytes: Option<SizeValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRender {
    quality: Option<i64>,
    webp_quality: Option<i64>,
    filter: Option<String>,
    png_compression: Option<String>,
    color_management: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    allow_hosts: Option<Vec<String>>,
    allow_private: Option<bool>,
    max_redirects: Option<i64>,
    connect_timeout: Option<DurationValue>,
    timeout: Option<DurationValue>,
    ttl: Option<DurationValue>,
    max_bytes: Option<SizeValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    workers: Option<i64>,
    max_conns: Option<i64>,
    read_timeout: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(rename = "type")]
    kind: Option<String>,
    dir: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    path_style: Option<bool>,
    access_key: Option<String>,
    secret_key: Option<Secret>,
    prefix: Option<String>,
}

/// A size: an integer number of bytes or a string like `"2 GiB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(i64),
    Text(String),
}

/// A duration: an integer number of seconds or a string like `"90s"`, `"5m"`, `"1h"`, `"7d"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(i64),
    Text(String),
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Which file to read: `--config` wins, then `IMGSERV_CONFIG`, then [`DEFAULT_PATH`].
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    choose_config_path(flag, env::var_os("IMGSERV_CONFIG"))
}

/// [`config_path`] with the environment's `IMGSERV_CONFIG` given (an empty one is unset).
fn choose_config_path(flag: Option<&Path>, env: Option<std::ffi::OsString>) -> PathBuf {
    match (flag, env) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

/// Loads the configuration: defaults < file < `IMGSERV_*` environment < `overrides`.
///
/// `overrides` are `("section.key", "value")` pairs from command-line flags; values and
/// environment values are read as TOML values when they parse as one (`5`, `true`,
/// `["a", "b"]`) and as strings otherwise.
pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Config, ConfigErrors> {
    let text = fs::read_to_string(path).map_err(|source| {
        ConfigErrors(vec![ConfigError::Read {
            path: path.display().to_string(),
            source,
        }])
    })?;
    // vars_os: a CGI environment may hold any bytes (headers become HTTP_*); only our own
    // IMGSERV_* names matter here, and those must be UTF-8.
    let vars: Vec<(String, String)> = env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let env_overrides = env_overrides(vars.iter().cloned());
    let base = path.parent().unwrap_or(Path::new("/"));
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let mut config = from_str_full(
        &text,
        &path.display().to_string(),
        base,
        &env_overrides,
        overrides,
        &AwsEnv::from_vars(&vars),
    )?;
    config.path = Some(path.to_path_buf());
    Ok(config)
}

/// Parses and validates configuration text; relative paths are taken from `base`.
pub fn from_str(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    from_str_with(text, "config", base, &[], &[])
}

/// Like [`from_str`], with `vars` as the process environment that [`load`] would read:
/// `IMGSERV_*` overrides and the `AWS_*` fallbacks of `[store]`. Tests pass their own.
pub fn from_str_env(
    text: &str,
    base: &Path,
    vars: &[(String, String)],
) -> Result<Config, ConfigErrors> {
    let env_overrides = env_overrides(vars.iter().cloned());
    from_str_full(
        text,
        "config",
        base,
        &env_overrides,
        &[],
        &AwsEnv::from_vars(vars),
    )
}

/// The standard AWS variables `[store]` falls back on when the file and `IMGSERV_STORE_*` leave
/// a key unset (or empty): below the file in precedence, above the defaults.
#[derive(Clone, Default)]
struct AwsEnv {
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    region: Option<String>,
}

impl AwsEnv {
    fn from_vars(vars: &[(String, String)]) -> AwsEnv {
        let get = |name: &str| {
            vars.iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        AwsEnv {
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY").map(Secret::new),
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
        }
    }

    /// Fills `store.access_key`, `store.secret_key` and `store.region` where they are unset.
    fn fill(&self, store: &mut RawStore) {
        fn unset<T: AsRef<str>>(value: &Option<T>) -> bool {
            value.as_ref().is_none_or(|v| v.as_ref().is_empty())
        }
        if unset(&store.access_key) {
            store.access_key.clone_from(&self.access_key_id);
        }
        if store
            .secret_key
            .as_ref()
            .is_none_or(|s| s.expose().is_empty())
        {
            store.secret_key.clone_from(&self.secret_access_key);
        }
        if unset(&store.region) {
            store.region.clone_from(&self.region);
        }
    }
}

fn from_str_with(
    text: &str,
    origin: &str,
    base: &Path,
    env_overrides: &[(String, String)],
    overrides: &[(String, String)],
) -> Result<Config, ConfigErrors> {
    from_str_full(
        text,
        origin,
        base,
        env_overrides,
        overrides,
        &AwsEnv::default(),
    )
}

fn from_str_full(
    text: &str,
    origin: &str,
    base: &Path,
    env_overrides: &[(String, String)],
    overrides: &[(String, String)],
    aws: &AwsEnv,
) -> Result<Config, ConfigErrors> {
    let parse_err = |msg: String| {
        ConfigErrors(vec![ConfigError::Parse {
            path: origin.to_string(),
            msg,
        }])
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
    // Deserialising the text itself first gives messages with line and column for the file.
    toml::from_str::<Raw>(text).map_err(|e| parse_err(e.to_string()))?;
    let mut problems = Vec::new();
    for (key, value) in env_overrides.iter().chain(overrides) {
        if let Err(msg) = set_dotted(&mut table, key, value) {
            problems.push(ConfigError::Invalid {
                key: key.clone(),
                msg,
            });
        }
    }
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    let mut raw: Raw = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            parse_err(format!("in an IMGSERV_* variable or flag: {}", e.message()))
        })?;
    aws.fill(&mut raw.store);
    validate(raw, base)
}

/// `IMGSERV_CACHE_MAX_BYTES=1GiB` → `("cache.max_bytes", "1GiB")`. `IMGSERV_CONFIG` and
/// `IMGSERV_LOG` are not configuration keys and are skipped.
fn env_overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("IMGSERV_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        for section in known_keys().into_keys() {
            if let Some(key) = rest.strip_prefix(section).and_then(|k| k.strip_prefix('_')) {
                out.push((format!("{section}.{key}"), value.clone()));
            }
        }
    }
    out.sort();
    out
}

fn set_dotted(table: &mut toml::Table, key: &str, value: &str) -> Result<(), String> {
    let (section, name) = key
        .split_once('.')
        .ok_or_else(|| "expected section.key".to_string())?;
    let known = known_keys()
        .get(section)
        .is_some_and(|keys| keys.contains(&name) || (section == "presets" && !name.is_empty()));
    if !known {
        return Err("no such configuration key".into());
    }
    let value = parse_override_value(value);
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => {
            t.insert(name.to_string(), value);
            Ok(())
        }
        _ => Err(format!("{section} is not a table")),
    }
}

fn parse_override_value(value: &str) -> toml::Value {
    let doc = format!("v = {value}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Collects problems so that all of them are reported at once.
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, key: &str, msg: impl Into<String>) {
        self.0.push(ConfigError::Invalid {
            key: key.to_string(),
            msg: msg.into(),
        });
    }

    /// `value` as an integer within `min..=max`, or `default` when absent.
    fn int<T: TryFrom<i64> + Copy>(
        &mut self,
        key: &str,
        value: Option<i64>,
        min: i64,
        max: i64,
        default: T,
    ) -> T {
        match value {
            None => default,
            Some(v) if v < min || v > max => {
                self.add(
                    key,
                    format!("expected an integer from {min} to {max}, got {v}"),
                );
                default
            }
            Some(v) => T::try_from(v).unwrap_or(default),
        }
    }

    fn size(&mut self, key: &str, value: Option<&SizeValue>, default: u64) -> u64 {
        let parsed = match value {
            None => return default,
            Some(SizeValue::Bytes(n)) => u64::try_from(*n).map_err(|_| n.to_string()),
            Some(SizeValue::Text(t)) => parse_size(t).ok_or_else(|| format!("{t:?}")),
        };
        parsed.unwrap_or_else(|got| {
            self.add(
                key,
                format!("expected a size like \"2 GiB\" or a number of bytes, got {got}"),
            );
            default
        })
    }

    fn duration(
        &mut self,
        key: &str,
        value: Option<&DurationValue>,
        default: Duration,
    ) -> Duration {
        let parsed = match value {
            None => return default,
            Some(DurationValue::Seconds(n)) => u64::try_from(*n)
                .map(Duration::from_secs)
                .map_err(|_| n.to_string()),
            Some(DurationValue::Text(t)) => parse_duration(t).ok_or_else(|| format!("{t:?}")),
        };
        parsed.unwrap_or_else(|got| {
            self.add(
                key,
                format!("expected a duration like \"90s\", \"5m\", \"1h\" or \"7d\", got {got}"),
            );
            default
        })
    }

    fn dir(&mut self, key: &str, value: Option<&str>, default: &str, base: &Path) -> PathBuf {
        let text = value.unwrap_or(default);
        if text.is_empty() {
            self.add(key, "expected a directory, got an empty string");
        }
        let path = Path::new(text);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        };
        match fs::metadata(&path) {
            Ok(m) if !m.is_dir() => self.add(key, format!("{} is not a directory", path.display())),
            _ => {}
        }
        // Canonical when it exists, so that containment checks compare real paths.
        fs::canonicalize(&path).unwrap_or(path)
    }
}

fn validate(raw: Raw, base: &Path) -> Result<Config, ConfigErrors> {
    let mut p = Problems(Vec::new());

    let root = p.dir(
        "originals.root",
        raw.originals.root.as_deref(),
        "/srv/imgserv/originals",
        base,
    );
    if !root.is_dir()
        && !p
            .0
            .iter()
            .any(|e| matches!(e, ConfigError::Invalid { key, .. } if key == "originals.root"))
    {
        p.add(
            "originals.root",
            format!("{} does not exist", root.display()),
        );
    }

    let cache_dir = p.dir(
        "cache.dir",
        raw.cache.dir.as_deref(),
        "/var/cache/imgserv",
        base,
    );
    let url = raw.cache.url.unwrap_or_else(|| "/cache".into());
    let url_ok =
        (url.starts_with('/') || url.starts_with("http://") || url.starts_with("https://"))
            && !url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
    if !url_ok {
        p.add(
            "cache.url",
            format!("expected a path like \"/cache\" or an http(s) URL, got {url:?}"),
        );
    }
    let url = url.trim_end_matches('/').to_string();
    let raster = p.int::<u32>("cache.raster", raw.cache.raster, 1, 10_000, 50);
    let raster = Raster::new(raster).unwrap_or_default();
    let max_bytes = p.size("cache.max_bytes", raw.cache.max_bytes.as_ref(), 2 << 30);
    if max_bytes == 0 {
        p.add("cache.max_bytes", "must be more than 0");
    }
    let low_water = low_water(&mut p, raw.cache.low_water.as_ref(), max_bytes);
    let access_interval = p.duration(
        "cache.access_interval",
        raw.cache.access_interval.as_ref(),
        Duration::from_secs(60),
    );

    let state_dir = p.dir(
        "state.dir",
        raw.state.dir.as_deref(),
        "/var/lib/imgserv",
        base,
    );
    if state_dir.starts_with(&cache_dir) {
        p.add(
            "state.dir",
            "must not be inside cache.dir: the web server would publish the index",
        );
    }

    let max_pixels = p.int::<u64>(
        "limits.max_pixels",
        raw.limits.max_pixels,
        1,
        1 << 40,
        50_000_000,
    );
    let max_width = p.int::<u32>("limits.max_width", raw.limits.max_width, 1, 65_535, 4096);
    let max_height = p.int::<u32>("limits.max_height", raw.limits.max_height, 1, 65_535, 4096);
    let max_source_bytes = p.size(
        "limits.max_source_bytes",
        raw.limits.max_source_bytes.as_ref(),
        64 << 20,
    );

    let quality = p.int::<u8>("render.quality", raw.render.quality, 1, 100, 85);
    let webp_quality = p.int::<u8>("render.webp_quality", raw.render.webp_quality, 1, 100, 80);
    let filter = match raw.render.filter.as_deref() {
        None => Filter::default(),
        Some(name) => Filter::from_name(name).unwrap_or_else(|| {
            p.add(
                "render.filter",
                format!("expected one of {}, got {name:?}", Filter::NAMES.join(", ")),
            );
            Filter::default()
        }),
    };
    let color = match raw.render.color_management.as_deref() {
        None => ColorManagement::default(),
        Some(name) => ColorManagement::from_name(name).unwrap_or_else(|| {
            p.add(
                "render.color_management",
                format!(
                    "expected one of {}, got {name:?}",
                    ColorManagement::NAMES.join(", ")
                ),
            );
            ColorManagement::default()
        }),
    };
    let png_fast = match raw.render.png_compression.as_deref() {
        None | Some("fast") => true,
        Some("best") => false,
        Some(other) => {
            p.add(
                "render.png_compression",
                format!("expected \"fast\" or \"best\", got {other:?}"),
            );
            true
        }
    };

    let allow_hosts = raw.remote.allow_hosts.unwrap_or_default();
    for host in &allow_hosts {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        // An IPv6 address is an entry too, bare or in brackets as in a URL ("[2001:db8::5]").
        let ipv6 = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
        if !ipv6 && (bare.is_empty() || bare.contains(['/', ':', '*', ' ', '@'])) {
            p.add("remote.allow_hosts", format!("expected host names like \"images.example.com\" or \"*.example.com\", got {host:?}"));
        }
    }
    let remote = RemoteConfig {
        allow_hosts: allow_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        allow_private: raw.remote.allow_private.unwrap_or(false),
        max_redirects: p.int::<u32>("remote.max_redirects", raw.remote.max_redirects, 0, 20, 3),
        connect_timeout: p.duration(
            "remote.connect_timeout",
            raw.remote.connect_timeout.as_ref(),
            Duration::from_secs(5),
        ),
        timeout: p.duration(
            "remote.timeout",
            raw.remote.timeout.as_ref(),
            Duration::from_secs(20),
        ),
        ttl: p.duration(
            "remote.ttl",
            raw.remote.ttl.as_ref(),
            Duration::from_secs(3600),
        ),
        // One copy can be as large as limits.max_source_bytes: the budget holds at least one.
        max_bytes: p.size(
            "remote.max_bytes",
            raw.remote.max_bytes.as_ref(),
            (1 << 30).max(max_source_bytes),
        ),
    };
    if remote.max_bytes < max_source_bytes {
        p.add(
            "remote.max_bytes",
            format!(
                "must be at least limits.max_source_bytes ({max_source_bytes} bytes): the largest copy must fit"
            ),
        );
    }

    let server = ServerConfig {
        workers: raw
            .server
            .workers
            .map(|n| p.int::<usize>("server.workers", Some(n), 1, 1024, 1)),
        max_conns: p.int::<usize>("server.max_conns", raw.server.max_conns, 1, 65_536, 256),
        read_timeout: p.duration(
            "server.read_timeout",
            raw.server.read_timeout.as_ref(),
            Duration::from_secs(30),
        ),
    };
    if server.read_timeout.is_zero() {
        p.add(
            "server.read_timeout",
            "must be at least one second: zero would never time out",
        );
    }

    let mut presets = BTreeMap::new();
    for (name, boxes) in raw.presets {
        let key = format!("presets.{name}");
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            p.add(
                &key,
                "preset names are lower-case letters, digits, '_' and '-'",
            );
        }
        if boxes.is_empty() {
            p.add(&key, "expected at least one box like \"800x600\"");
        }
        let mut sizes = Vec::new();
        for b in &boxes {
            match b.parse::<Size>() {
                Ok(s) if s.width <= max_width && s.height <= max_height => sizes.push(s),
                Ok(s) => p.add(
                    &key,
                    format!("{s} is larger than limits.max_width x limits.max_height"),
                ),
                Err(e) => p.add(&key, e),
            }
        }
        presets.insert(name, sizes);
    }
    let mirror_map = raw.mirrors.map.filter(|m| !m.is_empty()).map(|m| {
        let path = Path::new(&m);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }
    });
    let store = validate_store(raw.store, &cache_dir, base, &mut p);
    let api = validate_api(raw.api, max_source_bytes, &mut p);
    let security = SecurityConfig {
        require_signed_urls: raw.security.require_signed_urls.unwrap_or(false),
        max_clock_skew: p.duration(
            "security.max_clock_skew",
            raw.security.max_clock_skew.as_ref(),
            Duration::from_secs(300),
        ),
    };
    let evict = validate_evict(&raw.evict, &mut p);
    let metrics = MetricsConfig {
        enabled: raw.metrics.enabled.unwrap_or(false),
        allow: raw
            .metrics
            .allow
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.parse().map_err(|e| p.add("metrics.allow", e)).ok())
            .collect(),
    };

    if !p.0.is_empty() {
        return Err(ConfigErrors(p.0));
    }
    Ok(Config {
        path: None,
        originals: OriginalsConfig { root },
        cache: CacheConfig {
            dir: cache_dir,
            url,
            raster,
            max_bytes,
            low_water,
            redirect_cache_control: raw
                .cache
                .cache_control
                .unwrap_or_else(|| "public, max-age=3600".into()),
            file_cache_control: raw
                .cache
                .file_cache_control
                .unwrap_or_else(|| "public, max-age=31536000, immutable".into()),
            serve_direct: raw.cache.serve_direct.unwrap_or(false),
            access_interval,
            variants_on_disk: raw.cache.variants_on_disk.unwrap_or(true),
        },
        state: StateConfig { dir: state_dir },
        limits: Limits {
            max_pixels,
            max_width,
            max_height,
            max_source_bytes,
        },
        render: RenderOptions {
            quality,
            webp_quality,
            filter,
            png_fast,
            max_pixels,
            color,
        },
        remote,
        server,
        presets,
        mirrors: MirrorsConfig { map: mirror_map },
        store,
        api,
        security,
        evict,
        metrics,
    })
}

/// Room for the multipart form around an upload of `[limits] max_source_bytes`.
const FORM_OVERHEAD: u64 = 1 << 20;

fn validate_api(raw: RawApi, max_source_bytes: u64, p: &mut Problems) -> ApiConfig {
    use crate::render::Format;
    let names = raw
        .types
        .unwrap_or_else(|| ["jpeg", "png", "gif", "webp"].map(String::from).to_vec());
    let mut types = Vec::new();
    for name in &names {
        let format = match name.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Format::Jpeg,
            "png" => Format::Png,
            "gif" => Format::Gif,
            "webp" => Format::Webp,
            _ => {
                p.add(
                    "api.types",
                    format!("expected some of \"jpeg\", \"png\", \"gif\", \"webp\", got {name:?}"),
                );
                continue;
            }
        };
        if !types.contains(&format) {
            types.push(format);
        }
    }
    if names.is_empty() {
        p.add("api.types", "expected at least one type");
    }
    let max_body_bytes = p.size(
        "api.max_body_bytes",
        raw.max_body_bytes.as_ref(),
        max_source_bytes.saturating_add(FORM_OVERHEAD),
    );
    if max_body_bytes == 0 {
        p.add("api.max_body_bytes", "expected at least 1 byte");
    }
    ApiConfig {
        public_reads: raw.public_reads.unwrap_or(false),
        types,
        max_body_bytes,
    }
}

fn validate_evict(raw: &RawEvict, p: &mut Problems) -> EvictConfig {
    // An empty string (as in the sample) leaves a limit off.
    let given_duration = |v: &Option<DurationValue>| {
        v.as_ref()
            .filter(|v| !matches!(v, DurationValue::Text(t) if t.trim().is_empty()))
            .cloned()
    };
    let max_idle = given_duration(&raw.max_idle)
        .map(|v| p.duration("evict.max_idle", Some(&v), Duration::ZERO));
    let max_age =
        given_duration(&raw.max_age).map(|v| p.duration("evict.max_age", Some(&v), Duration::ZERO));
    let max_bytes = raw
        .max_bytes
        .as_ref()
        .filter(|v| !matches!(v, SizeValue::Text(t) if t.trim().is_empty()))
        .map(|v| p.size("evict.max_bytes", Some(v), 0));
    let upload_grace = p.duration(
        "evict.upload_grace",
        raw.upload_grace.as_ref(),
        Duration::from_secs(3600),
    );
    if upload_grace < MIN_UPLOAD_GRACE {
        p.add(
            "evict.upload_grace",
            format!(
                "must be at least {}s: a younger upload may still be placing its original",
                MIN_UPLOAD_GRACE.as_secs()
            ),
        );
    }
    EvictConfig {
        max_idle,
        max_age,
        max_bytes,
        upload_grace,
    }
}

/// The least `[evict] upload_grace`. An upload places its original within about a minute (the
/// S3 store's request timeout, then the catalog's busy timeout), and until then its intent must
/// count as in flight: a removal of the same bytes that ran meanwhile would take the object
/// the upload's row is about to point at.
pub const MIN_UPLOAD_GRACE: Duration = Duration::from_secs(600);

/// `[store]`: the filesystem store by default; the S3 keys are read only with `type = "s3"`
/// (the sample file sets them all, empty).
/// `[cache] low_water`: a percentage of `max_bytes` (`"90%"`, the default) or a size, not
/// above `max_bytes`.
fn low_water(p: &mut Problems, value: Option<&SizeValue>, max_bytes: u64) -> u64 {
    const KEY: &str = "cache.low_water";
    let percent = |pc: u64| u64::try_from(u128::from(max_bytes) * u128::from(pc) / 100);
    let bytes = match value {
        None => return crate::cache::default_low_water(max_bytes),
        Some(SizeValue::Text(t)) if t.trim_end().ends_with('%') => {
            match t.trim_end().trim_end_matches('%').trim().parse::<u64>() {
                Ok(pc) if pc <= 100 => percent(pc).unwrap_or(max_bytes),
                _ => {
                    p.add(
                        KEY,
                        format!("expected a percentage from 0% to 100%, got {t:?}"),
                    );
                    return crate::cache::default_low_water(max_bytes);
                }
            }
        }
        Some(v) => p.size(KEY, Some(v), crate::cache::default_low_water(max_bytes)),
    };
    if bytes > max_bytes {
        p.add(KEY, "must not be more than cache.max_bytes");
    }
    bytes
}

fn validate_store(raw: RawStore, cache_dir: &Path, base: &Path, p: &mut Problems) -> StoreConfig {
    let given = |v: Option<String>| v.filter(|s| !s.is_empty());
    match raw.kind.as_deref().unwrap_or("fs") {
        "fs" => {
            let dir = p.dir(
                "store.dir",
                raw.dir.as_deref(),
                "/var/lib/imgserv/originals",
                base,
            );
            if dir.starts_with(cache_dir) {
                p.add(
                    "store.dir",
                    "must not be inside cache.dir: the web server would publish the originals",
                );
            }
            StoreConfig::Fs { dir }
        }
        "s3" => {
            let required = |p: &mut Problems, key: &str, value: Option<String>, extra: &str| {
                value.unwrap_or_else(|| {
                    p.add(key, format!("required when store.type = \"s3\"{extra}"));
                    String::new()
                })
            };
            let endpoint = required(
                p,
                "store.endpoint",
                given(raw.endpoint),
                " (an http(s) URL like \"https://s3.eu-west-1.amazonaws.com\")",
            );
            let endpoint = endpoint.trim_end_matches('/').to_string();
            let bucket = required(p, "store.bucket", given(raw.bucket), "");
            if bucket.contains(|c: char| c == '/' || c.is_whitespace() || c.is_control()) {
                p.add(
                    "store.bucket",
                    format!("expected a bucket name, got {bucket:?}"),
                );
            }
            let path_style = raw.path_style.unwrap_or(true);
            if !endpoint.is_empty()
                && !bucket.is_empty()
                && let Err(msg) = crate::store::s3::check_bucket(&endpoint, &bucket, path_style)
            {
                p.add("store.endpoint", msg);
            }
            let access_key = required(
                p,
                "store.access_key",
                given(raw.access_key),
                " (or set IMGSERV_STORE_ACCESS_KEY or AWS_ACCESS_KEY_ID)",
            );
            let secret_key = match raw.secret_key.filter(|s| !s.expose().is_empty()) {
                Some(secret) => secret,
                None => {
                    p.add(
                        "store.secret_key",
                        "required when store.type = \"s3\" (or set IMGSERV_STORE_SECRET_KEY or AWS_SECRET_ACCESS_KEY)",
                    );
                    Secret::default()
                }
            };
            let mut prefix = raw.prefix.unwrap_or_default();
            if prefix.starts_with('/') {
                p.add(
                    "store.prefix",
                    format!("must not start with \"/\", got {prefix:?}"),
                );
            }
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            StoreConfig::S3 {
                endpoint,
                region: given(raw.region).unwrap_or_else(|| "us-east-1".into()),
                bucket,
                path_style,
                access_key,
                secret_key,
                prefix,
            }
        }
        other => {
            p.add(
                "store.type",
                format!("expected \"fs\" or \"s3\", got {other:?}"),
            );
            StoreConfig::Fs {
                dir: PathBuf::new(),
            }
        }
    }
}

/// `"2 GiB"`, `"500MB"`, `"1.5 GiB"`, `"4096"`, `"10k"` → bytes. Binary (`KiB`) and decimal (`KB`)
/// units; a bare `K`/`M`/`G`/`T` is binary, as in most Unix tools.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    let bytes = num * mult as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `"90s"`, `"5m"`, `"1h"`, `"7d"`, `"2w"`, `"30"` (seconds) → a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// Every `section.key` the file may contain, for docs and the sample-config test.
pub fn known_keys() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("originals", &["root"][..]),
        (
            "cache",
            &[
                "dir",
                "url",
                "raster",
                "max_bytes",
                "low_water",
                "cache_control",
                "file_cache_control",
                "serve_direct",
                "access_interval",
                "variants_on_disk",
            ][..],
        ),
        ("state", &["dir"][..]),
        (
            "limits",
            &["max_pixels", "max_width", "max_height", "max_source_bytes"][..],
        ),
        (
            "render",
            &[
                "quality",
                "webp_quality",
                "filter",
                "png_compression",
                "color_management",
            ][..],
        ),
        (
            "remote",
            &[
                "allow_hosts",
                "allow_private",
                "max_redirects",
                "connect_timeout",
                "timeout",
                "ttl",
                "max_bytes",
            ][..],
        ),
        ("server", &["workers", "max_conns", "read_timeout"][..]),
        ("mirrors", &["map"][..]),
        ("api", &["public_reads", "types", "max_body_bytes"][..]),
        ("security", &["require_signed_urls", "max_clock_skew"][..]),
        (
            "evict",
            &["max_idle", "max_age", "max_bytes", "upload_grace"][..],
        ),
        ("metrics", &["enabled", "allow"][..]),
        // Free-form: each key names a preset.
        ("presets", &[][..]),
        (
            "store",
            &[
                "type",
                "dir",
                "endpoint",
                "region",
                "bucket",
                "path_style",
                "access_key",
                "secret_key",
                "prefix",
            ][..],
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("originals")).unwrap();
        d
    }

    fn minimal() -> &'static str {
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
    fn server_read_timeout_defaults_to_30s_and_refuses_zero_or_garbage() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(c.server.read_timeout, Duration::from_secs(30));
        let text = format!("{}[server]\nread_timeout = \"5s\"\n", minimal());
        let c = from_str(&text, d.path()).unwrap();
        assert_eq!(c.server.read_timeout, Duration::from_secs(5));
        for bad in ["\"0s\"", "0", "\"soon\""] {
            let text = format!("{}[server]\nread_timeout = {bad}\n", minimal());
            let err = from_str(&text, d.path()).unwrap_err().to_string();
            assert!(err.contains("server.read_timeout"), "{bad}: {err}");
        }
    }

    #[test]
    fn allow_hosts_take_names_wildcards_and_ip_addresses() {
        let d = dirs();
        let ok = format!(
            "{}[remote]\nallow_hosts = [\"img.example.org\", \"*.cdn.example.net\", \"192.0.2.7\", \"2001:db8::5\", \"[2001:db8::6]\"]\n",
            minimal()
        );
        assert_eq!(from_str(&ok, d.path()).unwrap().remote.allow_hosts.len(), 5);
        for bad in [
            "[2001:db8::5",
            "2001:db8::5]",
            "*.2001:db8::5",
            "host:80",
            "a b",
        ] {
            let text = format!("{}[remote]\nallow_hosts = [{bad:?}]\n", minimal());
            let err = from_str(&text, d.path()).unwrap_err().to_string();
            assert!(err.contains("remote.allow_hosts"), "{bad}: {err}");
        }
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

    #[test]
    fn metrics_are_off_by_default_and_allow_names_bad_networks() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert!(!c.metrics.enabled && c.metrics.allow.is_empty());
        let text = format!(
            "{}[metrics]\nenabled = true\nallow = [\"127.0.0.1\", \"10.0.0.0/8\"]\n",
            minimal()
        );
        let c = from_str(&text, d.path()).unwrap();
        assert!(c.metrics.enabled);
        assert_eq!(c.metrics.allow.len(), 2);
        let text = format!("{}[metrics]\nallow = [\"10.0.0.0/33\"]\n", minimal());
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("metrics.allow: expected an address"),
            "{errs}"
        );
    }

    #[test]
    fn remote_copies_have_a_budget_that_holds_the_largest_copy() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(c.remote.max_bytes, 1 << 30);
        assert_eq!(c.remote_options().max_bytes, 1 << 30);
        assert_eq!(
            c.remote_options().max_source_bytes,
            c.limits.max_source_bytes
        );
        let big = format!("{}[limits]\nmax_source_bytes = \"2 GiB\"\n", minimal());
        let c = from_str(&big, d.path()).unwrap();
        assert_eq!(c.remote.max_bytes, 2 << 30, "the default grows to one copy");
        let c = from_str(
            &format!("{}[remote]\nmax_bytes = \"100 MiB\"\n", minimal()),
            d.path(),
        );
        assert_eq!(c.unwrap().remote.max_bytes, 100 << 20);
        let errs = from_str(
            &format!("{}[remote]\nmax_bytes = \"1 MiB\"\n", minimal()),
            d.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            errs.contains("remote.max_bytes: must be at least limits.max_source_bytes"),
            "{errs}"
        );
    }

    #[test]
    fn an_upload_grace_shorter_than_an_upload_is_refused() {
        let d = dirs();
        let text = format!("{}[evict]\nupload_grace = \"0s\"\n", minimal());
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("evict.upload_grace: must be at least 600s"),
            "{errs}"
        );
        let text = format!("{}[evict]\nupload_grace = \"10m\"\n", minimal());
        let c = from_str(&text, d.path()).unwrap();
        assert_eq!(c.evict.upload_grace, MIN_UPLOAD_GRACE);
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(c.evict.upload_grace, Duration::from_secs(3600));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let d = dirs();
        let errs = from_str(&format!("{}max_byte = 5\n", minimal()), d.path())
            .unwrap_err()
            .to_string();
        assert!(errs.contains("max_byte"), "{errs}");
        let errs = from_str("[cache]\nserve_direct = \"yes\"\n", d.path())
            .unwrap_err()
            .to_string();
        assert!(
            errs.contains("serve_direct") || errs.contains("bool"),
            "{errs}"
        );
    }

    #[test]
    fn missing_originals_root_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let errs = from_str(minimal(), d.path()).unwrap_err().to_string();
        assert!(errs.starts_with("originals.root: "), "{errs}");
        assert!(errs.contains("does not exist"), "{errs}");
    }

    #[test]
    fn low_water_is_a_share_or_a_size_within_max_bytes() {
        let d = dirs();
        let low = |extra: &str| {
            from_str(&format!("{}max_bytes = 1000\n{extra}", minimal()), d.path())
                .map(|c| c.cache.low_water)
                .map_err(|e| e.to_string())
        };
        assert_eq!(low(""), Ok(900), "90 % by default");
        assert_eq!(low("low_water = \"75%\"\n"), Ok(750));
        assert_eq!(low("low_water = \"100 %\"\n"), Ok(1000));
        assert_eq!(low("low_water = 500\n"), Ok(500));
        assert_eq!(low("low_water = \"0.5 KiB\"\n"), Ok(512));
        for (bad, msg) in [
            (
                "1001",
                "cache.low_water: must not be more than cache.max_bytes",
            ),
            ("\"120%\"", "cache.low_water: expected a percentage"),
            ("\"half\"", "cache.low_water: expected a size"),
        ] {
            let errs = low(&format!("low_water = {bad}\n")).unwrap_err();
            assert!(errs.contains(msg), "{bad}: {errs}");
        }
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(
            c.cache.low_water,
            (2u64 << 30) / 10 * 9 + (2u64 << 30) % 10 * 9 / 10
        );
    }

    #[test]
    fn state_inside_cache_is_refused() {
        let d = dirs();
        let text =
            "[originals]\nroot = \"originals\"\n[cache]\ndir = \"c\"\n[state]\ndir = \"c/state\"\n";
        let errs = from_str(text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("state.dir: must not be inside cache.dir"),
            "{errs}"
        );
    }

    #[test]
    fn precedence_file_env_flags() {
        let d = dirs();
        let path = d.path().join("imgserv.toml");
        fs::write(
            &path,
            format!("{}raster = 10\nmax_bytes = \"1 MiB\"\n", minimal()),
        )
        .unwrap();
        let env = env_overrides(
            [
                ("IMGSERV_CACHE_RASTER".to_string(), "20".to_string()),
                ("IMGSERV_CACHE_MAX_BYTES".to_string(), "2 MiB".to_string()),
                ("IMGSERV_CONFIG".to_string(), "/x".to_string()),
                ("OTHER".to_string(), "1".to_string()),
            ]
            .into_iter(),
        );
        assert_eq!(env.len(), 2);
        let flags = vec![("cache.raster".to_string(), "30".to_string())];
        let text = fs::read_to_string(&path).unwrap();
        let c = from_str_with(&text, "t", d.path(), &env, &flags).unwrap();
        assert_eq!(c.cache.raster.get(), 30, "flags beat env");
        assert_eq!(c.cache.max_bytes, 2 << 20, "env beats file");
        let c = from_str_with(&text, "t", d.path(), &[], &[]).unwrap();
        assert_eq!(c.cache.raster.get(), 10, "file beats defaults");
    }

    #[test]
    fn config_path_precedence() {
        let flag = Some(Path::new("/a.toml"));
        let env = || Some(std::ffi::OsString::from("/b.toml"));
        assert_eq!(
            choose_config_path(flag, env()),
            PathBuf::from("/a.toml"),
            "flag first"
        );
        assert_eq!(
            choose_config_path(None, env()),
            PathBuf::from("/b.toml"),
            "then env"
        );
        let empty = Some(std::ffi::OsString::new());
        assert_eq!(choose_config_path(None, empty), PathBuf::from(DEFAULT_PATH));
        assert_eq!(choose_config_path(None, None), PathBuf::from(DEFAULT_PATH));
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn store_defaults_to_fs_and_refuses_the_web_root() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Fs {
                dir: PathBuf::from("/var/lib/imgserv/originals")
            }
        );
        let text = format!("{}[store]\ndir = \"cache/originals\"\n", minimal());
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("store.dir: must not be inside cache.dir"),
            "{errs}"
        );
    }

    #[test]
    fn store_problems_name_their_keys() {
        let d = dirs();
        for (store, want) in [
            (
                "type = \"gcs\"",
                "store.type: expected \"fs\" or \"s3\", got \"gcs\"",
            ),
            (
                "type = \"s3\"",
                "store.endpoint: required when store.type = \"s3\"",
            ),
            (
                "type = \"s3\"",
                "store.bucket: required when store.type = \"s3\"",
            ),
            ("type = \"s3\"", "store.access_key: required"),
            ("type = \"s3\"", "store.secret_key: required"),
            (
                "type = \"s3\"\nendpoint = \"ftp://x\"\nbucket = \"b\"",
                "store.endpoint: the endpoint must be http:// or https://",
            ),
            (
                "type = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"b\"\npath_style = false",
                "store.endpoint: no virtual-host bucket URL",
            ),
            (
                "type = \"s3\"\nprefix = \"/x\"",
                "store.prefix: must not start with",
            ),
            ("typ = \"s3\"", "typ"),
        ] {
            let text = format!("{}[store]\n{store}\n", minimal());
            let errs = from_str(&text, d.path()).unwrap_err().to_string();
            assert!(errs.contains(want), "{store}: missing {want:?} in:\n{errs}");
        }
    }

    #[test]
    fn store_s3_credentials_come_from_the_file_then_imgserv_then_aws_variables() {
        let d = dirs();
        let s3 = "[store]\ntype = \"s3\"\nendpoint = \"http://127.0.0.1:9000/\"\nbucket = \"originals\"\nprefix = \"img\"\n";
        let aws = vars(&[
            ("AWS_ACCESS_KEY_ID", "aws-key"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_REGION", "eu-west-3"),
        ]);
        let c = from_str_env(&format!("{}{s3}", minimal()), d.path(), &aws).unwrap();
        let StoreConfig::S3 {
            endpoint,
            region,
            bucket,
            path_style,
            access_key,
            secret_key,
            prefix,
        } = &c.store
        else {
            panic!("{:?}", c.store)
        };
        assert_eq!(endpoint, "http://127.0.0.1:9000");
        assert_eq!(bucket, "originals");
        assert!(path_style);
        assert_eq!(prefix, "img/");
        assert_eq!(
            (access_key.as_str(), secret_key.expose(), region.as_str()),
            ("aws-key", "aws-secret", "eu-west-3")
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("aws-secret") && shown.contains("Secret(***)"),
            "{shown}"
        );

        // The file beats the AWS variables, IMGSERV_* beats the file.
        let text = format!(
            "{}{s3}access_key = \"file-key\"\nsecret_key = \"file-secret\"\nregion = \"r1\"\n",
            minimal()
        );
        let c = from_str_env(&text, d.path(), &aws).unwrap();
        let StoreConfig::S3 {
            access_key,
            secret_key,
            region,
            ..
        } = &c.store
        else {
            panic!()
        };
        assert_eq!(
            (access_key.as_str(), secret_key.expose(), region.as_str()),
            ("file-key", "file-secret", "r1")
        );
        let mut env = aws.clone();
        env.push(("IMGSERV_STORE_SECRET_KEY".into(), "env-secret".into()));
        let c = from_str_env(&text, d.path(), &env).unwrap();
        let StoreConfig::S3 { secret_key, .. } = &c.store else {
            panic!()
        };
        assert_eq!(secret_key.expose(), "env-secret");

        // Empty values in the file (as in the sample) count as unset; from_str reads no env.
        let text = format!("{}{s3}access_key = \"\"\nsecret_key = \"\"\n", minimal());
        let c = from_str_env(&text, d.path(), &aws).unwrap();
        assert!(
            matches!(&c.store, StoreConfig::S3 { access_key, region, .. } if access_key == "aws-key" && region == "eu-west-3")
        );
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("store.access_key: required") && errs.contains("AWS_ACCESS_KEY_ID"),
            "{errs}"
        );
        let c = from_str_env(
            &format!("{}{s3}", minimal()),
            d.path(),
            &vars(&[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]),
        )
        .unwrap();
        assert!(matches!(&c.store, StoreConfig::S3 { region, .. } if region == "us-east-1"));
    }

    #[test]
    fn sizes_and_durations() {
        for (t, want) in [
            ("2 GiB", Some(2u64 << 30)),
            ("500MB", Some(500_000_000)),
            ("1.5 KiB", Some(1536)),
            ("4096", Some(4096)),
            ("10k", Some(10240)),
            ("2 gigs", None),
            ("", None),
            ("-1", None),
        ] {
            assert_eq!(parse_size(t), want, "{t}");
        }
        for (t, want) in [
            ("90s", Some(90)),
            ("5m", Some(300)),
            ("1h", Some(3600)),
            ("7d", Some(604_800)),
            ("30", Some(30)),
            ("soon", None),
            ("1.5h", None),
        ] {
            assert_eq!(parse_duration(t), want.map(Duration::from_secs), "{t}");
        }
    }
}
