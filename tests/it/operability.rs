//! Running it: `imgserv-admin fsck [--repair]` on planted damage, `GET /status` in CGI and the
//! standalone server (healthy, a damaged catalog, a cache directory that cannot be written),
//! `GET /metrics` in the standalone server and FastCGI behind nginx (counters after hits and
//! misses, 404 when off or in CGI, 403 from an address not allowed), and the log line of each
//! request.

use std::fs::{self, File, FileTimes};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use imgserv::domain::format::Format;
use imgserv::domain::original::OriginalId;
use imgserv::io::catalog::Catalog;
use serde_json::Value;

use crate::api::{Api, load};
use crate::redirector::files_below;
use crate::support::{Cgi, Nginx, Site, fixture_bytes, get, standalone};

fn admin(site: &Site, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imgserv-admin"))
        .arg("--config")
        .arg(site.config_path())
        .args(args)
        .env_remove("GATEWAY_INTERFACE")
        .output()
        .unwrap()
}

/// Exit code and stdout lines of `imgserv-admin fsck ARGS`.
fn fsck(site: &Site, args: &[&str]) -> (i32, Vec<String>) {
    let mut all = vec!["fsck"];
    all.extend(args);
    let out = admin(site, &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "fsck {args:?}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap(),
        stdout.lines().map(str::to_string).collect(),
    )
}

/// Writes `bytes` at `path` (making its directory) an hour old: older than a write in flight.
fn plant(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    age(path);
}

fn age(path: &Path) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(hour_ago))
        .unwrap();
}

/// The one line about `what`, asserting there is exactly one.
#[track_caller]
fn line_about<'a>(lines: &'a [String], kind: &str, what: &str) -> &'a str {
    let found: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{kind} ")) && l.contains(what))
        .collect();
    assert_eq!(found.len(), 1, "one {kind} line about {what} in {lines:#?}");
    found[0]
}

