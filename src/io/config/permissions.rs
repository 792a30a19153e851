//! `[permissions]`: what the creator of an object is given on it, and the grants a new root
//! starts with. The rules themselves are `domain::permission`'s; storing and checking them is
//! `usecases::permissions`'.

use serde::Deserialize;

use super::value::Problems;
use crate::domain::permission::{Grant, Privilege};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionsConfig {
    /// Granted to the user who makes a category exist (its first image's uploader, or whoever
    /// creates it empty), on that category (never on the root); `None`: nothing ("none").
    pub privilege_for_creator: Option<Privilege>,
    /// Written on `category:/` when the catalog has never had its root set up (a new catalog,
    /// or the first open after the upgrade that added grants).
    pub root_grants: Vec<Grant>,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        PermissionsConfig {
            privilege_for_creator: Some(Privilege::Admin),
            root_grants: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPermissions {
    privilege_for_creator: Option<String>,
    root_grants: Option<Vec<String>>,
}

/// `"GRANTEE PRIVILEGE"`, e.g. `"public view"` or `"group:staff edit"`.
pub fn parse_grant(text: &str) -> Result<Grant, String> {
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(grantee), Some(privilege), None) => Ok(Grant {
            grantee: grantee.parse()?,
            privilege: privilege.parse()?,
        }),
        _ => Err(format!(
            "expected \"GRANTEE PRIVILEGE\" (e.g. \"public view\", \"group:staff edit\"), got {text:?}"
        )),
    }
}

pub(super) fn validate_permissions(raw: RawPermissions, p: &mut Problems) -> PermissionsConfig {
    let mut out = PermissionsConfig::default();
    match raw.privilege_for_creator.as_deref() {
        None => {}
        Some("none") => out.privilege_for_creator = None,
        Some(text) => match text.parse() {
            Ok(privilege) => out.privilege_for_creator = Some(privilege),
            Err(_) => p.add(
                "permissions.privilege_for_creator",
                format!("expected \"view\", \"edit\", \"admin\" or \"none\", got {text:?}"),
            ),
        },
    }
    for text in raw.root_grants.unwrap_or_default() {
        match parse_grant(&text) {
            Ok(grant) if out.root_grants.iter().any(|g| g.grantee == grant.grantee) => p.add(
                "permissions.root_grants",
                format!(
                    "{} is listed twice (one privilege per grantee)",
                    grant.grantee
                ),
            ),
            Ok(grant) => out.root_grants.push(grant),
            Err(why) => p.add("permissions.root_grants", why),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::config::from_str;
    use crate::io::config::tests::{dirs, minimal};

    fn config(section: &str) -> Result<PermissionsConfig, String> {
        let d = dirs();
        let text = format!("{}\n[permissions]\n{section}\n", minimal());
        from_str(&text, d.path())
            .map(|c| c.permissions)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(config("").unwrap(), PermissionsConfig::default());
        let c = config(
            "privilege_for_creator = \"edit\"\nroot_grants = [\"public view\", \"group:staff  edit\"]",
        )
        .unwrap();
        assert_eq!(c.privilege_for_creator, Some(Privilege::Edit));
        let shown: Vec<String> = c
            .root_grants
            .iter()
            .map(|g| format!("{} {}", g.grantee, g.privilege))
            .collect();
        assert_eq!(shown, ["public view", "group:staff edit"]);
        let none = config("privilege_for_creator = \"none\"").unwrap();
        assert_eq!(none.privilege_for_creator, None);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (section, key) in [
            (
                "privilege_for_creator = \"owner\"",
                "permissions.privilege_for_creator",
            ),
            (
                "root_grants = [\"everyone view\"]",
                "permissions.root_grants",
            ),
            ("root_grants = [\"public\"]", "permissions.root_grants"),
            (
                "root_grants = [\"public view edit\"]",
                "permissions.root_grants",
            ),
            (
                "root_grants = [\"public view\", \"public edit\"]",
                "permissions.root_grants",
            ),
            ("inherit = false", "inherit"),
        ] {
            let err = config(section).unwrap_err();
            assert!(err.contains(key), "{section}: {err}");
        }
    }
}
