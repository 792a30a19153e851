//! A deletion and a re-upload of the same bytes at once, on both stores (a directory, and the
//! real `s3s-fs`): each interleaving is forced by a store wrapper that runs the other side at a
//! chosen point — the deletion's removal between the upload's put (which keeps the object it
//! finds) and its insert; the upload while the removal hangs in the store. The original must
//! be readable afterwards, and a hanging removal must not hold up other writers of the catalog
//! (an upload through the API, a key revoked by `imgserv-admin` in another process) — also
//! when the removal is `imgserv-evict`'s, stalled on an S3 endpoint that never answers.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use imgserv::domain::format::Format;
use imgserv::domain::original::OriginalId;
use imgserv::io::cache::Cache;
use imgserv::io::catalog::{Doomed, Inserted, Rights};
use imgserv::io::config::Config;
use imgserv::io::store::{self, Object, Store, StoreError};
use imgserv::usecases::ingest::{self, Upload};
use imgserv::usecases::purge;

use crate::api::{Api, assert_error};
use crate::support::{Child, S3Server, fixture_bytes};

const PHOTO: &str = "photo-rocket-640x427.jpg";
const OTHER: &str = "photo-chelsea-cat-451x300.png";

type Hook<'a> = Mutex<Option<Box<dyn FnOnce() + Send + 'a>>>;

/// A store that runs a hook once, right after a `put` or right before a `delete`.
struct Hooked<'a> {
    inner: Arc<dyn Store>,
    after_put: Hook<'a>,
    before_delete: Hook<'a>,
}

impl<'a> Hooked<'a> {
    fn new(inner: Arc<dyn Store>) -> Hooked<'a> {
        Hooked {
            inner,
            after_put: Mutex::new(None),
            before_delete: Mutex::new(None),
        }
    }

    fn run(hook: &Hook<'a>) {
        let hook = hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
    }
}

impl Store for Hooked<'_> {
    fn put(&self, id: &OriginalId, format: Format, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.put(id, format, bytes)?;
        Self::run(&self.after_put);
        Ok(())
    }

    fn get(&self, id: &OriginalId, format: Format) -> Result<Vec<u8>, StoreError> {
        self.inner.get(id, format)
    }

    fn open(&self, id: &OriginalId, format: Format) -> Result<Object, StoreError> {
        self.inner.open(id, format)
    }

    fn exists(&self, id: &OriginalId, format: Format) -> Result<bool, StoreError> {
        self.inner.exists(id, format)
    }

    fn delete(&self, id: &OriginalId, format: Format) -> Result<(), StoreError> {
        Self::run(&self.before_delete);
        self.inner.delete(id, format)
    }

    fn describe(&self) -> String {
        format!("hooked {}", self.inner.describe())
    }
}

fn cache(config: &Config) -> Cache {
    Cache::open(
        &config.cache.dir,
        &config.state.index_path(),
        config.cache.max_bytes,
        config.cache.access_interval,
    )
    .unwrap()
}

/// Uploads `fixture` through the API; its id.
fn uploaded(api: &Api, fixture: &str) -> OriginalId {
    let (status, image) = api.upload(fixture, "");
    assert_eq!(status, 201, "{image}");
    image["id"].as_str().unwrap().parse().unwrap()
}

/// The original is in the store and served by the API, and a later sweep keeps it.
#[track_caller]
fn assert_kept(api: &Api, store: &dyn Store, id: &OriginalId, bytes: &[u8]) {
    let config = api.config();
    assert_eq!(store.get(id, Format::Jpeg).unwrap(), bytes);
    let resp = api.call("GET", &format!("/api/images/{id}"), "", b"");
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.body, bytes);
    let mut catalog = api.catalog();
    let grace = config.evict.upload_grace;
    purge::sweep(config, store, &cache(config), &mut catalog, grace).unwrap();
    assert_eq!(
        store.get(id, Format::Jpeg).unwrap(),
        bytes,
        "after the sweep"
    );
    assert_eq!(catalog.pending().unwrap(), [], "nothing left to sweep");
}

