//! The store of originals against real backends: a temporary directory, and a real
//! S3-compatible server (`s3s-fs`, which checks signatures) on loopback. The same battery runs
//! on both; then the failures each backend can meet: refused credentials, a missing bucket, a
//! closed port, a read-only directory, a rename that cannot happen.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imgserv::domain::format::Format;
use imgserv::domain::original::OriginalId;
use imgserv::io::config::{self, StoreConfig};
use imgserv::io::store::fs::FsStore;
use imgserv::io::store::s3::{S3Options, S3Store};
use imgserv::io::store::{self, Store, StoreError};
use imgserv::usecases::error::Error;
use rusty_s3::S3Action;

use crate::support::{S3Server, fixture_bytes, free_port};

/// An original from the fixtures: bytes, id, format.
fn original(name: &str) -> (Vec<u8>, OriginalId, Format) {
    let bytes = fixture_bytes(name);
    let id = OriginalId::of(&bytes).unwrap();
    let format = Format::sniff(&bytes).unwrap();
    (bytes, id, format)
}

/// `ab/cd/<id>.<ext>`, spelled out rather than taken from `fanout()`, so that the layout on disk
/// is what this test pins down.
fn layout(id: &OriginalId, format: Format) -> String {
    let id = id.as_str();
    format!("{}/{}/{id}.{}", &id[..2], &id[2..4], format.ext())
}

/// Every file under `dir` whose name says it is temporary.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            name.ends_with(".tmp") || name.ends_with(".part")
        })
        .map(|e| e.into_path())
        .collect()
}

/// The same checks for every backend; `file_of(key)` is where the backend keeps an object on
/// disk (the fs store's directory, or s3s-fs's bucket directory plus the prefix).
fn battery(store: &dyn Store, file_of: &dyn Fn(&str) -> PathBuf) {
    let (jpeg, jpeg_id, jpeg_format) = original("photo-rocket-640x427.jpg");
    let (png, png_id, png_format) = original("photo-chelsea-cat-451x300.png");
    assert_eq!((jpeg_format, png_format), (Format::Jpeg, Format::Png));

    // Absent: not found, not there, deleting it is fine.
    assert!(!store.exists(&jpeg_id, jpeg_format).unwrap());
    assert!(matches!(
        store.get(&jpeg_id, jpeg_format),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.open(&jpeg_id, jpeg_format),
        Err(StoreError::NotFound)
    ));
    store.delete(&jpeg_id, jpeg_format).unwrap();

    // Stored: at exactly ab/cd/<id>.jpg, whole.
    store.put(&jpeg_id, jpeg_format, &jpeg).unwrap();
    store.put(&png_id, png_format, &png).unwrap();
    assert!(store.exists(&jpeg_id, jpeg_format).unwrap());
    assert_eq!(store.get(&jpeg_id, jpeg_format).unwrap(), jpeg);
    assert_eq!(store.get(&png_id, png_format).unwrap(), png);
    assert_eq!(streamed(store, &png_id, png_format), png);
    let file = file_of(&layout(&jpeg_id, jpeg_format));
    assert_eq!(
        fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
        jpeg
    );
    assert!(file_of(&layout(&png_id, png_format)).is_file());

    // The format is part of the key.
    assert!(!store.exists(&jpeg_id, Format::Png).unwrap());
    assert!(matches!(
        store.get(&jpeg_id, Format::Webp),
        Err(StoreError::NotFound)
    ));

    // A second put is fine and leaves the stored file alone (same inode, same mtime).
    let before = fs::metadata(&file).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    store.put(&jpeg_id, jpeg_format, &jpeg).unwrap();
    let after = fs::metadata(&file).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec(), before.mtime()),
        (after.ino(), after.mtime_nsec(), after.mtime()),
        "a second put rewrote {}",
        file.display()
    );

    // Deleted: gone, and gone again is fine; the other original stays.
    store.delete(&jpeg_id, jpeg_format).unwrap();
    assert!(!store.exists(&jpeg_id, jpeg_format).unwrap());
    assert!(matches!(
        store.get(&jpeg_id, jpeg_format),
        Err(StoreError::NotFound)
    ));
    assert!(!file.exists());
    store.delete(&jpeg_id, jpeg_format).unwrap();
    assert_eq!(store.get(&png_id, png_format).unwrap(), png);
}

