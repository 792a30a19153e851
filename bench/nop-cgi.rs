//! Bench fixture: a CGI program that does nothing but print the redirect the redirector prints
//! on a hit. `make bench` measures imgserv.cgi behind nginx + fcgiwrap against it, so the ratio
//! is the cost of imgserv's own work (configuration, one SQLite read, a `stat`), not of
//! fork/exec and fcgiwrap.

use std::io::Write;

fn main() {
    let out = b"Status: 302 Found\r\nLocation: /cache/nop.jpg\r\nContent-Length: 0\r\n\r\n";
    let _ = std::io::stdout().lock().write_all(out);
}
