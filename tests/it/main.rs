//! The integration tests: one test binary (`[[test]] name = "it"`), one module per topic.
//!
//! Shared helpers (temp sites, the CGI runner, private nginx/Apache instances, an HTTP client)
//! live in `support`. Tests that start web servers need them installed: `scripts/install-deps.sh`.

mod support;

mod admin;
mod admin_pages;
mod api;
mod attacks;
mod bodies;
mod browse;
mod browser;
mod cache;
mod categories;
mod content;
mod corpus;
mod crash;
mod dashboard;
mod dashboard_admin;
mod dashboard_flow;
mod delete_race;
mod diskfull;
mod docs;
mod evict;
mod fastcgi;
mod handler404;
mod harness_selftest;
mod layers;
mod ldap;
mod login;
mod memcached;
mod memory;
mod mirror;
mod operability;
mod pages;
mod permissions;
mod quality;
mod redirector;
mod remote;
mod routing;
mod sessions;
mod signing;
mod slow_clients;
mod store;
mod throttle;
mod upload;
mod users;
mod web;
