//! Full disks: the cache, state and store directories on small tmpfs mounts, filled up. A miss
//! or an upload that cannot be written answers `507`, leaves no partial file and no row, and
//! the same request succeeds once space is freed.
//!
//! Mounting needs root (as `make test` runs in CI); elsewhere these tests fail naming why.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::redirector::{dims, files_below, variant_file, variant_rows};
use crate::support::{Cgi, CgiResponse, Site};

/// A tmpfs mounted over a directory for the life of the value.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs on {} needs root: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir: dir.into() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system holding `dir` with one file, to the last block; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    // Small writes may still fit in what a partly written block left.
    while f.write_all(&[0]).is_ok() {}
    path
}

fn resize(site: &Site, w: u32, h: u32) -> CgiResponse {
    Cgi::new(site)
        .query(&format!(
            "src=photo-rocket-640x427.jpg&width={w}&height={h}"
        ))
        .run()
}

fn temp_files(dir: &Path) -> Vec<String> {
    files_below(dir)
        .into_iter()
        .filter(|f| f.ends_with(".tmp") || f.contains(".tmp."))
        .collect()
}

fn code(r: &CgiResponse) -> String {
    r.body_text().split(':').next().unwrap_or("").to_owned()
}

#[test]
fn a_full_cache_file_system_is_507_then_recovers() {
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    let _mount = Tmpfs::mount(&site.cache(), "1m");
    let filler = fill(&site.cache());

    let r = resize(&site, 600, 400);
    assert_eq!((r.status, code(&r).as_str()), (507, "disk-full"), "{r:?}");
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(temp_files(&site.cache()), Vec::<String>::new());
    assert_eq!(variant_rows(&site), 0, "nothing indexed");
    assert_eq!(
        files_below(&site.cache()),
        ["filler"],
        "nothing half-written"
    );

    fs::remove_file(filler).unwrap();
    let r = resize(&site, 600, 400);
    assert_eq!(r.status, 302, "{r:?}");
    let file = variant_file(&site, r.header("Location").unwrap());
    assert_eq!(dims(&fs::read(file).unwrap()).1.width, 550);
    assert_eq!(variant_rows(&site), 1);
}

#[test]
fn a_full_state_file_system_is_507_then_recovers() {
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    let _mount = Tmpfs::mount(&site.state(), "2m");
    // One variant first, so the index exists; then the state file system fills up.
    assert_eq!(resize(&site, 100, 100).status, 302);
    let filler = fill(&site.state());

    let r = resize(&site, 600, 400);
    assert_eq!((r.status, code(&r).as_str()), (507, "disk-full"), "{r:?}");
    assert_eq!(variant_rows(&site), 1, "the failed variant is not indexed");
    // No variant file the index does not know of: a redirect to it would never be evicted.
    let on_disk: Vec<String> = files_below(&site.cache())
        .into_iter()
        .filter(|f| f.ends_with(".jpg"))
        .collect();
    assert_eq!(on_disk.len(), 1, "{on_disk:?}");
    assert_eq!(temp_files(&site.cache()), Vec::<String>::new());

    // The first variant is still served while the disk is full (a hit needs no write).
    assert_eq!(resize(&site, 100, 100).status, 302);

    fs::remove_file(filler).unwrap();
    let r = resize(&site, 600, 400);
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(variant_rows(&site), 2);
}
