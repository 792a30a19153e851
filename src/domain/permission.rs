//! The permission rules, without storage: who may view, edit or administer an object, given the
//! grants on it and on its ancestors, and why.
//!
//! Objects form a tree (categories today; folders, albums and photos later). A grant gives a
//! [`Privilege`] on one object to a [`Grantee`]: a user, a group, every logged-in user
//! (`registered`) or everyone (`public`). Grants inherit down the tree as it is now: the rules
//! read the grants of the object's ancestors at each check, so a grant on a folder reaches
//! everything below it at once, and a change of group membership reaches every object the group
//! has a grant on. An object with `inherit = false` stops that: below and at it only its own
//! grants apply (how a private album sits in a public folder).
//!
//! Roles are implicit grants at the root of every chain: `viewer` holds `view`, `editor`
//! `edit`, everywhere the root's grants reach — so `inherit = false` cuts them too (a private
//! album is private to editors). The admin role may do everything everywhere, `inherit = false`
//! or not. The creator of an object is given a grant like anyone else when it is created
//! (`[permissions] privilege_for_creator`), so it needs no rule of its own.

use std::fmt;
use std::str::FromStr;

use super::principal::{Principal, Role};

/// What a grant allows; each implies the ones before it (`Admin` ⊇ `Edit` ⊇ `View`). `Admin`
/// may also grant and revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    View,
    Edit,
    Admin,
}

impl Privilege {
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::View => "view",
            Privilege::Edit => "edit",
            Privilege::Admin => "admin",
        }
    }
}

