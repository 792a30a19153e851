//! The `ldap` authentication method: checks a user name and password against a directory and
//! reads the user's groups, afresh at every call. It owns the conversation with the directory
//! (connect, StartTLS or ldaps, the binds, the searches, all within one timeout); it does not
//! know about sessions, principals or the chain of methods, which sit above it.
//!
//! Two styles, as configured: `user_dn` (the DN is a template filled with the escaped name,
//! then bound) or search-then-bind (bind as `bind_dn`, find exactly one entry under `base_dn`
//! with `user_filter`, bind as it). `user_filter` is also how disabled accounts are kept out
//! (`(&(uid={user})(!(employeeType=disabled)))`). Groups are the `cn` of the entries under
//! `group_base` that match `group_filter`.
//!
//! A refusal (unknown user, wrong password, excluded account, empty password) is `Ok(None)` —
//! the caller cannot tell which, the log at info level can. A directory that is down, slow,
//! misconfigured or whose TLS fails is an [`LdapError`].

pub mod escape;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry};

use crate::io::store::Secret;

/// The validated `[ldap]` section.
#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// StartTLS on an `ldap://` URL.
    pub starttls: bool,
    /// PEM certificates trusted for the directory's certificate instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// The whole conversation (connect, TLS, binds, searches) ends within this.
    pub timeout: Duration,
    pub lookup: UserLookup,
    /// Where the groups are and which match the user; `None` when groups are not read.
    pub groups: Option<GroupLookup>,
    /// The group (its `cn`) whose members get the admin role.
    pub admin_group: Option<String>,
}

/// How the user's entry is found.
#[derive(Debug, Clone)]
pub enum UserLookup {
    /// The DN is `user_dn` with `{user}` replaced by the escaped name.
    Template { user_dn: String },
    /// Bind as `bind` (or anonymously), then search `base_dn` for `user_filter`.
    Search {
        bind: Option<(String, Secret)>,
        base_dn: String,
        user_filter: String,
    },
}

/// `group_base` and `group_filter` (`{dn}` and `{user}` placeholders).
#[derive(Debug, Clone)]
pub struct GroupLookup {
    pub base: String,
    pub filter: String,
}

/// Who the directory says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapIdentity {
    /// The entry's DN, as the directory spells it.
    pub dn: String,
    /// The name the user logged in with. The directory compares names without case
    /// (`ALICE` finds `alice`'s entry), so a caller keying anything on it should fold case.
    pub user: String,
    /// The `cn` of every group that lists the user, sorted.
    pub groups: Vec<String>,
    /// Whether `admin_group` is among `groups` (compared without case, as LDAP does).
    pub admin: bool,
}

/// Why a login was refused: logged, and shown by `imgserv-admin ldap-test`, never to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An empty password, which LDAP would take as an anonymous bind and accept.
    EmptyPassword,
    /// An empty user name, one longer than [`MAX_USER_LEN`], with a control character, or with
    /// a leading or trailing space (which LDAP's matching would ignore, letting `" alice"` in
    /// as `alice` under another name).
    BadUserName,
    /// Search-then-bind: no entry under `base_dn` matches `user_filter` (an unknown user, or
    /// one the filter excludes, such as a disabled account).
    NoEntry,
    /// Search-then-bind: more than one entry matches; the filter is too loose.
    Ambiguous(usize),
    /// The directory refused the bind as this DN: a wrong password (or, with `user_dn`, no
    /// such entry; the directory does not say which).
    Refused { dn: String, reason: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::EmptyPassword => f.write_str("empty password (never sent: it would be an anonymous bind)"),
            Refusal::BadUserName => write!(f, "not a user name: empty, longer than {MAX_USER_LEN} bytes, with a control character or a leading or trailing space"),
            Refusal::NoEntry => f.write_str("no entry under base_dn matches user_filter (unknown user, or excluded by the filter, e.g. disabled)"),
            Refusal::Ambiguous(n) => write!(f, "{n} entries match user_filter; expected one (make the filter stricter)"),
            Refusal::Refused { dn, reason } => write!(f, "the directory refused the password for {dn}: {reason}"),
        }
    }
}

/// Longer names are refused without asking the directory.
pub const MAX_USER_LEN: usize = 256;

/// The directory could not answer; no statement about the user.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// Connection refused or dropped, or no answer within `timeout`.
    #[error("LDAP directory {url} unavailable: {msg}")]
    Unavailable { url: String, msg: String },
    /// The TLS handshake failed (the certificate is not signed by `ca_file`'s CA, or does not
    /// name the host), or StartTLS was refused.
    #[error("LDAP directory {url}: TLS failed: {msg}")]
    Tls { url: String, msg: String },
    /// `ca_file` cannot be read or holds no certificate.
    #[error("ldap.ca_file: {0}")]
    CaFile(String),
    /// The directory refused `bind_dn`'s password.
    #[error("LDAP directory {url}: bind_dn {dn} was refused: {msg}")]
    ServiceBind {
        url: String,
        dn: String,
        msg: String,
    },
    /// A search failed (`base_dn` or `group_base` does not exist, a filter the server rejects,
    /// no right to read).
    #[error("LDAP directory {url}: {what} failed: {msg}")]
    Directory {
        url: String,
        what: &'static str,
        msg: String,
    },
}