/// An original read through `Store::open`, checking the length it announced.
fn streamed(store: &dyn Store, id: &OriginalId, format: Format) -> Vec<u8> {
    let mut object = store.open(id, format).unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut object.reader, &mut bytes).unwrap();
    assert_eq!(object.len, bytes.len() as u64);
    bytes
}

/// The status and code a client would get for a store error.
fn class(err: StoreError) -> (u16, &'static str) {
    let err = Error::from(err);
    (err.status(), err.code())
}

fn s3_options(server: &S3Server, prefix: &str) -> S3Options {
    S3Options {
        endpoint: server.endpoint(),
        region: S3Server::REGION.into(),
        bucket: S3Server::BUCKET.into(),
        path_style: true,
        access_key: S3Server::ACCESS_KEY.into(),
        secret_key: S3Server::SECRET_KEY.into(),
        prefix: prefix.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Filesystem.

#[test]
fn fs_store_battery() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("originals");
    let store = FsStore::new(root.clone());
    assert_eq!(store.describe(), format!("fs:{}", root.display()));
    battery(&store, &|key| root.join(key));
    assert!(temp_files(&root).is_empty(), "{:?}", temp_files(&root));
    let (_, id, format) = original("photo-chelsea-cat-451x300.png");
    let mode = fs::metadata(root.join(layout(&id, format)))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}

/// Makes `dir` unwritable even for root (whose CAP_DAC_OVERRIDE ignores mode bits): mode 0555,
/// and if the directory still takes a file, the immutable attribute. Undone on drop, so the
/// temp directory can be removed.
struct ReadOnly<'a> {
    dir: &'a Path,
    immutable: bool,
}

impl<'a> ReadOnly<'a> {
    fn make(dir: &'a Path) -> ReadOnly<'a> {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
        let mut guard = ReadOnly {
            dir,
            immutable: false,
        };
        let probe = dir.join("probe");
        if fs::write(&probe, b"").is_ok() {
            fs::remove_file(&probe).unwrap();
            let status = Command::new("chattr").arg("+i").arg(dir).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "running as root and `chattr +i` failed: cannot make {} read-only",
                dir.display()
            );
            guard.immutable = true;
            assert!(
                fs::write(&probe, b"").is_err(),
                "{} is still writable",
                dir.display()
            );
        }
        guard
    }
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        if self.immutable {
            let _ = Command::new("chattr").arg("-i").arg(self.dir).status();
        }
        let _ = fs::set_permissions(self.dir, fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn fs_put_into_a_read_only_directory_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path().to_path_buf());
    let (bytes, id, format) = original("photo-rocket-640x427.jpg");
    let leaf = store.path(&id, format).parent().unwrap().to_path_buf();
    fs::create_dir_all(&leaf).unwrap();
    let guard = ReadOnly::make(&leaf);
    let err = store.put(&id, format, &bytes).unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    assert_eq!(
        fs::read_dir(&leaf).unwrap().count(),
        0,
        "left a file behind"
    );
    drop(guard);
    assert_eq!(class(err), (500, "store-io"));
    // Writable again: the same put works.
    store.put(&id, format, &bytes).unwrap();
    assert_eq!(store.get(&id, format).unwrap(), bytes);
}

