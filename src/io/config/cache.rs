//! `[cache]`, where variants are written and how they are served, and `[evict]`, what
//! `imgserv-evict` removes: the settings, the file's raw sections and their validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::value::{DurationValue, Problems, SizeValue};
use crate::domain::geometry::Raster;
use crate::io::cache::{Cache, CacheError};

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Absolute directory the variants are written to (served statically by the web server).
    pub dir: PathBuf,
    /// URL prefix under which the web server serves `dir`, without a trailing slash.
    pub url: String,
    pub raster: Raster,
    /// Space limit in bytes for all variants together.
    pub max_bytes: u64,
    /// A miss that takes the total over `max_bytes` evicts down to this many bytes (at most
    /// `max_bytes`), so that the misses after it do not evict.
    pub low_water: u64,
    /// `Cache-Control` of the redirect.
    pub redirect_cache_control: String,
    /// `Cache-Control` of cached files when this program serves them itself.
    pub file_cache_control: String,
    /// Answer with the bytes (`200`) instead of a redirect.
    pub serve_direct: bool,
    /// A hit refreshes an entry's last-access time at most this often.
    pub access_interval: Duration,
    /// The 404 handler writes what it renders where the web server looks next time (`false`:
    /// it renders every request and writes nothing).
    pub variants_on_disk: bool,
}

/// `imgserv-evict` (`[evict]`); every limit is optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvictConfig {
    /// Remove variants not accessed for longer than this.
    pub max_idle: Option<Duration>,
    /// Remove variants created longer ago than this.
    pub max_age: Option<Duration>,
    /// Remove the least recently used variants until all together take at most this.
    pub max_bytes: Option<u64>,
    /// An upload that never committed is cleaned up after this long.
    pub upload_grace: Duration,
}

