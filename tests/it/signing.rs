//! Signed requests end to end: a write's signature is accepted once — in process, by another
//! `App` over the same state (another FastCGI process), by racing connections and by separate
//! runs of the real CGI binary — while reads may be repeated; version 2 covers `Content-Type`
//! and version 1 still verifies.

use std::sync::Barrier;

use imgserv::io::http::{Handler, Request};
use imgserv::io::replay::ReplayLog;
use imgserv::usecases::sign::{self, Version};
use imgserv::web::api::App;
use serde_json::Value;

use crate::api::{Api, assert_error, fresh_date, json, load, sign_with, unsigned, with_header};
use crate::support::{Cgi, CgiResponse, fixture_bytes};

/// How many signatures the site's replay log holds.
fn remembered(api: &Api) -> u64 {
    ReplayLog::open(&api.config().state.replay_path())
        .unwrap()
        .len()
        .unwrap()
}

/// Uploads a fixture; its id.
fn upload(api: &Api, fixture: &str) -> String {
    let (status, image) = api.upload(fixture, "");
    assert_eq!(status, 201, "{image}");
    image["id"].as_str().unwrap().to_string()
}

#[test]
fn the_same_signed_write_twice_is_refused_as_a_replay_and_reads_may_repeat() {
    let api = Api::new("");
    let upload = sign_with(
        &api.key,
        unsigned("POST", "/api/images", "", &fixture_bytes("tiny-1x1.png")),
    );
    let first = api.app.handle(upload.clone());
    assert_eq!(first.status, 201, "{}", json(&first));
    assert_error(&api.app.handle(upload.clone()), 401, "replayed-signature");
    // Another process over the same state (a FastCGI worker, a CGI run) knows it too.
    let other = App::new(load(&api.site));
    assert_error(&other.handle(upload), 401, "replayed-signature");

    let id = json(&first)["id"].as_str().unwrap().to_string();
    let meta = format!("/api/images/{id}/meta");
    let patch = api.signed(&api.key, "PATCH", &meta, "", br#"{"title": "one pixel"}"#);
    assert_eq!(api.app.handle(patch.clone()).status, 200);
    assert_error(&api.app.handle(patch), 401, "replayed-signature");
    assert_eq!(remembered(&api), 2, "the two accepted writes");

    // Signed again (a new date), the same write is a new request.
    let again = api.signed(&api.key, "PATCH", &meta, "", br#"{"title": "one pixel"}"#);
    assert_eq!(api.app.handle(again).status, 200);

    // Reads are not remembered: the same signed GET twice, nothing written.
    let read = api.signed(&api.key, "GET", &meta, "", b"");
    for _ in 0..2 {
        let resp = api.app.handle(read.clone());
        assert_eq!(resp.status, 200);
        assert_eq!(json(&resp)["meta"]["title"], "one pixel");
    }
    assert_eq!(remembered(&api), 3);

    // A refused request is not remembered.
    let mut catalog = api.catalog();
    let reader = catalog
        .add_key("alice", imgserv::io::catalog::Rights::READ)
        .unwrap();
    let del = api.signed(&reader, "DELETE", &format!("/api/images/{id}"), "", b"");
    assert_error(&api.app.handle(del), 403, "insufficient-rights");
    assert_eq!(remembered(&api), 3);
}

#[test]
fn identical_writes_racing_in_separate_processes_pass_once() {
    let api = Api::new("");
    let id = upload(&api, "tiny-1x1.png");
    let patch = api.signed(
        &api.key,
        "PATCH",
        &format!("/api/images/{id}/meta"),
        "",
        br#"{"raced": true}"#,
    );
    let racers = 6;
    // Each its own App, with its own connections, as separate FastCGI processes have.
    let apps: Vec<App> = (0..racers).map(|_| App::new(load(&api.site))).collect();
    let start = Barrier::new(racers);
    let statuses: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = apps
            .iter()
            .map(|app| {
                let (start, patch) = (&start, patch.clone());
                s.spawn(move || {
                    start.wait();
                    let resp = app.handle(patch);
                    (resp.status, json(&resp))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let passed = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(passed, 1, "{statuses:?}");
    for (status, body) in statuses.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*status, body["code"].as_str()),
            (401, Some("replayed-signature"))
        );
    }
}

/// A signed request as a CGI run of the real binary.
fn cgi(api: &Api, req: &Request) -> Cgi {
    Cgi::request(&api.site, req)
}

fn code(r: &CgiResponse) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    format!("{} {}", r.status, v["code"].as_str().unwrap_or(""))
}

#[test]
fn the_cgi_binary_refuses_a_replayed_post_in_a_second_process() {
    let api = Api::new("");
    let req = with_header(
        unsigned("POST", "/api/images", "", &fixture_bytes("tiny-1x1.png")),
        "content-type",
        "image/png",
    );
    let req = sign_with(&api.key, req);
    let first = cgi(&api, &req).run();
    assert_eq!(first.status, 201, "{}", first.body_text());
    let second = cgi(&api, &req).run();
    assert_eq!(
        code(&second),
        "401 replayed-signature",
        "{}",
        second.body_text()
    );

    // Four processes at once with one signed DELETE: one deletes, the others are refused.
    let id = serde_json::from_slice::<Value>(&first.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let del = api.signed(&api.key, "DELETE", &format!("/api/images/{id}"), "", b"");
    let runs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let run = cgi(&api, &del);
                s.spawn(move || code(&run.run()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut runs = runs;
    runs.sort();
    assert_eq!(
        runs,
        [
            "204 ",
            "401 replayed-signature",
            "401 replayed-signature",
            "401 replayed-signature"
        ]
    );
}

#[test]
fn version_2_covers_content_type_and_version_1_still_verifies() {
    let api = Api::new("");
    let png = fixture_bytes("tiny-1x1.png");
    let mut body =
        b"--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
            .to_vec();
    body.extend_from_slice(&png);
    body.extend_from_slice(b"\r\n--B0undary--\r\n");
    let form = with_header(
        unsigned("POST", "/api/images", "", &body),
        "content-type",
        "multipart/form-data; boundary=B0undary",
    );
    // Version 2: the Content-Type is signed; changed in transit, the signature fails.
    let v2 = sign_with(&api.key, form.clone());
    let mut changed = v2.clone();
    for (name, value) in &mut changed.headers {
        if name == "content-type" {
            *value = "multipart/form-data; boundary=other".into();
        }
    }
    assert_error(&api.app.handle(changed), 401, "bad-signature");
    assert_eq!(api.app.handle(v2).status, 201);

    // Version 1 (no Content-Type in the string to sign) still verifies, and is replay-proof
    // the same way.
    let mut v1 = unsigned("POST", "/api/images", "", &fixture_bytes("tiny-1x1.gif"));
    let secret = api.key.secret.expose().as_bytes();
    let headers = sign::sign_request(Version::V1, &api.key.id, secret, &v1, fresh_date("v1"));
    v1.headers.extend(headers);
    assert!(v1.headers[2].1.starts_with("IMGSERV-HMAC-SHA256 "));
    assert_eq!(api.app.handle(v1.clone()).status, 201);
    assert_error(&api.app.handle(v1), 401, "replayed-signature");
}
