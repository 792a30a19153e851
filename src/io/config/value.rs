//! Typed values read from the file: sizes (`"2 GiB"`), durations (`"90s"`), integers within
//! bounds and directories. A bad value becomes a problem that names its key
//! (`cache.max_bytes: expected a size like "2 GiB"`), collected so that all are reported at once.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// A size: an integer number of bytes or a string like `"2 GiB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum SizeValue {
    Bytes(i64),
    Text(String),
}

/// A duration: an integer number of seconds or a string like `"90s"`, `"5m"`, `"1h"`, `"7d"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum DurationValue {
    Seconds(i64),
    Text(String),
}

/// Collects problems so that all of them are reported at once.
pub(super) struct Problems(pub(super) Vec<ConfigError>);

impl Problems {
    pub(super) fn add(&mut self, key: &str, msg: impl Into<String>) {
        self.0.push(ConfigError::Invalid {
            key: key.to_string(),
            msg: msg.into(),
        });
    }

    /// `value` as an integer within `min..=max`, or `default` when absent.
    pub(super) fn int<T: TryFrom<i64> + Copy>(
        &mut self,
        key: &str,
        value: Option<i64>,
        min: i64,
        max: i64,
        default: T,
    ) -> T {
        match value {
            None => default,
            Some(v) if v < min || v > max => {
                self.add(
                    key,
                    format!("expected an integer from {min} to {max}, got {v}"),
                );
                default
            }
            Some(v) => T::try_from(v).unwrap_or(default),
        }
    }

    pub(super) fn size(&mut self, key: &str, value: Option<&SizeValue>, default: u64) -> u64 {
        let parsed = match value {
            None => return default,
            Some(SizeValue::Bytes(n)) => u64::try_from(*n).map_err(|_| n.to_string()),
            Some(SizeValue::Text(t)) => parse_size(t).ok_or_else(|| format!("{t:?}")),
        };
        parsed.unwrap_or_else(|got| {
            self.add(
                key,
                format!("expected a size like \"2 GiB\" or a number of bytes, got {got}"),
            );
            default
        })
    }

    pub(super) fn duration(
        &mut self,
        key: &str,
        value: Option<&DurationValue>,
        default: Duration,
    ) -> Duration {
        let parsed = match value {
            None => return default,
            Some(DurationValue::Seconds(n)) => u64::try_from(*n)
                .map(Duration::from_secs)
                .map_err(|_| n.to_string()),
            Some(DurationValue::Text(t)) => parse_duration(t).ok_or_else(|| format!("{t:?}")),
        };
        parsed.unwrap_or_else(|got| {
            self.add(
                key,
                format!("expected a duration like \"90s\", \"5m\", \"1h\" or \"7d\", got {got}"),
            );
            default
        })
    }

    pub(super) fn dir(
        &mut self,
        key: &str,
        value: Option<&str>,
        default: &str,
        base: &Path,
    ) -> PathBuf {
        let text = value.unwrap_or(default);
        if text.is_empty() {
            self.add(key, "expected a directory, got an empty string");
        }
        let path = Path::new(text);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        };
        match fs::metadata(&path) {
            Ok(m) if !m.is_dir() => self.add(key, format!("{} is not a directory", path.display())),
            _ => {}
        }
        // Canonical when it exists, so that containment checks compare real paths.
        fs::canonicalize(&path).unwrap_or(path)
    }
}

/// `"2 GiB"`, `"500MB"`, `"1.5 GiB"`, `"4096"`, `"10k"` → bytes. Binary (`KiB`) and decimal (`KB`)
/// units; a bare `K`/`M`/`G`/`T` is binary, as in most Unix tools.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    let bytes = num * mult as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `"100ms"`, `"90s"`, `"5m"`, `"1h"`, `"7d"`, `"2w"`, `"30"` (seconds) → a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "ms" => return Some(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        for (t, want) in [
            ("2 GiB", Some(2u64 << 30)),
            ("500MB", Some(500_000_000)),
            ("1.5 KiB", Some(1536)),
            ("4096", Some(4096)),
            ("10k", Some(10240)),
            ("2 gigs", None),
            ("", None),
            ("-1", None),
        ] {
            assert_eq!(parse_size(t), want, "{t}");
        }
        for (t, want) in [
            ("90s", Some(90)),
            ("5m", Some(300)),
            ("1h", Some(3600)),
            ("7d", Some(604_800)),
            ("30", Some(30)),
            ("soon", None),
            ("1.5h", None),
        ] {
            assert_eq!(parse_duration(t), want.map(Duration::from_secs), "{t}");
        }
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    }
}
