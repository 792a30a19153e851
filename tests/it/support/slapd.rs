//! A private OpenLDAP server: Debian's `slapd` with its own cn=config in a temporary directory,
//! on free loopback ports (`ldap://` with StartTLS, and `ldaps://`), with a throwaway CA and a
//! server certificate for 127.0.0.1 made by `openssl`, and a small directory of people and
//! groups. Stopped by PID when dropped. Installed by `scripts/install-deps.sh` (`slapd`,
//! `ldap-utils`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{Child, free_port, require_program};

/// A running `slapd`; stopped when dropped.
pub struct Slapd {
    // Declared first so that it stops before its directory goes.
    child: Option<Child>,
    port: u16,
    ldaps_port: u16,
    dir: TempDir,
}

/// The directory's suffix.
pub const SUFFIX: &str = "dc=example,dc=org";
/// The rootDN, which may write anything (used to change the directory during a test).
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PW: &str = "admin-secret";
/// A service account for search-then-bind.
pub const READER_DN: &str = "cn=reader,dc=example,dc=org";
pub const READER_PW: &str = "reader-secret";

/// The people and groups every test starts with:
/// - alice (`alice-pw`): photographers and imgadmins, and memberUid of the posixGroup staff;
/// - bob (`bob-pw`): photographers;
/// - carol (`carol-pw`): `employeeType: disabled`, in photographers;
/// - dave (`dave-pw`): no group;
/// - `doe, j*(x)` (`doe-pw`): a name with DN and filter metacharacters, in photographers.
///
/// Only bound users and the reader can read entries (anonymous may only bind).
const ENTRIES: &str = "\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: cn=reader,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: reader-secret

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
userPassword: alice-pw

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Builder
userPassword: bob-pw

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Disabled
employeeType: disabled
userPassword: carol-pw

dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: Nogroup
userPassword: dave-pw

dn: uid=doe\\, j*(x),ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: doe, j*(x)
cn: John Doe
sn: Doe
userPassword: doe-pw

dn: cn=photographers,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: photographers
member: uid=alice,ou=people,dc=example,dc=org
member: uid=bob,ou=people,dc=example,dc=org
member: uid=carol,ou=people,dc=example,dc=org
member: uid=doe\\, j*(x),ou=people,dc=example,dc=org

dn: cn=imgadmins,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: imgadmins
member: uid=alice,ou=people,dc=example,dc=org

dn: cn=staff,ou=groups,dc=example,dc=org
objectClass: posixGroup
cn: staff
gidNumber: 100
memberUid: alice
";

impl Slapd {
    /// Makes the certificates and the configuration, starts slapd and loads [`ENTRIES`].
    pub fn start() -> Slapd {
        let slapd = require_program("slapd");
        let slapadd = require_program("slapadd");
        require_program("ldapadd");
        let dir = tempfile::Builder::new()
            .prefix("imgserv-slapd-")
            .tempdir()
            .expect("create a temp dir");
        let d = dir.path();
        make_certificates(d);
        fs::create_dir(d.join("data")).unwrap();
        fs::create_dir(d.join("slapd.d")).unwrap();
        fs::write(d.join("config.ldif"), config_ldif(d)).unwrap();
        run(
            Command::new(slapadd)
                .args(["-n", "0", "-F"])
                .arg(d.join("slapd.d"))
                .arg("-l")
                .arg(d.join("config.ldif")),
            "slapadd",
        );
        let port = free_port();
        let ldaps_port = free_port();
        let mut command = Command::new(slapd);
        // -d: stay in the foreground (so the PID is slapd's) and log connections and binds.
        command
            .args(["-d", "stats", "-F"])
            .arg(d.join("slapd.d"))
            .args([
                "-h",
                &format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{ldaps_port}/"),
            ]);
        let mut child = Child::spawn("slapd", command, d);
        child.wait_for_port(port, Duration::from_secs(10));
        child.wait_for_port(ldaps_port, Duration::from_secs(10));
        let server = Slapd {
            child: Some(child),
            port,
            ldaps_port,
            dir,
        };
        server.ldap_tool("ldapadd", ENTRIES);
        server
    }

    /// `ldap://127.0.0.1:PORT` (plain, or StartTLS).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Another CA, which signed nothing the server holds.
    pub fn wrong_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// The temporary directory (for a test's own files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Applies an LDIF change (`changetype: modify` records) as the rootDN.
    pub fn modify(&self, ldif: &str) {
        self.ldap_tool("ldapmodify", ldif);
    }

    /// Stops the server (by its PID); its ports then refuse connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.stop();
        }
    }

    /// What slapd logged so far.
    pub fn log(&self) -> String {
        self.child.as_ref().map(Child::log).unwrap_or_default()
    }

    fn ldap_tool(&self, tool: &str, ldif: &str) {
        let mut child = Command::new(require_program(tool))
            .args(["-x", "-H", &self.url(), "-D", ADMIN_DN, "-w", ADMIN_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {tool}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}\n{}\nslapd's log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cn=config of a server that holds [`SUFFIX`] in an mdb database under `d/data`, with
/// TLS from `d/server.pem` and the schemas inetOrgPerson and posixGroup need.
fn config_ldif(d: &Path) -> String {
    let d = d.display();
    format!(
        "\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {d}/slapd.pid
olcTLSCACertificateFile: {d}/ca.pem
olcTLSCertificateFile: {d}/server.pem
olcTLSCertificateKeyFile: {d}/server.key

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/nis.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {ADMIN_PW}
olcDbDirectory: {d}/data
olcDbMaxSize: 16777216
olcDbIndex: objectClass eq
olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none
"
    )
}

/// `ca.pem` (a CA) and `server.pem`/`server.key` (signed by it, for IP 127.0.0.1), and
/// `other-ca.pem`, a CA that signed nothing here. rustls refuses a self-signed certificate
/// used directly as the server's, hence the two levels.
fn make_certificates(d: &Path) {
    for ca in ["ca", "other-ca"] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=imgserv test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

fn openssl(d: &Path, args: &[&str]) {
    run(
        Command::new(require_program("openssl"))
            .args(args)
            .current_dir(d),
        "openssl",
    );
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        command,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
