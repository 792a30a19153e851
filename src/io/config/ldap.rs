//! `[ldap]`: the directory the `ldap` authentication method asks. Absent means no directory;
//! present, it must name a usable one: a `ldap://` or `ldaps://` URL, StartTLS only on
//! `ldap://`, a readable `ca_file`, and exactly one way to find users (`user_dn`, or `base_dn`
//! with `user_filter`), each template with its placeholder.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::value::{DurationValue, Problems};
use crate::io::ldap::{GroupLookup, LdapConfig, UserLookup};
use crate::io::store::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLdap {
    url: Option<String>,
    starttls: Option<bool>,
    ca_file: Option<String>,
    timeout: Option<DurationValue>,
    user_dn: Option<String>,
    bind_dn: Option<String>,
    bind_password: Option<Secret>,
    base_dn: Option<String>,
    user_filter: Option<String>,
    group_base: Option<String>,
    group_filter: Option<String>,
    admin_group: Option<String>,
}

/// `[ldap]`, or `None` when the section is absent.
pub(super) fn validate_ldap(
    raw: Option<RawLdap>,
    base: &Path,
    p: &mut Problems,
) -> Option<LdapConfig> {
    let raw = raw?;
    let before = p.0.len();
    let url = raw.url.clone().unwrap_or_default();
    let scheme = check_url(&url, p);
    let starttls = raw.starttls.unwrap_or(false);
    if starttls && scheme == Some("ldaps") {
        p.add(
            "ldap.starttls",
            "only with an ldap:// URL (ldaps:// is TLS from the start)",
        );
    }
    let ca_file = raw.ca_file.as_deref().map(|f| {
        let path = base.join(f);
        match std::fs::read_to_string(&path) {
            Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => {}
            Ok(_) => p.add(
                "ldap.ca_file",
                format!("{} holds no PEM certificate", path.display()),
            ),
            Err(e) => p.add(
                "ldap.ca_file",
                format!("cannot read {}: {e}", path.display()),
            ),
        }
        if scheme == Some("ldap") && !starttls {
            p.add(
                "ldap.ca_file",
                "is used only with an ldaps:// URL or starttls = true",
            );
        }
        path
    });
    let timeout = p.duration("ldap.timeout", raw.timeout.as_ref(), Duration::from_secs(5));
    if timeout.is_zero() {
        p.add("ldap.timeout", "must be at least 1s");
    }
    let lookup = validate_lookup(&raw, p);
    let groups = match (&raw.group_base, &raw.group_filter) {
        (None, None) => None,
        (Some(base), Some(filter)) => {
            check_dn("ldap.group_base", base, p);
            check_filter("ldap.group_filter", filter, &["{dn}", "{user}"], p);
            Some(GroupLookup {
                base: base.clone(),
                filter: filter.clone(),
            })
        }
        (Some(_), None) => {
            p.add(
                "ldap.group_filter",
                "required with group_base, e.g. \"(member={dn})\" or \"(memberUid={user})\"",
            );
            None
        }
        (None, Some(_)) => {
            p.add("ldap.group_base", "required with group_filter");
            None
        }
    };
    if let Some(admin) = &raw.admin_group {
        if admin.is_empty() {
            p.add("ldap.admin_group", "expected a group name (its cn)");
        } else if raw.group_base.is_none() {
            p.add(
                "ldap.admin_group",
                "needs group_base and group_filter to read the user's groups",
            );
        }
    }
    if p.0.len() > before {
        return None;
    }
    Some(LdapConfig {
        url,
        starttls,
        ca_file,
        timeout,
        lookup: lookup?,
        groups,
        admin_group: raw.admin_group,
    })
}

/// The URL's scheme when it is a usable `ldap://` or `ldaps://` URL.
fn check_url(text: &str, p: &mut Problems) -> Option<&'static str> {
    let key = "ldap.url";
    if text.is_empty() {
        p.add(key, "required: ldap://HOST[:PORT] or ldaps://HOST[:PORT]");
        return None;
    }
    let url = match url::Url::parse(text) {
        Ok(u) => u,
        Err(e) => {
            p.add(
                key,
                format!("expected ldap://HOST or ldaps://HOST, got {text:?}: {e}"),
            );
            return None;
        }
    };
    let scheme = match url.scheme() {
        "ldap" => "ldap",
        "ldaps" => "ldaps",
        other => {
            p.add(
                key,
                format!("expected the scheme ldap:// or ldaps://, got {other}://"),
            );
            return None;
        }
    };
    let bare = url.host_str().is_some_and(|h| !h.is_empty())
        && matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !bare {
        p.add(
            key,
            format!("expected only a scheme, a host and a port (ldaps://ldap.example.org:636), got {text:?}"),
        );
        return None;
    }
    Some(scheme)
}

