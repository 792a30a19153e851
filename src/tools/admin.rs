//! What `imgserv-admin` does, one function per subcommand; each prints its report and returns
//! the exit code (sysexits, from `error`). Users, groups, keys and signed URLs are the
//! catalog's and `sign`'s, password hashing `passwords`'; this module only reads the
//! configuration (and passwords from standard input), calls them and prints.

use std::fs;
use std::io;
use std::path::Path;

use crate::io::catalog::{Catalog, CatalogError, Rights, Role};
use crate::io::config::Config;
use crate::usecases::error::{Error, exit};
use crate::usecases::permissions::Actor;
use crate::usecases::records::Records;
use crate::usecases::{passwords, people, sign};
use crate::web::server;

/// `check-config [FILE]`: every problem on standard error with its key, exit 78 if any;
/// otherwise `ok: FILE`, with a warning for each directory this user could not write (run it
/// as the web server's user to check what the server will meet).
pub fn check_config(file: Option<&Path>) -> i32 {
    let path = crate::io::config::config_path(file);
    match server::load_config(Some(&path), &[]) {
        Ok(config) => {
            for (key, dir) in [
                ("cache.dir", &config.cache.dir),
                ("state.dir", &config.state.dir),
            ] {
                if let Err(why) = probe_writable(dir) {
                    eprintln!("warning: {key}: {} {why}", dir.display());
                }
            }
            println!("ok: {}", path.display());
            exit::OK
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            exit::CONFIG
        }
    }
}

/// Whether this process can create files in `dir` (or create `dir` itself when missing), by
/// trying it: permission bits alone do not tell (ACLs, read-only mounts).
fn probe_writable(dir: &Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"));
    let probe = existing.join(format!(".imgserv-check-{}", std::process::id()));
    match fs::File::create(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if existing == dir => Err(format!("is not writable by this user: {e}")),
        Err(e) => Err(format!(
            "does not exist and cannot be created in {}: {e}",
            existing.display()
        )),
    }
}

/// Opens the catalog named by the configuration, or reports why not and returns the exit code.
fn catalog(config_file: Option<&Path>) -> Result<(Config, Catalog), i32> {
    let config = server::load_config(config_file, &[]).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        exit::CONFIG
    })?;
    let catalog = Catalog::open(&config.state.catalog_path()).map_err(|e| fail(e.into()))?;
    Ok((config, catalog))
}

/// Prints an error and returns its exit code.
fn fail(e: Error) -> i32 {
    eprintln!("imgserv-admin: {e}");
    e.exit_code()
}

pub(super) fn run(
    config_file: Option<&Path>,
    f: impl FnOnce(&Config, &mut Catalog) -> Result<(), Error>,
) -> i32 {
    match catalog(config_file) {
        Ok((config, mut catalog)) => match f(&config, &mut catalog) {
            Ok(()) => exit::OK,
            Err(e) => fail(e),
        },
        Err(code) => code,
    }
}

/// `fsck [--repair]`: one line per problem on standard output (see `fsck`), a summary on
/// standard error; exit 0 when nothing is (left) wrong, 65 when a problem remains.
pub fn fsck(config_file: Option<&Path>, repair: bool) -> i32 {
    let config = match server::load_config(config_file, &[]) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return exit::CONFIG;
        }
    };
    let problems = match crate::usecases::fsck::check(&config, repair) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    for p in &problems {
        println!("{p}");
    }
    let remaining = problems.iter().filter(|p| p.remains()).count();
    eprintln!(
        "fsck: {} problems, {} repaired, {remaining} remaining",
        problems.len(),
        problems.len() - remaining
    );
    if remaining == 0 {
        exit::OK
    } else {
        exit::DATAERR
    }
}