#[test]
fn fsck_reports_each_planted_problem_once_and_repair_keeps_every_original() {
    let api = Api::new("");
    let site = &api.site;
    let config = load(site);
    // A healthy installation: two uploads, a variant of one, a redirector variant.
    let (status, kept) = api.upload("photo-rocket-640x427.jpg", "");
    assert_eq!(status, 201, "{kept}");
    let kept: OriginalId = kept["id"].as_str().unwrap().parse().unwrap();
    let (status, lost) = api.upload("photo-chelsea-cat-451x300.png", "");
    assert_eq!(status, 201, "{lost}");
    let lost: OriginalId = lost["id"].as_str().unwrap().parse().unwrap();
    let r = crate::api::get_404(&api.app, &format!("/cache/{kept}/200/133.jpg"), "");
    assert_eq!(r.status, 200);
    site.add_original("photo-rocket-640x427.jpg");
    let r = Cgi::new(site)
        .query("src=photo-rocket-640x427.jpg&width=300&height=300")
        .run();
    assert_eq!(r.status, 302, "{r:?}");
    // Everything there is older than a write in flight.
    for dir in [site.cache(), site.store()] {
        for f in files_below(&dir) {
            age(&dir.join(f));
        }
    }
    let (code, lines) = fsck(site, &[]);
    assert_eq!((code, lines.len()), (0, 0), "clean: {lines:#?}");

    // Plant one of each problem.
    let orphan_variant = "r/00/000000000000000000000000000000/0000000000000000/10x10.jpg";
    plant(&site.cache().join(orphan_variant), b"not indexed");
    let orphan_link = format!("{}/100/100.jpg", "e".repeat(40));
    plant(&site.cache().join(&orphan_link), b"no such image");
    let indexed = imgserv::io::cache::Cache::open(
        &config.cache.dir,
        &config.state.index_path(),
        config.cache.max_bytes,
        config.cache.access_interval,
    )
    .unwrap()
    .variants()
    .unwrap();
    let (gone_variant, _) = indexed
        .iter()
        .find(|(p, _)| p.ends_with("/300x200.jpg"))
        .expect("the redirector's variant is indexed");
    fs::remove_file(site.cache().join(gone_variant)).unwrap();
    let cache_tmp = "r/00/.10x10.jpg.1.ThreadId(1).2.tmp";
    plant(&site.cache().join(cache_tmp), b"half");
    let store_tmp = "ab/cd/.x.jpg.1.2.tmp";
    plant(&site.store().join(store_tmp), b"half");
    // In flight: a fresh temporary file is no problem.
    fs::write(site.cache().join("r/00/.fresh.jpg.1.2.3.tmp"), b"x").unwrap();
    let store = imgserv::io::store::open(&config.store).unwrap();
    let orphan_bytes = fixture_bytes("photo-hopper-128x128.png");
    let orphan = OriginalId::of(&orphan_bytes).unwrap();
    store.put(&orphan, Format::Png, &orphan_bytes).unwrap();
    let orphan_rel = imgserv::io::store::key(&orphan, Format::Png);
    age(&site.store().join(&orphan_rel));
    let lost_rel = imgserv::io::store::key(&lost, Format::Png);
    let lost_bytes = fs::read(site.store().join(&lost_rel)).unwrap();
    fs::remove_file(site.store().join(&lost_rel)).unwrap();
    let index = rusqlite::Connection::open(config.state.index_path()).unwrap();
    index
        .execute(
            "UPDATE totals SET bytes = bytes + 1000, count = count + 3",
            [],
        )
        .unwrap();

    let (code, lines) = fsck(site, &[]);
    assert_eq!(code, 65, "{lines:#?}");
    line_about(&lines, "orphan-variant", orphan_variant);
    line_about(&lines, "orphan-link", &orphan_link);
    line_about(&lines, "missing-variant", gone_variant);
    line_about(&lines, "temporary-file", &format!("cache/{cache_tmp}"));
    line_about(&lines, "temporary-file", &format!("store/{store_tmp}"));
    line_about(&lines, "orphan-original", &orphan_rel);
    line_about(&lines, "missing-original", lost.as_str());
    let totals = line_about(&lines, "wrong-totals", "totals");
    let rows = indexed.len();
    assert!(
        totals.contains(&format!(" in {} variants, ", rows + 3))
            && totals.ends_with(&format!(" in {rows}")),
        "{totals}"
    );
    assert_eq!(lines.len(), 8, "one line per problem: {lines:#?}");

    let (code, lines) = fsck(site, &["--repair"]);
    assert_eq!(code, 65, "a lost original cannot be repaired: {lines:#?}");
    assert!(
        lines
            .iter()
            .filter(|l| !l.starts_with("missing-original"))
            .all(|l| l.contains("(repaired: ")),
        "{lines:#?}"
    );
    assert!(line_about(&lines, "missing-original", lost.as_str()).contains("restore it"));
    // What was repaired is fixed; every original a row names is still there.
    let (code, lines) = fsck(site, &[]);
    assert_eq!(code, 65);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(!site.cache().join(orphan_variant).exists());
    assert!(!site.cache().join(&orphan_link).exists());
    assert!(!site.cache().join(cache_tmp).exists());
    assert!(!site.store().join(store_tmp).exists());
    assert!(
        site.cache().join("r/00/.fresh.jpg.1.2.3.tmp").exists(),
        "in flight: kept"
    );
    assert!(store.exists(&kept, Format::Jpeg).unwrap());
    assert!(
        store.exists(&orphan, Format::Png).unwrap(),
        "an orphan original is kept"
    );
    let catalog = Catalog::open(&config.state.catalog_path()).unwrap();
    let adopted = catalog.get(&orphan).unwrap().expect("catalogued again");
    assert_eq!((adopted.width, adopted.height), (128, 128));
    assert_eq!(adopted.category, "/");
    let (bytes, count): (i64, i64) = index
        .query_row("SELECT bytes, count FROM totals", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let (sum, rows): (i64, i64) = index
        .query_row(
            "SELECT coalesce(sum(bytes), 0), count(*) FROM variants",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((bytes, count), (sum, rows));
    // Restored from a backup, the lost original makes the installation clean.
    fs::write(site.store().join(&lost_rel), lost_bytes).unwrap();
    assert_eq!(fsck(site, &[]), (0, vec![]));
}

fn status_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

const PROBES: [&str; 5] = ["catalog", "cache_index", "store", "cache_dir", "state_dir"];

#[test]
fn status_is_200_with_every_probe_in_cgi_and_standalone() {
    let site = Site::new();
    let r = Cgi::new(&site).path_info("/status").run();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = status_json(&r.body);
    assert_eq!(v["status"], "ok");
    for p in PROBES {
        assert_eq!(v["probes"][p]["ok"], true, "{p}: {v}");
    }
    assert!(v["probes"]["cache_dir"]["free_bytes"].as_u64().unwrap() > 0);
    let (_server, base) = standalone(&site);
    let r = get(&format!("{base}/imgserv.cgi/status"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(status_json(&r.body)["failing"], serde_json::json!([]));
}

#[test]
fn status_is_503_naming_a_damaged_catalog_or_an_unwritable_cache_dir() {
    let site = Site::new();
    let (_server, base) = standalone(&site);
    assert_eq!(get(&format!("{base}/imgserv.cgi/status")).status, 200);
    // Each request opens the catalog afresh: damage since the server started is seen.
    fs::write(site.state().join("catalog.sqlite"), vec![b'x'; 8192]).unwrap();
    let r = get(&format!("{base}/imgserv.cgi/status"));
    assert_eq!(r.status, 503, "{}", r.body_text());
    let v = status_json(&r.body);
    assert_eq!(v["failing"], serde_json::json!(["catalog"]), "{v}");
    assert_eq!(v["probes"]["catalog"]["ok"], false);
    fs::remove_file(site.state().join("catalog.sqlite")).unwrap();

    // A cache directory no one can create files in, root included.
    site.write_config("[cache]\ndir = \"/proc\"\n");
    let r = Cgi::new(&site).path_info("/status").run();
    assert_eq!(r.status, 503, "{}", r.body_text());
    let v = status_json(&r.body);
    assert_eq!(v["failing"], serde_json::json!(["cache_dir"]), "{v}");
    assert!(
        v["probes"]["cache_dir"]["error"]
            .as_str()
            .unwrap()
            .contains("not writable")
    );
}

/// The value of the sample `name` (with its labels, if any) in a text-format page.
#[track_caller]
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

/// Two misses (two variants of one source), a hit, an error; then the counters, checked.
fn exercise(script_url: &str) -> String {
    let resize = |q: &str| get(&format!("{script_url}?{q}")).status;
    assert_eq!(
        resize("src=photo-rocket-640x427.jpg&width=300&height=300"),
        302
    );
    assert_eq!(
        resize("src=photo-rocket-640x427.jpg&width=300&height=300"),
        302
    );
    assert_eq!(
        resize("src=photo-rocket-640x427.jpg&width=100&height=100"),
        302
    );
    assert_eq!(resize("src=missing.jpg&width=100&height=100"), 404);
    let r = get(&format!("{script_url}/metrics"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.body_text();
    assert_eq!(sample(&text, "imgserv_cache_misses_total"), 2.0);
    assert_eq!(sample(&text, "imgserv_cache_hits_total"), 1.0);
    assert_eq!(sample(&text, "imgserv_renders_total"), 2.0);
    assert_eq!(sample(&text, "imgserv_coalesced_waits_total"), 0.0);
    assert_eq!(
        sample(
            &text,
            "imgserv_rejections_total{code=\"source-not-found\",status=\"404\"}"
        ),
        1.0
    );
    assert!(sample(&text, "imgserv_bytes_served_total") > 0.0);
    for stage in ["read", "decode", "resize", "encode"] {
        let count = format!("imgserv_stage_seconds_count{{stage=\"{stage}\"}}");
        assert_eq!(sample(&text, &count), 2.0, "{stage}");
        let inf = format!("imgserv_stage_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}}");
        assert_eq!(sample(&text, &inf), 2.0, "{stage}");
    }
    text
}

#[test]
fn metrics_in_the_standalone_server_count_hits_misses_and_stages() {
    let site = Site::with_config("[metrics]\nenabled = true\n");
    site.add_original("photo-rocket-640x427.jpg");
    let (server, base) = standalone(&site);
    exercise(&format!("{base}/imgserv.cgi"));
    // The log line of each request, at info level.
    let log = server.log();
    for line in [
        "method=GET route=resize status=302 code=- cache=miss ms=",
        "method=GET route=resize status=302 code=- cache=hit ms=",
        "method=GET route=resize status=404 code=source-not-found cache=- ms=",
        "method=GET route=metrics status=200 code=- cache=- ms=",
    ] {
        assert!(log.contains(line), "{line} in\n{log}");
    }
}

#[test]
fn metrics_in_fastcgi_behind_nginx() {
    let site = Site::with_config("[metrics]\nenabled = true\nallow = [\"127.0.0.0/8\", \"::1\"]\n");
    site.add_original("photo-rocket-640x427.jpg");
    let nginx = Nginx::fastcgi(&site);
    exercise(&nginx.url("/cgi-bin/imgserv.cgi"));
    let log = nginx.backend().unwrap().log();
    assert!(
        log.contains("route=resize status=302 code=- cache=hit"),
        "{log}"
    );
}

#[test]
fn metrics_are_404_when_off_or_in_cgi_and_403_from_an_address_not_allowed() {
    let site = Site::new();
    let (_server, base) = standalone(&site);
    assert_eq!(get(&format!("{base}/imgserv.cgi/metrics")).status, 404);
    drop(_server);

    site.write_config("[metrics]\nenabled = true\n");
    let r = Cgi::new(&site).path_info("/metrics").run();
    assert_eq!(r.status, 404, "a CGI process has no counters worth reading");
    assert!(
        r.stderr.contains("route=metrics status=404 code=not-found"),
        "{}",
        &*r.stderr
    );

    site.write_config("[metrics]\nenabled = true\nallow = [\"10.0.0.0/8\"]\n");
    let (_server, base) = standalone(&site);
    let r = get(&format!("{base}/imgserv.cgi/metrics"));
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert!(
        r.body_text().starts_with("metrics-forbidden:"),
        "{}",
        r.body_text()
    );
}

#[test]
fn concurrent_misses_of_one_variant_render_once_and_the_rest_wait_or_hit() {
    let site = Site::with_config("[metrics]\nenabled = true\n[server]\nworkers = 8\n");
    site.add_original("photo-analogpattern-2880x2160.jpg");
    let (_server, base) = standalone(&site);
    let url =
        format!("{base}/imgserv.cgi?src=photo-analogpattern-2880x2160.jpg&width=640&height=640");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url).status)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 302);
    }
    let text = get(&format!("{base}/imgserv.cgi/metrics")).body_text();
    let (hits, misses) = (
        sample(&text, "imgserv_cache_hits_total"),
        sample(&text, "imgserv_cache_misses_total"),
    );
    let coalesced = sample(&text, "imgserv_coalesced_waits_total");
    assert_eq!(sample(&text, "imgserv_renders_total"), 1.0, "{text}");
    assert_eq!(misses, 1.0 + coalesced, "a miss renders or waits: {text}");
    assert_eq!(hits + misses, 8.0, "{text}");
}
