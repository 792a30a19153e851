//! The object cache against a real memcached (Debian's, on a free loopback port): API keys and
//! image records are cached there and forgotten on every write, seen by a second process at
//! once; memcached killed mid-test, restarted, or replaced by a listener that never answers
//! leaves every request answered within the timeout, with one log line per outage.

use std::thread;
use std::time::{Duration, Instant};

use imgserv::io::catalog::{ApiKey, Rights};
use imgserv::io::http::{Handler, Response};
use imgserv::io::object_cache::ObjectCache;
use imgserv::usecases::records::{IMAGES, KEYS, Records};
use imgserv::web::api::App;

use crate::api::{Api, assert_error, json, load, sign_with, unsigned};
use crate::support::{
    Blackhole, Cgi, CgiResponse, Child, HttpResponse, Memcached, request, standalone,
};

const FIXTURE: &str = "photo-rocket-640x427.jpg";
/// `[object_cache] timeout` in these tests.
const TIMEOUT_MS: u64 = 100;
/// What a request may take, by the server's own clock, with memcached gone: the timeout (at
/// worst twice: a connection's wait, then its read) and a generous margin for a debug build
/// on a loaded machine.
const BOUND_MS: u64 = 1000;

fn config_for(server: &str) -> String {
    format!(
        "[object_cache]\ntype = \"memcached\"\nservers = [\"{server}\"]\ntimeout = \"{TIMEOUT_MS}ms\"\n"
    )
}

fn get(app: &App, api: &Api, key: &ApiKey, path: &str) -> Response {
    app.handle(api.signed(key, "GET", path, "", b""))
        .collect()
        .unwrap()
}