/// The DELETE committed its transaction; a re-upload of the same bytes recorded its intent
/// and its put found the old object (and kept it); then the DELETE removes: the original
/// must stay, for the upload's row to point at. (It was removed: the removal took a zero
/// grace, so the intent did not count.)
fn removal_between_put_and_insert(api: &Api) {
    let config = api.config();
    let bytes = fixture_bytes(PHOTO);
    let id = uploaded(api, PHOTO);
    let store: Arc<dyn Store> = Arc::from(store::open(&config.store).unwrap());
    let deleted = api.catalog().delete(&id).unwrap();
    let hooked = Hooked::new(store.clone());
    let ran = Arc::new(Mutex::new(false));
    let flag = ran.clone();
    let inner = store.clone();
    *hooked.after_put.lock().unwrap() = Some(Box::new(move || {
        let mut catalog = api.catalog();
        purge::finish_delete(
            config,
            inner.as_ref(),
            &cache(config),
            &mut catalog,
            &deleted.pending,
        );
        *flag.lock().unwrap() = true;
    }));
    let inserted = ingest::ingest(
        config,
        &hooked,
        &mut api.catalog(),
        &bytes,
        &Upload::default(),
    )
    .unwrap();
    assert!(
        *ran.lock().unwrap(),
        "the removal ran between put and insert"
    );
    assert!(matches!(inserted, Inserted::New(_)), "{inserted:?}");
    assert_kept(api, store.as_ref(), &id, &bytes);
}

/// The DELETE's removal hangs in the store (an S3 DELETE that stalls): meanwhile another
/// process revokes a key and the API stores other bytes at once, and a re-upload of the same
/// bytes waits for the removal, then stores them anew. (The catalog's write lock was held
/// across the store's DELETE: the others waited the busy timeout, then failed.)
fn upload_while_the_removal_hangs(api: &Api) {
    let config = api.config();
    let bytes = fixture_bytes(PHOTO);
    let id = uploaded(api, PHOTO);
    let spare = api.catalog().add_key("alice", Rights::READ).unwrap();
    let store: Arc<dyn Store> = Arc::from(store::open(&config.store).unwrap());
    let hooked = Hooked::new(store.clone());
    let (inside, removing) = mpsc::channel();
    let (go, hang) = mpsc::channel::<()>();
    *hooked.before_delete.lock().unwrap() = Some(Box::new(move || {
        inside.send(()).unwrap();
        let _ = hang.recv_timeout(Duration::from_secs(20));
    }));
    thread::scope(|s| {
        let deleter = s.spawn(|| {
            let mut catalog = api.catalog();
            let deleted = catalog.delete(&id).unwrap();
            purge::finish_delete(
                config,
                &hooked,
                &cache(config),
                &mut catalog,
                &deleted.pending,
            );
        });
        removing
            .recv_timeout(Duration::from_secs(30))
            .expect("the removal reached the store");

        let started = Instant::now();
        let out = admin(&api.site.config_path(), &["key", "revoke", &spare.id]);
        assert!(out.status.success(), "{out:?}");
        uploaded(api, OTHER);
        let took = started.elapsed();
        assert!(
            // Well under the catalog's 10 s busy timeout, with room for a slow CI machine.
            took < Duration::from_secs(5),
            "other writers waited {took:?}"
        );
        let revoked = api.catalog().key(&spare.id).unwrap().unwrap();
        assert!(revoked.revoked.is_some());

        let reupload = s.spawn(|| {
            let upload = Upload::default();
            ingest::ingest(config, store.as_ref(), &mut api.catalog(), &bytes, &upload)
        });
        thread::sleep(Duration::from_millis(300));
        assert!(
            !reupload.is_finished(),
            "the re-upload waits for the removal"
        );
        go.send(()).unwrap();
        deleter.join().unwrap();
        let inserted = reupload.join().unwrap().unwrap();
        assert!(matches!(inserted, Inserted::New(_)), "{inserted:?}");
    });
    assert_kept(api, store.as_ref(), &id, &bytes);
}

fn admin(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imgserv-admin"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("GATEWAY_INTERFACE")
        .output()
        .unwrap()
}

