//! Starting `imgserv-cgi`: pick the transport (CGI, FastCGI on fd 0 or on an address, or the
//! standalone HTTP server), load the configuration, set up logging and run the handler. A bad
//! configuration refuses to start, with every problem named by its key; in CGI mode it is
//! answered with a valid `500` so the web server never sees a broken response.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::config::{self, Config, ConfigErrors};
use crate::io::http::{self, Handler, Request, Response};
use crate::usecases::error::exit;
use crate::web::api::App;
use crate::web::transport::{cgi, fastcgi, standalone};

/// How the process was asked to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One request from the environment (RFC 3875), or FastCGI when fd 0 is a listening socket.
    Auto,
    /// FastCGI on `host:port` or a unix socket path.
    FastCgi(String),
    /// Plain HTTP on `host:port`.
    Listen(String),
}

/// Whether this process runs as a CGI script: the web server sets `GATEWAY_INTERFACE`, and
/// may pass words of the query as arguments (RFC 3875 §4.4), so flags must not be parsed then.
pub fn is_cgi() -> bool {
    std::env::var_os("GATEWAY_INTERFACE").is_some()
}

/// Sets up logging to standard error; `IMGSERV_LOG` overrides the level (`info` by default).
pub fn init_logging() {
    let env = env_logger::Env::new()
        .filter_or("IMGSERV_LOG", "info")
        .write_style("IMGSERV_LOG_STYLE");
    let _ = env_logger::Builder::from_env(env)
        .format_target(false)
        .try_init();
}

/// Loads the configuration named by `--config`, `IMGSERV_CONFIG` or the default path.
pub fn load_config(
    flag: Option<&Path>,
    overrides: &[(String, String)],
) -> Result<Config, ConfigErrors> {
    config::load(&config::config_path(flag), overrides)
}

/// For the tools: the configuration, or every problem on standard error and exit 78.
pub fn config_or_exit(flag: Option<&Path>) -> Config {
    load_config(flag, &[]).unwrap_or_else(|errors| {
        for e in &errors.0 {
            eprintln!("configuration: {e}");
        }
        std::process::exit(exit::CONFIG)
    })
}

/// Runs `imgserv-cgi`; returns the exit code.
pub fn run(mode: Mode, config_flag: Option<PathBuf>, overrides: &[(String, String)]) -> i32 {
    init_logging();
    let config = match load_config(config_flag.as_deref(), overrides) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                log::error!("configuration: {e}");
            }
            if mode == Mode::Auto && is_cgi() {
                let msg = "configuration error (see the server log)";
                let resp = Response::error(500, "config", msg).for_request(&Request::default());
                cgi::respond(&resp);
                return exit::OK;
            }
            return exit::CONFIG;
        }
    };
    let max_conns = config.server.max_conns;
    // Not for CGI: a CGI request needs no workers, and counting the cores costs it.
    let fastcgi_opts = |config: &Config| fastcgi::Options {
        workers: config.server.workers(),
        max_conns,
        body: body_limits(config),
        read_timeout: config.server.read_timeout,
    };
    let app = App::new(config);
    let result = match mode {
        Mode::Auto => match fastcgi::Listener::from_stdin() {
            Ok(Some(listener)) => {
                long_lived();
                let opts = fastcgi_opts(app.config());
                fastcgi::serve(listener, Arc::new(app), &opts)
            }
            _ if is_cgi() => return cgi::run(&app, &body_limits(app.config())),
            _ => {
                log::error!(
                    "not started by a web server (GATEWAY_INTERFACE is unset and standard input \
                     is not a FastCGI socket): use --listen ADDR or --fastcgi ADDR; see imgserv.cgi(8)"
                );
                return exit::USAGE;
            }
        },
        Mode::FastCgi(addr) => match fastcgi::Listener::bind(&addr) {
            Ok(listener) => {
                log::info!("FastCGI on {addr}");
                long_lived();
                let opts = fastcgi_opts(app.config());
                fastcgi::serve(listener, Arc::new(app), &opts)
            }
            Err(e) => {
                log::error!("cannot listen on {addr}: {e}");
                return exit::UNAVAILABLE;
            }
        },
        Mode::Listen(addr) => {
            long_lived();
            let config = app.config();
            let opts = standalone::Options {
                script_name: "/imgserv.cgi".into(),
                static_dir: (!config.cache.url.contains("://")).then(|| {
                    (
                        config.cache.url.clone(),
                        config.cache.dir.clone(),
                        config.cache.file_cache_control.clone(),
                    )
                }),
                index_html: Some(demo_page(config)),
                workers: config.server.workers(),
                max_conns,
                read_timeout: config.server.read_timeout,
                body: body_limits(config),
            };
            let handler: Arc<dyn Handler> = Arc::new(app);
            standalone::serve(&addr, handler, opts)
        }
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            log::error!("{e}");
            exit::UNAVAILABLE
        }
    }
}

/// How every transport receives request bodies: `[api] max_body_bytes`, spooled to the state
/// directory.
fn body_limits(config: &Config) -> http::body::Limits {
    http::body::Limits {
        max_bytes: config.api.max_body_bytes,
        spool_dir: config.state.dir.clone(),
    }
}

/// What only a long-lived server (FastCGI, standalone) does: serve `/metrics`, keep the memory
/// of freed large buffers (`malloc::for_long_lived_process`), and decode a large baseline JPEG
/// on two threads when a core is idle (`render::enable_split_decode`; `IMGSERV_SPLIT_DECODE=0` turns that off,
/// for comparisons).
fn long_lived() {
    crate::io::malloc::for_long_lived_process();
    // Counters live in this process's memory: only a long-lived one has any worth reading.
    crate::io::metrics::expose();
    let split_off = std::env::var_os("IMGSERV_SPLIT_DECODE").is_some_and(|v| v == "0");
    crate::io::render::enable_split_decode(!split_off);
}

/// What must be escaped in a query value (and in the HTML attribute around it).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?');

/// A page of example `<img>` tags for the images in the originals directory, served at `/` by
/// the standalone server.
pub fn demo_page(config: &Config) -> String {
    let mut names: Vec<String> = std::fs::read_dir(&config.originals.root)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut html = String::from(
        "<!doctype html><html lang=en><meta charset=utf-8><title>imgserv</title>\
         <style>body{font:14px sans-serif;margin:2em}figure{display:inline-block;margin:1em}</style>\
         <main><h1>imgserv</h1><p>Each picture below is <code>/imgserv.cgi?src=…&amp;width=300&amp;height=200</code>: \
         a redirect to a scaled copy in the cache.</p>",
    );
    for name in names.iter().take(24) {
        let enc = percent_encoding::utf8_percent_encode(name, QUERY_VALUE);
        let esc = name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;");
        html.push_str(&format!(
            "<figure><img src=\"/imgserv.cgi?src={enc}&amp;width=300&amp;height=200\" alt=\"{esc}\">\
             <figcaption>{esc}</figcaption></figure>"
        ));
    }
    // `lang` and the `main` landmark: axe-core flags a page without them (tests/it/browser.rs).
    html.push_str("</main></html>");
    html
}
