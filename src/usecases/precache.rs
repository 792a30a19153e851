//! `imgserv-precache`: renders ahead of time exactly the variants the redirector would serve
//! for given boxes — same raster rules, same paths, same index rows (it calls the redirector's
//! own `variant::get`) — so that they can be copied to mirrors before anyone asks.
//!
//! Work is spread over threads by variant — each box of a local original is a job of its own,
//! since the render lock is per variant — biggest jobs first, so that the threads finish
//! together instead of one rendering the last large photo alone. A remote original stays one
//! job (all its boxes in one thread), so that it is downloaded once. Progress shows on a
//! terminal, log lines otherwise.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::domain::format::Format;
use crate::domain::geometry::Size;
use crate::io::cache::Cache;
use crate::io::config::Config;
use crate::io::source::remote;
use crate::usecases::variant;

/// What to precache.
#[derive(Debug, Clone)]
pub struct Options {
    /// Every box each source is rendered for (from `--box` and `--preset`).
    pub boxes: Vec<Size>,
    /// Worker threads.
    pub jobs: usize,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub rendered: usize,
    /// Variants that were already in the cache.
    pub found: usize,
    /// `(src, reason)` for every source or variant that failed.
    pub failed: Vec<(String, String)>,
    /// Every variant produced or found, relative to the cache directory, sorted.
    pub paths: BTreeSet<String>,
    pub elapsed: Duration,
}

