//! `Site`: a temporary directory laid out like one imgserv installation.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A temporary imgserv installation: `originals/`, `cache/`, `state/`, `store/` and
/// `imgserv.toml`.
///
/// It lives under /tmp whatever TMPDIR says, and its directories are world-writable, because
/// the web servers' children may run as www-data or nobody (Apache's CGI always does): they must
/// reach (so every parent must be traversable, which /root is not) and write it.
/// Web servers started for a site keep their runtime files in a subdirectory of it; drop them
/// before the site (declare the site first). When a test fails the path is printed, and with
/// `IMGSERV_KEEP_SITE=1` the directory is kept.
pub struct Site {
    dir: TempDir,
}

/// The URL prefix under which the web servers serve `cache/`.
pub const CACHE_URL: &str = "/cache";

impl Site {
    /// A site with the minimal configuration.
    pub fn new() -> Site {
        Site::with_config("")
    }

    /// A site whose configuration is the minimal one merged with `extra` (TOML). Tables are
    /// merged key by key, so `extra` may add keys to `[cache]` or override `[cache] url`.
    pub fn with_config(extra: &str) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("imgserv-it-")
            .tempdir_in("/tmp")
            .expect("create a temp dir under /tmp");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["originals", "cache", "state", "store"] {
            let path = dir.path().join(sub);
            fs::create_dir(&path).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        }
        let site = Site { dir };
        site.write_config(extra);
        site
    }

    /// Rewrites the configuration file: the minimal configuration merged with `extra`.
    pub fn write_config(&self, extra: &str) {
        let mut config = self.base_config();
        let extra: toml::Table = extra
            .parse()
            .unwrap_or_else(|e| panic!("extra config is not valid TOML: {e}\n{extra}"));
        merge(&mut config, extra);
        let text = toml::to_string(&config).expect("serialise config");
        fs::write(self.config_path(), text).unwrap();
    }

    fn base_config(&self) -> toml::Table {
        let path = |p: PathBuf| toml::Value::String(p.to_str().expect("UTF-8 temp path").into());
        let table = |key: &str, value: toml::Value| {
            let mut t = toml::Table::new();
            t.insert(key.into(), value);
            t
        };
        let mut cache = table("dir", path(self.cache()));
        cache.insert("url".into(), toml::Value::String(CACHE_URL.into()));
        let mut config = toml::Table::new();
        config.insert(
            "originals".into(),
            table("root", path(self.originals())).into(),
        );
        config.insert("cache".into(), cache.into());
        config.insert("state".into(), table("dir", path(self.state())).into());
        // Uploaded originals stay inside the site, never in the default /var/lib/imgserv.
        config.insert("store".into(), table("dir", path(self.store())).into());
        config
    }

    /// Copies `tests/fixtures/<fixture>` to `originals/<fixture>`; returns the new path.
    pub fn add_original(&self, fixture: &str) -> PathBuf {
        self.add_original_as(fixture, fixture)
    }

    /// Copies `tests/fixtures/<fixture>` to `originals/<relative>` (creating directories).
    pub fn add_original_as(&self, fixture: &str, relative: &str) -> PathBuf {
        let dest = self.originals().join(relative);
        let parent = dest.parent().unwrap();
        if !parent.exists() {
            fs::create_dir_all(parent).unwrap();
            fs::set_permissions(parent, fs::Permissions::from_mode(0o777)).unwrap();
        }
        fs::copy(self::fixture(fixture), &dest)
            .unwrap_or_else(|e| panic!("copy fixture {fixture} to {}: {e}", dest.display()));
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o644)).unwrap();
        dest
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn originals(&self) -> PathBuf {
        self.dir().join("originals")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir().join("cache")
    }

    pub fn state(&self) -> PathBuf {
        self.dir().join("state")
    }

    /// `[store] dir`: uploaded originals.
    pub fn store(&self) -> PathBuf {
        self.dir().join("store")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("imgserv.toml")
    }

    /// `[cache] url` of the minimal configuration.
    pub fn cache_url(&self) -> &'static str {
        CACHE_URL
    }

    /// A fresh world-writable subdirectory of the site (for a server's runtime files).
    pub(crate) fn subdir(&self, prefix: &str) -> PathBuf {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.dir())
            .unwrap()
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        dir
    }
}

impl Drop for Site {
    /// With `IMGSERV_KEEP_SITE=1` a failing test leaves its site (logs, configs, cache) behind.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let keep = std::env::var_os("IMGSERV_KEEP_SITE").is_some_and(|v| v == "1");
            if keep {
                self.dir.disable_cleanup(true);
            }
            let what = if keep {
                "kept"
            } else {
                "removed; IMGSERV_KEEP_SITE=1 keeps it"
            };
            eprintln!("site {} ({what})", self.dir().display());
        }
    }
}

fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The path of `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    let path = super::repo_root().join("tests/fixtures").join(name);
    assert!(path.is_file(), "no fixture {}", path.display());
    path
}

/// The bytes of `tests/fixtures/<name>`.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    fs::read(fixture(name)).unwrap()
}
