//! The transports: each reads requests in its own protocol, hands them to one
//! [`Handler`](crate::io::http::Handler) and writes the answers back. CGI runs one request per
//! process; the FastCGI and standalone servers run their handlers on a pool of workers.

pub mod cgi;
pub mod fastcgi;
pub mod http1;
pub mod standalone;
pub mod workers;