#[test]
fn fs_put_that_fails_after_writing_removes_its_temp_file() {
    // A directory where the original should go: the temp file is written and flushed, the
    // rename fails, and the temp file must go while the directory stays as it was.
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path().to_path_buf());
    let (bytes, id, format) = original("photo-rocket-640x427.jpg");
    let blocker = store.path(&id, format);
    fs::create_dir_all(blocker.join("someone's")).unwrap();
    let err = store.put(&id, format, &bytes).unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    assert!(
        temp_files(dir.path()).is_empty(),
        "{:?}",
        temp_files(dir.path())
    );
    assert!(blocker.join("someone's").is_dir());
    assert_eq!(fs::read_dir(blocker.parent().unwrap()).unwrap().count(), 1);
}

// ---------------------------------------------------------------------------------------------
// S3.

#[test]
fn s3_store_battery() {
    let server = S3Server::start();
    let store = S3Store::new(&s3_options(&server, "img/")).unwrap();
    assert_eq!(
        store.describe(),
        format!("s3:{}/{}/img", server.endpoint(), S3Server::BUCKET)
    );
    battery(&store, &|key| server.object_file(&format!("img/{key}")));
    assert!(
        temp_files(&server.root()).is_empty(),
        "{:?}",
        temp_files(&server.root())
    );

    // The object carries its Content-Type (asked for directly, not through the store).
    let (_, id, format) = original("photo-chelsea-cat-451x300.png");
    let bucket = rusty_s3::Bucket::new(
        server.endpoint().parse().unwrap(),
        rusty_s3::UrlStyle::Path,
        S3Server::BUCKET,
        S3Server::REGION,
    )
    .unwrap();
    let credentials = rusty_s3::Credentials::new(S3Server::ACCESS_KEY, S3Server::SECRET_KEY);
    let key = format!("img/{}", layout(&id, format));
    let url = bucket
        .head_object(Some(&credentials), &key)
        .sign(Duration::from_secs(60));
    let response = ureq::head(url.as_str()).call().unwrap();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
}

#[test]
fn s3_objects_over_ten_megabytes_round_trip() {
    // Larger than ureq's default body limit (10 MB): an original of a big camera is.
    let server = S3Server::start();
    let store = S3Store::new(&s3_options(&server, "")).unwrap();
    let mut bytes = fixture_bytes("photo-nexus6p-exif-4032x3024.jpg");
    while bytes.len() <= 12 << 20 {
        bytes.extend_from_slice(&fixture_bytes("photo-nexus6p-exif-4032x3024.jpg"));
    }
    let id = OriginalId::of(&bytes).unwrap();
    store.put(&id, Format::Jpeg, &bytes).unwrap();
    assert_eq!(
        fs::metadata(server.object_file(&layout(&id, Format::Jpeg)))
            .unwrap()
            .len(),
        bytes.len() as u64
    );
    assert!(store.get(&id, Format::Jpeg).unwrap() == bytes);
    assert!(streamed(&store, &id, Format::Jpeg) == bytes);
}

#[test]
fn s3_wrong_credentials_are_denied_with_a_clear_message() {
    let server = S3Server::start();
    let (bytes, id, format) = original("photo-rocket-640x427.jpg");

    let mut options = s3_options(&server, "");
    options.secret_key = "not-the-secret".into();
    let store = S3Store::new(&options).unwrap();
    for (op, result) in [
        ("get", store.get(&id, format).map(|_| ())),
        ("put", store.put(&id, format, &bytes)),
        ("exists", store.exists(&id, format).map(|_| ())),
        ("delete", store.delete(&id, format)),
    ] {
        let err = result.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Denied(_)), "{op}: {err:?}");
        assert!(
            msg.contains("credentials") || msg.contains("signature"),
            "{op}: {msg}"
        );
        assert_eq!(class(err), (500, "store-denied"), "{op}");
    }
    let err = store.get(&id, format).unwrap_err().to_string();
    assert!(
        err.contains("S3 refused the credentials: SignatureDoesNotMatch"),
        "{err}"
    );
    assert!(
        !server.object_file(&layout(&id, format)).exists(),
        "a refused put stored something"
    );

    let mut options = s3_options(&server, "");
    options.access_key = "nobody-knows-me".into();
    let err = S3Store::new(&options)
        .unwrap()
        .get(&id, format)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Denied(_)) && err.to_string().contains("credentials"),
        "{err:?}"
    );
}

