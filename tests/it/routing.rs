//! Which route a request takes, through the built CGI program with the meta-variables the web
//! servers send (as logged from Apache 2.4 and nginx; see `http::target`): the 404 handler
//! only on the server's explicit signal, whatever the cache URL (a path, a host root, a URL
//! with a path) and wherever the script is mounted (also below the cache prefix).

use crate::api::{Api, sign_with, unsigned};
use crate::redirector::dims;
use crate::support::{Cgi, CgiResponse, Site, get};

const SRC: &str = "src=photo-rocket-640x427.jpg&width=300&height=300";

/// A CGI request for `script` + `path_info` + `?query`, as Apache's mod_cgid sends it.
fn cgi(site: &Site, script: &str, path_info: &str, query: &str) -> Cgi {
    let uri = match query {
        "" => format!("{script}{path_info}"),
        q => format!("{script}{path_info}?{q}"),
    };
    let cgi = Cgi::new(site)
        .env("SCRIPT_NAME", script)
        .env("QUERY_STRING", query)
        .env("REQUEST_URI", &uri);
    match path_info {
        "" => cgi,
        p => cgi.env("PATH_INFO", p),
    }
}

/// The same request as mod_proxy_fcgi's `ProxyPass SCRIPT fcgi://localhost/` sends it (no
/// PATH_INFO; SCRIPT_NAME the whole path; the path below the script in SCRIPT_FILENAME).
fn proxied(site: &Site, script: &str, path_info: &str, query: &str) -> Cgi {
    cgi(site, script, "", query)
        .env("SCRIPT_NAME", &format!("{script}{path_info}"))
        .env(
            "SCRIPT_FILENAME",
            &format!("proxy:fcgi://localhost/{path_info}"),
        )
        .env("REQUEST_URI", &format!("{script}{path_info}?{query}"))
}

fn signed_meta(api: &Api, cgi: Cgi, id: &str) -> CgiResponse {
    let path = format!("/api/images/{id}/meta");
    let req = sign_with(&api.key, unsigned("GET", &path, "", b""));
    req.headers
        .iter()
        .fold(cgi, |cgi, (name, value)| cgi.header(name, value))
        .run()
}

#[test]
fn the_404_handler_only_on_the_servers_signal_for_every_cache_url_and_script_mount() {
    // (cache url, the path prefix the web server serves it at)
    let urls = [
        ("/cache", "/cache"),
        ("/", ""),
        ("https://cdn.example.com", ""),
        ("https://cdn.example.com/", ""),
        ("https://img.example.com/v", "/v"),
    ];
    for (url, prefix) in urls {
        let api = Api::new(&format!("[cache]\nurl = \"{url}\"\n"));
        let site = &api.site;
        site.add_original("photo-rocket-640x427.jpg");
        let (_, image) = api.upload("photo-rocket-640x427.jpg", "");
        let id = image["id"].as_str().unwrap().to_string();
        let missing = format!("{prefix}/{id}/300/200.jpg");
        let below = format!("{prefix}/imgserv.cgi");
        for script in ["/cgi-bin/imgserv.cgi", below.as_str()] {
            let ctx = format!("[cache] url {url:?}, script {script}");
            // The redirector, directly and behind mod_proxy_fcgi.
            for r in [
                cgi(site, script, "", SRC).run(),
                proxied(site, script, "", SRC).run(),
            ] {
                assert_eq!(r.status, 302, "{ctx}: {}", r.body_text());
                let location = r.header("location").unwrap();
                let base = url.trim_end_matches('/');
                assert!(
                    location.starts_with(&format!("{base}/r/")),
                    "{ctx}: {location}"
                );
            }
            // The REST interface below the script, directly and behind mod_proxy_fcgi.
            let meta = format!("/api/images/{id}/meta");
            for run in [
                cgi(site, script, &meta, ""),
                proxied(site, script, &meta, ""),
            ] {
                let r = signed_meta(&api, run, &id);
                assert_eq!(r.status, 200, "{ctx}: {}", r.body_text());
            }
            // A request under the cache prefix without the signal is no 404-handler request.
            let r = cgi(site, script, "", "").env("REQUEST_URI", &missing).run();
            assert_eq!(r.status, 400, "{ctx}: {}", r.body_text());
            assert!(
                r.body_text().contains("missing parameter 'src'"),
                "{ctx}: {}",
                r.body_text()
            );
            // Apache's ErrorDocument (REDIRECT_*), and the nginx snippets' IMGSERV_404.
            let apache = cgi(site, script, "", "")
                .env("REQUEST_URI", &missing)
                .env("REDIRECT_STATUS", "404")
                .env("REDIRECT_URL", &missing);
            let nginx = cgi(site, script, "", "")
                .env("REQUEST_URI", &missing)
                .env("REDIRECT_STATUS", "200")
                .env("IMGSERV_404", &missing);
            for run in [apache, nginx] {
                let r = run.run();
                assert_eq!(r.status, 200, "{ctx}: {}", r.body_text());
                assert_eq!(dims(&r.body).1.width, 300, "{ctx}");
            }
            let file = site.cache().join(format!("{id}/300/200.jpg"));
            assert!(file.is_file(), "{ctx}");
        }
    }
}

#[test]
fn the_standalone_server_with_a_host_root_cache_url() {
    let api = Api::new("[cache]\nurl = \"/\"\n");
    api.site.add_original("photo-rocket-640x427.jpg");
    let (_, image) = api.upload("photo-rocket-640x427.jpg", "");
    let id = image["id"].as_str().unwrap();
    let (_server, base) = crate::support::standalone(&api.site);
    let r = get(&format!("{base}/imgserv.cgi?{SRC}"));
    assert_eq!(r.status, 302, "{}", r.body_text());
    let location = r.header("location").unwrap().to_string();
    assert!(location.starts_with("/r/"), "{location}");
    assert_eq!(get(&format!("{base}{location}")).status, 200);
    let r = get(&format!("{base}/{id}/300/200.jpg"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(api.site.cache().join(format!("{id}/300/200.jpg")).is_file());
    let r = get(&format!("{base}/{id}/300/300.jpg"));
    assert_eq!(r.status, 301, "{}", r.body_text());
}
