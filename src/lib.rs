//! imgserv: an image server shipped as a CGI/FastCGI executable suite.
//!
//! The library holds all logic; the binaries in `bin/` parse flags, load the configuration and
//! call one function here. Pure code (`geometry`, `query`) sits at the bottom, I/O (`source`,
//! `render`, `cache`) behind small types, and `http` translates transports to one handler.

pub mod access;
pub mod admin;
pub mod api;
pub mod cli;
pub mod domain;
pub mod http;
pub mod io;
pub mod server;
pub mod usecases;
