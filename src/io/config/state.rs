//! `[originals]`, `[state]` and `[mirrors]`: the directory local originals are read from, the
//! one that holds the databases and local copies, and the mirror map file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::value::Problems;

#[derive(Debug, Clone)]
pub struct OriginalsConfig {
    /// Absolute directory that local `src` paths are resolved under.
    pub root: PathBuf,
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

    /// The counters of failed logins, which slow down further attempts.
    pub fn login_failures_path(&self) -> PathBuf {
        self.dir.join("login_failures.sqlite")
    }
}

#[derive(Debug, Clone, Default)]
pub struct MirrorsConfig {
    /// The mirror map file; `None` when no mirrors are configured.
    pub map: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOriginals {
    root: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMirrors {
    map: Option<String>,
}

/// `[originals] root`: a directory that must exist.
pub(super) fn validate_originals(
    raw: RawOriginals,
    base: &Path,
    p: &mut Problems,
) -> OriginalsConfig {
    let root = p.dir(
        "originals.root",
        raw.root.as_deref(),
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
    OriginalsConfig { root }
}

/// `[state] dir`: not inside `cache_dir`, which the web server publishes.
pub(super) fn validate_state(
    raw: RawState,
    cache_dir: &Path,
    base: &Path,
    p: &mut Problems,
) -> StateConfig {
    let state_dir = p.dir("state.dir", raw.dir.as_deref(), "/var/lib/imgserv", base);
    if state_dir.starts_with(cache_dir) {
        p.add(
            "state.dir",
            "must not be inside cache.dir: the web server would publish the index",
        );
    }
    StateConfig { dir: state_dir }
}

/// `[mirrors] map`: relative to `base`; empty or absent means no mirrors.
pub(super) fn validate_mirrors(raw: RawMirrors, base: &Path) -> MirrorsConfig {
    let mirror_map = raw.map.filter(|m| !m.is_empty()).map(|m| {
        let path = Path::new(&m);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }
    });
    MirrorsConfig { map: mirror_map }
}

#[cfg(test)]
mod tests {
    use crate::io::config::from_str;
    use crate::io::config::tests::{dirs, minimal};

    #[test]
    fn missing_originals_root_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let errs = from_str(minimal(), d.path()).unwrap_err().to_string();
        assert!(errs.starts_with("originals.root: "), "{errs}");
        assert!(errs.contains("does not exist"), "{errs}");
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
}