fn fs_api() -> Api {
    Api::new("")
}

fn s3_api(s3: &S3Server, prefix: &str) -> Api {
    Api::new(&s3_store(&s3.endpoint(), prefix))
}

fn s3_store(endpoint: &str, prefix: &str) -> String {
    format!(
        "[store]\ntype = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\naccess_key = \"{}\"\n\
         secret_key = \"{}\"\nprefix = \"{prefix}\"\n",
        endpoint,
        S3Server::BUCKET,
        S3Server::ACCESS_KEY,
        S3Server::SECRET_KEY
    )
}

#[test]
fn fs_a_removal_between_put_and_insert_keeps_the_original() {
    removal_between_put_and_insert(&fs_api());
}

#[test]
fn s3_a_removal_between_put_and_insert_keeps_the_original() {
    let s3 = S3Server::start();
    removal_between_put_and_insert(&s3_api(&s3, "a/"));
}

#[test]
fn fs_a_hanging_removal_holds_up_no_other_writer() {
    upload_while_the_removal_hangs(&fs_api());
}

#[test]
fn s3_a_hanging_removal_holds_up_no_other_writer() {
    let s3 = S3Server::start();
    upload_while_the_removal_hangs(&s3_api(&s3, "b/"));
}

/// Across processes: `imgserv-evict` sweeps a deleted original while its S3 endpoint stalls
/// (it accepts the DELETE and never answers; the API's route to the same bucket works).
/// Meanwhile `imgserv-admin` revokes a key and the API stores other bytes at once; a re-upload
/// of the bytes being removed gets 503 `removal-in-progress` rather than a row the removal
/// would empty. Once the stalled DELETE fails, the row waits for the next sweep and the
/// re-upload goes through.
#[test]
fn s3_a_sweep_stalled_in_another_process_holds_up_no_other_writer() {
    let s3 = S3Server::start();
    let api = s3_api(&s3, "");
    let config = api.config();
    let bytes = fixture_bytes(PHOTO);
    let id = uploaded(&api, PHOTO);
    let spare = api.catalog().add_key("alice", Rights::READ).unwrap();
    // The DELETE request died after its transaction: the sweep has the rows.
    api.catalog().delete(&id).unwrap();

    let stall = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", stall.local_addr().unwrap());
    let (accepted, stalled) = mpsc::channel();
    let (release, held) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let (stream, _) = stall.accept().unwrap();
        accepted.send(()).unwrap();
        // Open and unanswered (longer than an upload waits for a removal) until released.
        let _ = held.recv_timeout(Duration::from_secs(50));
        drop(stream);
    });
    api.site.write_config(&s3_store(&endpoint, ""));
    let mut evict = Command::new(env!("CARGO_BIN_EXE_imgserv-evict"));
    evict.arg("--config").arg(api.site.config_path());
    let mut evict = Child::spawn("imgserv-evict", evict, api.site.dir());
    stalled
        .recv_timeout(Duration::from_secs(30))
        .expect("imgserv-evict sent its DELETE");

    let started = Instant::now();
    let out = admin(&api.site.config_path(), &["key", "revoke", &spare.id]);
    assert!(out.status.success(), "{out:?}");
    uploaded(&api, OTHER);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "other writers waited {took:?}"
    );
    let resp = api.call("POST", "/api/images", "", &bytes);
    assert_error(&resp, 503, "removal-in-progress");
    assert_eq!(resp.header("retry-after"), Some("30"));
    assert!(evict.exited().is_none(), "the sweep was still stalled");

    release.send(()).unwrap();
    holder.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while evict.exited().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        evict.exited().is_some(),
        "imgserv-evict ended once the DELETE failed"
    );
    let left: Vec<Doomed> = api
        .catalog()
        .pending()
        .unwrap()
        .iter()
        .map(|p| p.what)
        .collect();
    assert_eq!(
        left,
        [Doomed::Original],
        "the variants went; the original waits"
    );
    uploaded(&api, PHOTO);
    let store: Arc<dyn Store> = Arc::from(store::open(&config.store).unwrap());
    assert_kept(&api, store.as_ref(), &id, &bytes);
}