/// Checks `user`'s `password` against the directory. `Ok(None)` for every refusal (logged at
/// info level with the reason); `Err` when the directory cannot answer (logged by the caller).
pub fn authenticate(
    config: &LdapConfig,
    user: &str,
    password: &str,
) -> Result<Option<LdapIdentity>, LdapError> {
    match check(config, user, password)? {
        Ok(identity) => Ok(Some(identity)),
        Err(refusal) => {
            log::info!("ldap: login refused for {user:?}: {refusal}");
            Ok(None)
        }
    }
}

/// [`authenticate`] that says why a login was refused (for `imgserv-admin ldap-test`).
pub fn check(
    config: &LdapConfig,
    user: &str,
    password: &str,
) -> Result<Result<LdapIdentity, Refusal>, LdapError> {
    if password.is_empty() {
        return Ok(Err(Refusal::EmptyPassword));
    }
    if user.is_empty()
        || user.len() > MAX_USER_LEN
        || user.trim() != user
        || user.chars().any(char::is_control)
    {
        return Ok(Err(Refusal::BadUserName));
    }
    let mut session = Session::open(config)?;
    let result = session.login(user, password);
    session.close();
    result
}

/// Result codes that mean "not this user with this password", not "the directory is broken":
/// inappropriateAuthentication (48), invalidCredentials (49), insufficientAccessRights (50),
/// unwillingToPerform (53, e.g. a locked account), invalidDNSyntax (34, a name that makes no DN).
const REFUSED: [u32; 5] = [48, 49, 50, 53, 34];

/// One connection, with the deadline every operation shares.
struct Session<'c> {
    config: &'c LdapConfig,
    conn: LdapConn,
    deadline: Instant,
}

