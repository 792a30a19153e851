//! The cache index at scale (issue 5): a hit's index work — `Cache::open` as a CGI process does
//! it, the one indexed `lookup`, the `stat` — on an index of 1,000 and of 1,000,000 variants,
//! and evicting 100,000 variants (rows and files) by budget from the large one.
//!
//! Not criterion: building a million-row index takes longer than criterion's setup allows, so
//! this is a plain `main` (`harness = false`) that prints medians and PASS/FAIL lines for
//! `make bench`. `cargo bench --bench scale`.
//!
//! Rows are inserted with SQL into the schema `Cache::open` created (4 variants a source, as a
//! site with a few sizes per photo has); the variants looked up have real files.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use imgserv::domain::format::Format;
use imgserv::domain::geometry::Size;
use imgserv::io::cache::{Cache, SourceKey, variant_path};
use rusqlite::{Connection, params};

const VARIANT_BYTES: i64 = 10_000;
const PER_SOURCE: u64 = 4;
const SIZES: [(u32, u32); 4] = [(800, 600), (400, 300), (200, 150), (100, 75)];

fn key(i: u64) -> SourceKey {
    SourceKey {
        ident: format!("local:photos/{:03}/img-{i:08}.jpg", i % 997),
        version: format!("{}-{}", 1_000_000 + i, 1_700_000_000_000u64 + i),
    }
}

/// Builds an index of `variants` rows; the sources `0..with_files` (and for eviction the
/// oldest `files_oldest` variants) get real files.
fn build(root: &Path, variants: u64, with_files: u64, files_oldest: u64) -> Cache {
    let (dir, index) = (root.join("cache"), root.join("state/index.sqlite"));
    fs::create_dir_all(root.join("state")).unwrap();
    let cache = Cache::open(&dir, &index, u64::MAX / 4, Duration::from_secs(3600)).unwrap();
    let mut conn = Connection::open(&index).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut src = tx
            .prepare(
                "INSERT INTO sources (id, ident, version, dir, format, width, height, created)
                 VALUES (?1, ?2, ?3, ?4, 'jpg', 4032, 3024, 0)",
            )
            .unwrap();
        let mut var = tx
            .prepare(
                "INSERT INTO variants (path, source_id, width, height, bytes, created, last_access)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )
            .unwrap();
        let sources = variants.div_ceil(PER_SOURCE);
        let mut n = 0;
        for s in 0..sources {
            let k = key(s);
            let d = k.dir();
            src.execute(params![s as i64 + 1, k.ident, k.version, d])
                .unwrap();
            for (w, h) in SIZES {
                if n == variants {
                    break;
                }
                let rel = variant_path(&d, Size::new(w, h), Format::Jpeg);
                // Older sources were accessed longer ago: eviction takes them first.
                let t = n as i64;
                var.execute(params![rel, s as i64 + 1, w, h, VARIANT_BYTES, t])
                    .unwrap();
                if s < with_files || n < files_oldest {
                    let path = dir.join(&rel);
                    fs::create_dir_all(path.parent().unwrap()).unwrap();
                    fs::write(&path, b"x").unwrap();
                }
                n += 1;
            }
        }
    }
    tx.commit().unwrap();
    cache
}

/// Median nanoseconds of `f` over `rounds` rounds of `per_round` calls.
fn median_ns(rounds: usize, per_round: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|r| {
            let start = Instant::now();
            for i in 0..per_round {
                f(r as u64 * per_round + i);
            }
            start.elapsed().as_nanos() as f64 / per_round as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A hit's index work: lookup, find the variant's row, stat its file.
fn hit(cache: &Cache, i: u64) {
    let k = key(i);
    let known = cache.lookup(&k).unwrap().expect("source is indexed");
    let rel = variant_path(&known.dir, Size::new(400, 300), Format::Jpeg);
    assert!(known.variants.iter().any(|v| v.path == rel));
    assert!(cache.file(&rel).is_file(), "{rel}");
}

struct Hits {
    lookup_ns: f64,
    open_lookup_ns: f64,
}

fn measure_hits(root: &Path, cache: &Cache, sampled: u64) -> Hits {
    // Warm up: the index pages of the sampled sources in the page cache, statements prepared.
    for i in 0..sampled {
        hit(cache, i);
    }
    let lookup_ns = median_ns(21, 2_000, |i| hit(cache, (i * 7919) % sampled));
    // As a CGI process does: open the index (pragmas, schema check), one lookup.
    let (dir, index) = (root.join("cache"), root.join("state/index.sqlite"));
    let open_lookup_ns = median_ns(21, 200, |i| {
        let c = Cache::open(&dir, &index, u64::MAX / 4, Duration::from_secs(3600)).unwrap();
        hit(&c, (i * 7919) % sampled);
    });
    Hits {
        lookup_ns,
        open_lookup_ns,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn main() {
    // `cargo bench` passes --bench; any other argument is a criterion-style filter: ignore.
    let large: u64 = std::env::var("IMGSERV_BENCH_SCALE_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let evict: u64 = (large / 10).max(1);
    let sampled = 1_000 / PER_SOURCE; // sources with files, looked up in both indexes

    let small_dir = tempfile::tempdir().unwrap();
    let small = build(small_dir.path(), 1_000, sampled, 0);
    let small_hits = measure_hits(small_dir.path(), &small, sampled);

    let large_dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut large_cache = build(large_dir.path(), large, sampled, evict);
    let built = t.elapsed();
    let index_bytes =
        fs::metadata(large_dir.path().join("state/index.sqlite")).map_or(0, |m| m.len());
    let large_hits = measure_hits(large_dir.path(), &large_cache, sampled);

    println!(
        "index of {large} variants built in {:.1} s ({} MB)",
        built.as_secs_f64(),
        index_bytes >> 20
    );
    println!(
        "{:<34} {:>12} {:>12} {:>7}",
        "hit (median per hit)", "1,000", large, "ratio"
    );
    let lr = large_hits.lookup_ns / small_hits.lookup_ns;
    let or = large_hits.open_lookup_ns / small_hits.open_lookup_ns;
    println!(
        "{:<34} {:>10.1}µs {:>10.1}µs {:>7.2}",
        "lookup + stat (FastCGI, warm)",
        small_hits.lookup_ns / 1e3,
        large_hits.lookup_ns / 1e3,
        lr
    );
    println!(
        "{:<34} {:>10.1}µs {:>10.1}µs {:>7.2}",
        "open + lookup + stat (CGI)",
        small_hits.open_lookup_ns / 1e3,
        large_hits.open_lookup_ns / 1e3,
        or
    );

    let total = large_cache.totals().unwrap().bytes;
    let budget = total - evict * VARIANT_BYTES as u64;
    // Worst case, and the same every run: the files have their blocks on disk (not still in
    // delayed allocation), so each unlink frees a block as it would in a cache in service.
    let _ = std::process::Command::new("sync").status();
    let t = Instant::now();
    let evicted = large_cache.evict_to(budget, None).unwrap();
    let took = t.elapsed().as_secs_f64();
    assert_eq!(evicted.count, evict);
    println!(
        "evict {} variants (rows + files) by budget: {took:.2} s",
        evicted.count
    );
    println!(
        "scale: hit latency at {large} ≤ 1.5× at 1,000: {} (lookup {lr:.2}×, CGI open+lookup {or:.2}×)",
        verdict(lr <= 1.5 && or <= 1.5)
    );
    println!(
        "scale: evict {evict} by budget ≤ 10 s: {} ({took:.2} s)",
        verdict(took <= 10.0)
    );
}
