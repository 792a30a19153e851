//! Crash safety: real imgserv processes killed with SIGKILL at random moments — CGI processes
//! rendering big photos (redirector and 404 handler), taking large uploads and deleting images,
//! and the long-lived standalone server with several requests in flight — on the filesystem
//! store and on S3 (`s3s-fs`).
//!
//! After every kill: each file the cache index lists, and each file under the cache directory
//! a redirect or the web server could serve (every name but a `.…tmp` temporary), is a complete
//! image with the dimensions its name says; each acknowledged upload (the client had read its
//! 200/201) is in the catalog and its original in the store with the SHA-1 it is named by; the
//! same request made again succeeds. After every few kills (and at the end) `imgserv-admin fsck`
//! exits 0, or `fsck --repair` then `fsck` do, and no acknowledged original is gone after it.
//!
//! `IMGSERV_CRASH_KILLS` sets the number of kills in all three tests (24 by default, `make soak`
//! sets 200); the seed is printed when a test fails and `IMGSERV_CRASH_SEED` replays it.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, FileTimes};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use imgserv::domain::format::Format;
use imgserv::domain::original::OriginalId;
use imgserv::io::catalog::{ApiKey, Catalog, Rights};
use imgserv::io::config::Config;
use imgserv::io::render;

use crate::api::{load, sign_with, unsigned};
use crate::redirector::files_below;
use crate::support::{Cgi, Child, S3Server, Site, fixture_bytes, free_port, try_request};

/// Big photos: a render of one takes long enough for kills to land inside decode and encode.
const PHOTOS: [&str; 4] = [
    "photo-nexus6p-exif-4032x3024.jpg",
    "photo-bridge-4352x2448-progressive.jpg",
    "photo-aitzgorri-3088x2056-progressive.jpg",
    "photo-friends-portrait-2056x3088-progressive.jpg",
];

/// Kills in all: `IMGSERV_CRASH_KILLS`, else 24. Half go to CGI processes on the filesystem
/// store, a quarter to CGI processes on S3, a quarter to the standalone server.
fn kills() -> usize {
    std::env::var("IMGSERV_CRASH_KILLS")
        .ok()
        .map(|v| v.parse().expect("IMGSERV_CRASH_KILLS: a number"))
        .unwrap_or(24)
}

/// splitmix64: small, seedable, good enough to pick operations and delays.
struct Rng(u64);

impl Rng {
    /// From `IMGSERV_CRASH_SEED`, else the clock; printed if the test fails.
    fn seeded(test: &str) -> (Rng, SeedNote) {
        let seed = std::env::var("IMGSERV_CRASH_SEED")
            .ok()
            .map(|v| v.parse().expect("IMGSERV_CRASH_SEED: a number"))
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!(
            "{test}: IMGSERV_CRASH_SEED={seed} IMGSERV_CRASH_KILLS={}",
            kills()
        );
        (
            Rng(seed),
            SeedNote {
                test: test.into(),
                seed,
            },
        )
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Prints how to replay a failing run.
struct SeedNote {
    test: String,
    seed: u64,
}

impl Drop for SeedNote {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "{} failed: replay with IMGSERV_CRASH_SEED={} IMGSERV_CRASH_KILLS={} \
                 cargo test --test it crash::{}",
                self.test,
                self.seed,
                kills(),
                self.test
            );
        }
    }
}

