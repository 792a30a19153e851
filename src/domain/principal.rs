//! Who is asking: a user, the groups they are in, their roles, and how they proved it.

use std::fmt;
use std::str::FromStr;

/// A role: what a user may do wherever no more specific permission says otherwise. `Admin`
/// implies `Editor`, which implies `Viewer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Looks only.
    Viewer,
    /// Uploads and changes images; what every user could do before roles existed.
    Editor,
    /// Manages users, keys and grants, and everything an editor does.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Editor, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("{s:?} is not a role (admin, editor, viewer)")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a principal was established: one of `[auth] methods`, or a signed request's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// A password checked against the catalog's users.
    Local,
    /// A bind to the directory of `[ldap]`.
    Ldap,
    /// `REMOTE_USER`, set by the web server's own authentication.
    RemoteUser,
    /// An external program of `[auth] command`.
    Command,
    /// A request signed with an API key.
    Key,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Local => "local",
            Method::Ldap => "ldap",
            Method::RemoteUser => "remote_user",
            Method::Command => "command",
            Method::Key => "key",
        }
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        match s {
            "local" => Ok(Method::Local),
            "ldap" => Ok(Method::Ldap),
            "remote_user" => Ok(Method::RemoteUser),
            "command" => Ok(Method::Command),
            "key" => Ok(Method::Key),
            _ => Err(format!(
                "{s:?} is not an authentication method (local, ldap, remote_user, command)"
            )),
        }
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    /// imgserv group names, sorted, without duplicates.
    pub groups: Vec<String>,
    /// The roles held, sorted; see [`Principal::has_role`].
    pub roles: Vec<Role>,
    pub method: Method,
}

impl Principal {
    /// A principal with `roles` and `groups` put in order.
    pub fn new(user: &str, mut groups: Vec<String>, mut roles: Vec<Role>, method: Method) -> Self {
        groups.sort();
        groups.dedup();
        roles.sort();
        roles.dedup();
        Principal {
            user: user.to_string(),
            groups,
            roles,
            method,
        }
    }

    /// Whether one of the roles is `role` or implies it.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|r| *r >= role)
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups
            .binary_search_by(|g| g.as_str().cmp(group))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_editor_implies_viewer() {
        let p = Principal::new("ann", vec![], vec![Role::Editor], Method::Local);
        assert!(p.has_role(Role::Viewer) && p.has_role(Role::Editor) && !p.has_role(Role::Admin));
        let a = Principal::new("root", vec![], vec![Role::Admin], Method::Ldap);
        assert!(a.has_role(Role::Viewer) && a.has_role(Role::Admin));
        let none = Principal::new("guest", vec![], vec![], Method::RemoteUser);
        assert!(!none.has_role(Role::Viewer));
    }

    #[test]
    fn groups_are_sorted_and_unique() {
        let p = Principal::new(
            "ann",
            vec!["b".into(), "a".into(), "b".into()],
            vec![Role::Viewer, Role::Viewer],
            Method::Command,
        );
        assert_eq!(p.groups, ["a", "b"]);
        assert_eq!(p.roles, [Role::Viewer]);
        assert!(p.in_group("a") && !p.in_group("c"));
    }

    #[test]
    fn names_round_trip() {
        for r in [Role::Viewer, Role::Editor, Role::Admin] {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        for m in [
            Method::Local,
            Method::Ldap,
            Method::RemoteUser,
            Method::Command,
            Method::Key,
        ] {
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