/// `user_dn`, or the search settings: exactly one of the two.
fn validate_lookup(raw: &RawLdap, p: &mut Problems) -> Option<UserLookup> {
    let search_keys: Vec<&str> = [
        ("bind_dn", raw.bind_dn.is_some()),
        ("bind_password", raw.bind_password.is_some()),
        ("base_dn", raw.base_dn.is_some()),
        ("user_filter", raw.user_filter.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if let Some(user_dn) = &raw.user_dn {
        if !search_keys.is_empty() {
            p.add(
                "ldap.user_dn",
                format!(
                    "give either user_dn or the search settings, not both (also set: {})",
                    search_keys.join(", ")
                ),
            );
            return None;
        }
        if !user_dn.contains("{user}") {
            p.add(
                "ldap.user_dn",
                "must contain {user}, e.g. \"uid={user},ou=people,dc=example,dc=org\"",
            );
            return None;
        }
        check_dn("ldap.user_dn", user_dn, p);
        return Some(UserLookup::Template {
            user_dn: user_dn.clone(),
        });
    }
    let (Some(base_dn), Some(user_filter)) = (&raw.base_dn, &raw.user_filter) else {
        p.add(
            if raw.base_dn.is_none() {
                "ldap.base_dn"
            } else {
                "ldap.user_filter"
            },
            "required: give user_dn, or base_dn and user_filter (search then bind)",
        );
        return None;
    };
    check_dn("ldap.base_dn", base_dn, p);
    check_filter("ldap.user_filter", user_filter, &["{user}"], p);
    let bind = match (&raw.bind_dn, &raw.bind_password) {
        (None, None) => None,
        (Some(dn), Some(pw)) if !pw.expose().is_empty() => {
            check_dn("ldap.bind_dn", dn, p);
            Some((dn.clone(), pw.clone()))
        }
        (Some(_), Some(_)) => {
            p.add(
                "ldap.bind_password",
                "is empty: the directory would take it as an anonymous bind",
            );
            None
        }
        (Some(_), None) => {
            p.add(
                "ldap.bind_password",
                "required with bind_dn (or set IMGSERV_LDAP_BIND_PASSWORD)",
            );
            None
        }
        (None, Some(_)) => {
            p.add("ldap.bind_dn", "required with bind_password");
            None
        }
    };
    Some(UserLookup::Search {
        bind,
        base_dn: base_dn.clone(),
        user_filter: user_filter.clone(),
    })
}

fn check_dn(key: &str, dn: &str, p: &mut Problems) {
    if !dn.contains('=') {
        p.add(
            key,
            format!("expected a DN like \"ou=people,dc=example,dc=org\", got {dn:?}"),
        );
    }
}

/// A filter in parentheses holding at least one of `placeholders`.
fn check_filter(key: &str, filter: &str, placeholders: &[&str], p: &mut Problems) {
    if !(filter.starts_with('(') && filter.ends_with(')')) {
        p.add(
            key,
            format!("expected an LDAP filter in parentheses, got {filter:?}"),
        );
    } else if !placeholders.iter().any(|ph| filter.contains(ph)) {
        p.add(key, format!("must contain {}", placeholders.join(" or ")));
    }
}

#[cfg(test)]
mod tests {
    use crate::io::config::from_str;
    use crate::io::config::tests::{dirs, minimal};
    use crate::io::ldap::UserLookup;

    fn errors(section: &str) -> String {
        let d = dirs();
        std::fs::write(d.path().join("empty.pem"), "nothing").unwrap();
        let text = format!("{}[ldap]\n{section}", minimal());
        match from_str(&text, d.path()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn absent_section_means_no_directory() {
        let d = dirs();
        assert!(from_str(minimal(), d.path()).unwrap().ldap.is_none());
    }

    #[test]
    fn both_styles_are_read() {
        let d = dirs();
        let text = format!(
            "{}[ldap]\nurl = \"ldap://127.0.0.1:3389\"\nuser_dn = \"uid={{user}},ou=people,dc=example,dc=org\"\ntimeout = \"2s\"\n",
            minimal()
        );
        let c = from_str(&text, d.path()).unwrap().ldap.unwrap();
        assert!(matches!(c.lookup, UserLookup::Template { .. }));
        assert_eq!(c.timeout.as_secs(), 2);
        let text = format!(
            "{}[ldap]\nurl = \"ldaps://ldap.example.org\"\nbind_dn = \"cn=reader,dc=example,dc=org\"\nbind_password = \"pw\"\nbase_dn = \"ou=people,dc=example,dc=org\"\nuser_filter = \"(&(uid={{user}})(!(employeeType=disabled)))\"\ngroup_base = \"ou=groups,dc=example,dc=org\"\ngroup_filter = \"(member={{dn}})\"\nadmin_group = \"imgadmins\"\n",
            minimal()
        );
        let c = from_str(&text, d.path()).unwrap().ldap.unwrap();
        assert!(matches!(c.lookup, UserLookup::Search { bind: Some(_), .. }));
        assert_eq!(c.timeout.as_secs(), 5, "the default");
        assert_eq!(c.admin_group.as_deref(), Some("imgadmins"));
        assert!(
            !format!("{c:?}").contains("\"pw\""),
            "the password stays out of Debug"
        );
    }

    #[test]
    fn bind_password_can_come_from_the_environment() {
        let d = dirs();
        let text = format!(
            "{}[ldap]\nurl = \"ldap://127.0.0.1\"\nbind_dn = \"cn=reader,dc=example,dc=org\"\nbase_dn = \"dc=example,dc=org\"\nuser_filter = \"(uid={{user}})\"\n",
            minimal()
        );
        assert!(
            from_str(&text, d.path()).is_err(),
            "bind_dn needs a password"
        );
        let vars = [(
            "IMGSERV_LDAP_BIND_PASSWORD".to_string(),
            "s3cret".to_string(),
        )];
        let c = crate::io::config::from_str_env(&text, d.path(), &vars).unwrap();
        match c.ldap.unwrap().lookup {
            UserLookup::Search {
                bind: Some((dn, pw)),
                ..
            } => {
                assert_eq!(dn, "cn=reader,dc=example,dc=org");
                assert_eq!(pw.expose(), "s3cret");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_mistake_names_its_key() {
        let user_dn = "user_dn = \"uid={user},dc=example,dc=org\"\n";
        for (section, want) in [
            (user_dn.to_string(), "ldap.url: required"),
            (format!("url = \"http://x\"\n{user_dn}"), "ldap.url: expected the scheme ldap:// or ldaps://"),
            (format!("url = \"ldap://x/dc=org?uid\"\n{user_dn}"), "ldap.url: expected only a scheme"),
            (format!("url = \"ldaps://x\"\nstarttls = true\n{user_dn}"), "ldap.starttls: only with an ldap:// URL"),
            (format!("url = \"ldap://x\"\nca_file = \"missing.pem\"\nstarttls = true\n{user_dn}"), "ldap.ca_file: cannot read"),
            (format!("url = \"ldaps://x\"\nca_file = \"empty.pem\"\n{user_dn}"), "ldap.ca_file: "),
            (format!("url = \"ldap://x\"\nca_file = \"empty.pem\"\n{user_dn}"), "is used only with an ldaps:// URL or starttls"),
            ("url = \"ldap://x\"\n".to_string(), "ldap.base_dn: required: give user_dn, or base_dn and user_filter"),
            (format!("url = \"ldap://x\"\n{user_dn}base_dn = \"dc=org\"\n"), "ldap.user_dn: give either user_dn or the search settings, not both (also set: base_dn)"),
            ("url = \"ldap://x\"\nuser_dn = \"uid=alice,dc=org\"\n".to_string(), "ldap.user_dn: must contain {user}"),
            ("url = \"ldap://x\"\nbase_dn = \"dc=org\"\nuser_filter = \"uid={user}\"\n".to_string(), "ldap.user_filter: expected an LDAP filter in parentheses"),
            ("url = \"ldap://x\"\nbase_dn = \"dc=org\"\nuser_filter = \"(uid=alice)\"\n".to_string(), "ldap.user_filter: must contain {user}"),
            ("url = \"ldap://x\"\nbase_dn = \"dc=org\"\nuser_filter = \"(uid={user})\"\nbind_dn = \"cn=r,dc=org\"\n".to_string(), "ldap.bind_password: required with bind_dn"),
            ("url = \"ldap://x\"\nbase_dn = \"dc=org\"\nuser_filter = \"(uid={user})\"\nbind_dn = \"cn=r,dc=org\"\nbind_password = \"\"\n".to_string(), "ldap.bind_password: is empty"),
            (format!("url = \"ldap://x\"\n{user_dn}group_base = \"ou=groups,dc=org\"\n"), "ldap.group_filter: required with group_base"),
            (format!("url = \"ldap://x\"\n{user_dn}group_base = \"ou=groups,dc=org\"\ngroup_filter = \"(member=x)\"\n"), "ldap.group_filter: must contain {dn} or {user}"),
            (format!("url = \"ldap://x\"\n{user_dn}admin_group = \"admins\"\n"), "ldap.admin_group: needs group_base"),
            (format!("url = \"ldap://x\"\n{user_dn}timeout = \"soon\"\n"), "ldap.timeout: expected a duration"),
            (format!("url = \"ldap://x\"\n{user_dn}timeout = 0\n"), "ldap.timeout: must be at least 1s"),
        ] {
            let errs = errors(&section);
            assert!(errs.contains(want), "{section}\nwanted {want:?} in:\n{errs}");
        }
    }
}
