//! The authenticator chain: who is asking, from a user name and password (`[auth] methods`, in
//! order) or from the web server's own authentication (`remote_user`).
//!
//! A login tries each password method in turn; the first that accepts decides, a refusal goes
//! on to the next. When none accepts, the answer is the same whether the user exists anywhere or
//! not (`401 bad-credentials`), unless a method could not decide (a directory down, a program
//! that hangs): then `503 auth-unavailable`, so that nobody takes an outage for a wrong
//! password. Every refusal and failure is logged with the method and the reason.

use crate::domain::principal::{Method, Principal, Role};
use crate::io::catalog::Catalog;
use crate::io::config::Config;
use crate::io::ldap;
use crate::usecases::error::{AuthError, Error};
use crate::usecases::{passwords, throttle};

/// [`login`] behind the throttle of `[login]`: refused at once (`429 too-many-logins`, no
/// password checked) while failures of `user` or from `address` (the client's, as
/// [`throttle::client_address`] tells it; `None` for a tool) make attempts wait; a failure
/// counted, a success clearing the user's counter. What a login form and `imgserv-admin login`
/// call.
pub fn login_from(
    config: &Config,
    catalog: &Catalog,
    user: &str,
    password: &str,
    address: Option<&str>,
) -> Result<Principal, Error> {
    throttle::attempt(config, user, address, throttle::now_ms(), || {
        login(config, catalog, user, password)
    })
}

/// Checks `user` and `password` with the password methods of `[auth] methods`, in order.
pub fn login(
    config: &Config,
    catalog: &Catalog,
    user: &str,
    password: &str,
) -> Result<Principal, Error> {
    let mut undecided = false;
    for &method in &config.auth.methods {
        let outcome = match method {
            Method::Local => passwords::local_login(catalog, user, password)
                .map(|u| u.map(|u| Principal::new(&u.name, u.groups, vec![u.role], method)))
                .map_err(|e| e.to_string()),
            Method::Ldap => match &config.ldap {
                Some(directory) => ldap::authenticate(directory, user, password)
                    .map(|id| id.map(|id| from_directory(id, method)))
                    .map_err(|e| e.to_string()),
                None => Err("auth.methods lists \"ldap\" but there is no [ldap]".into()),
            },
            Method::Command => match &config.auth.command {
                Some(command) => command
                    .check(user, password)
                    .map(|id| id.map(|id| Principal::new(user, id.groups, vec![id.role], method)))
                    .map_err(|e| e.to_string()),
                None => Err("auth.methods lists \"command\" but there is no command".into()),
            },
            // Not password methods.
            Method::RemoteUser | Method::Key => continue,
        };
        match outcome {
            Ok(Some(principal)) => {
                log::info!("login {user:?}: accepted by {}", method.as_str());
                return Ok(principal);
            }
            Ok(None) => log::info!("login {user:?}: refused by {}", method.as_str()),
            Err(e) => {
                log::warn!("login {user:?}: {} could not decide: {e}", method.as_str());
                undecided = true;
            }
        }
    }
    Err(if undecided {
        AuthError::Unavailable
    } else {
        AuthError::Refused
    }
    .into())
}

/// A directory's user: the name folded to lower case (the directory matches names without
/// case, so `Alice` and `alice` are one user here too), its groups, admin by `admin_group`.
fn from_directory(id: ldap::LdapIdentity, method: Method) -> Principal {
    let role = if id.admin { Role::Admin } else { Role::Viewer };
    Principal::new(&id.user.to_lowercase(), id.groups, vec![role], method)
}

/// The principal the web server's own authentication established (`REMOTE_USER`), when
/// `[auth] methods` lists `remote_user`: the catalog's user of that name with their role and
/// groups, or a viewer without groups when there is none; `None` when the method is not
/// listed, nothing was set, or the catalog's user is disabled.
pub fn remote_user(
    config: &Config,
    catalog: &Catalog,
    remote_user: Option<&str>,
) -> Result<Option<Principal>, Error> {
    let Some(name) = remote_user.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if !config.auth.methods.contains(&Method::RemoteUser) {
        return Ok(None);
    }
    let method = Method::RemoteUser;
    Ok(match catalog.credentials(name)? {
        Some(c) if c.disabled => {
            log::info!("REMOTE_USER {name:?}: disabled in the catalog");
            None
        }
        Some(c) => Some(Principal::new(&c.name, c.groups, vec![c.role], method)),
        None => Some(Principal::new(name, Vec::new(), vec![Role::Viewer], method)),
    })
}
