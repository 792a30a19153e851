//! `imgserv-admin grant|revoke|explain|inherit`: permissions from the command line. The
//! operator (whoever may open the catalog) may grant anything anywhere; `explain` answers as
//! the server would for a user (by their role and groups in the catalog) or for `public`.

use std::path::Path;

use crate::domain::permission::{Grant, Grantee, Privilege};
use crate::domain::principal::Method;
use crate::io::catalog::{self, CatalogError};
use crate::io::config::Config;
use crate::usecases::error::{Error, exit};
use crate::usecases::permissions::{Actor, Permissions};
use crate::usecases::records::Records;

use super::admin::run;

/// A usage error (a bad grantee, privilege or on/off), printed, with exit 64.
fn usage(what: String) -> i32 {
    eprintln!("imgserv-admin: {what}");
    exit::USAGE
}

/// Runs `f` with the permission checks, the root set up from `[permissions] root_grants`.
fn with_permissions(
    config_file: Option<&Path>,
    f: impl FnOnce(&Permissions<'_>, &mut catalog::Catalog) -> Result<(), Error>,
) -> i32 {
    run(config_file, |config: &Config, c| {
        // A CGI-like cache: memcached shared with the servers, so that writes here reach them.
        let records = Records::new(config, false);
        let perms = Permissions::new(config, &records);
        perms.seed_root(c)?;
        f(&perms, c)
    })
}

/// `grant OBJECT GRANTEE PRIVILEGE`: replaces the grantee's earlier grant on the object.
pub fn grant(config_file: Option<&Path>, object: &str, grantee: &str, privilege: &str) -> i32 {
    let grant = match (grantee.parse::<Grantee>(), privilege.parse::<Privilege>()) {
        (Ok(grantee), Ok(privilege)) => Grant { grantee, privilege },
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    with_permissions(config_file, |perms, c| {
        perms.grant(c, &Actor::Operator, object, &grant)?;
        let object = catalog::normalize_object(object)?;
        println!(
            "granted {} to {} on {object}",
            grant.privilege, grant.grantee
        );
        Ok(())
    })
}

/// `revoke OBJECT GRANTEE`: exit 66 when the grantee held no grant there.
pub fn revoke(config_file: Option<&Path>, object: &str, grantee: &str) -> i32 {
    let grantee: Grantee = match grantee.parse() {
        Ok(g) => g,
        Err(e) => return usage(e),
    };
    with_permissions(config_file, |perms, c| {
        perms.revoke(c, &Actor::Operator, object, &grantee)?;
        let object = catalog::normalize_object(object)?;
        println!("revoked the grant to {grantee} on {object}");
        Ok(())
    })
}

/// `inherit OBJECT on|off`.
pub fn inherit(config_file: Option<&Path>, object: &str, on: &str) -> i32 {
    let inherit = match on {
        "on" => true,
        "off" => false,
        _ => return usage(format!("expected on or off, got {on:?}")),
    };
    with_permissions(config_file, |perms, c| {
        perms.set_inherit(c, &Actor::Operator, object, inherit)?;
        let object = catalog::normalize_object(object)?;
        let word = if inherit {
            "inherits"
        } else {
            "does not inherit"
        };
        println!("{object} {word} its ancestors' grants");
        Ok(())
    })
}

/// `explain OBJECT USER|public [PRIVILEGE]`: prints `WHO holds PRIVILEGE on OBJECT: WHY` (or
/// `WHO holds nothing on OBJECT`); with PRIVILEGE, exits 77 when that is not held.
pub fn explain(
    config_file: Option<&Path>,
    object: &str,
    who: &str,
    privilege: Option<&str>,
) -> i32 {
    let wanted = match privilege.map(str::parse::<Privilege>).transpose() {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let mut refused = false;
    let code = with_permissions(config_file, |perms, c| {
        let object = catalog::normalize_object(object)?;
        let (actor, name) = match who {
            "public" => (Actor::Anonymous, "public".to_string()),
            _ => {
                let user = who.strip_prefix("user:").unwrap_or(who);
                let principal = perms
                    .principal_of(c, user, Method::Local)?
                    .ok_or_else(|| CatalogError::UserNotFound(user.to_string()))?;
                (Actor::User(principal), format!("user:{user}"))
            }
        };
        let held = perms.explain(c, &actor, &object)?;
        match &held {
            Some((p, why)) => println!("{name} holds {p} on {object}: {why}"),
            None => println!("{name} holds nothing on {object}"),
        }
        if let Some(wanted) = wanted
            && held.is_none_or(|(p, _)| p < wanted)
        {
            eprintln!("imgserv-admin: {name} may not {wanted} {object}");
            refused = true;
        }
        Ok(())
    });
    if code == exit::OK && refused {
        exit::NOPERM
    } else {
        code
    }
}

/// After a change of groups, memberships or roles: every process sharing the object cache
/// forgets its cached permissions.
pub fn changed(config: &Config) {
    Records::new(config, false).bump_generation();
}
