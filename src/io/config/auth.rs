//! `[auth]`: how people log in — the ordered methods, and the `command` method's program.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::value::{DurationValue, Problems};
use crate::domain::principal::Method;
use crate::io::command_auth::CommandAuth;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Tried in this order at a login; the first that accepts decides. `remote_user` is not
    /// tried at a login: when listed, a request with `REMOTE_USER` is that user's.
    pub methods: Vec<Method>,
    /// The program of the `command` method, when configured.
    pub command: Option<CommandAuth>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            methods: vec![Method::Local],
            command: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    methods: Option<Vec<String>>,
    command: Option<Vec<String>>,
    command_timeout: Option<DurationValue>,
}

pub(super) fn validate_auth(raw: RawAuth, p: &mut Problems) -> AuthConfig {
    let mut methods = Vec::new();
    for name in raw.methods.unwrap_or_else(|| vec!["local".into()]) {
        match name.parse::<Method>() {
            Ok(Method::Key) | Err(_) => p.add(
                "auth.methods",
                format!("expected some of \"local\", \"ldap\", \"remote_user\", \"command\", got {name:?}"),
            ),
            Ok(m) if methods.contains(&m) => {
                p.add("auth.methods", format!("{name:?} is listed twice"));
            }
            Ok(m) => methods.push(m),
        }
    }
    let timeout = p.duration(
        "auth.command_timeout",
        raw.command_timeout.as_ref(),
        Duration::from_secs(5),
    );
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        p.add(
            "auth.command_timeout",
            "expected more than 0 and at most 60s",
        );
    }
    let command = match raw.command {
        None => None,
        Some(argv) => match argv.split_first() {
            Some((program, args)) if PathBuf::from(program).is_absolute() => Some(CommandAuth {
                program: PathBuf::from(program),
                args: args.to_vec(),
                timeout,
            }),
            Some((program, _)) => {
                p.add(
                    "auth.command",
                    format!("expected an absolute path to the program first, got {program:?}"),
                );
                None
            }
            None => {
                p.add(
                    "auth.command",
                    "expected the program and its arguments, got []",
                );
                None
            }
        },
    };
    let command_refused =
        p.0.iter()
            .any(|e| e.to_string().starts_with("auth.command:"));
    if methods.contains(&Method::Command) && command.is_none() && !command_refused {
        p.add(
            "auth.command",
            "required when auth.methods lists \"command\"",
        );
    }
    AuthConfig { methods, command }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::config::from_str;
    use crate::io::config::tests::{dirs, minimal};

    #[test]
    fn methods_in_order_and_the_command() {
        let d = dirs();
        let c = from_str(
            &format!(
                "{}\n[auth]\nmethods = [\"remote_user\", \"ldap\", \"command\", \"local\"]\n\
             command = [\"/usr/local/bin/check\", \"--realm\", \"x\"]\ncommand_timeout = \"2s\"\n",
                minimal()
            ),
            d.path(),
        )
        .unwrap();
        assert_eq!(
            c.auth.methods,
            [
                Method::RemoteUser,
                Method::Ldap,
                Method::Command,
                Method::Local
            ]
        );
        let cmd = c.auth.command.unwrap();
        assert_eq!(cmd.program, PathBuf::from("/usr/local/bin/check"));
        assert_eq!(cmd.args, ["--realm", "x"]);
        assert_eq!(cmd.timeout, Duration::from_secs(2));
        assert_eq!(
            from_str(minimal(), d.path()).unwrap().auth,
            AuthConfig::default()
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            ("methods = [\"pam\"]", "auth.methods"),
            ("methods = [\"key\"]", "auth.methods"),
            ("methods = [\"local\", \"local\"]", "auth.methods"),
            ("methods = [\"command\"]", "auth.command"),
            ("command = [\"check\"]", "auth.command"),
            ("command = []", "auth.command"),
            ("command_timeout = \"0s\"", "auth.command_timeout"),
            ("command_timeout = \"5m\"", "auth.command_timeout"),
        ] {
            let err = from_str(&format!("{}\n[auth]\n{toml}\n", minimal()), dirs().path())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{key}:")), "{toml}: {err}");
        }
    }
}