/// `user add NAME [--role ROLE] [--password-stdin]`: the password, when asked for, is read
/// from standard input (never the command line, which other users can see in `ps`).
pub fn user_add(config_file: Option<&Path>, name: &str, role: &str, password_stdin: bool) -> i32 {
    run(config_file, |_, c| {
        let role: Role = role.parse().map_err(CatalogError::BadRole)?;
        let hash = if password_stdin {
            Some(passwords::hash(&passwords::read_new(&mut io::stdin())?)?)
        } else {
            None
        };
        let user = c.add_user_with(name, role, hash.as_deref())?;
        let with = if hash.is_some() {
            "with a password"
        } else {
            "without a password"
        };
        println!("added user {} ({}, {with})", user.name, user.role);
        Ok(())
    })
}

/// `user passwd NAME`: sets the password read from standard input.
pub fn user_passwd(config_file: Option<&Path>, name: &str) -> i32 {
    run(config_file, |_, c| {
        let hash = passwords::hash(&passwords::read_new(&mut io::stdin())?)?;
        c.set_password(name, Some(&hash))?;
        println!("set the password of {name}");
        Ok(())
    })
}

/// `user disable NAME` / `user enable NAME`: a disabled user cannot log in and their keys
/// are refused, from the next request on.
pub fn user_disable(config_file: Option<&Path>, name: &str, disabled: bool) -> i32 {
    run(config_file, |config, c| {
        people::set_disabled(
            &Records::new(config, false),
            c,
            &Actor::Operator,
            name,
            disabled,
        )?;
        let what = if disabled { "disabled" } else { "enabled" };
        println!("{what} user {name}");
        Ok(())
    })
}

/// `user list`: one line per user, `NAME ROLE STATE GROUPS KEYS CREATED`, tab-separated;
/// STATE is `enabled` or `disabled` (and `no-password` without a local password), GROUPS
/// comma-separated or `-`.
pub fn user_list(config_file: Option<&Path>) -> i32 {
    run(config_file, |_, c| {
        for u in c.users()? {
            let state = if u.disabled { "disabled" } else { "enabled" };
            let password = if u.has_password { "" } else { ",no-password" };
            let groups = if u.groups.is_empty() {
                "-".to_string()
            } else {
                u.groups.join(",")
            };
            println!(
                "{}\t{}\t{state}{password}\t{groups}\t{} keys\t{}",
                u.name,
                u.role,
                u.keys,
                date(u.created)
            );
        }
        Ok(())
    })
}

/// `user del NAME`: the user, all their keys and their group memberships, in one transaction.
pub fn user_del(config_file: Option<&Path>, name: &str) -> i32 {
    run(config_file, |config, c| {
        let keys = people::del_user(&Records::new(config, false), c, &Actor::Operator, name)?;
        println!("deleted user {name} and {keys} keys");
        Ok(())
    })
}

/// `group add NAME`.
pub fn group_add(config_file: Option<&Path>, name: &str) -> i32 {
    run(config_file, |_, c| {
        c.add_group(name)?;
        println!("added group {name}");
        Ok(())
    })
}

/// `group del NAME`: the group and its memberships; the users stay.
pub fn group_del(config_file: Option<&Path>, name: &str) -> i32 {
    run(config_file, |config, c| {
        let members = people::del_group(&Records::new(config, false), c, &Actor::Operator, name)?;
        println!("deleted group {name} ({members} members)");
        Ok(())
    })
}

/// `group list`: one line per group, `NAME MEMBERS CREATED`, members comma-separated or `-`.
pub fn group_list(config_file: Option<&Path>) -> i32 {
    run(config_file, |_, c| {
        for g in c.groups()? {
            let members = if g.members.is_empty() {
                "-".to_string()
            } else {
                g.members.join(",")
            };
            println!("{}\t{members}\t{}", g.name, date(g.created));
        }
        Ok(())
    })
}

/// `group member add|del GROUP USER`; adding a member again is not an error.
pub fn group_member(config_file: Option<&Path>, add: bool, group: &str, user: &str) -> i32 {
    run(config_file, |config, c| {
        // Members' cached permissions are forgotten: a change reaches them at once.
        let records = Records::new(config, false);
        let changed = people::set_member(&records, c, &Actor::Operator, group, user, add)?;
        if !add {
            println!("removed {user} from {group}");
        } else if changed {
            println!("added {user} to {group}");
        } else {
            println!("{user} is a member of {group} already");
        }
        Ok(())
    })
}

