//! imgserv: an image server shipped as a CGI/FastCGI executable suite.
//!
//! The library holds all logic; the binaries in `bin/` parse flags, load the configuration and
//! call one function here. It is built in layers, each importing only the ones below it
//! (checked by `tests/it/layers.rs`, with no module over 600 lines of code):
//!
//! - [`domain`]: pure code — boxes and rasters, request parameters, original ids, formats;
//! - [`io`]: storage and I/O — the catalog, the cache index, the stores, sources, the renderer,
//!   the configuration file, HTTP messages;
//! - [`usecases`]: what a request or a tool asks for — upload, render a variant, precache,
//!   evict, delete, check — and the one table from errors to statuses, codes and exit statuses;
//! - [`web`]: the transports (CGI, FastCGI, the standalone HTTP server) and the routes;
//! - [`tools`]: what the command-line programs share.

pub mod domain;
pub mod io;
pub mod tools;
pub mod usecases;
pub mod web;
