//! Parsing the redirector's query string (`src`, `width`, `height`) into typed values.

/// A query parameter that is missing or unusable; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A required parameter is absent or empty.
    #[error("missing parameter '{0}'")]
    Missing(&'static str),
    /// A parameter is present but not acceptable; the text says why.
    #[error("parameter '{name}': {reason}")]
    Invalid { name: &'static str, reason: String },
}
