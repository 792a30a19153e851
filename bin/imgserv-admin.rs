//! `imgserv-admin`: administration of an imgserv installation. See imgserv-admin(8).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use imgserv::tools::{admin, grants};

#[derive(Parser)]
#[command(version, about = "Administer imgserv")]
struct Args {
    /// Configuration file (default: $IMGSERV_CONFIG, then /etc/imgserv/imgserv.toml).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file; report every problem with its key, exit 78 if any.
    CheckConfig {
        /// The file (default: --config, $IMGSERV_CONFIG, then /etc/imgserv/imgserv.toml).
        file: Option<PathBuf>,
    },
    /// Compare the cache index with the cache directory and the catalog with the store; one
    /// line per problem, exit 65 if any.
    Fsck {
        /// Fix what can be fixed without losing an original.
        #[arg(long)]
        repair: bool,
    },
    /// Manage users: who may log in and hold API keys, with a role.
    #[command(subcommand)]
    User(User),
    /// Manage groups of users.
    #[command(subcommand)]
    Group(Group),
    /// Manage API keys.
    #[command(subcommand)]
    Key(Key),
    /// Try USER's login against the [ldap] directory (password on standard input): print the
    /// DN, groups and admin role, or why not; exit 77 when refused, 69 when unavailable.
    LdapTest { user: String },
    /// Log USER in through [auth] methods, as a login form would (password on stdin); print who
    /// they are (exit 0), or that the login was refused (77), could not be checked (69) or must
    /// wait after too many failures (75, [login]).
    Login { user: String },
    /// See and lift the waits that failed logins impose ([login]).
    #[command(subcommand)]
    LoginThrottle(LoginThrottle),
    /// Grant PRIVILEGE (view, edit, admin) on OBJECT (category:/PATH) to GRANTEE (user:NAME,
    /// group:NAME, registered, public), replacing the grantee's earlier grant there.
    Grant {
        object: String,
        grantee: String,
        privilege: String,
    },
    /// Remove GRANTEE's grant on OBJECT; exit 66 when there was none.
    Revoke { object: String, grantee: String },
    /// Print the privilege USER (or public) holds on OBJECT and why; with PRIVILEGE, exit 77
    /// when it is not held.
    Explain {
        object: String,
        who: String,
        privilege: Option<String>,
    },
    /// Whether OBJECT inherits its ancestors' grants (on) or only its own apply (off).
    Inherit { object: String, on: String },
    /// Print URL with a signature (for [security] require_signed_urls).
    SignUrl {
        url: String,
        /// The key to sign with (default: the only valid key).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Make the URL expire after this long ("1h", "7d").
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        expires: Option<std::time::Duration>,
        /// Where the redirector is mounted, removed from the path before signing.
        #[arg(long, value_name = "PATH", default_value = "/cgi-bin/imgserv.cgi")]
        script: String,
    },
}

#[derive(Subcommand)]
enum User {
    /// Add a user.
    Add {
        name: String,
        /// Read the user's password from standard input (to the end, one trailing newline
        /// removed); without it the user has no local password.
        #[arg(long)]
        password_stdin: bool,
        /// admin, editor or viewer.
        #[arg(long, value_name = "ROLE", default_value = "editor")]
        role: String,
    },
    /// Set a user's password, read from standard input.
    Passwd { name: String },
    /// Disable a user: no login, their keys refused.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// List users with role, state, groups and number of valid keys.
    List,
    /// Delete a user, all their keys and their group memberships.
    Del { name: String },
}

#[derive(Subcommand)]
enum LoginThrottle {
    /// List the counters of failed logins (per user name and per address) and their waits.
    List,
    /// Clear the counters of a user name or an address (NAME is tried as both), or all.
    #[command(arg_required_else_help = true)]
    Clear {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Clear every counter.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum Group {
    /// Add a group.
    Add { name: String },
    /// Delete a group (its members stay users).
    Del { name: String },
    /// List groups with their members.
    List,
    /// Add a user to a group, or remove them.
    #[command(subcommand)]
    Member(Member),
}

#[derive(Subcommand)]
enum Member {
    /// Add USER to GROUP.
    Add { group: String, user: String },
    /// Remove USER from GROUP.
    Del { group: String, user: String },
}

#[derive(Subcommand)]
enum Key {
    /// Create a key for USER; prints its id and secret (shown only once).
    Add {
        user: String,
        /// Comma-separated rights: read, write, delete, admin.
        #[arg(long, value_name = "RIGHTS", default_value = "read")]
        rights: String,
        /// Make the key stop working after this long ("30d", "12h").
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        expires: Option<std::time::Duration>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key.
    Revoke { key: String },
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    imgserv::io::config::parse_duration(s)
        .ok_or_else(|| format!("expected a duration like 1h, got {s:?}"))
}

fn main() {
    let args: Args = imgserv::tools::cli::parse();
    let config = args.config.as_deref();
    let code = match args.command {
        Command::CheckConfig { file } => admin::check_config(file.as_deref().or(config)),
        Command::Fsck { repair } => admin::fsck(config, repair),
        Command::User(User::Add {
            name,
            password_stdin,
            role,
        }) => admin::user_add(config, &name, &role, password_stdin),
        Command::User(User::Passwd { name }) => admin::user_passwd(config, &name),
        Command::User(User::Disable { name }) => admin::user_disable(config, &name, true),
        Command::User(User::Enable { name }) => admin::user_disable(config, &name, false),
        Command::User(User::List) => admin::user_list(config),
        Command::User(User::Del { name }) => admin::user_del(config, &name),
        Command::Group(Group::Add { name }) => admin::group_add(config, &name),
        Command::Group(Group::Del { name }) => admin::group_del(config, &name),
        Command::Group(Group::List) => admin::group_list(config),
        Command::Group(Group::Member(Member::Add { group, user })) => {
            admin::group_member(config, true, &group, &user)
        }
        Command::Group(Group::Member(Member::Del { group, user })) => {
            admin::group_member(config, false, &group, &user)
        }
        Command::Key(Key::Add {
            user,
            rights,
            expires,
        }) => admin::key_add(config, &user, &rights, expires),
        Command::Key(Key::List) => admin::key_list(config),
        Command::Key(Key::Revoke { key }) => admin::key_revoke(config, &key),
        Command::LdapTest { user } => admin::ldap_test(config, &user, &mut std::io::stdin().lock()),
        Command::Login { user } => {
            // Which method refused or failed, and why, goes to standard error.
            imgserv::web::server::init_logging();
            admin::login(config, &user, &mut std::io::stdin().lock())
        }
        Command::LoginThrottle(LoginThrottle::List) => admin::login_throttle_list(config),
        Command::LoginThrottle(LoginThrottle::Clear { name, .. }) => {
            admin::login_throttle_clear(config, name.as_deref())
        }
        Command::Grant {
            object,
            grantee,
            privilege,
        } => grants::grant(config, &object, &grantee, &privilege),
        Command::Revoke { object, grantee } => grants::revoke(config, &object, &grantee),
        Command::Explain {
            object,
            who,
            privilege,
        } => grants::explain(config, &object, &who, privilege.as_deref()),
        Command::Inherit { object, on } => grants::inherit(config, &object, &on),
        Command::SignUrl {
            url,
            key,
            expires,
            script,
        } => admin::sign_url(config, &url, key.as_deref(), expires, &script),
    };
    std::process::exit(code);
}
