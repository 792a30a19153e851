//! Finding the file and loading it, in one order of precedence: defaults < file < `IMGSERV_*`
//! environment < command-line flags, merged here before one validation.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use super::store::AwsEnv;
use super::{Config, ConfigError, ConfigErrors, Raw, validate};

/// Where the configuration is read from when neither `--config` nor `IMGSERV_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/imgserv/imgserv.toml";

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
        (
            "server",
            &["workers", "max_conns", "read_timeout", "trusted_proxies"][..],
        ),
        ("mirrors", &["map"][..]),
        ("api", &["public_reads", "types", "max_body_bytes"][..]),
        ("security", &["require_signed_urls", "max_clock_skew"][..]),
        (
            "evict",
            &["max_idle", "max_age", "max_bytes", "upload_grace"][..],
        ),
        ("metrics", &["enabled", "allow"][..]),
        ("auth", &["methods", "command", "command_timeout"][..]),
        ("permissions", &["privilege_for_creator", "root_grants"][..]),
        ("dashboard", &["per_page", "thumbnail"][..]),
        (
            "login",
            &[
                "throttle",
                "user_free_failures",
                "address_free_failures",
                "failure_window",
                "first_delay",
                "max_delay",
            ][..],
        ),
        (
            "sessions",
            &["store", "idle_timeout", "absolute_timeout", "cookie_name"][..],
        ),
        (
            "object_cache",
            &["type", "memory", "servers", "timeout", "ttl", "prefix"][..],
        ),
        (
            "ldap",
            &[
                "url",
                "starttls",
                "ca_file",
                "timeout",
                "user_dn",
                "bind_dn",
                "bind_password",
                "base_dn",
                "user_filter",
                "group_base",
                "group_filter",
                "admin_group",
            ][..],
        ),
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
    use crate::io::config::tests::{dirs, minimal};

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
}
