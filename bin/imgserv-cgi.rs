//! `imgserv-cgi` (installed as `imgserv.cgi`): the resizing redirector as a CGI program, a
//! FastCGI server or a standalone HTTP server. See imgserv.cgi(8).

use std::path::PathBuf;

use clap::Parser;
use imgserv::web::server::{self, Mode};

#[derive(Parser)]
#[command(
    version,
    about = "Resize images and redirect to the cached copy (CGI, FastCGI or HTTP)"
)]
struct Args {
    /// Configuration file (default: $IMGSERV_CONFIG, then /etc/imgserv/imgserv.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve FastCGI on HOST:PORT or a unix socket path, instead of one CGI request.
    #[arg(long, value_name = "ADDR", conflicts_with = "listen")]
    fastcgi: Option<String>,
    /// Serve plain HTTP on HOST:PORT (also serves the cache directory).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Requests handled at once (FastCGI and HTTP; default: the number of cores).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

fn main() {
    // Under a web server, arguments may be words of the query (RFC 3875 §4.4): ignore them.
    if server::is_cgi() {
        std::process::exit(server::run(Mode::Auto, None, &[]));
    }
    let args: Args = imgserv::tools::cli::parse();
    let mode = match (args.fastcgi, args.listen) {
        (Some(addr), _) => Mode::FastCgi(addr),
        (None, Some(addr)) => Mode::Listen(addr),
        (None, None) => Mode::Auto,
    };
    let overrides: Vec<(String, String)> = args
        .workers
        .map(|n| ("server.workers".to_string(), n.to_string()))
        .into_iter()
        .collect();
    std::process::exit(server::run(mode, args.config, &overrides));
}