/// A request's method, path below the script, query, body and extra CGI variables.
type Parts = (
    &'static str,
    String,
    String,
    Vec<u8>,
    Vec<(&'static str, String)>,
);

/// One request a client makes.
#[derive(Clone)]
enum Op {
    /// The redirector: `src` fitted into a box.
    Render { src: &'static str, w: u32, h: u32 },
    /// The 404 handler: the canonical name of an uploaded image in a box.
    Missing { id: OriginalId, w: u32, h: u32 },
    /// `POST /api/images` of these bytes (a photo with a comment segment making it unique).
    Upload { id: OriginalId, bytes: Arc<Vec<u8>> },
    /// `DELETE /api/images/{id}`.
    Delete { id: OriginalId },
}

impl std::fmt::Debug for Op {
    /// An upload by its id and length: its bytes would fill the failure message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Render { src, w, h } => write!(f, "render {src} in {w}x{h}"),
            Op::Missing { id, w, h } => write!(f, "404 handler for {id} in {w}x{h}"),
            Op::Upload { id, bytes } => write!(f, "upload {id} ({} bytes)", bytes.len()),
            Op::Delete { id } => write!(f, "delete {id}"),
        }
    }
}

impl Op {
    fn kind(&self) -> usize {
        match self {
            Op::Render { .. } => 0,
            Op::Missing { .. } => 1,
            Op::Upload { .. } => 2,
            Op::Delete { .. } => 3,
        }
    }

    /// Method, path below the script, query, body, extra CGI variables.
    fn parts(&self) -> Parts {
        match self {
            Op::Render { src, w, h } => (
                "GET",
                String::new(),
                format!("src={src}&width={w}&height={h}"),
                Vec::new(),
                Vec::new(),
            ),
            Op::Missing { id, w, h } => (
                "GET",
                String::new(),
                String::new(),
                Vec::new(),
                vec![("IMGSERV_404", format!("/cache/{id}/{w}/{h}.jpg"))],
            ),
            Op::Upload { bytes, .. } => (
                "POST",
                "/api/images".into(),
                String::new(),
                bytes.to_vec(),
                Vec::new(),
            ),
            Op::Delete { id } => (
                "DELETE",
                format!("/api/images/{id}"),
                String::new(),
                Vec::new(),
                Vec::new(),
            ),
        }
    }

    /// The request's signed headers (API calls only).
    fn headers(&self, key: &ApiKey) -> Vec<(String, String)> {
        let (method, path, query, body, _) = self.parts();
        if path.is_empty() {
            return Vec::new();
        }
        let mut req = unsigned(method, &path, &query, &body);
        if !body.is_empty() {
            req.headers
                .push(("content-type".into(), "image/jpeg".into()));
        }
        sign_with(key, req).headers
    }

    /// Whether `status` is the request's success (done now, or already done before).
    fn succeeded(&self, status: u16) -> bool {
        match self {
            Op::Render { .. } => status == 302,
            Op::Missing { .. } => status == 200 || status == 301,
            Op::Upload { .. } => status == 200 || status == 201,
            Op::Delete { .. } => status == 204 || status == 404,
        }
    }
}

