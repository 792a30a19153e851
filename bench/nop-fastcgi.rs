//! Bench fixture: a FastCGI responder (imgserv's own FastCGI layer, same worker settings) whose
//! handler only returns the redirect the redirector returns on a hit. `make bench` measures
//! `imgserv-cgi --fastcgi` behind nginx against it: the ratio is the cost of the handler.
//!
//! Usage: bench-nop-fastcgi SOCKET_OR_HOST:PORT [WORKERS]

use std::sync::Arc;

use imgserv::io::http::{Request, Response};
use imgserv::web::transport::fastcgi;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(addr) = args.next() else {
        eprintln!("usage: bench-nop-fastcgi SOCKET_OR_HOST:PORT [WORKERS]");
        std::process::exit(64);
    };
    let workers = args
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let listener = fastcgi::Listener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("bench-nop-fastcgi: {e}");
        std::process::exit(69);
    });
    let handler = |_req: Request| {
        let mut r = Response::new(302);
        r.headers.push(("Location".into(), "/cache/nop.jpg".into()));
        r
    };
    let opts = fastcgi::Options {
        workers,
        ..fastcgi::Options::default()
    };
    if let Err(e) = fastcgi::serve(listener, Arc::new(handler), &opts) {
        eprintln!("bench-nop-fastcgi: {e}");
        std::process::exit(69);
    }
}
