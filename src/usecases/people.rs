//! Managing users, groups and API keys ("who may use the REST interface"), for the dashboard's
//! Administration pages and `imgserv-admin`: each change needs an administrator (the
//! operator, or a user with the admin role), is logged with who made it, and forgets what
//! caches remembered of it (keys, principals, effective permissions) at once in this process
//! and, through a shared object cache, in every other.

use crate::domain::permission::Privilege;
use crate::domain::principal::Role;
use crate::io::catalog::{ApiKey, Catalog, Group, Rights, User};
use crate::usecases::error::{Error, PermissionError};
use crate::usecases::passwords;
use crate::usecases::permissions::Actor;
use crate::usecases::records::{KEYS, Records};

/// Who changes people: an administrator, and their name for the log.
fn admin(actor: &Actor) -> Result<String, Error> {
    match actor {
        Actor::Operator => Ok("the operator".into()),
        Actor::User(p) if p.has_role(Role::Admin) => Ok(p.user.clone()),
        other => Err(PermissionError::Denied {
            privilege: Privilege::Admin,
            object: "users, groups and keys".into(),
            who: other
                .principal()
                .map_or_else(|| "nobody".to_string(), |p| p.user.clone()),
        }
        .into()),
    }
}

/// Whether `actor` may manage people (and so see the Administration pages).
pub fn may_administer(actor: &Actor) -> bool {
    admin(actor).is_ok()
}

/// Refuses anyone but an administrator.
pub fn require_admin(actor: &Actor) -> Result<(), Error> {
    admin(actor).map(|_| ())
}

/// Adds a user with a role and, optionally, a local password.
pub fn add_user(
    catalog: &mut Catalog,
    actor: &Actor,
    name: &str,
    role: Role,
    password: Option<&str>,
) -> Result<User, Error> {
    let who = admin(actor)?;
    let hash = password.map(passwords::hash).transpose()?;
    let user = catalog.add_user_with(name, role, hash.as_deref())?;
    log::info!("{who} added user {name} ({role})");
    Ok(user)
}

/// Sets a user's local password.
pub fn set_password(
    catalog: &mut Catalog,
    actor: &Actor,
    name: &str,
    password: &str,
) -> Result<(), Error> {
    let who = admin(actor)?;
    let hash = passwords::hash(password)?;
    catalog.set_password(name, Some(&hash))?;
    log::info!("{who} set the password of {name}");
    Ok(())
}

/// Disables (or enables) a user: their logins and keys are refused from the next request on.
pub fn set_disabled(
    records: &Records,
    catalog: &mut Catalog,
    actor: &Actor,
    name: &str,
    disabled: bool,
) -> Result<(), Error> {
    let who = admin(actor)?;
    catalog.set_disabled(name, disabled)?;
    records.forget_keys_of(catalog, name)?;
    records.bump_generation();
    let what = if disabled { "disabled" } else { "enabled" };
    log::info!("{who} {what} user {name}");
    Ok(())
}

/// Changes a user's role.
pub fn set_role(
    records: &Records,
    catalog: &mut Catalog,
    actor: &Actor,
    name: &str,
    role: Role,
) -> Result<(), Error> {
    let who = admin(actor)?;
    catalog.set_role(name, role)?;
    records.bump_generation();
    log::info!("{who} made {name} {role}");
    Ok(())
}

/// Deletes a user with all their keys and memberships (one transaction); the number of keys.
pub fn del_user(
    records: &Records,
    catalog: &mut Catalog,
    actor: &Actor,
    name: &str,
) -> Result<u64, Error> {
    let who = admin(actor)?;
    // The ids first (the rows go with the user), forgotten after the delete committed.
    let ids: Vec<String> = (catalog.keys()?.into_iter())
        .filter(|k| k.user == name)
        .map(|k| k.id)
        .collect();
    let keys = catalog.del_user(name)?;
    records.bump_generation();
    for id in &ids {
        records.forget(KEYS, id);
    }
    log::info!("{who} deleted user {name} and {keys} keys");
    Ok(keys)
}

/// Adds a group.
pub fn add_group(catalog: &mut Catalog, actor: &Actor, name: &str) -> Result<Group, Error> {
    let who = admin(actor)?;
    let group = catalog.add_group(name)?;
    log::info!("{who} added group {name}");
    Ok(group)
}

/// Deletes a group and its memberships (the users stay); the number of members it had.
pub fn del_group(
    records: &Records,
    catalog: &mut Catalog,
    actor: &Actor,
    name: &str,
) -> Result<u64, Error> {
    let who = admin(actor)?;
    let members = catalog.del_group(name)?;
    records.bump_generation();
    log::info!("{who} deleted group {name} ({members} members)");
    Ok(members)
}