/// A JPEG photo made unique (and `pad` bytes larger) by comment segments after its SOI marker.
fn unique_jpeg(photo: &str, n: u64, pad: usize) -> Vec<u8> {
    let original = fixture_bytes(photo);
    let mut out = original[..2].to_vec();
    let mut comment = format!("imgserv crash test upload {n}").into_bytes();
    comment.resize(comment.len() + pad, b'.');
    for chunk in comment.chunks(65533) {
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((chunk.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&original[2..]);
    out
}

/// What the clients know: uploads they saw acknowledged and not deleted since, and images
/// whose fate a kill left open.
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeSet<OriginalId>,
    uncertain: BTreeSet<OriginalId>,
    /// Images an upload or delete of which was killed: its upload intent or removal claim may
    /// hold a later DELETE's removals back until it expires (see the follow-up).
    interrupted: HashSet<OriginalId>,
    uploads: u64,
}

impl Ledger {
    /// Records what a request's answer (if the client read one) tells.
    fn record(&mut self, op: &Op, status: Option<u16>) {
        if let (Op::Upload { id, .. } | Op::Delete { id }, None) = (op, status) {
            self.interrupted.insert(id.clone());
        }
        match op {
            Op::Upload { id, .. } => {
                if status.is_some_and(|s| op.succeeded(s)) {
                    self.uncertain.remove(id);
                    self.acknowledged.insert(id.clone());
                } else if !self.acknowledged.contains(id) {
                    self.uncertain.insert(id.clone());
                }
            }
            Op::Delete { id } => {
                if self.acknowledged.remove(id) {
                    self.uncertain.insert(id.clone());
                }
                if status.is_some_and(|s| op.succeeded(s)) {
                    self.uncertain.remove(id);
                }
            }
            Op::Render { .. } | Op::Missing { .. } => {}
        }
    }

    /// A random next request: mostly renders, large uploads, deletes of acknowledged images.
    fn choose(&mut self, rng: &mut Rng) -> Op {
        let ids: Vec<&OriginalId> = self.acknowledged.iter().collect();
        match rng.below(10) {
            0..=2 => Op::Render {
                src: PHOTOS[rng.below(PHOTOS.len() as u64) as usize],
                w: 100 + rng.below(800) as u32,
                h: 100 + rng.below(800) as u32,
            },
            3..=4 if !ids.is_empty() => {
                let id = (*rng.pick(&ids)).clone();
                // Canonical names: the box is the fitted size of a 4032x3024 photo.
                let w = 100 + rng.below(700) as u32;
                Op::Missing {
                    id,
                    w,
                    h: (w as u64 * 3024 / 4032).max(1) as u32,
                }
            }
            8 if !ids.is_empty() => Op::Delete {
                id: (*rng.pick(&ids)).clone(),
            },
            _ => {
                self.uploads += 1;
                // 3.7 MB to 7.7 MB: the body is still arriving for much of the delays.
                let pad = rng.below(4 << 20) as usize;
                let bytes = unique_jpeg(PHOTOS[0], rng.next() ^ self.uploads, pad);
                Op::Upload {
                    id: OriginalId::of(&bytes).unwrap(),
                    bytes: Arc::new(bytes),
                }
            }
        }
    }
}

/// One crash test's installation: a site with a key of every right, its store and cache.
struct Rig {
    site: Site,
    config: Config,
    key: ApiKey,
    /// Files already found complete: (path, length, inode); a file renamed over it is new.
    checked: HashSet<(String, u64, u64)>,
    repairs: usize,
}

impl Rig {
    fn new(extra: &str) -> Rig {
        let site = Site::with_config(extra);
        for photo in PHOTOS {
            site.add_original(photo);
        }
        let config = load(&site);
        let mut catalog = Catalog::open(&config.state.catalog_path()).unwrap();
        catalog.add_user("crash").unwrap();
        let all = Rights::READ | Rights::WRITE | Rights::DELETE | Rights::ADMIN;
        let key = catalog.add_key("crash", all).unwrap();
        Rig {
            site,
            config,
            key,
            checked: HashSet::new(),
            repairs: 0,
        }
    }

    /// The request as a CGI run (the web server's variables for `op`).
    fn cgi(&self, op: &Op) -> Cgi {
        let (method, path, query, body, vars) = op.parts();
        let mut cgi = Cgi::new(&self.site).method(method).query(&query);
        if !path.is_empty() {
            cgi = cgi.path_info(&path);
        }
        for (name, value) in vars {
            cgi = cgi.env(name, &value);
        }
        for (name, value) in op.headers(&self.key) {
            if name != "content-type" {
                cgi = cgi.header(&name, &value);
            }
        }
        if !body.is_empty() {
            cgi = cgi.body("image/jpeg", &body);
        }
        cgi
    }

    /// (1): every indexed file, and every file under the cache directory at a name that could
    /// be served, is a complete image of the size its name says.
    fn check_cache(&mut self, after: &str) {
        let cache = self.config.open_cache().unwrap();
        for (path, bytes) in cache.variants().unwrap() {
            // A row without its file is allowed: a removal killed between the unlink and the
            // row's deletion leaves one (files go first, so that nothing unindexed is served);
            // fsck reports it as missing-variant, the pending removal or --repair drops it,
            // and a request renders the file again.
            if let Ok(meta) = fs::metadata(self.site.cache().join(&path)) {
                assert_eq!(
                    meta.len(),
                    bytes,
                    "{after}: {path} has the length the index says"
                );
            }
        }
        drop(cache);
        for path in files_below(&self.site.cache()) {
            let name = path.rsplit('/').next().unwrap();
            if name.starts_with('.') && name.ends_with(".tmp") {
                continue;
            }
            let file = self.site.cache().join(&path);
            let Ok(meta) = fs::metadata(&file) else {
                continue;
            };
            let seen = (path.clone(), meta.len(), meta.ino());
            if self.checked.contains(&seen) {
                continue;
            }
            let bytes = fs::read(&file).unwrap();
            complete_image(&path, &bytes).unwrap_or_else(|e| {
                panic!(
                    "{after}: {path} ({} bytes) could be served: {e}",
                    bytes.len()
                )
            });
            self.checked.insert(seen);
        }
    }

    /// (2): every acknowledged upload is in the catalog and its original in the store; with
    /// `whole`, the original is read and hashed too (after fsck: reading every original after
    /// every kill would make a soak run quadratic).
    fn check_acknowledged(&self, ledger: &Ledger, after: &str, whole: bool) {
        let catalog = Catalog::open(&self.config.state.catalog_path()).unwrap();
        let store = imgserv::io::store::open(&self.config.store).unwrap();
        for id in &ledger.acknowledged {
            let image = catalog.get(id).unwrap();
            assert!(
                image.is_some(),
                "{after}: acknowledged upload {id} is not in the catalog"
            );
            if !whole {
                assert!(
                    store.exists(id, Format::Jpeg).unwrap(),
                    "{after}: acknowledged original {id} is not in the store"
                );
                continue;
            }
            let bytes = store
                .get(id, Format::Jpeg)
                .unwrap_or_else(|e| panic!("{after}: acknowledged original {id}: {e}"));
            assert_eq!(
                OriginalId::of(&bytes).unwrap(),
                *id,
                "{after}: the stored original of {id} has other bytes"
            );
        }
    }

    /// (3): fsck, after every file is made older than a write in flight (no process runs
    /// now): clean, or clean after `--repair`, with every acknowledged original kept.
    fn check_fsck(&mut self, ledger: &Ledger, after: &str) {
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for dir in [self.site.cache(), self.site.store()] {
            for path in files_below(&dir) {
                if let Ok(file) = File::options().write(true).open(dir.join(&path)) {
                    let _ = file.set_times(FileTimes::new().set_modified(hour_ago));
                }
            }
        }
        let (code, report) = self.fsck(&[]);
        if code != 0 {
            eprintln!("{after}: fsck found (exit {code}):\n{report}");
            let (_, repaired) = self.fsck(&["--repair"]);
            let (code, left) = self.fsck(&[]);
            assert_eq!(
                code, 0,
                "{after}: fsck after --repair still finds:\n{left}\n--repair said:\n{repaired}"
            );
            self.repairs += 1;
        }
        self.check_acknowledged(ledger, &format!("{after}, fsck"), true);
    }

    fn fsck(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_imgserv-admin"))
            .arg("--config")
            .arg(self.site.config_path())
            .arg("fsck")
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

/// A file's bytes are a whole image, of the size its cache name gives: `…/WxH.ext` (the
/// redirector's) exactly, `<id>/<w>/<h>.ext` (the 404 handler's canonical name) exactly too.
fn complete_image(path: &str, bytes: &[u8]) -> Result<(), String> {
    let ends = match path.rsplit('.').next() {
        Some("jpg") => bytes.ends_with(&[0xFF, 0xD9]),
        Some("png") => bytes.ends_with(b"IEND\xAE\x42\x60\x82"),
        Some("gif") => bytes.ends_with(b";"),
        Some("webp") => {
            bytes.len() >= 12
                && u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize + 8 == bytes.len()
        }
        _ => return Ok(()),
    };
    if !ends {
        return Err("it does not end as a whole file of its format does".into());
    }
    let probe = render::probe(bytes, u64::MAX).map_err(|e| e.to_string())?;
    render::decode_full(bytes, &probe).map_err(|e| format!("it does not decode: {e}"))?;
    let size = probe.size();
    let stem = path.rsplit_once('.').unwrap().0;
    let parts: Vec<&str> = stem.rsplit('/').collect();
    let named = match parts[0].split_once('x') {
        Some((w, h)) => (w.parse().ok(), h.parse().ok()),
        None if parts.len() >= 2 => (parts[1].parse().ok(), parts[0].parse().ok()),
        None => (None, None),
    };
    if let (Some(w), Some(h)) = named
        && (size.width, size.height) != (w, h)
    {
        return Err(format!(
            "it is {}x{}, its name says {w}x{h}",
            size.width, size.height
        ));
    }
    Ok(())
}

/// Per kind of request, how long it took last when nobody killed it: kills are spread over
/// 0..1.2× that, so they land in every phase (start, body, decode, encode, write, index).
struct Durations([Duration; 4]);

impl Durations {
    fn new() -> Durations {
        Durations([Duration::from_millis(300); 4])
    }

    fn delay(&self, op: &Op, rng: &mut Rng) -> Duration {
        let span = self.0[op.kind()].as_micros() as u64 * 6 / 5;
        Duration::from_micros(rng.below(span.max(5_000)))
    }

    fn note(&mut self, op: &Op, took: Duration) {
        self.0[op.kind()] = took;
    }
}

/// Runs `op` to its end in CGI and asserts it succeeds (a redirect to a whole file).
fn follow_up(rig: &Rig, op: &Op, ledger: &mut Ledger, durations: &mut Durations, after: &str) {
    if let Op::Missing { id, .. } = op
        && !ledger.acknowledged.contains(id)
    {
        // A delete in flight with it may have removed the image: nothing to ask again.
        return;
    }
    let started = Instant::now();
    let r = rig.cgi(op).run();
    durations.note(op, started.elapsed());
    assert!(
        op.succeeded(r.status),
        "{after}: the same request again ({op:?}) got {} {}",
        r.status,
        r.body_text()
    );
    ledger.record(op, Some(r.status));
    if let Op::Delete { id } = op
        && !ledger.interrupted.contains(id)
    {
        // Done, not half done: nothing of the image is served or stored, nothing left pending.
        // Not checked after a killed upload or delete of the same image: the dead process's
        // upload intent ([evict] upload_grace) or removal claim (catalog::CLAIM_LEASE) still
        // looks live and holds the removal back until it expires (the sweep finishes it).
        let served = files_below(&rig.site.cache().join(id.as_str()));
        assert!(
            served.is_empty(),
            "{after}: the deleted image's 404-handler files are still served: {served:?}"
        );
        let catalog = Catalog::open(&rig.config.state.catalog_path()).unwrap();
        let left: Vec<_> = catalog.pending().unwrap();
        assert!(
            left.iter().all(|p| p.image != *id),
            "{after}: removals of {id} still pending: {left:?}"
        );
        let store = imgserv::io::store::open(&rig.config.store).unwrap();
        assert!(
            !store.exists(id, Format::Jpeg).unwrap(),
            "{after}: the deleted original is still stored"
        );
    }
    if let Op::Render { .. } = op {
        let location = r.header("location").expect("a redirect");
        let path = location.strip_prefix("/cache/").expect("under /cache");
        let bytes = fs::read(rig.site.cache().join(path)).unwrap();
        complete_image(path, &bytes).unwrap_or_else(|e| panic!("{after}: {path}: {e}"));
    }
}

/// How often fsck runs: after every this many kills, and at the end.
const FSCK_EVERY: usize = 4;

fn cgi_kills(test: &str, extra: &str, kills: usize) {
    let (mut rng, _note) = Rng::seeded(test);
    let mut rig = Rig::new(extra);
    let mut ledger = Ledger::default();
    let mut durations = Durations::new();
    let mut killed = 0;
    let mut round = 0;
    while killed < kills {
        round += 1;
        let op = ledger.choose(&mut rng);
        let delay = durations.delay(&op, &mut rng);
        let after = format!("round {round} ({op:?} killed after {delay:?})");
        let outcome = rig.cgi(&op).run_killed_after(delay);
        let status = outcome.response.as_ref().map(|r| r.status);
        if !outcome.killed {
            // It finished first: a normal answer, which must be a success.
            assert!(
                status.is_some_and(|s| op.succeeded(s)),
                "{after}: not killed, answered {status:?}: {}",
                outcome.stderr
            );
        }
        ledger.record(&op, status);
        if outcome.killed {
            killed += 1;
        }
        rig.check_cache(&after);
        rig.check_acknowledged(&ledger, &after, false);
        if killed % FSCK_EVERY == 0 && outcome.killed {
            rig.check_fsck(&ledger, &after);
        }
        follow_up(&rig, &op, &mut ledger, &mut durations, &after);
        rig.check_cache(&format!("{after}, then again"));
    }
    rig.check_fsck(&ledger, "the end");
    eprintln!(
        "{test}: {killed} kills in {round} rounds, {} uploads acknowledged, fsck repaired after {} \
         checks",
        ledger.acknowledged.len(),
        rig.repairs
    );
}

#[test]
fn cgi_killed_during_renders_uploads_and_deletes_fs_store() {
    let kills = kills().div_ceil(2);
    cgi_kills(
        "cgi_killed_during_renders_uploads_and_deletes_fs_store",
        "",
        kills,
    );
}

#[test]
fn cgi_killed_during_renders_uploads_and_deletes_s3_store() {
    let s3 = S3Server::start();
    let extra = format!(
        "[store]\ntype = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\n\
         access_key = \"{}\"\nsecret_key = \"{}\"\n",
        s3.endpoint(),
        S3Server::BUCKET,
        S3Server::ACCESS_KEY,
        S3Server::SECRET_KEY
    );
    let kills = kills().div_ceil(4);
    cgi_kills(
        "cgi_killed_during_renders_uploads_and_deletes_s3_store",
        &extra,
        kills,
    );
}

/// Requests in flight at once in the standalone server when it is killed.
const IN_FLIGHT: usize = 3;

/// The standalone server killed with several requests in flight; restarted after each kill.
#[test]
fn standalone_server_killed_with_requests_in_flight() {
    let test = "standalone_server_killed_with_requests_in_flight";
    let (mut rng, _note) = Rng::seeded(test);
    let mut rig = Rig::new("");
    let mut ledger = Ledger::default();
    let mut durations = Durations::new();
    for round in 1..=kills().div_ceil(4) {
        let port = free_port();
        let mut cmd = Command::new(crate::support::imgserv_cgi());
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(rig.site.config_path());
        let mut server = Child::spawn(&format!("standalone-{round}"), cmd, rig.site.dir());
        server.wait_for_port(port, Duration::from_secs(10));
        let base = format!("http://127.0.0.1:{port}");
        let ops: Vec<Op> = (0..IN_FLIGHT).map(|_| ledger.choose(&mut rng)).collect();
        let delay = ops
            .iter()
            .map(|op| durations.delay(op, &mut rng))
            .max()
            .unwrap();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let clients: Vec<_> = ops
            .iter()
            .cloned()
            .map(|op| {
                let (method, path, query, body, _) = op.parts();
                let url = match &op {
                    Op::Missing { id, w, h } => format!("{base}/cache/{id}/{w}/{h}.jpg"),
                    _ if query.is_empty() => format!("{base}/imgserv.cgi{path}"),
                    _ => format!("{base}/imgserv.cgi{path}?{query}"),
                };
                let headers = op.headers(&rig.key);
                let answers = answers.clone();
                thread::spawn(move || {
                    let mut headers: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    if !body.is_empty() && !headers.iter().any(|(n, _)| *n == "content-type") {
                        headers.push(("content-type", "image/jpeg"));
                    }
                    let status = try_request(method, &url, &headers, &body)
                        .ok()
                        .map(|r| r.status);
                    answers.lock().unwrap().push((op, status));
                })
            })
            .collect();
        thread::sleep(delay);
        server.kill();
        for client in clients {
            client.join().unwrap();
        }
        let after = format!("round {round} (standalone killed after {delay:?} with {ops:?})");
        let answers = std::mem::take(&mut *answers.lock().unwrap());
        for (op, status) in &answers {
            ledger.record(op, *status);
        }
        rig.check_cache(&after);
        rig.check_acknowledged(&ledger, &after, false);
        if round % FSCK_EVERY == 0 {
            rig.check_fsck(&ledger, &after);
        }
        for (op, _) in &answers {
            follow_up(&rig, op, &mut ledger, &mut durations, &after);
        }
        rig.check_cache(&format!("{after}, then again"));
        drop(server);
    }
    rig.check_fsck(&ledger, "the end");
    assert!(
        !ledger.acknowledged.is_empty(),
        "some uploads were acknowledged"
    );
}

/// The completeness check itself: a whole file of the named size passes; a cut one, or one
/// whose name says another size, does not.
#[test]
fn the_completeness_check_refuses_cut_files_and_wrong_sizes() {
    let whole = fixture_bytes("photo-rocket-640x427.jpg");
    assert_eq!(complete_image("r/00/ab/640x427.jpg", &whole), Ok(()));
    assert_eq!(complete_image("0123/640/427.jpg", &whole), Ok(()));
    for cut in [whole.len() / 2, whole.len() - 1] {
        assert!(complete_image("r/00/ab/640x427.jpg", &whole[..cut]).is_err());
    }
    assert!(complete_image("r/00/ab/320x213.jpg", &whole).is_err());
    assert!(complete_image("0123/320/213.jpg", &whole).is_err());
    let png = fixture_bytes("photo-hopper-128x128.png");
    assert_eq!(complete_image("r/00/ab/128x128.png", &png), Ok(()));
    assert!(complete_image("r/00/ab/128x128.png", &png[..png.len() - 4]).is_err());
}

/// A DELETE killed after its transaction left its removals pending and the image's
/// 404-handler files served; the client's retry finishes them (204) instead of answering 404
/// and leaving the files to the next sweep.
#[test]
fn a_retried_delete_finishes_the_removal_a_killed_one_left() {
    let api = crate::api::Api::new("");
    let (status, v) = api.upload("photo-rocket-640x427.jpg", "");
    assert_eq!(status, 201, "{v}");
    let id: OriginalId = v["id"].as_str().unwrap().parse().unwrap();
    let r = crate::api::get_404(&api.app, &format!("/cache/{id}/200/133.jpg"), "");
    assert_eq!(r.status, 200);
    let served = api.site.cache().join(format!("{id}/200/133.jpg"));
    assert!(served.exists());
    // The DELETE's transaction committed, then the process died.
    api.catalog().delete(&id).unwrap();

    let resp = api.call("DELETE", &format!("/api/images/{id}"), "", b"");
    assert_eq!(resp.status, 204, "{}", String::from_utf8_lossy(&resp.body));
    assert!(!served.exists(), "the variant is no longer served");
    assert!(api.catalog().pending().unwrap().is_empty());
    let store = imgserv::io::store::open(&api.config().store).unwrap();
    assert!(!store.exists(&id, Format::Jpeg).unwrap());
    // Nothing is left: the next DELETE is the plain 404.
    let resp = api.call("DELETE", &format!("/api/images/{id}"), "", b"");
    assert_eq!(resp.status, 404);
}
