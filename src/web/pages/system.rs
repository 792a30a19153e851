//! `/admin/system` (admins only): the cache (bytes used against the limit, evict now), the
//! `/status` checks, and the configuration as loaded (no secrets) with what `check-config`
//! finds in its file now.

use askama::Template;

use crate::io::config::{self, Config};
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::error::Error;
use crate::usecases::status::{self, Probe};
use crate::usecases::{evict, people};

use super::layout::{Layout, html};
use super::view;
use super::{Site, Visitor};

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage<'a> {
    layout: Layout<'a>,
    section: &'static str,
    error: Option<String>,
    notice: Option<String>,
    cache_used: String,
    cache_max: String,
    cache_percent: String,
    cache_files: u64,
    cache_dir: String,
    cache_url: &'a str,
    /// `None` when this process served no variant yet (a CGI run never has).
    hit_ratio: Option<String>,
    last_evict: Option<(String, String)>,
    probes: Vec<Probe>,
    settings: Vec<(&'static str, String)>,
}

/// What the page shows of the configuration: paths, switches and sizes, never a secret.
fn settings(config: &Config) -> Vec<(&'static str, String)> {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let store = match &config.store {
        crate::io::store::StoreConfig::Fs { dir } => format!("fs, {}", dir.display()),
        _ => "s3 (the bucket and credentials are in the file)".to_string(),
    };
    let methods: Vec<&str> = config.auth.methods.iter().map(|m| m.as_str()).collect();
    let presets: Vec<String> = config
        .presets
        .iter()
        .map(|(name, boxes)| {
            let boxes: Vec<String> = boxes
                .iter()
                .map(|b| format!("{}x{}", b.width, b.height))
                .collect();
            format!("{name} = {}", boxes.join(", "))
        })
        .collect();
    vec![
        (
            "file",
            config
                .path
                .as_ref()
                .map_or("(none)".into(), |p| p.display().to_string()),
        ),
        (
            "originals.root",
            config.originals.root.display().to_string(),
        ),
        ("store", store),
        ("state.dir", config.state.dir.display().to_string()),
        ("cache.max_bytes", view::bytes(config.cache.max_bytes)),
        ("auth.methods", methods.join(", ")),
        (
            "sessions.store",
            format!("{:?}", config.sessions.store)
                .split([' ', '{'])
                .next()
                .unwrap_or("")
                .to_lowercase(),
        ),
        ("api.public_reads", yes(config.api.public_reads)),
        (
            "security.require_signed_urls",
            yes(config.security.require_signed_urls),
        ),
        ("dashboard.per_page", config.dashboard.per_page.to_string()),
        (
            "dashboard.thumbnail",
            format!(
                "{}x{}",
                config.dashboard.thumbnail.width, config.dashboard.thumbnail.height
            ),
        ),
        (
            "presets",
            if presets.is_empty() {
                "(none)".into()
            } else {
                presets.join("; ")
            },
        ),
    ]
}

/// What `check-config` says of the file now (the running server keeps what it loaded).
fn findings(config: &Config) -> Option<String> {
    let path = config.path.as_ref()?;
    match config::load(path, &[]) {
        Ok(_) => None,
        Err(errors) => Some(format!(
            "The configuration file has changed and now has problems (this server keeps the \
             configuration it loaded): {errors}"
        )),
    }
}

/// `GET /admin/system`.
pub fn show<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    page(site, req, v, None)
}

fn page<S: Site>(
    site: &S,
    req: &Request,
    v: &Visitor,
    notice: Option<String>,
) -> Result<Response, Error> {
    site.desk(v, |d| people::require_admin(&d.actor))?;
    let config = site.config();
    let probes = status::check(config);
    let totals = config.open_cache()?.totals()?;
    let max = config.cache.max_bytes.max(1);
    let page = SystemPage {
        layout: Layout::new(&req.path, v),
        section: "system",
        error: findings(config),
        notice,
        cache_used: view::bytes(totals.bytes),
        cache_max: view::bytes(config.cache.max_bytes),
        cache_percent: format!("{:.1}", totals.bytes as f64 * 100.0 / max as f64),
        cache_files: totals.count,
        cache_dir: config.cache.dir.display().to_string(),
        cache_url: &config.cache.url,
        hit_ratio: match crate::io::metrics::hits_and_misses() {
            (0, 0) => None,
            (hits, misses) => Some(format!(
                "{:.1} % ({hits} hits, {misses} misses)",
                hits as f64 * 100.0 / (hits + misses) as f64
            )),
        },
        last_evict: evict::last_run(config).map(|(at, summary)| (view::date(at), summary)),
        probes,
        settings: settings(config),
    };
    Ok(html(200, page.render()))
}

/// `POST /admin/system` `action=evict`: one `imgserv-evict` run with the configured limits;
/// the page again, saying what it did.
pub fn change<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let form = view::form(req)?;
    let who = site.desk(v, |d| {
        people::require_admin(&d.actor)?;
        Ok(d.actor
            .principal()
            .map(|p| p.user.clone())
            .unwrap_or_default())
    })?;
    if form.get("action") != Some("evict") {
        return Err(RequestError::BadBody("action: evict".into()).into());
    }
    let config = site.config();
    let report = evict::evict(config, &config.evict, false)?;
    let summary = report.summary();
    log::info!("{who} evicted from the dashboard: {summary}");
    page(site, req, v, Some(format!("Evicted: {summary}.")))
}
