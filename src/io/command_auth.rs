//! The `command` authentication method: an external program decides — the plug-in point for any
//! authentication system imgserv does not speak (PAM through a helper, a web service, a
//! database of another application).
//!
//! The protocol, also in imgserv.toml(5): the program (`[auth] command`, an argument vector, no
//! shell) gets the user name and the password on standard input, each followed by a newline,
//! with an empty environment but `PATH`; it never sees them in its arguments or environment.
//! Exit status 0 accepts, 1 refuses; anything else, a signal, or no answer within `[auth]
//! command_timeout` is a failure of the method (the user is not refused for it). On acceptance
//! each line of standard output names a group the user is in, except a line `role=admin`,
//! `role=editor` or `role=viewer`, which sets the role (viewer when none). Standard error is
//! logged. The program is killed when the time is up; one that forks must take its children
//! with it (`exec` the last step).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::domain::principal::Role;

/// Most bytes read from the program's standard output (and error).
const MAX_OUTPUT: u64 = 64 * 1024;

/// `[auth] command` and `command_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAuth {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub timeout: Duration,
}

/// What an accepting program said about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandIdentity {
    pub groups: Vec<String>,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {program}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("{program} gave no answer within {timeout:?}")]
    Timeout { program: String, timeout: Duration },
    #[error("{program} failed ({status})")]
    Failed { program: String, status: String },
    #[error("{program} answered a line imgserv cannot read: {line:?}")]
    BadOutput { program: String, line: String },
}

impl CommandAuth {
    /// Asks the program about `user` and `password`: `Ok(None)` when it refuses them (or they
    /// cannot be passed: a newline or NUL in either, an empty password).
    pub fn check(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<CommandIdentity>, CommandError> {
        let unfit = |s: &str| s.contains(['\n', '\r', '\0']);
        if user.is_empty() || password.is_empty() || unfit(user) || unfit(password) {
            return Ok(None);
        }
        let program = self.program.display().to_string();
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| CommandError::Spawn {
                program: program.clone(),
                error,
            })?;
        // Write and read on threads of their own: a program that does not read its input, or
        // writes much, must not block us past the timeout.
        let input = format!("{user}\n{password}\n");
        let mut stdin = child.stdin.take();
        let writer = thread::spawn(move || {
            if let Some(stdin) = stdin.as_mut() {
                let _ = stdin.write_all(input.as_bytes());
            }
        });
        let read_all = |r: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut out = Vec::new();
                if let Some(r) = r {
                    let _ = r.take(MAX_OUTPUT).read_to_end(&mut out);
                }
                out
            })
        };
        let stdout = read_all(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let stderr = read_all(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => break None,
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(_) => break None,
            }
        };
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CommandError::Timeout {
                program,
                timeout: self.timeout,
            });
        };
        let _ = writer.join();
        let out = stdout.join().unwrap_or_default();
        let err = stderr.join().unwrap_or_default();
        if !err.is_empty() {
            log::info!(
                "auth command {program}: {}",
                String::from_utf8_lossy(&err).trim_end()
            );
        }
        match status.code() {
            Some(0) => parse_identity(&program, &out).map(Some),
            Some(1) => Ok(None),
            _ => Err(CommandError::Failed {
                program,
                status: status.to_string(),
            }),
        }
    }
}

fn parse_identity(program: &str, out: &[u8]) -> Result<CommandIdentity, CommandError> {
    let bad = |line: &str| CommandError::BadOutput {
        program: program.to_string(),
        line: line.to_string(),
    };
    let text = std::str::from_utf8(out).map_err(|_| bad("(not UTF-8)"))?;
    let mut identity = CommandIdentity {
        groups: Vec::new(),
        role: Role::Viewer,
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.strip_prefix("role=") {
            Some(role) => identity.role = role.parse().map_err(|_| bad(line))?,
            None if line.contains(char::is_whitespace) || line.contains('=') => {
                return Err(bad(line));
            }
            None => identity.groups.push(line.to_string()),
        }
    }
    identity.groups.sort();
    identity.groups.dedup();
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// A shell script as the program (the tests' own; imgserv runs none itself).
    fn program(dir: &tempfile::TempDir, body: &str) -> CommandAuth {
        let path = dir.path().join("check");
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        CommandAuth {
            program: path,
            args: vec![],
            timeout: Duration::from_secs(5),
        }
    }

    /// Accepts ann/secret with two groups and the editor role; refuses everything else.
    const CHECKER: &str = r#"read user; read password
[ "$user" = ann ] && [ "$password" = 'se cret$' ] || exit 1
echo "env: $(env | grep -c -v '^PATH=\|^PWD=\|^SHLVL=\|^_=')" >&2
printf 'photographers\nrole=editor\neditors\n'"#;

    #[test]
    fn accepts_refuses_and_reads_groups_and_role() {
        let dir = tempfile::tempdir().unwrap();
        let auth = program(&dir, CHECKER);
        let ann = auth.check("ann", "se cret$").unwrap().unwrap();
        assert_eq!(ann.groups, ["editors", "photographers"]);
        assert_eq!(ann.role, Role::Editor);
        assert_eq!(auth.check("ann", "wrong").unwrap(), None);
        assert_eq!(auth.check("bob", "se cret$").unwrap(), None);
        // Never passed on: they could smuggle a second line.
        assert_eq!(auth.check("ann\nx", "se cret$").unwrap(), None);
        assert_eq!(auth.check("ann", "").unwrap(), None);
    }

    #[test]
    fn credentials_are_on_stdin_only() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        let auth = program(
            &dir,
            &format!(
                "echo \"$@ $(env)\" > {}; read u; read p; exit 0",
                seen.display()
            ),
        );
        auth.check("ann", "hunter2").unwrap().unwrap();
        let seen = fs::read_to_string(seen).unwrap();
        assert!(!seen.contains("hunter2") && !seen.contains("ann"), "{seen}");
    }

    #[test]
    fn other_exits_hangs_and_bad_output_are_failures_not_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let crashed = program(&dir, "exit 3");
        assert!(matches!(
            crashed.check("ann", "x"),
            Err(CommandError::Failed { .. })
        ));
        let mut hung = program(&dir, "exec sleep 30");
        hung.timeout = Duration::from_millis(200);
        let t = Instant::now();
        assert!(matches!(
            hung.check("ann", "x"),
            Err(CommandError::Timeout { .. })
        ));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let liar = program(&dir, "echo 'role=root'");
        assert!(matches!(
            liar.check("ann", "x"),
            Err(CommandError::BadOutput { .. })
        ));
        let missing = CommandAuth {
            program: dir.path().join("nope"),
            args: vec![],
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            missing.check("ann", "x"),
            Err(CommandError::Spawn { .. })
        ));
    }
}