impl Summary {
    /// The closing line.
    pub fn line(&self) -> String {
        format!(
            "{} variants: {} rendered, {} already cached, {} failed in {:.1} s",
            self.rendered + self.found + self.failed.len(),
            self.rendered,
            self.found,
            self.failed.len(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// The sources named by `args`: files and directories (walked; only image file names are
/// taken from them) below the originals root — given relative to it or as paths that lead
/// into it — and remote URLs. Unusable arguments come back as `(argument, reason)`.
pub fn sources(config: &Config, args: &[String]) -> (Vec<String>, Vec<(String, String)>) {
    let root = &config.originals.root;
    let mut srcs = Vec::new();
    let mut bad = Vec::new();
    for arg in args {
        if remote::is_remote(arg) {
            srcs.push(arg.clone());
            continue;
        }
        let Some(path) = locate(root, arg) else {
            bad.push((
                arg.clone(),
                format!("not found below the originals root {}", root.display()),
            ));
            continue;
        };
        if path.is_dir() {
            for entry in walkdir::WalkDir::new(&path).sort_by_file_name() {
                match entry {
                    Ok(e) if e.file_type().is_file() && is_image_name(e.path()) => {
                        if let Some(rel) = relative(root, e.path()) {
                            srcs.push(rel);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => bad.push((arg.clone(), e.to_string())),
                }
            }
        } else if let Some(rel) = relative(root, &path) {
            srcs.push(rel);
        } else {
            bad.push((arg.clone(), "not below the originals root".into()));
        }
    }
    (srcs, bad)
}

/// `arg` as a path below the root, or as a path (absolute or from the current directory)
/// that leads into it.
fn locate(root: &Path, arg: &str) -> Option<PathBuf> {
    let below = root.join(arg);
    let path = if below.exists() && !Path::new(arg).is_absolute() {
        below
    } else {
        PathBuf::from(arg)
    };
    let canonical = path.canonicalize().ok()?;
    canonical.starts_with(root).then_some(canonical)
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?.to_str()?;
    Some(if rel.is_empty() {
        ".".into()
    } else {
        rel.to_string()
    })
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(Format::from_ext)
        .is_some()
}

/// A unit of work for one thread: boxes of one source, rendered in this order.
#[derive(Debug, PartialEq)]
struct Job<'a> {
    src: &'a str,
    boxes: Vec<Size>,
}

/// The jobs for `srcs` × `boxes`, biggest first: remote sources (one job each, as a download
/// comes first and should happen once), then every (local source, box) by decreasing file size
/// of the original, then decreasing box area. Ties keep the order of the arguments.
fn jobs<'a>(root: &Path, srcs: &'a [String], boxes: &[Size]) -> Vec<Job<'a>> {
    let mut boxes = boxes.to_vec();
    boxes.sort_by_key(|b| Reverse(u64::from(b.width) * u64::from(b.height)));
    let mut jobs = Vec::with_capacity(srcs.len() * boxes.len());
    for src in srcs {
        if remote::is_remote(src) {
            jobs.push((
                u64::MAX,
                0,
                Job {
                    src,
                    boxes: boxes.clone(),
                },
            ));
            continue;
        }
        // Unreadable sources sort last; their jobs fail quickly with the reason.
        let bytes = std::fs::metadata(root.join(src)).map_or(0, |m| m.len());
        for &b in &boxes {
            let area = u64::from(b.width) * u64::from(b.height);
            jobs.push((
                bytes,
                area,
                Job {
                    src,
                    boxes: vec![b],
                },
            ));
        }
    }
    jobs.sort_by_key(|&(bytes, area, _)| (Reverse(bytes), Reverse(area)));
    jobs.into_iter().map(|(_, _, job)| job).collect()
}

/// Renders (or finds) every box of every source, on `opts.jobs` threads.
pub fn run(config: &Config, srcs: &[String], opts: &Options) -> Summary {
    let started = Instant::now();
    // Renders one after another: keep the memory each frees for the next (see `malloc`).
    crate::io::malloc::for_long_lived_process();
    let total = srcs.len() * opts.boxes.len();
    let bar = progress_bar(total as u64);
    let jobs = jobs(&config.originals.root, srcs, &opts.boxes);
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary::default());
    thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1).min(jobs.len().max(1)) {
            scope.spawn(|| {
                let mut cache = match open_cache(config) {
                    Ok(c) => c,
                    Err(e) => {
                        let mut s = summary.lock().unwrap_or_else(|p| p.into_inner());
                        s.failed.push(("(cache)".into(), e.to_string()));
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&Job { src, ref boxes }) = jobs.get(i) else {
                        break;
                    };
                    for &bbox in boxes {
                        let outcome = variant::get(config, &mut cache, src, bbox);
                        let mut s = summary.lock().unwrap_or_else(|p| p.into_inner());
                        match outcome {
                            Ok(v) => {
                                if v.rendered {
                                    s.rendered += 1;
                                } else {
                                    s.found += 1;
                                }
                                if bar.is_none() {
                                    let what = if v.rendered { "rendered" } else { "cached" };
                                    log::info!("{src} {bbox}: {} {what}", v.rel);
                                }
                                s.paths.insert(v.rel);
                            }
                            Err(e) => {
                                log::warn!("{src} {bbox}: {e}");
                                s.failed.push((format!("{src} ({bbox})"), e.to_string()));
                            }
                        }
                        if let Some(bar) = &bar {
                            bar.inc(1);
                        }
                    }
                }
            });
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut summary = summary.into_inner().unwrap_or_else(|p| p.into_inner());
    summary.elapsed = started.elapsed();
    summary
}

fn open_cache(config: &Config) -> Result<Cache, crate::io::cache::CacheError> {
    config.open_cache()
}

/// A progress bar (done/total, rate, ETA) when standard error is a terminal.
fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} variants  {per_sec}  ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// Writes `paths`, one a line, for `rsync --files-from` (atomically; `-` is standard output).
pub fn write_list(list: &Path, paths: &BTreeSet<String>) -> std::io::Result<()> {
    let mut text = String::with_capacity(paths.len() * 64);
    for p in paths {
        text.push_str(p);
        text.push('\n');
    }
    if list == Path::new("-") {
        use std::io::Write;
        return std::io::stdout().lock().write_all(text.as_bytes());
    }
    crate::io::cache::write_atomically(list, text.as_bytes())
}

/// The boxes of `--box` values and `--preset` names; an unknown preset is an error naming it.
pub fn boxes(config: &Config, boxes: &[Size], presets: &[String]) -> Result<Vec<Size>, String> {
    let mut out: Vec<Size> = boxes.to_vec();
    for name in presets {
        let preset = config
            .presets
            .get(name)
            .ok_or_else(|| format!("no preset called {name:?} in the configuration"))?;
        out.extend(preset);
    }
    for b in &out {
        if b.width > config.limits.max_width || b.height > config.limits.max_height {
            return Err(format!(
                "box {b} is larger than limits.max_width x limits.max_height ({}x{})",
                config.limits.max_width, config.limits.max_height
            ));
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err("give at least one --box or --preset".into());
    }
    Ok(out)
}

/// The whole tool after argument parsing: run, print the summary and every failure, write the
/// list; 0 when everything worked, 65 (`EX_DATAERR`) when anything failed, 73 when the list
/// could not be written.
pub fn main(config: &Config, args: &[String], opts: &Options, list: Option<&Path>) -> i32 {
    use crate::usecases::error::exit;
    let (srcs, mut bad) = sources(config, args);
    let mut summary = run(config, &srcs, opts);
    summary.failed.append(&mut bad);
    for (what, why) in &summary.failed {
        eprintln!("failed: {what}: {why}");
    }
    eprintln!("{}", summary.line());
    if let Some((list, Err(e))) = list.map(|l| (l, write_list(l, &summary.paths))) {
        eprintln!("imgserv-precache: {}: {e}", list.display());
        return exit::CANTCREAT;
    }
    if summary.failed.is_empty() {
        exit::OK
    } else {
        exit::DATAERR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_variants_biggest_first_and_a_remote_source_stays_whole() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("small.jpg"), [0u8; 10]).unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        std::fs::write(root.path().join("d/big.jpg"), [0u8; 1000]).unwrap();
        let srcs: Vec<String> = [
            "small.jpg",
            "missing.jpg",
            "https://example.org/a.jpg",
            "d/big.jpg",
        ]
        .map(String::from)
        .into();
        let (small, large) = (Size::new(100, 100), Size::new(800, 600));
        let got = jobs(root.path(), &srcs, &[small, large]);
        let job = |src, boxes: &[Size]| Job {
            src,
            boxes: boxes.to_vec(),
        };
        assert_eq!(
            got,
            [
                job("https://example.org/a.jpg", &[large, small]),
                job("d/big.jpg", &[large]),
                job("d/big.jpg", &[small]),
                job("small.jpg", &[large]),
                job("small.jpg", &[small]),
                job("missing.jpg", &[large]),
                job("missing.jpg", &[small]),
            ]
        );
    }
}