#[test]
fn keys_and_records_cached_in_memcached_are_forgotten_on_every_write() {
    let mc = Memcached::start();
    let api = Api::new(&config_for(&mc.addr()));
    // A second server process sharing the memcached (a FastCGI pool, another host).
    let other = App::new(load(&api.site));
    let cache = ObjectCache::open(&api.config().object_cache, true);
    let (status, image) = api.upload(FIXTURE, "");
    assert_eq!(status, 201, "{image}");
    let id = image["id"].as_str().unwrap().to_string();
    let meta = format!("/api/images/{id}/meta");

    // A read caches the key and the record in memcached.
    assert_eq!(
        json(&get(&other, &api, &api.key, &meta))["meta"],
        json_obj("{}")
    );
    assert!(cache.get(KEYS, &api.key.id).is_some(), "key cached");
    assert!(cache.get(IMAGES, &id).is_some(), "record cached");
    let hit = get(&other, &api, &api.key, &meta);
    assert_eq!(hit.status, 200);

    // Metadata changed through one process is read back new by the other at once.
    let resp = api.call("PATCH", &meta, "", br#"{"title": "new"}"#);
    assert_eq!(resp.status, 200);
    assert!(cache.get(IMAGES, &id).is_none(), "forgotten");
    assert_eq!(
        json(&get(&other, &api, &api.key, &meta))["meta"]["title"],
        "new"
    );
    let resp = api.call("POST", &meta, "", br#"{"title": "newer"}"#);
    assert_eq!(resp.status, 200);
    assert_eq!(
        json(&get(&other, &api, &api.key, &meta))["meta"]["title"],
        "newer"
    );
    // A move too, seen in GET /api/images/{id}'s headers.
    assert_eq!(
        api.call("POST", &meta, "category=%2Fmoved", b"").status,
        200
    );
    let head = other
        .handle(api.signed(&api.key, "HEAD", &format!("/api/images/{id}"), "", b""))
        .collect()
        .unwrap();
    assert_eq!(head.header("x-imgserv-category"), Some("/moved"));

    // A key revoked while cached is refused at once, by both processes.
    let mut catalog = api.catalog();
    let reader = catalog.add_key("alice", Rights::READ).unwrap();
    assert_eq!(get(&other, &api, &reader, &meta).status, 200);
    assert!(cache.get(KEYS, &reader.id).is_some());
    Records::new(api.config(), false)
        .revoke_key(&mut catalog, &reader.id)
        .unwrap();
    assert_error(&get(&other, &api, &reader, &meta), 401, "revoked-key");
    assert_error(&get(&api.app, &api, &reader, &meta), 401, "revoked-key");

    // A deleted image is gone for both.
    let path = format!("/api/images/{id}");
    assert_eq!(api.call("DELETE", &path, "", b"").status, 204);
    assert_error(&get(&other, &api, &api.key, &meta), 404, "image-not-found");
}

#[test]
fn the_memory_cache_forgets_on_every_write_in_its_process() {
    let api = Api::new("[object_cache]\ntype = \"memory\"\nmemory = \"1 MiB\"\n");
    let (_, image) = api.upload(FIXTURE, "");
    let meta = format!("/api/images/{}/meta", image["id"].as_str().unwrap());
    for title in ["one", "two", "three"] {
        let body = format!("{{\"title\": \"{title}\"}}");
        assert_eq!(api.call("PATCH", &meta, "", body.as_bytes()).status, 200);
        // Read twice: a miss that fills the cache, then a hit.
        for _ in 0..2 {
            assert_eq!(
                json(&api.call("GET", &meta, "", b""))["meta"]["title"],
                title
            );
        }
    }
}

fn json_obj(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// A site with a memcached (or anything else) as its object cache, an image, and a standalone
/// server over it; `fetch` GETs the image's metadata, signed, over HTTP.
struct Served {
    api: Api,
    id: String,
    server: Child,
    base: String,
}

impl Served {
    fn start(cache_server: &str) -> Served {
        let api = Api::new(&config_for(cache_server));
        let (status, image) = api.upload(FIXTURE, "");
        assert_eq!(status, 201, "{image}");
        let id = image["id"].as_str().unwrap().to_string();
        let (server, base) = standalone(&api.site);
        Served {
            api,
            id,
            server,
            base,
        }
    }

    /// The metadata, checked to be a 200 answered within the bound (wall clock, generous).
    fn fetch(&self) -> HttpResponse {
        let path = format!("/api/images/{}/meta", self.id);
        let req = sign_with(&self.api.key, unsigned("GET", &path, "", b""));
        let headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let start = Instant::now();
        let resp = request(
            "GET",
            &format!("{}/imgserv.cgi{path}", self.base),
            &headers,
            b"",
        );
        let took = start.elapsed();
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        assert!(took < Duration::from_secs(2), "a request took {took:?}");
        resp
    }

    /// The server's own timing of every API request so far (its access log's `ms=`).
    fn api_timings(&self) -> Vec<u64> {
        self.server
            .log()
            .lines()
            .filter(|l| l.contains("route=api"))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ms=")))
            .map(|ms| ms.parse().unwrap())
            .collect()
    }

    fn log_count(&self, what: &str) -> usize {
        self.server.log().matches(what).count()
    }

    fn cache(&self) -> ObjectCache {
        ObjectCache::open(&self.api.config().object_cache, true)
    }
}

#[test]
fn memcached_killed_mid_test_degrades_to_the_catalog_and_is_used_again_once_back() {
    let mut mc = Memcached::start();
    let s = Served::start(&mc.addr());
    s.fetch();
    assert!(s.cache().get(KEYS, &s.api.key.id).is_some(), "used");
    assert!(s.cache().get(IMAGES, &s.id).is_some(), "used");

    mc.kill();
    // Requests for 2.5 s: past the first back-off, so the server is tried (and fails) again.
    let until = Instant::now() + Duration::from_millis(2500);
    let mut n = 0;
    while Instant::now() < until {
        s.fetch();
        n += 1;
        thread::sleep(Duration::from_millis(100));
    }
    let timings = s.api_timings();
    assert!(timings.len() > n, "{timings:?}");
    assert!(
        timings.iter().all(|&ms| ms < BOUND_MS),
        "the server's timings: {timings:?}\n{}",
        s.server.log()
    );
    assert_eq!(s.log_count("is unreachable"), 1, "{}", s.server.log());

    // Back: tried after the back-off, used again, and said once.
    mc.restart();
    let until = Instant::now() + Duration::from_secs(45);
    while s.log_count("answers again") == 0 {
        assert!(Instant::now() < until, "never back:\n{}", s.server.log());
        s.fetch();
        thread::sleep(Duration::from_millis(200));
    }
    s.fetch();
    assert!(
        s.cache().get(KEYS, &s.api.key.id).is_some(),
        "used again: {}",
        s.server.log()
    );
    assert!(s.cache().get(IMAGES, &s.id).is_some(), "used again");
    assert_eq!(s.log_count("answers again"), 1);
    assert_eq!(s.log_count("is unreachable"), 1);
}

#[test]
fn a_memcached_that_never_answers_costs_at_most_the_timeout_and_is_logged_once() {
    let hole = Blackhole::start();
    let s = Served::start(&hole.addr());
    let until = Instant::now() + Duration::from_millis(2500);
    let mut n = 0;
    while Instant::now() < until {
        s.fetch();
        n += 1;
        thread::sleep(Duration::from_millis(100));
    }
    assert!(hole.accepted() >= 1, "the server did connect to it");
    let timings = s.api_timings();
    assert!(timings.len() >= n, "{timings:?}");
    assert!(
        timings.iter().all(|&ms| ms < BOUND_MS),
        "the server's timings: {timings:?}\n{}",
        s.server.log()
    );
    // Some requests did wait for it (it was tried), most did not (the back-off).
    assert!(timings.iter().any(|&ms| ms >= TIMEOUT_MS), "{timings:?}");
    assert_eq!(s.log_count("is unreachable"), 1, "{}", s.server.log());
}

/// One CGI process answering a signed GET of `path`.
fn cgi_get(api: &Api, path: &str) -> CgiResponse {
    let req = sign_with(&api.key, unsigned("GET", path, "", b""));
    let mut cgi = Cgi::new(&api.site).path_info(path);
    for (name, value) in &req.headers {
        cgi = cgi.header(name, value);
    }
    let r = cgi.run();
    assert_eq!(r.status, 200, "{}\n{}", r.body_text(), r.stderr.0);
    r
}

fn marker_files(api: &Api) -> usize {
    std::fs::read_dir(api.site.state())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("memcached-down-")
        })
        .count()
}

#[test]
fn cgi_processes_share_an_outage_logged_once_skipped_until_the_back_off_and_its_end() {
    let mut mc = Memcached::start();
    let api = Api::new(&config_for(&mc.addr()));
    let (_, image) = api.upload(FIXTURE, "");
    let meta = format!("/api/images/{}/meta", image["id"].as_str().unwrap());
    cgi_get(&api, &meta);
    assert!(
        ObjectCache::open(&api.config().object_cache, true)
            .get(KEYS, &api.key.id)
            .is_some()
    );

    mc.kill();
    let mut stderr = String::new();
    for _ in 0..5 {
        stderr += &cgi_get(&api, &meta).stderr.0;
    }
    assert_eq!(stderr.matches("is unreachable").count(), 1, "{stderr}");
    assert_eq!(marker_files(&api), 1);
    let timings: Vec<u64> = stderr
        .lines()
        .filter(|l| l.contains("route=api"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ms=")))
        .map(|ms| ms.parse().unwrap())
        .collect();
    assert_eq!(timings.len(), 5, "{stderr}");
    assert!(timings.iter().all(|&ms| ms < BOUND_MS), "{timings:?}");

    mc.restart();
    let until = Instant::now() + Duration::from_secs(45);
    loop {
        let err = cgi_get(&api, &meta).stderr.0.clone();
        stderr += &err;
        if err.contains("answers again") {
            break;
        }
        assert!(Instant::now() < until, "never back:\n{stderr}");
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(marker_files(&api), 0);
    cgi_get(&api, &meta);
    assert!(
        ObjectCache::open(&api.config().object_cache, true)
            .get(KEYS, &api.key.id)
            .is_some(),
        "used again"
    );
    assert_eq!(stderr.matches("answers again").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("is unreachable").count(), 1, "{stderr}");
}