impl<'c> Session<'c> {
    fn open(config: &'c LdapConfig) -> Result<Session<'c>, LdapError> {
        let deadline = Instant::now() + config.timeout;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(config.timeout)
            .set_starttls(config.starttls);
        if let Some(ca_file) = &config.ca_file {
            settings = settings.set_config(tls_config(ca_file)?);
        }
        let conn = LdapConn::with_settings(settings, &config.url)
            .map_err(|e| classify(&config.url, e, config.timeout))?;
        Ok(Session {
            config,
            conn,
            deadline,
        })
    }

    /// The time left, never zero (a zero timeout would fail even an answer already read).
    fn left(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }

    fn fail(&self, e: ldap3::LdapError) -> LdapError {
        classify(&self.config.url, e, self.config.timeout)
    }

    /// A simple bind: `Ok(Ok(()))` when accepted, `Ok(Err(reason))` when refused.
    fn bind(&mut self, dn: &str, password: &str) -> Result<Result<(), String>, LdapError> {
        let left = self.left();
        let result = self
            .conn
            .with_timeout(left)
            .simple_bind(dn, password)
            .map_err(|e| self.fail(e))?;
        if result.rc == 0 {
            Ok(Ok(()))
        } else if REFUSED.contains(&result.rc) {
            Ok(Err(describe(result.rc, &result.text)))
        } else {
            Err(LdapError::Directory {
                url: self.config.url.clone(),
                what: "bind",
                msg: describe(result.rc, &result.text),
            })
        }
    }

    fn search(
        &mut self,
        what: &'static str,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, LdapError> {
        let left = self.left();
        let result = self
            .conn
            .with_timeout(left)
            .search(base, Scope::Subtree, filter, attrs.to_vec())
            .map_err(|e| self.fail(e))?;
        let (entries, res) = (result.0, result.1);
        if res.rc != 0 {
            return Err(LdapError::Directory {
                url: self.config.url.clone(),
                what,
                msg: describe(res.rc, &res.text),
            });
        }
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    fn login(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<Result<LdapIdentity, Refusal>, LdapError> {
        let config = self.config;
        let dn = match &config.lookup {
            UserLookup::Template { user_dn } => escape::fill(user_dn, user, "", escape::dn_value),
            UserLookup::Search {
                bind,
                base_dn,
                user_filter,
            } => {
                self.service_bind(bind)?;
                let filter = escape::fill(user_filter, user, "", escape::filter_value);
                // "1.1": no attributes, only the DN.
                let found = self.search(
                    "the user search (base_dn, user_filter)",
                    base_dn,
                    &filter,
                    &["1.1"],
                )?;
                match <[_; 1]>::try_from(found) {
                    Ok([entry]) => entry.dn,
                    Err(found) if found.is_empty() => return Ok(Err(Refusal::NoEntry)),
                    Err(found) => {
                        log::warn!(
                            "ldap: {} entries match user_filter for {user:?}",
                            found.len()
                        );
                        return Ok(Err(Refusal::Ambiguous(found.len())));
                    }
                }
            }
        };
        if let Err(reason) = self.bind(&dn, password)? {
            return Ok(Err(Refusal::Refused { dn, reason }));
        }
        let groups = match &config.groups {
            None => Vec::new(),
            Some(lookup) => {
                // Groups may be readable only by the service account: read them as it.
                if let UserLookup::Search { bind, .. } = &config.lookup {
                    self.service_bind(bind)?;
                }
                let filter = escape::fill(&lookup.filter, user, &dn, escape::filter_value);
                let entries = self.search(
                    "the group search (group_base, group_filter)",
                    &lookup.base,
                    &filter,
                    &["cn"],
                )?;
                let mut groups: Vec<String> = entries
                    .into_iter()
                    .filter_map(|mut e| e.attrs.remove("cn")?.into_iter().next())
                    .collect();
                groups.sort();
                groups.dedup();
                groups
            }
        };
        let admin = config
            .admin_group
            .as_ref()
            .is_some_and(|a| groups.iter().any(|g| g.eq_ignore_ascii_case(a)));
        Ok(Ok(LdapIdentity {
            dn,
            user: user.to_string(),
            groups,
            admin,
        }))
    }

    /// Binds as `bind_dn`, or does nothing for an anonymous search; a refusal is a
    /// configuration error, not the user's.
    fn service_bind(&mut self, bind: &Option<(String, Secret)>) -> Result<(), LdapError> {
        let Some((dn, password)) = bind else {
            return Ok(());
        };
        if password.expose().is_empty() {
            // An anonymous bind in disguise; the configuration refuses it too.
            return Err(LdapError::ServiceBind {
                url: self.config.url.clone(),
                dn: dn.clone(),
                msg: "empty bind_password (never sent: it would be an anonymous bind)".into(),
            });
        }
        match self.bind(dn, password.expose())? {
            Ok(()) => Ok(()),
            Err(msg) => Err(LdapError::ServiceBind {
                url: self.config.url.clone(),
                dn: dn.clone(),
                msg,
            }),
        }
    }

    /// Unbinds politely; the connection goes either way.
    fn close(mut self) {
        let left = self.left();
        let _ = self.conn.with_timeout(left).unbind();
    }
}

/// `rc` and the server's text, for logs: "invalid credentials (49)".
fn describe(rc: u32, text: &str) -> String {
    let name = match rc {
        32 => "no such object",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        53 => "unwilling to perform",
        87 => "filter error",
        _ => "error",
    };
    if text.is_empty() {
        format!("{name} ({rc})")
    } else {
        format!("{name} ({rc}): {text}")
    }
}

/// A client configuration trusting only the certificates in `ca_file`.
fn tls_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, LdapError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let pem = std::fs::read(ca_file)
        .map_err(|e| LdapError::CaFile(format!("{}: {e}", ca_file.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| LdapError::CaFile(format!("{}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| LdapError::CaFile(format!("{}: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(LdapError::CaFile(format!(
            "{}: no PEM certificate in it",
            ca_file.display()
        )));
    }
    // The provider named explicitly: another crate turning on a second rustls provider must
    // not make `ClientConfig::builder()` panic.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LdapError::CaFile(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An `ldap3` error as ours: TLS failures apart from the rest, which means "unavailable".
fn classify(url: &str, e: ldap3::LdapError, timeout: Duration) -> LdapError {
    let url = url.to_string();
    match e {
        ldap3::LdapError::Timeout { .. } => LdapError::Unavailable {
            url,
            msg: format!("no answer within {} ms (ldap.timeout)", timeout.as_millis()),
        },
        ldap3::LdapError::Io { source } => {
            let tls = source
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
            if tls {
                LdapError::Tls {
                    url,
                    msg: source.to_string(),
                }
            } else {
                LdapError::Unavailable {
                    url,
                    msg: source.to_string(),
                }
            }
        }
        e @ (ldap3::LdapError::Rustls { .. } | ldap3::LdapError::DNSName { .. }) => {
            LdapError::Tls {
                url,
                msg: e.to_string(),
            }
        }
        ldap3::LdapError::LdapResult { result } => LdapError::Tls {
            // Only the StartTLS request is checked with `success()` inside ldap3.
            url,
            msg: format!("StartTLS refused: {}", describe(result.rc, &result.text)),
        },
        e => LdapError::Unavailable {
            url,
            msg: e.to_string(),
        },
    }
}
