//! An original's identity: the SHA-1 of its bytes, as 40 lower-case hex digits, computed with
//! collision detection (the check git has used since SHAttered), so that two different files
//! crafted to share a SHA-1 can never share an id.
//!
//! This module only names originals; storing them is `store`, describing them `catalog`.

use std::fmt;
use std::str::FromStr;

/// The id of an original: the SHA-1 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginalId(String);

/// Why bytes or text do not make an [`OriginalId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The bytes carry the marks of a SHA-1 collision attack.
    #[error("the upload looks like a SHA-1 collision attack")]
    Collision,
    /// Text that is not 40 lower-case hex digits.
    #[error("an id is 40 lower-case hex digits, got {0:?}")]
    Malformed(String),
}

impl OriginalId {
    /// The id of `bytes`, or an error when they are part of a collision attack.
    pub fn of(bytes: &[u8]) -> Result<OriginalId, IdError> {
        // Detect only: a detected collision is refused, never given an alternative "safe" hash.
        let mut hasher = sha1_checked::Builder::default().safe_hash(false).build();
        sha1_checked::Digest::update(&mut hasher, bytes);
        let result = hasher.try_finalize();
        if result.has_collision() {
            return Err(IdError::Collision);
        }
        Ok(OriginalId(crate::domain::hex(result.hash().as_ref())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The three-level relative path `ab/cd/<id>` (without extension) that spreads originals
    /// over directories.
    pub fn fanout(&self) -> String {
        format!("{}/{}/{}", &self.0[..2], &self.0[2..4], self.0)
    }
}

impl FromStr for OriginalId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 40
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(OriginalId(s.to_string()))
        } else {
            Err(IdError::Malformed(s.chars().take(64).collect()))
        }
    }
}

impl fmt::Display for OriginalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            OriginalId::of(b"hello world").unwrap().as_str(),
            "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
        assert_eq!(
            OriginalId::of(b"").unwrap().as_str(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        let id = OriginalId::of(b"hello world").unwrap();
        assert_eq!(
            id.fanout(),
            "2a/ae/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
    }

    #[test]
    fn parsing() {
        let id: OriginalId = "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed".parse().unwrap();
        assert_eq!(id.to_string(), "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
        for bad in [
            "",
            "2aae6c35",
            "2AAE6C35C94FCFB415DBE95F408B9CE91EE846ED",
            "../../../../../../../../etc/passwd/xxxxxxx",
            "2aae6c35c94fcfb415dbe95f408b9ce91ee846eg",
        ] {
            assert!(bad.parse::<OriginalId>().is_err(), "{bad}");
        }
    }
}
