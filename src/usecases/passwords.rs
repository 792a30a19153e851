//! Local passwords: argon2id hashes as PHC strings, and the `local` login that checks a user of
//! the catalog against one, in the same time whether the user exists or not.
//!
//! It does not read passwords (the tools and routes do), rate-limit failed logins or make
//! sessions (the authenticator chain above it does): it answers "is this the password of this
//! enabled user", and who they are if so.
//!
//! ## The cost
//! [`PARAMS`]: argon2id, m = 12 MiB, t = 3, p = 1 — one of OWASP's equivalent minimum
//! configurations (19 MiB × 2, 12 MiB × 3, 9 MiB × 4, …). Of those, the smaller memory suits
//! CGI, where every login is a fresh process that must fault in the whole matrix and several
//! logins may run at once; the time is about that of the 19 MiB default (~30 ms a verification
//! on an idle core here, 130 ms on this 2-core machine at a load of 12, the same for both:
//! `cargo test --lib passwords -- --ignored --nocapture`, see `cost_of_a_login`). A login is one
//! verification; a hash stored with other parameters still verifies with its own.

use std::cell::Cell;
use std::io::Read;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::io::catalog::{Catalog, CatalogError, Role};

/// Memory in KiB, passes, lanes: see the module's documentation.
pub const PARAMS: (u32, u32, u32) = (12 * 1024, 3, 1);

/// Longer new passwords are refused, and longer attempts fail (after the same work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The hash an unknown (or password-less) user's attempt is checked against, so that it costs
/// what a known user's does: the password "imgserv-dummy" with [`PARAMS`] and a fixed salt.
/// A constant, not computed at first use: computing it would double the first such login's
/// time in every process. A test checks its parameters are [`PARAMS`].
const DUMMY_HASH: &str = "$argon2id$v=19$m=12288,t=3,p=1$aW1nc2Vydi1kdW1teS1zYWx0$\
                          jF0F1SVqPeyNM3wLJ11ZGTcJdbQaramOEgPxQaL6YC8";

/// Why a new password was not hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The new password is empty (after one trailing newline is removed).
    #[error("the password is empty")]
    Empty,
    /// The new password is longer than [`MAX_PASSWORD_BYTES`].
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// The new password's bytes are not UTF-8.
    #[error("the password is not UTF-8 text")]
    NotUtf8,
    /// Reading the new password from its input failed.
    #[error("reading the password: {0}")]
    Read(std::io::Error),
    /// Hashing failed (no random salt from the kernel, say).
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// A new password as read from `input` (a pipe, a file): everything up to the end, without
/// one trailing newline (`\n` or `\r\n`), at most [`MAX_PASSWORD_BYTES`], UTF-8, not empty.
pub fn read_new(input: &mut impl Read) -> Result<String, PasswordError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_PASSWORD_BYTES as u64 + 3)
        .read_to_end(&mut bytes)
        .map_err(PasswordError::Read)?;
    let bytes = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(&bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| PasswordError::NotUtf8)?;
    if text.is_empty() {
        return Err(PasswordError::Empty);
    }
    if text.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(text.to_string())
}

/// A user who logged in with their local password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUser {
    pub name: String,
    pub role: Role,
    /// Group names, sorted.
    pub groups: Vec<String>,
}

fn argon2() -> Argon2<'static> {
    let (m, t, p) = PARAMS;
    let params = Params::new(m, t, p, None).expect("PARAMS are valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` with a fresh random salt, after checking it is not empty and
/// not over [`MAX_PASSWORD_BYTES`].
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

thread_local! {
    /// Argon2 verifications run by this thread: (against a user's hash, against the dummy).
    static VERIFIES: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Whether `password` matches the PHC string `stored`. An unreadable `stored` matches nothing,
/// after the work of the dummy.
fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        dummy_verify(password);
        return false;
    };
    VERIFIES.with(|v| v.set((v.get().0 + 1, v.get().1)));
    password.len() <= MAX_PASSWORD_BYTES
        && argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
}

/// The work of a verification, for an attempt that fails anyway.
fn dummy_verify(password: &str) {
    VERIFIES.with(|v| v.set((v.get().0, v.get().1 + 1)));
    let parsed = PasswordHash::new(DUMMY_HASH).expect("DUMMY_HASH is a PHC string");
    // Over-long attempts are cut to the limit, so they cost what a real verification does.
    let cut = &password.as_bytes()[..password.len().min(MAX_PASSWORD_BYTES)];
    let _ = argon2().verify_password(cut, &parsed);
}

