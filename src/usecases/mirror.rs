//! Mirrors: other web space (cheap hosting, a CDN origin) holding copies of variants, to which
//! the redirector sends requests in proportion to each mirror's bandwidth.
//!
//! The operator's truth is the mirror map, a TOML file naming each mirror's base URL, weight
//! and the files it holds (inline, or a list file as `imgserv-precache --list` writes it or as
//! `rsync --list-only` prints it). For the redirector, the map and its lists are compiled into
//! an SQLite index in the state directory, rebuilt whenever the map or a list file changes
//! (checked by `stat`, so CGI requests stay cheap and long-lived servers need no restart).
//!
//! This module knows nothing of rendering; it answers "which mirror URL serves this file".

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

/// Why the mirror map could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The map or a list cannot be read or written.
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    /// The map is not valid TOML, or a mirror in it is unusable; the message says which.
    #[error("mirror map {path}: {msg}")]
    Invalid { path: String, msg: String },
    /// No mirror of that name.
    #[error("no mirror called {0:?}")]
    Unknown(String),
    /// The compiled index failed.
    #[error("mirror index: {0}")]
    Index(#[from] rusqlite::Error),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MirrorError + '_ {
    move |source| MirrorError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The mirror map file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorMap {
    #[serde(default, rename = "mirror", skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Mirror>,
}

/// One mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    pub name: String,
    /// Base URL: a file `r/…/800x600.jpg` is at `<url>/r/…/800x600.jpg`.
    pub url: String,
    /// Relative bandwidth: a mirror of weight 3 gets three times the requests of one of weight 1
    /// among the mirrors holding a file.
    pub weight: u32,
    /// Files held, relative to the cache directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// A list file of files held (one path a line, or `rsync --list-only` output); relative
    /// paths are taken from the map's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<PathBuf>,
}

impl MirrorMap {
    /// Reads a map; a missing file is an empty map.
    pub fn load(path: &Path) -> Result<MirrorMap, MirrorError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(MirrorMap::default()),
            Err(e) => return Err(io_err(path)(e)),
        };
        let map: MirrorMap = toml::from_str(&text).map_err(|e| MirrorError::Invalid {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        map.validate().map_err(|msg| MirrorError::Invalid {
            path: path.display().to_string(),
            msg,
        })?;
        Ok(map)
    }

    /// Names are unique and plain, URLs http(s), weights positive.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = BTreeSet::new();
        for m in &self.mirrors {
            let plain = !m.name.is_empty()
                && m.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !plain {
                return Err(format!(
                    "mirror name {:?}: use letters, digits, '-', '_', '.'",
                    m.name
                ));
            }
            if !names.insert(&m.name) {
                return Err(format!("mirror {:?} appears twice", m.name));
            }
            if !(m.url.starts_with("http://") || m.url.starts_with("https://")) {
                return Err(format!(
                    "mirror {:?}: url must start with http:// or https://",
                    m.name
                ));
            }
            if m.weight == 0 {
                return Err(format!("mirror {:?}: weight must be at least 1", m.name));
            }
        }
        Ok(())
    }

    /// Writes the map atomically.
    pub fn save(&self, path: &Path) -> Result<(), MirrorError> {
        self.validate().map_err(|msg| MirrorError::Invalid {
            path: path.display().to_string(),
            msg,
        })?;
        let text = toml::to_string(self).map_err(|e| MirrorError::Invalid {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let text = format!("# imgserv mirror map: see imgserv-mirror(1).\n\n{text}");
        crate::io::cache::write_atomically(path, text.as_bytes()).map_err(io_err(path))
    }

    pub fn get(&self, name: &str) -> Result<&Mirror, MirrorError> {
        self.mirrors
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| MirrorError::Unknown(name.to_string()))
    }

    pub fn get_mut(&mut self, name: &str) -> Result<&mut Mirror, MirrorError> {
        self.mirrors
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| MirrorError::Unknown(name.to_string()))
    }
}

impl Mirror {
    /// The list file's path, resolved against the map's directory.
    pub fn list_path(&self, map: &Path) -> Option<PathBuf> {
        self.list.as_ref().map(|l| {
            if l.is_absolute() {
                l.clone()
            } else {
                map.parent().unwrap_or(Path::new(".")).join(l)
            }
        })
    }

    /// Every file this mirror holds: inline ones and its list's, without duplicates.
    pub fn holdings(&self, map: &Path) -> Result<BTreeSet<String>, MirrorError> {
        let mut files: BTreeSet<String> = self.files.iter().filter_map(|f| clean(f)).collect();
        if let Some(list) = self.list_path(map) {
            let text = fs::read_to_string(&list).map_err(io_err(&list))?;
            files.extend(parse_list(&text));
        }
        Ok(files)
    }
}

