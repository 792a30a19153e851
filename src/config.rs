//! Configuration: TOML file, environment, flags.

/// A configuration problem; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has an unusable value.
    #[error("{key}: {msg}")]
    Invalid { key: String, msg: String },
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
}