/// Adds `user` to `group` (`true` when they were not a member) or removes them.
pub fn set_member(
    records: &Records,
    catalog: &mut Catalog,
    actor: &Actor,
    group: &str,
    user: &str,
    member: bool,
) -> Result<bool, Error> {
    let who = admin(actor)?;
    let changed = if member {
        catalog.add_member(group, user)
    } else {
        catalog.del_member(group, user).map(|()| true)
    };
    // Forgotten whatever happened: a failed write may still have committed.
    records.bump_generation();
    let changed = changed?;
    let what = if member { "added" } else { "removed" };
    log::info!(
        "{who} {what} {user} {} {group}",
        if member { "to" } else { "from" }
    );
    Ok(changed)
}

/// A new key for `user` with `rights`, expiring at `expires` (unix ms); its secret is in the
/// returned key, to be shown once.
pub fn add_key(
    catalog: &mut Catalog,
    actor: &Actor,
    user: &str,
    rights: Rights,
    expires: Option<i64>,
) -> Result<ApiKey, Error> {
    let who = admin(actor)?;
    let key = catalog.add_key_expiring(user, rights, expires)?;
    log::info!("{who} added key {} for {user} ({rights})", key.id);
    Ok(key)
}

/// Revokes a key: it stops verifying at once (a cached copy is forgotten).
pub fn revoke_key(
    records: &Records,
    catalog: &mut Catalog,
    actor: &Actor,
    id: &str,
) -> Result<ApiKey, Error> {
    let who = admin(actor)?;
    let key = records.revoke_key(catalog, id)?;
    log::info!("{who} revoked key {} of {}", key.id, key.user);
    Ok(key)
}

/// Every user, group and key.
pub struct Overview {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    /// Their secrets are never shown again.
    pub keys: Vec<ApiKey>,
}

/// Everyone and every key, for the Administration pages.
pub fn overview(catalog: &Catalog, actor: &Actor) -> Result<Overview, Error> {
    admin(actor)?;
    Ok(Overview {
        users: catalog.users()?,
        groups: catalog.groups()?,
        keys: catalog.keys()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::principal::{Method, Principal};

    fn setup() -> (tempfile::TempDir, Catalog, Records) {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(&d.path().join("catalog.sqlite")).unwrap();
        std::fs::create_dir(d.path().join("originals")).unwrap();
        let text = "[originals]\nroot = \"originals\"\n";
        let config = crate::io::config::from_str(text, d.path()).unwrap();
        (d, c, Records::new(&config, false))
    }

    fn user(name: &str, role: Role) -> Actor {
        Actor::User(Principal::new(name, vec![], vec![role], Method::Local))
    }

    #[test]
    fn only_an_administrator_changes_people() {
        let (_d, mut c, records) = setup();
        let ann = user("ann", Role::Admin);
        add_user(&mut c, &ann, "bob", Role::Editor, Some("bob-pw")).unwrap();
        for actor in [user("bob", Role::Editor), Actor::Anonymous] {
            let e = add_user(&mut c, &actor, "eve", Role::Admin, None).unwrap_err();
            assert_eq!(e.status(), 403, "{e}");
            assert_eq!(
                set_role(&records, &mut c, &actor, "bob", Role::Admin)
                    .unwrap_err()
                    .status(),
                403
            );
            assert_eq!(
                add_key(&mut c, &actor, "bob", Rights::READ, None)
                    .unwrap_err()
                    .status(),
                403
            );
            assert!(!may_administer(&actor));
        }
        assert!(c.users().unwrap().iter().all(|u| u.name != "eve"));
        let key = add_key(&mut c, &Actor::Operator, "bob", Rights::READ, None).unwrap();
        add_group(&mut c, &ann, "editors").unwrap();
        assert!(set_member(&records, &mut c, &ann, "editors", "bob", true).unwrap());
        set_disabled(&records, &mut c, &ann, "bob", true).unwrap();
        let bob = c
            .users()
            .unwrap()
            .into_iter()
            .find(|u| u.name == "bob")
            .unwrap();
        assert!(bob.disabled && bob.groups == ["editors"]);
        assert!(
            revoke_key(&records, &mut c, &ann, &key.id)
                .unwrap()
                .revoked
                .is_some()
        );
        assert_eq!(del_user(&records, &mut c, &ann, "bob").unwrap(), 1);
        assert_eq!(del_group(&records, &mut c, &ann, "editors").unwrap(), 0);
    }
}
