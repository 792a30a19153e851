//! Remote sources (in progress on branch `remote`; this is the agreed interface).

use std::path::PathBuf;
use std::time::Duration;

use super::SourceError;

pub struct RemoteOptions {
    pub allow_hosts: Vec<String>,
    pub allow_private: bool,
    pub max_redirects: u32,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_bytes: u64,
    pub ttl: Duration,
    pub dir: PathBuf,
    pub user_agent: String,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            allow_hosts: Vec::new(),
            allow_private: false,
            max_redirects: 3,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(20),
            max_bytes: 32 << 20,
            ttl: Duration::from_secs(3600),
            dir: PathBuf::from("/var/lib/imgserv/remote"),
            user_agent: "imgserv".into(),
        }
    }
}

pub struct Fetched {
    pub path: PathBuf,
    pub version: String,
    pub bytes: u64,
}

pub fn is_remote(src: &str) -> bool {
    let lower = src.get(..8).unwrap_or(src).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

pub fn fetch(_opts: &RemoteOptions, _url: &str) -> Result<Fetched, SourceError> {
    Err(SourceError::Forbidden("remote sources are disabled".into()))
}