/// `key add USER --rights read,write [--expires DURATION]`: prints the id and the secret,
/// which is shown only now.
pub fn key_add(
    config_file: Option<&Path>,
    user: &str,
    rights: &str,
    expires: Option<std::time::Duration>,
) -> i32 {
    run(config_file, |_, c| {
        let rights: Rights = rights.parse()?;
        let expires = expires.map(|d| {
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            unix_now_ms().saturating_add(ms)
        });
        let key = c.add_key_expiring(user, rights, expires)?;
        println!("key id:  {}", key.id);
        println!("secret:  {}", key.secret.expose());
        println!("rights:  {}", key.rights);
        if let Some(at) = key.expires {
            println!("expires: {}", date(at));
        }
        eprintln!("the secret is shown only now: store it where the client can read it");
        Ok(())
    })
}

/// `key list`: `ID USER RIGHTS CREATED [expires DATE] [revoked DATE]`, never the secrets.
pub fn key_list(config_file: Option<&Path>) -> i32 {
    run(config_file, |_, c| {
        for k in c.keys()? {
            let revoked = k
                .revoked
                .map(|t| format!("\trevoked {}", date(t)))
                .unwrap_or_default();
            let expires = k
                .expires
                .map(|t| {
                    let past = if t <= unix_now_ms() {
                        "expired"
                    } else {
                        "expires"
                    };
                    format!("\t{past} {}", date(t))
                })
                .unwrap_or_default();
            println!(
                "{}\t{}\t{}\t{}{expires}{revoked}",
                k.id,
                k.user,
                k.rights,
                date(k.created)
            );
        }
        Ok(())
    })
}

/// `key revoke ID`: the key stops verifying at once.
pub fn key_revoke(config_file: Option<&Path>, id: &str) -> i32 {
    run(config_file, |config, c| {
        // Through the object cache, so that a cached copy of the key is forgotten at once.
        let key = people::revoke_key(&Records::new(config, false), c, &Actor::Operator, id)?;
        println!("revoked {} ({})", key.id, key.user);
        Ok(())
    })
}

/// `ldap-test USER`: the password is the first line of standard input. Tries the `[ldap]`
/// directory as a login would, and prints the DN, the groups and the admin role (exit 0), or
/// why the login was refused (exit 77), or why the directory could not answer (exit 69, or 78
/// when the configuration is at fault).
pub fn ldap_test(config_file: Option<&Path>, user: &str, stdin: &mut dyn std::io::BufRead) -> i32 {
    let config = match server::load_config(config_file, &[]) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return exit::CONFIG;
        }
    };
    let Some(ldap) = &config.ldap else {
        eprintln!("imgserv-admin: no [ldap] section in the configuration");
        return exit::CONFIG;
    };
    let password = match password_line(stdin) {
        Ok(password) => password,
        Err(e) => {
            eprintln!("imgserv-admin: reading the password from standard input: {e}");
            return exit::IOERR;
        }
    };
    match crate::io::ldap::check(ldap, user, &password) {
        Ok(Ok(identity)) => {
            println!("dn:      {}", identity.dn);
            println!("groups:  {}", identity.groups.join(", "));
            println!("admin:   {}", if identity.admin { "yes" } else { "no" });
            exit::OK
        }
        Ok(Err(refusal)) => {
            println!("refused: {refusal}");
            exit::NOPERM
        }
        Err(e) => fail(e.into()),
    }
}