#[test]
fn s3_missing_bucket_is_denied_naming_it() {
    // s3s-fs checks the bucket on DELETE (AWS and MinIO do on every request; s3s-fs 0.14
    // creates a missing bucket's directory on PUT, so PUT cannot be checked against it here).
    let server = S3Server::start();
    let (_, id, format) = original("photo-rocket-640x427.jpg");
    let mut options = s3_options(&server, "");
    options.bucket = "no-such-bucket".into();
    let store = S3Store::new(&options).unwrap();
    let err = store.delete(&id, format).unwrap_err();
    assert!(matches!(err, StoreError::Denied(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("bucket \"no-such-bucket\" does not exist"),
        "{err}"
    );
    assert_eq!(class(err), (500, "store-denied"));
}

#[test]
fn s3_closed_port_is_unavailable_quickly() {
    let port = free_port(); // nothing listens there
    let store = S3Store::new(&S3Options {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        bucket: "originals".into(),
        path_style: true,
        access_key: "k".into(),
        secret_key: "s".into(),
        prefix: String::new(),
    })
    .unwrap();
    let (bytes, id, format) = original("photo-rocket-640x427.jpg");
    let check = |op: &str, run: &dyn Fn() -> Result<(), StoreError>| {
        let started = Instant::now();
        let err = run().unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{op} took {:?}",
            started.elapsed()
        );
        assert!(matches!(err, StoreError::Unavailable(_)), "{op}: {err:?}");
        assert!(
            !err.to_string().contains("X-Amz"),
            "{op}: the message holds the presigned URL: {err}"
        );
        assert_eq!(class(err), (503, "store-unavailable"), "{op}");
    };
    check("get", &|| store.get(&id, format).map(|_| ()));
    check("put", &|| store.put(&id, format, &bytes));
    check("exists", &|| store.exists(&id, format).map(|_| ()));
    check("delete", &|| store.delete(&id, format));
}

// ---------------------------------------------------------------------------------------------
// From the configuration to a working store.

#[test]
fn store_config_opens_the_backend_it_names() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("originals")).unwrap();
    let base =
        "[originals]\nroot = \"originals\"\n[state]\ndir = \"state\"\n[cache]\ndir = \"cache\"\n";
    let (bytes, id, format) = original("photo-rocket-640x427.jpg");

    // fs: the default type, dir relative to the config file.
    let text = format!("{base}[store]\ndir = \"kept\"\n");
    let config = config::from_str(&text, dir.path()).unwrap();
    assert_eq!(
        config.store,
        StoreConfig::Fs {
            dir: dir.path().join("kept")
        }
    );
    let fs_store = store::open(&config.store).unwrap();
    fs_store.put(&id, format, &bytes).unwrap();
    assert!(dir.path().join("kept").join(layout(&id, format)).is_file());

    // s3: credentials and region from the AWS variables (passed in, not set in this process).
    let text = format!(
        "{base}[store]\ntype = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\nprefix = \"p\"\n",
        server.endpoint(),
        S3Server::BUCKET
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", S3Server::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", S3Server::SECRET_KEY),
        ("AWS_REGION", S3Server::REGION),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let config = config::from_str_env(&text, dir.path(), &env).unwrap();
    assert!(!format!("{config:?}").contains(S3Server::SECRET_KEY));
    let s3_store = store::open(&config.store).unwrap();
    s3_store.put(&id, format, &bytes).unwrap();
    assert_eq!(
        fs::read(server.object_file(&format!("p/{}", layout(&id, format)))).unwrap(),
        bytes
    );

    // Without the AWS variables the same file names the missing keys.
    let errs = config::from_str(&text, dir.path()).unwrap_err().to_string();
    assert!(
        errs.contains("store.access_key: required") && errs.contains("store.secret_key: required"),
        "{errs}"
    );
}