/// The least `[evict] upload_grace`. An upload places its original within about a minute (the
/// S3 store's request timeout, then the catalog's busy timeout), and until then its intent must
/// count as in flight: a removal of the same bytes that ran meanwhile would take the object
/// the upload's row is about to point at.
pub const MIN_UPLOAD_GRACE: Duration = Duration::from_secs(600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    dir: Option<String>,
    url: Option<String>,
    raster: Option<i64>,
    max_bytes: Option<SizeValue>,
    low_water: Option<SizeValue>,
    cache_control: Option<String>,
    file_cache_control: Option<String>,
    serve_direct: Option<bool>,
    access_interval: Option<DurationValue>,
    variants_on_disk: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvict {
    max_idle: Option<DurationValue>,
    max_age: Option<DurationValue>,
    max_bytes: Option<SizeValue>,
    upload_grace: Option<DurationValue>,
}

/// `[cache]`; the directory need not exist yet.
pub(super) fn validate_cache(raw: RawCache, base: &Path, p: &mut Problems) -> CacheConfig {
    let cache_dir = p.dir("cache.dir", raw.dir.as_deref(), "/var/cache/imgserv", base);
    let url = raw.url.unwrap_or_else(|| "/cache".into());
    let url_ok =
        (url.starts_with('/') || url.starts_with("http://") || url.starts_with("https://"))
            && !url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
    if !url_ok {
        p.add(
            "cache.url",
            format!("expected a path like \"/cache\" or an http(s) URL, got {url:?}"),
        );
    }
    let url = url.trim_end_matches('/').to_string();
    let raster = p.int::<u32>("cache.raster", raw.raster, 1, 10_000, 50);
    let raster = Raster::new(raster).unwrap_or_default();
    let max_bytes = p.size("cache.max_bytes", raw.max_bytes.as_ref(), 2 << 30);
    if max_bytes == 0 {
        p.add("cache.max_bytes", "must be more than 0");
    }
    let low_water = low_water(p, raw.low_water.as_ref(), max_bytes);
    let access_interval = p.duration(
        "cache.access_interval",
        raw.access_interval.as_ref(),
        Duration::from_secs(60),
    );
    CacheConfig {
        dir: cache_dir,
        url,
        raster,
        max_bytes,
        low_water,
        redirect_cache_control: raw
            .cache_control
            .unwrap_or_else(|| "public, max-age=3600".into()),
        file_cache_control: raw
            .file_cache_control
            .unwrap_or_else(|| "public, max-age=31536000, immutable".into()),
        serve_direct: raw.serve_direct.unwrap_or(false),
        access_interval,
        variants_on_disk: raw.variants_on_disk.unwrap_or(true),
    }
}

/// `[cache] low_water`: a percentage of `max_bytes` (`"90%"`, the default) or a size, not
/// above `max_bytes`.
fn low_water(p: &mut Problems, value: Option<&SizeValue>, max_bytes: u64) -> u64 {
    const KEY: &str = "cache.low_water";
    let percent = |pc: u64| u64::try_from(u128::from(max_bytes) * u128::from(pc) / 100);
    let bytes = match value {
        None => return crate::io::cache::default_low_water(max_bytes),
        Some(SizeValue::Text(t)) if t.trim_end().ends_with('%') => {
            match t.trim_end().trim_end_matches('%').trim().parse::<u64>() {
                Ok(pc) if pc <= 100 => percent(pc).unwrap_or(max_bytes),
                _ => {
                    p.add(
                        KEY,
                        format!("expected a percentage from 0% to 100%, got {t:?}"),
                    );
                    return crate::io::cache::default_low_water(max_bytes);
                }
            }
        }
        Some(v) => p.size(KEY, Some(v), crate::io::cache::default_low_water(max_bytes)),
    };
    if bytes > max_bytes {
        p.add(KEY, "must not be more than cache.max_bytes");
    }
    bytes
}

pub(super) fn validate_evict(raw: &RawEvict, p: &mut Problems) -> EvictConfig {
    // An empty string (as in the sample) leaves a limit off.
    let given_duration = |v: &Option<DurationValue>| {
        v.as_ref()
            .filter(|v| !matches!(v, DurationValue::Text(t) if t.trim().is_empty()))
            .cloned()
    };
    let max_idle = given_duration(&raw.max_idle)
        .map(|v| p.duration("evict.max_idle", Some(&v), Duration::ZERO));
    let max_age =
        given_duration(&raw.max_age).map(|v| p.duration("evict.max_age", Some(&v), Duration::ZERO));
    let max_bytes = raw
        .max_bytes
        .as_ref()
        .filter(|v| !matches!(v, SizeValue::Text(t) if t.trim().is_empty()))
        .map(|v| p.size("evict.max_bytes", Some(v), 0));
    let upload_grace = p.duration(
        "evict.upload_grace",
        raw.upload_grace.as_ref(),
        Duration::from_secs(3600),
    );
    if upload_grace < MIN_UPLOAD_GRACE {
        p.add(
            "evict.upload_grace",
            format!(
                "must be at least {}s: a younger upload may still be placing its original",
                MIN_UPLOAD_GRACE.as_secs()
            ),
        );
    }
    EvictConfig {
        max_idle,
        max_age,
        max_bytes,
        upload_grace,
    }
}

impl super::Config {
    /// Opens the cache this configuration describes (`[cache]`, `[state] dir`).
    pub fn open_cache(&self) -> Result<Cache, CacheError> {
        let c = &self.cache;
        let mut cache = Cache::open(
            &c.dir,
            &self.state.index_path(),
            c.max_bytes,
            c.access_interval,
        )?;
        cache.set_low_water(c.low_water);
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::config::from_str;
    use crate::io::config::tests::{dirs, minimal};

    #[test]
    fn low_water_is_a_share_or_a_size_within_max_bytes() {
        let d = dirs();
        let low = |extra: &str| {
            from_str(&format!("{}max_bytes = 1000\n{extra}", minimal()), d.path())
                .map(|c| c.cache.low_water)
                .map_err(|e| e.to_string())
        };
        assert_eq!(low(""), Ok(900), "90 % by default");
        assert_eq!(low("low_water = \"75%\"\n"), Ok(750));
        assert_eq!(low("low_water = \"100 %\"\n"), Ok(1000));
        assert_eq!(low("low_water = 500\n"), Ok(500));
        assert_eq!(low("low_water = \"0.5 KiB\"\n"), Ok(512));
        for (bad, msg) in [
            (
                "1001",
                "cache.low_water: must not be more than cache.max_bytes",
            ),
            ("\"120%\"", "cache.low_water: expected a percentage"),
            ("\"half\"", "cache.low_water: expected a size"),
        ] {
            let errs = low(&format!("low_water = {bad}\n")).unwrap_err();
            assert!(errs.contains(msg), "{bad}: {errs}");
        }
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(
            c.cache.low_water,
            (2u64 << 30) / 10 * 9 + (2u64 << 30) % 10 * 9 / 10
        );
    }

    #[test]
    fn an_upload_grace_shorter_than_an_upload_is_refused() {
        let d = dirs();
        let text = format!("{}[evict]\nupload_grace = \"0s\"\n", minimal());
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("evict.upload_grace: must be at least 600s"),
            "{errs}"
        );
        let text = format!("{}[evict]\nupload_grace = \"10m\"\n", minimal());
        let c = from_str(&text, d.path()).unwrap();
        assert_eq!(c.evict.upload_grace, MIN_UPLOAD_GRACE);
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(c.evict.upload_grace, Duration::from_secs(3600));
    }
}