/// Paths from a list: one relative path a line (as `imgserv-precache --list` writes), or
/// `rsync --list-only` output (directories and links skipped). Blank lines and `#` comments
/// are skipped, and so is anything that is not a plain relative path.
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            if let Some(path) = rsync_line(line) {
                return path;
            }
            clean(line)
        })
        .collect()
}

/// An `rsync --list-only` line: `-rw-r--r--  12,345 2024/01/01 12:00:00 path` gives
/// `Some(Some(path))`, a directory or link `Some(None)`, anything else `None`.
fn rsync_line(line: &str) -> Option<Option<String>> {
    let mode = line.get(..10)?;
    let kind = mode.as_bytes()[0];
    let perms_ok = mode[1..].bytes().all(|b| b"rwxsStT-".contains(&b));
    if !perms_ok || !b"-dlpcbs".contains(&kind) || !line[10..].starts_with(' ') {
        return None;
    }
    let mut rest = line[10..].trim_start();
    // size, date, time
    for _ in 0..3 {
        let end = rest.find(' ')?;
        rest = rest[end..].trim_start();
    }
    Some(if kind == b'-' { clean(rest) } else { None })
}

/// A plain relative path (`./` prefix dropped), or `None`.
fn clean(path: &str) -> Option<String> {
    let p = path.trim().trim_start_matches("./");
    let ok = !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    ok.then(|| p.to_string())
}

// ---------------------------------------------------------------------------------------------
// The redirector's side: the compiled index and the weighted choice.

/// What identifies one state of the map and its lists: their sizes and modification times.
fn signature(map_path: &Path, lists: &[PathBuf]) -> String {
    let stamp = |p: &Path| match fs::metadata(p) {
        Ok(m) => format!("{}:{}.{}", m.len(), m.mtime(), m.mtime_nsec()),
        Err(_) => "-".into(),
    };
    let mut sig = stamp(map_path);
    for l in lists {
        sig.push('|');
        sig.push_str(&stamp(l));
    }
    sig
}

/// The mirrors as the redirector sees them.
pub struct Mirrors {
    map: PathBuf,
    index: PathBuf,
    /// Long-lived processes keep one connection and check the map at most once a second.
    conn: Mutex<Option<(Connection, Instant)>>,
}

impl Mirrors {
    /// Mirrors from the map at `map`, compiled into `index` (in the state directory).
    pub fn new(map: PathBuf, index: PathBuf) -> Mirrors {
        Mirrors {
            map,
            index,
            conn: Mutex::new(None),
        }
    }

    /// The URL of `rel` on a mirror holding it, chosen at random in proportion to the weights;
    /// `None` when no mirror holds it.
    pub fn pick(&self, rel: &str) -> Result<Option<String>, MirrorError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let fresh =
            matches!(&*guard, Some((_, checked)) if checked.elapsed() < Duration::from_secs(1));
        if guard.is_none() {
            let conn =
                crate::io::db::open(&self.index, crate::io::db::Sync::Normal, INDEX_SCHEMA, 1)?;
            *guard = Some((conn, Instant::now() - Duration::from_secs(60)));
        }
        let (conn, checked) = guard.as_mut().expect("just set");
        if !fresh {
            refresh(conn, &self.map)?;
            *checked = Instant::now();
        }
        let mut stmt = conn.prepare_cached(
            "SELECT m.url, m.weight FROM files f JOIN mirrors m ON m.id = f.mirror
             WHERE f.path = ?1 ORDER BY m.id",
        )?;
        let holders: Vec<(String, u32)> = stmt
            .query_map(params![rel], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(
            choose(&holders, random_u64())
                .map(|url| format!("{}/{rel}", url.trim_end_matches('/'))),
        )
    }
}

/// The compiled index: the map's mirrors and, for each file, who holds it.
const INDEX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mirrors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL,
                                    weight INTEGER NOT NULL, list TEXT);
CREATE TABLE IF NOT EXISTS files (path TEXT NOT NULL, mirror INTEGER NOT NULL,
                                  PRIMARY KEY (path, mirror)) WITHOUT ROWID;
";