/// `sign-url URL [--key ID] [--expires DURATION] [--base PATH]`: prints the URL with its
/// signature. The base (where imgserv is mounted) is the cache URL's path for 404-handler
/// URLs, else `script`.
pub fn sign_url(
    config_file: Option<&Path>,
    url: &str,
    key: Option<&str>,
    expires: Option<std::time::Duration>,
    script: &str,
) -> i32 {
    run(config_file, |config, c| {
        let key = match key {
            Some(id) => c
                .key(id)?
                .ok_or_else(|| CatalogError::KeyNotFound(id.to_string()))?,
            None => {
                let now = unix_now_ms();
                let valid: Vec<_> = c
                    .keys()?
                    .into_iter()
                    .filter(|k| k.revoked.is_none() && k.expires.is_none_or(|t| t > now))
                    .collect();
                match <[_; 1]>::try_from(valid) {
                    Ok([k]) => k,
                    Err(_) => {
                        return Err(CatalogError::KeyNotFound(
                            "(more or less than one valid key: give --key)".into(),
                        )
                        .into());
                    }
                }
            }
        };
        let cache_path = sign::url_path(&config.cache.url);
        let path = sign::url_path(url);
        let base = if path.starts_with(&format!("{cache_path}/")) {
            cache_path
        } else {
            script.to_string()
        };
        let exp = expires.map(|d| unix_now() + d.as_secs());
        let signed = sign::sign_href(url, &base, &key.id, key.secret.expose().as_bytes(), exp)?;
        println!("{signed}");
        Ok(())
    })
}

fn unix_now_ms() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX / 1000) * 1000
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix milliseconds as an HTTP date (UTC).
fn date(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// `login USER`: the password from the first line of standard input through `[auth] methods`,
/// as a login form would, behind the throttle of `[login]` (the user's counter: a tool has no
/// client address); prints the principal (user, how, roles, groups) and exits 0, or says the
/// login was refused (77), could not be checked (69) or must wait (75). For operators setting
/// up a method.
pub fn login(config_file: Option<&Path>, user: &str, stdin: &mut dyn std::io::BufRead) -> i32 {
    run(config_file, |config, c| {
        let password =
            password_line(stdin).map_err(crate::usecases::passwords::PasswordError::Read)?;
        let p = crate::usecases::auth::login_from(config, c, user, &password, None)?;
        let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
        println!("user:    {}", p.user);
        println!("method:  {}", p.method.as_str());
        println!("roles:   {}", roles.join(", "));
        println!("groups:  {}", p.groups.join(", "));
        Ok(())
    })
}

/// `login-throttle list`: one line per counter of failed logins not yet forgotten, `KIND KEY
/// FAILURES LAST WAIT`, tab-separated (KIND `user` or `address`, WAIT `-` when an attempt may
/// go ahead now, else the seconds left), the latest first.
pub fn login_throttle_list(config_file: Option<&Path>) -> i32 {
    run(config_file, |config, _| {
        let now = crate::usecases::throttle::now_ms();
        for (row, wait) in crate::usecases::throttle::list(config, now)? {
            let wait = if wait.is_zero() {
                "-".to_string()
            } else {
                format!("{} s", crate::domain::throttle::retry_after_secs(wait))
            };
            println!(
                "{}\t{}\t{} failures\t{}\t{wait}",
                row.kind.as_str(),
                row.key,
                row.failures,
                date(row.last_ms)
            );
        }
        Ok(())
    })
}

/// `login-throttle clear NAME|--all`: lifts the wait of a user name or an address (NAME is
/// tried as both) at once, or of everyone; exit 66 when NAME had no counter.
pub fn login_throttle_clear(config_file: Option<&Path>, name: Option<&str>) -> i32 {
    let mut found = true;
    let code = run(config_file, |config, _| {
        let Some(name) = name else {
            let n = crate::usecases::throttle::clear_all(config)?;
            println!("cleared {n} counters");
            return Ok(());
        };
        let cleared = crate::usecases::throttle::clear(config, name)?;
        for (kind, key) in &cleared {
            println!("cleared the {} counter {key}", kind.as_str());
        }
        if cleared.is_empty() {
            eprintln!("imgserv-admin: no counter of failed logins for {name:?}");
            found = false;
        }
        Ok(())
    });
    if code == exit::OK && !found {
        exit::NOINPUT
    } else {
        code
    }
}

/// The first line of `stdin` without its line ending: a password to check (`ldap-test`,
/// `login`), never taken from the command line where ps(1) would show it.
fn password_line(stdin: &mut dyn std::io::BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_string())
}