impl FromStr for Privilege {
    type Err = String;
    fn from_str(s: &str) -> Result<Privilege, String> {
        match s {
            "view" => Ok(Privilege::View),
            "edit" => Ok(Privilege::Edit),
            "admin" => Ok(Privilege::Admin),
            _ => Err(format!("{s:?} is not a privilege (view, edit, admin)")),
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a grant is for; written `user:NAME`, `group:NAME`, `registered`, `public`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grantee {
    User(String),
    Group(String),
    /// Any logged-in user.
    Registered,
    /// Anyone, logged in or not.
    Public,
}

impl Grantee {
    /// Whether the grant reaches `who` (`None`: nobody logged in).
    pub fn includes(&self, who: Option<&Principal>) -> bool {
        match (self, who) {
            (Grantee::Public, _) => true,
            (Grantee::Registered, Some(_)) => true,
            (Grantee::User(u), Some(p)) => *u == p.user,
            (Grantee::Group(g), Some(p)) => p.in_group(g),
            _ => false,
        }
    }
}

impl FromStr for Grantee {
    type Err = String;
    fn from_str(s: &str) -> Result<Grantee, String> {
        let name = |n: &str| {
            (!n.is_empty() && !n.contains(char::is_whitespace))
                .then(|| n.to_string())
                .ok_or_else(|| format!("{s:?}: expected a name after the colon"))
        };
        match s.split_once(':') {
            Some(("user", n)) => Ok(Grantee::User(name(n)?)),
            Some(("group", n)) => Ok(Grantee::Group(name(n)?)),
            None if s == "registered" => Ok(Grantee::Registered),
            None if s == "public" => Ok(Grantee::Public),
            _ => Err(format!(
                "{s:?} is not a grantee (user:NAME, group:NAME, registered, public)"
            )),
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::User(n) => write!(f, "user:{n}"),
            Grantee::Group(n) => write!(f, "group:{n}"),
            Grantee::Registered => f.write_str("registered"),
            Grantee::Public => f.write_str("public"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    pub grantee: Grantee,
    pub privilege: Privilege,
}

/// One object on the way from the object asked about to the root, with its own grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its name, e.g. `category:/travel/norway`.
    pub object: String,
    pub grants: Vec<Grant>,
    /// `false`: the grants of its ancestors do not reach it or anything below it.
    pub inherit: bool,
}

/// Why a principal has a privilege.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The admin role.
    AdminRole,
    /// A role's implicit grant at the root (`viewer`: view, `editor`: edit).
    Role(Role),
    /// A grant, on `object` (the object asked about or the ancestor it was inherited from).
    Grant { grant: Grant, object: String },
    /// The creator of `object` (an image's owner holds `[permissions] privilege_for_creator`
    /// on it).
    Creator { object: String },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::AdminRole => f.write_str("the admin role"),
            Reason::Role(role) => write!(f, "the {role} role"),
            Reason::Creator { object } => write!(f, "the creator of {object}"),
            Reason::Grant { grant, object } => {
                write!(f, "{} to {} on {object}", grant.privilege, grant.grantee)
            }
        }
    }
}

/// The privilege a role grants at the root of every chain.
pub fn role_privilege(role: Role) -> Privilege {
    match role {
        Role::Viewer => Privilege::View,
        Role::Editor => Privilege::Edit,
        Role::Admin => Privilege::Admin,
    }
}

/// The highest privilege `who` holds on the object `chain` starts with (then its parent, up to
/// the root), and why; `None` when it holds none. Of equal privileges the grant nearest the
/// object is the reason; a role's grant sits beyond the root, so it is the reason only when
/// no grant gives as much.
pub fn effective(who: Option<&Principal>, chain: &[Node]) -> Option<(Privilege, Reason)> {
    if who.is_some_and(|p| p.has_role(Role::Admin)) {
        return Some((Privilege::Admin, Reason::AdminRole));
    }
    let mut best: Option<(Privilege, Reason)> = None;
    let mut reached_root = true;
    for node in chain {
        for grant in &node.grants {
            let better = best
                .as_ref()
                .is_none_or(|(held, _)| grant.privilege > *held);
            if better && grant.grantee.includes(who) {
                let reason = Reason::Grant {
                    grant: grant.clone(),
                    object: node.object.clone(),
                };
                best = Some((grant.privilege, reason));
            }
        }
        if !node.inherit {
            reached_root = false;
            break;
        }
    }
    let role = who.and_then(|p| p.roles.iter().max().copied());
    if let (true, Some(role)) = (reached_root, role) {
        let privilege = role_privilege(role);
        if best.as_ref().is_none_or(|(held, _)| privilege > *held) {
            best = Some((privilege, Reason::Role(role)));
        }
    }
    best
}

/// Whether `who` may do what `privilege` allows on the object `chain` starts with.
pub fn may(who: Option<&Principal>, privilege: Privilege, chain: &[Node]) -> bool {
    effective(who, chain).is_some_and(|(held, _)| held >= privilege)
}

/// What an API key may do: at most what its rights allow, and at most what its user may.
pub fn capped(user_holds: Option<Privilege>, key_allows: Option<Privilege>) -> Option<Privilege> {
    user_holds.min(key_allows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::principal::Method;

    fn grant(grantee: &str, privilege: &str) -> Grant {
        Grant {
            grantee: grantee.parse().unwrap(),
            privilege: privilege.parse().unwrap(),
        }
    }

    fn node(object: &str, grants: &[(&str, &str)], inherit: bool) -> Node {
        Node {
            object: object.into(),
            grants: grants.iter().map(|(g, p)| grant(g, p)).collect(),
            inherit,
        }
    }

    fn user(name: &str, groups: &[&str], roles: &[Role]) -> Principal {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        Principal::new(name, groups, roles.to_vec(), Method::Local)
    }

    /// /travel (public view, editors edit) > /travel/norway (ann admin) > /travel/norway/private
    /// (inherit = false, bob view).
    fn tree() -> Vec<Node> {
        vec![
            node(
                "category:/travel/norway/private",
                &[("user:bob", "view")],
                false,
            ),
            node("category:/travel/norway", &[("user:ann", "admin")], true),
            node(
                "category:/travel",
                &[("public", "view"), ("group:editors", "edit")],
                true,
            ),
            node("category:/", &[("registered", "view")], true),
        ]
    }

    #[test]
    fn the_rules_in_a_table() {
        let t = tree();
        let (norway, private, travel) = (&t[1..], &t[..], &t[2..]);
        let ann = user("ann", &[], &[Role::Viewer]);
        let eve = user("eve", &["editors"], &[Role::Editor]);
        let bob = user("bob", &[], &[Role::Viewer]);
        let root = user("root", &[], &[Role::Admin]);
        // (what, who, the chain, the privilege held, why)
        type Case<'a> = (
            &'a str,
            Option<&'a Principal>,
            &'a [Node],
            Option<Privilege>,
            &'a str,
        );
        let cases: &[Case] = &[
            // Inherited from /travel: public view reaches anonymous visitors below it.
            (
                "anonymous, norway",
                None,
                norway,
                Some(Privilege::View),
                "view to public on category:/travel",
            ),
            (
                "anonymous, travel",
                None,
                travel,
                Some(Privilege::View),
                "view to public on category:/travel",
            ),
            // The nearest grant of the highest privilege is the reason.
            (
                "ann, norway",
                Some(&ann),
                norway,
                Some(Privilege::Admin),
                "admin to user:ann on category:/travel/norway",
            ),
            (
                "eve via her group",
                Some(&eve),
                norway,
                Some(Privilege::Edit),
                "edit to group:editors on category:/travel",
            ),
            // inherit = false: only the object's own grants (admins aside).
            ("ann, private", Some(&ann), private, None, ""),
            ("anonymous, private", None, private, None, ""),
            (
                "bob, private",
                Some(&bob),
                private,
                Some(Privilege::View),
                "view to user:bob on category:/travel/norway/private",
            ),
            (
                "root, private",
                Some(&root),
                private,
                Some(Privilege::Admin),
                "the admin role",
            ),
            // registered on the root reaches a logged-in user everywhere it inherits.
            (
                "bob, norway",
                Some(&bob),
                norway,
                Some(Privilege::View),
                "view to public on category:/travel",
            ),
        ];
        for (what, who, chain, want, why) in cases {
            let got = effective(*who, chain);
            assert_eq!(got.as_ref().map(|g| g.0), *want, "{what}");
            if let Some((_, reason)) = got {
                assert_eq!(reason.to_string(), *why, "{what}");
            }
        }
        assert!(may(Some(&eve), Privilege::View, norway));
        assert!(may(Some(&eve), Privilege::Edit, norway));
        assert!(!may(Some(&eve), Privilege::Admin, norway));
    }

    #[test]
    fn a_group_change_reaches_existing_members_at_once() {
        // The rules read the principal's groups at each check: membership is not copied.
        let t = tree();
        let mut dan = user("dan", &[], &[Role::Viewer]);
        assert!(!may(Some(&dan), Privilege::Edit, &t[1..]));
        dan = user("dan", &["editors"], &[Role::Viewer]);
        assert!(may(Some(&dan), Privilege::Edit, &t[1..]));
        // And a grant added on an ancestor reaches everything below it.
        let mut t = tree();
        t[3].grants.push(grant("user:dan", "admin"));
        let dan = user("dan", &[], &[Role::Viewer]);
        assert!(may(Some(&dan), Privilege::Admin, &t[1..]));
        assert!(
            !may(Some(&dan), Privilege::View, &t[..]),
            "private stops it"
        );
    }

    #[test]
    fn a_creator_grant_is_an_ordinary_grant() {
        let mut t = tree();
        t.insert(
            0,
            node(
                "category:/travel/norway/fjords",
                &[("user:cat", "admin")],
                true,
            ),
        );
        let cat = user("cat", &[], &[Role::Viewer]);
        assert!(may(Some(&cat), Privilege::Admin, &t[..1]));
        assert!(!may(Some(&cat), Privilege::Edit, &t[1..]));
    }

    #[test]
    fn a_key_acts_with_at_most_its_users_privilege() {
        use Privilege::*;
        assert_eq!(capped(Some(View), Some(Admin)), Some(View));
        assert_eq!(capped(Some(Admin), Some(Edit)), Some(Edit));
        assert_eq!(capped(None, Some(Admin)), None);
        assert_eq!(capped(Some(Admin), None), None);
    }

    #[test]
    fn roles_are_grants_at_the_root() {
        use Privilege::*;
        let t = tree();
        let (norway, private, travel) = (&t[1..], &t[..], &t[2..]);
        let ed = user("ed", &[], &[Role::Editor]);
        let vi = user("vi", &[], &[Role::Viewer]);
        let none = user("nobody", &[], &[]);
        let ann = user("ann", &[], &[Role::Editor]);
        let bare = [node("category:/", &[], true)];
        // (what, who, chain, held, why)
        type Case<'a> = (
            &'a str,
            &'a Principal,
            &'a [Node],
            Option<Privilege>,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                "an editor edits",
                &ed,
                norway,
                Some(Edit),
                "the editor role",
            ),
            (
                "an editor on a bare root",
                &ed,
                &bare,
                Some(Edit),
                "the editor role",
            ),
            ("a viewer views", &vi, &bare, Some(View), "the viewer role"),
            // A grant as high as the role is nearer, so it is the reason.
            (
                "a viewer below public view",
                &vi,
                travel,
                Some(View),
                "view to public on category:/travel",
            ),
            ("no role, no grant", &none, &bare, None, ""),
            // inherit = false cuts the roles too: private to editors.
            ("an editor, private", &ed, private, None, ""),
            ("a viewer, private", &vi, private, None, ""),
            // A grant above the role wins.
            (
                "an editor granted admin",
                &ann,
                norway,
                Some(Admin),
                "admin to user:ann on category:/travel/norway",
            ),
        ];
        for (what, who, chain, want, why) in cases {
            let got = effective(Some(who), chain);
            assert_eq!(got.as_ref().map(|g| g.0), *want, "{what}");
            if let Some((_, reason)) = got {
                assert_eq!(reason.to_string(), *why, "{what}");
            }
        }
        // The highest of several roles counts.
        let both = user("both", &[], &[Role::Viewer, Role::Editor]);
        assert!(may(Some(&both), Edit, &bare));
        // Nobody logged in holds no role.
        assert_eq!(effective(None, &bare), None);
        assert_eq!(role_privilege(Role::Admin), Admin);
    }

    #[test]
    fn a_key_with_an_editors_rights_is_capped_by_a_viewers_role() {
        use Privilege::*;
        let bare = [node("category:/", &[], true)];
        let vi = user("vi", &[], &[Role::Viewer]);
        let held = effective(Some(&vi), &bare).map(|e| e.0);
        assert_eq!(capped(held, Some(Edit)), Some(View));
        let ed = user("ed", &[], &[Role::Editor]);
        let held = effective(Some(&ed), &bare).map(|e| e.0);
        assert_eq!(capped(held, Some(Admin)), Some(Edit));
        assert_eq!(capped(held, Some(View)), Some(View));
    }

    #[test]
    fn names_parse_and_print() {
        for s in ["user:ann", "group:editors", "registered", "public"] {
            assert_eq!(s.parse::<Grantee>().unwrap().to_string(), s);
        }
        for bad in ["user:", "group", "everyone", "user:a b", "role:admin"] {
            assert!(bad.parse::<Grantee>().is_err(), "{bad}");
        }
        for p in ["view", "edit", "admin"] {
            assert_eq!(p.parse::<Privilege>().unwrap().as_str(), p);
        }
        assert!("write".parse::<Privilege>().is_err());
    }
}
