//! Running the built `imgserv-admin` against a test site.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::Site;

/// `imgserv-admin --config SITE ARGS` with `stdin` written from another thread (a child that
/// exits without reading it, such as one refusing its configuration, must not block the test;
/// a closed pipe is not a failure), outside any CGI environment.
pub fn imgserv_admin(site: &Site, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgserv-admin"))
        .arg("--config")
        .arg(site.config_path())
        .args(args)
        .env_remove("GATEWAY_INTERFACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}
