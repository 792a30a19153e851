//! The top: transports and routes. `transport` speaks CGI (RFC 3875), FastCGI and plain HTTP
//! (the standalone server) and turns each into one `io::http::Request` for one handler; `api`
//! routes it (the redirector, the 404 handler, the REST API, status and metrics) to the use
//! cases, and the dashboard's pages under `/admin/` (`pages`); `server` wires a configuration to a transport; `access` writes the log line of every
//! request.

pub mod access;
pub mod api;
pub mod pages;
pub mod server;
pub mod transport;