/// The `local` login: `Some` when `user` exists in the catalog, is enabled, has a local
/// password and `password` is it; `None` otherwise, for every reason alike and after one
/// argon2 verification whatever the reason, so that the time does not tell an unknown user
/// from a wrong password. Catalog failures are errors, not `None`: a busy catalog is not a
/// wrong password.
pub fn local_login(
    catalog: &Catalog,
    user: &str,
    password: &str,
) -> Result<Option<LocalUser>, CatalogError> {
    let Some(creds) = catalog.credentials(user)? else {
        dummy_verify(password);
        return Ok(None);
    };
    let Some(stored) = creds.password_hash.as_deref() else {
        dummy_verify(password);
        return Ok(None);
    };
    // A disabled user's password is checked too: the same work, the same answer.
    if !verify(password, stored) || creds.disabled {
        return Ok(None);
    }
    Ok(Some(LocalUser {
        name: creds.name,
        role: creds.role,
        groups: creds.groups,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// (real, dummy) verifications this thread ran during `f` (other modules' tests too: that
    /// a refused login runs none).
    pub(crate) fn verifies_in(f: impl FnOnce()) -> (u64, u64) {
        let before = VERIFIES.with(Cell::get);
        f();
        let after = VERIFIES.with(Cell::get);
        (after.0 - before.0, after.1 - before.1)
    }

    #[test]
    fn hashes_are_argon2id_with_the_chosen_cost_and_a_fresh_salt() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert_ne!(a, b, "salted");
        let (m, t, p) = PARAMS;
        assert!(
            a.starts_with(&format!("$argon2id$v=19$m={m},t={t},p={p}$")),
            "{a}"
        );
        assert!(verify("correct horse", &a));
        assert!(!verify("correct horsf", &a));
        assert!(!verify("", &a));
        assert!(matches!(hash(""), Err(PasswordError::Empty)));
        assert!(matches!(
            hash(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong)
        ));
        assert!(hash(&"x".repeat(MAX_PASSWORD_BYTES)).is_ok());
    }

    #[test]
    fn new_passwords_are_read_to_the_end_without_one_newline() {
        let read = |s: &[u8]| read_new(&mut &s[..]);
        assert_eq!(read(b"pass word\n").unwrap(), "pass word");
        assert_eq!(read(b"pass\r\n").unwrap(), "pass");
        assert_eq!(read(b"pass").unwrap(), "pass");
        assert_eq!(
            read(b" pass\n\n").unwrap(),
            " pass\n",
            "only one newline goes"
        );
        assert!(matches!(read(b""), Err(PasswordError::Empty)));
        assert!(matches!(read(b"\n"), Err(PasswordError::Empty)));
        assert!(matches!(read(b"\xff\xfe"), Err(PasswordError::NotUtf8)));
        let long = "z".repeat(MAX_PASSWORD_BYTES);
        assert_eq!(read(format!("{long}\n").as_bytes()).unwrap(), long);
        assert!(matches!(
            read(format!("{long}zz\n").as_bytes()),
            Err(PasswordError::TooLong)
        ));
    }

    #[test]
    fn the_dummy_hash_has_the_chosen_cost() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let real = PasswordHash::new(&hash("x").unwrap()).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(
            Params::try_from(&dummy).unwrap(),
            Params::try_from(&real).unwrap()
        );
        assert_eq!(
            dummy.hash.unwrap().len(),
            real.hash.unwrap().len(),
            "same output length"
        );
        assert!(verify("imgserv-dummy", DUMMY_HASH));
    }

    #[test]
    fn local_login_answers_none_alike_after_one_verification() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&t.path().join("catalog.sqlite")).unwrap();
        let pw = hash("s3cret pass").unwrap();
        c.add_user_with("alice", Role::Viewer, Some(&pw)).unwrap();
        c.add_user_with("dora", Role::Editor, Some(&pw)).unwrap();
        c.set_disabled("dora", true).unwrap();
        c.add_user("keysonly").unwrap();
        c.add_user_with("broken", Role::Editor, Some("not a PHC string"))
            .unwrap();
        c.add_group("staff").unwrap();
        c.add_group("band").unwrap();
        c.add_member("staff", "alice").unwrap();
        c.add_member("band", "alice").unwrap();

        let mut ok = None;
        assert_eq!(
            verifies_in(|| ok = local_login(&c, "alice", "s3cret pass").unwrap()),
            (1, 0)
        );
        assert_eq!(
            ok,
            Some(LocalUser {
                name: "alice".into(),
                role: Role::Viewer,
                groups: vec!["band".into(), "staff".into()],
            })
        );
        // Every failure is None, after exactly one argon2 verification with the same cost:
        // against the user's hash when there is one, else against the dummy.
        let long = "y".repeat(MAX_PASSWORD_BYTES + 100);
        for (user, password, want) in [
            ("alice", "wrong", (1, 0)),
            ("alice", "", (1, 0)),
            ("alice", long.as_str(), (1, 0)),
            ("dora", "s3cret pass", (1, 0)),
            ("nobody", "s3cret pass", (0, 1)),
            ("nobody", long.as_str(), (0, 1)),
            ("keysonly", "anything", (0, 1)),
            ("broken", "anything", (0, 1)),
            ("", "", (0, 1)),
        ] {
            let mut got = Some(None);
            let counts = verifies_in(|| got = Some(local_login(&c, user, password).unwrap()));
            assert_eq!(got, Some(None), "{user:?} {password:?}");
            assert_eq!(counts, want, "{user:?} {password:?}");
        }
        // A disabled user enabled again logs in; a changed password replaces the old one.
        c.set_disabled("dora", false).unwrap();
        assert!(local_login(&c, "dora", "s3cret pass").unwrap().is_some());
        c.set_password("dora", Some(&hash("new one").unwrap()))
            .unwrap();
        assert!(local_login(&c, "dora", "s3cret pass").unwrap().is_none());
        assert!(local_login(&c, "dora", "new one").unwrap().is_some());
    }

    /// The cost of the chosen parameters and of OWASP's alternatives (not a pass/fail test):
    /// `cargo test --release --lib passwords -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn cost_of_a_login() {
        for (m, t) in [(19 * 1024, 2), (12 * 1024, 3), (9 * 1024, 4), (7 * 1024, 5)] {
            let a = Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(m, t, 1, None).unwrap(),
            );
            let h = a.hash_password(b"password").unwrap().to_string();
            let start = std::time::Instant::now();
            for _ in 0..10 {
                let _ = a.verify_password(b"password", &PasswordHash::new(&h).unwrap());
            }
            println!("m={m} KiB t={t}: {:?} per verify", start.elapsed() / 10);
        }
    }
}