/// Rebuilds the compiled index when the map or one of its lists changed since it was built.
fn refresh(conn: &mut Connection, map_path: &Path) -> Result<(), MirrorError> {
    let current = |conn: &Connection| -> Result<String, MirrorError> {
        let lists: Vec<PathBuf> = conn
            .prepare_cached("SELECT list FROM mirrors WHERE list IS NOT NULL ORDER BY id")?
            .query_map([], |r| r.get::<_, String>(0))?
            .map(|l| l.map(PathBuf::from))
            .collect::<Result<_, _>>()?;
        Ok(signature(map_path, &lists))
    };
    let stored = |conn: &Connection| -> Result<Option<String>, MirrorError> {
        Ok(conn
            .query_row("SELECT signature FROM meta WHERE id = 1", [], |r| r.get(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?)
    };
    if stored(conn)? == Some(current(conn)?) {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have rebuilt it while we waited for the lock.
    if stored(&tx)? == Some(current(&tx)?) {
        return Ok(());
    }
    let map = MirrorMap::load(map_path)?;
    tx.execute_batch("DELETE FROM files; DELETE FROM mirrors;")?;
    let mut lists = Vec::new();
    for (i, m) in map.mirrors.iter().enumerate() {
        let list = m.list_path(map_path);
        tx.execute(
            "INSERT INTO mirrors (id, name, url, weight, list) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                i as i64,
                m.name,
                m.url,
                m.weight,
                list.as_ref().map(|l| l.display().to_string())
            ],
        )?;
        let mut insert =
            tx.prepare_cached("INSERT OR IGNORE INTO files (path, mirror) VALUES (?1, ?2)")?;
        for f in m.holdings(map_path)? {
            insert.execute(params![f, i as i64])?;
        }
        lists.extend(list);
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (id, signature) VALUES (1, ?1)",
        params![signature(map_path, &lists)],
    )?;
    tx.commit()?;
    log::info!(
        "mirror map {} compiled: {} mirrors",
        map_path.display(),
        map.mirrors.len()
    );
    Ok(())
}

/// Picks one of `holders` with probability proportional to its weight, from a random number.
pub fn choose(holders: &[(String, u32)], random: u64) -> Option<&str> {
    let total: u64 = holders.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut ticket = random % total;
    for (url, w) in holders {
        let w = u64::from(*w);
        if ticket < w {
            return Some(url);
        }
        ticket -= w;
    }
    None
}

/// A random number, different in every call and every process (SipHash with the standard
/// library's randomly keyed state over the time and a counter); no cryptographic claims.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

// ---------------------------------------------------------------------------------------------
// Verification: does each mirror really have its files?

/// What `verify` found for one mirror.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    pub name: String,
    /// Files answered `200`.
    pub present: usize,
    /// Files answered `404`/`410`: dropped from the mirror's holdings.
    pub missing: Vec<String>,
    /// Files that could not be checked (timeouts, other statuses): kept, and reported.
    pub errors: Vec<(String, String)>,
}

/// Sends `HEAD` for every file of `name` (at most `concurrency` at once, each bounded by
/// `timeout`) and drops the files the mirror answers 404 or 410 for, rewriting its holdings as
/// a list file next to the map. Returns the counts.
pub fn verify(
    map_path: &Path,
    name: &str,
    concurrency: usize,
    timeout: Duration,
) -> Result<Verified, MirrorError> {
    let mut map = MirrorMap::load(map_path)?;
    let mirror = map.get(name)?.clone();
    let files: Vec<String> = mirror.holdings(map_path)?.into_iter().collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let queue = Arc::new(Mutex::new(files.clone().into_iter()));
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (queue, tx, agent) = (queue.clone(), tx.clone(), agent.clone());
            let base = mirror.url.trim_end_matches('/').to_string();
            thread::spawn(move || {
                loop {
                    let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                    let Some(file) = next else { break };
                    let url = format!("{base}/{}", encode_path(&file));
                    let outcome = match agent.head(&url).call() {
                        Ok(resp) => Ok(resp.status().as_u16()),
                        Err(e) => Err(e.to_string()),
                    };
                    if tx.send((file, outcome)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut result = Verified {
        name: name.to_string(),
        ..Verified::default()
    };
    for (file, outcome) in rx {
        match outcome {
            Ok(200) => result.present += 1,
            Ok(404 | 410) => result.missing.push(file),
            Ok(status) => result.errors.push((file, format!("HTTP {status}"))),
            Err(e) => result.errors.push((file, e)),
        }
    }
    for w in workers {
        let _ = w.join();
    }
    if !result.missing.is_empty() {
        let missing: BTreeSet<&String> = result.missing.iter().collect();
        let kept: Vec<String> = files.into_iter().filter(|f| !missing.contains(f)).collect();
        set_holdings(&mut map, map_path, name, &kept)?;
        map.save(map_path)?;
    }
    result.missing.sort();
    Ok(result)
}

/// Replaces a mirror's holdings with `files`, written as its list file `<map dir>/<map
/// stem>.d/<name>.list` (inline files are cleared).
pub fn set_holdings(
    map: &mut MirrorMap,
    map_path: &Path,
    name: &str,
    files: &[String],
) -> Result<(), MirrorError> {
    let dir = map_path.with_extension("d");
    let list = dir.join(format!("{name}.list"));
    let mut text = String::with_capacity(files.len() * 64);
    for f in files {
        text.push_str(f);
        text.push('\n');
    }
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    crate::io::cache::write_atomically(&list, text.as_bytes()).map_err(io_err(&list))?;
    let m = map.get_mut(name)?;
    m.files.clear();
    m.list = Some(list);
    Ok(())
}

/// Percent-encodes what a URL path may not contain; variant paths are plain, but lists may
/// come from elsewhere.
fn encode_path(path: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?');
    percent_encoding::utf8_percent_encode(path, SET).to_string()
}

/// Counts per mirror, for `imgserv-mirror list`.
pub fn counts(map: &MirrorMap, map_path: &Path) -> Result<HashMap<String, usize>, MirrorError> {
    map.mirrors
        .iter()
        .map(|m| Ok((m.name.clone(), m.holdings(map_path)?.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_in_both_forms() {
        let text = "\
# written by imgserv-precache
r/ab/cdef/0123/800x600.jpg
./r/ab/cdef/0123/400x300.jpg

../escape.jpg
/abs.jpg
drwxr-xr-x          4,096 2026/11/21 12:00:00 .
drwxr-xr-x          4,096 2026/11/21 12:00:00 r
-rw-r--r--         12,345 2026/11/21 12:00:00 r/ab/cdef/0123/100x75.jpg
lrwxrwxrwx             11 2026/11/21 12:00:00 r/link.jpg
-rw-r--r--            345 2026/11/21 12:00:00 r/with space.jpg
";
        assert_eq!(
            parse_list(text),
            [
                "r/ab/cdef/0123/800x600.jpg",
                "r/ab/cdef/0123/400x300.jpg",
                "r/ab/cdef/0123/100x75.jpg",
                "r/with space.jpg",
            ]
        );
    }

    #[test]
    fn weighted_choice() {
        let holders = vec![("a".to_string(), 3), ("b".to_string(), 1)];
        let picks: Vec<&str> = (0..8).map(|r| choose(&holders, r).unwrap()).collect();
        assert_eq!(picks, ["a", "a", "a", "b", "a", "a", "a", "b"]);
        assert_eq!(choose(&[], 5), None);
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn map_round_trip_and_validation() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("mirrors.toml");
        assert_eq!(MirrorMap::load(&path).unwrap(), MirrorMap::default());
        let mut map = MirrorMap::default();
        map.mirrors.push(Mirror {
            name: "one".into(),
            url: "http://one.example".into(),
            weight: 3,
            files: vec!["r/a.jpg".into()],
            list: None,
        });
        map.save(&path).unwrap();
        assert_eq!(MirrorMap::load(&path).unwrap(), map);
        map.mirrors.push(map.mirrors[0].clone());
        assert!(
            map.save(&path)
                .unwrap_err()
                .to_string()
                .contains("appears twice")
        );
        map.mirrors.pop();
        map.mirrors[0].weight = 0;
        assert!(map.validate().unwrap_err().contains("weight"));
    }

    #[test]
    fn index_follows_the_map() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("mirrors.toml");
        let mirrors = Mirrors::new(path.clone(), t.path().join("mirrors.sqlite"));
        assert_eq!(mirrors.pick("r/a.jpg").unwrap(), None);
        let mut map = MirrorMap::default();
        map.mirrors.push(Mirror {
            name: "one".into(),
            url: "http://one.example/cache/".into(),
            weight: 1,
            files: vec!["r/a.jpg".into()],
            list: None,
        });
        map.save(&path).unwrap();
        // A fresh view (as a new CGI process would have) sees the change at once.
        let fresh = Mirrors::new(path.clone(), t.path().join("mirrors.sqlite"));
        assert_eq!(
            fresh.pick("r/a.jpg").unwrap().as_deref(),
            Some("http://one.example/cache/r/a.jpg")
        );
        assert_eq!(fresh.pick("r/b.jpg").unwrap(), None);
        // A list file change is noticed too.
        set_holdings(&mut map, &path, "one", &["r/b.jpg".to_string()]).unwrap();
        map.save(&path).unwrap();
        let fresh = Mirrors::new(path.clone(), t.path().join("mirrors.sqlite"));
        assert_eq!(fresh.pick("r/a.jpg").unwrap(), None);
        assert!(fresh.pick("r/b.jpg").unwrap().is_some());
        std::thread::sleep(Duration::from_millis(20));
        fs::write(path.with_extension("d").join("one.list"), "r/c.jpg\n").unwrap();
        let fresh = Mirrors::new(path, t.path().join("mirrors.sqlite"));
        assert!(fresh.pick("r/c.jpg").unwrap().is_some());
        assert_eq!(fresh.pick("r/b.jpg").unwrap(), None);
    }
}

// ---------------------------------------------------------------------------------------------
// The commands of imgserv-mirror(1).

/// One `imgserv-mirror` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Add {
        name: String,
        url: String,
        weight: u32,
        list: Option<PathBuf>,
    },
    Remove {
        name: String,
    },
    List,
    ImportList {
        name: String,
        file: PathBuf,
    },
    ExportList {
        name: String,
        file: Option<PathBuf>,
    },
    Verify {
        names: Vec<String>,
        jobs: usize,
        timeout: Duration,
    },
}

/// Runs a command on the map at `map_path`; prints its report and returns the exit code.
pub fn run(command: Command, map_path: &Path) -> i32 {
    use crate::usecases::error::exit;
    match run_inner(command, map_path) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("imgserv-mirror: {e}");
            match e {
                MirrorError::Unknown(_) => exit::USAGE,
                MirrorError::Invalid { .. } => exit::DATAERR,
                MirrorError::Io { .. } => exit::IOERR,
                MirrorError::Index(_) => exit::SOFTWARE,
            }
        }
    }
}

/// Reads a list file, `-` meaning standard input.
fn read_list(file: &Path) -> Result<Vec<String>, MirrorError> {
    let text = if file == Path::new("-") {
        io::read_to_string(io::stdin()).map_err(io_err(file))?
    } else {
        fs::read_to_string(file).map_err(io_err(file))?
    };
    Ok(parse_list(&text))
}

fn run_inner(command: Command, map_path: &Path) -> Result<i32, MirrorError> {
    use crate::usecases::error::exit;
    let mut map = MirrorMap::load(map_path)?;
    match command {
        Command::Add {
            name,
            url,
            weight,
            list,
        } => {
            if map.get(&name).is_ok() {
                return Err(MirrorError::Invalid {
                    path: map_path.display().to_string(),
                    msg: format!("mirror {name:?} exists already"),
                });
            }
            map.mirrors.push(Mirror {
                name: name.clone(),
                url,
                weight,
                files: Vec::new(),
                list: None,
            });
            if let Some(list) = list {
                let files = read_list(&list)?;
                set_holdings(&mut map, map_path, &name, &files)?;
            }
            map.save(map_path)?;
            println!("added {name}");
        }
        Command::Remove { name } => {
            map.get(&name)?;
            map.mirrors.retain(|m| m.name != name);
            map.save(map_path)?;
            println!("removed {name}");
        }
        Command::List => {
            let counts = counts(&map, map_path)?;
            for m in &map.mirrors {
                println!(
                    "{}\t{}\tweight {}\t{} files",
                    m.name, m.url, m.weight, counts[&m.name]
                );
            }
        }
        Command::ImportList { name, file } => {
            map.get(&name)?;
            let files = read_list(&file)?;
            set_holdings(&mut map, map_path, &name, &files)?;
            map.save(map_path)?;
            println!("{name}: {} files", files.len());
        }
        Command::ExportList { name, file } => {
            let files = map.get(&name)?.holdings(map_path)?;
            let paths: BTreeSet<String> = files;
            let target = file.unwrap_or_else(|| PathBuf::from("-"));
            crate::usecases::precache::write_list(&target, &paths).map_err(io_err(&target))?;
        }
        Command::Verify {
            names,
            jobs,
            timeout,
        } => {
            let names = if names.is_empty() {
                map.mirrors.iter().map(|m| m.name.clone()).collect()
            } else {
                names
            };
            let mut code = exit::OK;
            for name in names {
                let v = verify(map_path, &name, jobs, timeout)?;
                println!(
                    "{}: {} present, {} missing (dropped), {} unchecked",
                    v.name,
                    v.present,
                    v.missing.len(),
                    v.errors.len()
                );
                for f in &v.missing {
                    println!("  missing {f}");
                }
                for (f, e) in &v.errors {
                    println!("  unchecked {f}: {e}");
                }
                if !v.errors.is_empty() {
                    code = exit::UNAVAILABLE;
                }
            }
            return Ok(code);
        }
    }
    Ok(exit::OK)
}
