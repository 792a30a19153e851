//! `Cgi`: one run of a CGI program (RFC 3875), as a web server would do it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;

use super::Site;

/// One CGI request. Starts from a clean environment holding only the RFC 3875 meta-variables of
/// a `GET /cgi-bin/imgserv.cgi` on 127.0.0.1:80 plus `IMGSERV_CONFIG` pointing at the site.
///
/// ```ignore
/// let r = Cgi::new(&site).query("src=a.jpg&width=80&height=60").run();
/// assert_eq!(r.status, 302, "{r:?}");
/// ```
#[derive(Debug, Clone)]
pub struct Cgi {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, std::ffi::OsString)>,
    body: Vec<u8>,
}

impl Cgi {
    /// A request to the built `imgserv-cgi` for `site`.
    pub fn new(site: &Site) -> Cgi {
        Cgi::program(&super::imgserv_cgi())
            .env("IMGSERV_CONFIG", site.config_path().to_str().unwrap())
    }

    /// `req` (method, path, query, headers, body) as a request to the built `imgserv-cgi`.
    pub fn request(site: &Site, req: &imgserv::io::http::Request) -> Cgi {
        let mut cgi = Cgi::new(site)
            .method(&req.method)
            .path_info(&req.path)
            .query(&req.query);
        for (name, value) in &req.headers {
            if name != "content-type" {
                cgi = cgi.header(name, value);
            }
        }
        let body = req.body.to_vec(u64::MAX).unwrap().unwrap_or_default();
        cgi.body(req.header("content-type").unwrap_or(""), &body)
    }

    /// A request header, as the meta-variable `HTTP_NAME` (RFC 3875 4.1.18).
    pub fn header(self, name: &str, value: &str) -> Cgi {
        let var = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        self.env(&var, value)
    }

    /// A request to another CGI program (no `IMGSERV_CONFIG`).
    pub fn program(program: &Path) -> Cgi {
        let env = [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_SOFTWARE", "imgserv-test"),
            ("SERVER_NAME", "127.0.0.1"),
            ("SERVER_PORT", "80"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", "/cgi-bin/imgserv.cgi"),
            ("QUERY_STRING", ""),
            ("REQUEST_URI", "/cgi-bin/imgserv.cgi"),
            // The PATH a web server typically gives its CGIs; children (if any) need one.
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ];
        Cgi {
            program: program.into(),
            args: Vec::new(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.into())).collect(),
            body: Vec::new(),
        }
    }

    /// Sets (or replaces) a meta-variable.
    pub fn env(mut self, name: &str, value: &str) -> Cgi {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.into()));
        self
    }

    /// Sets a meta-variable to raw bytes (web servers pass what clients send, UTF-8 or not).
    pub fn env_bytes(mut self, name: &str, value: &[u8]) -> Cgi {
        use std::os::unix::ffi::OsStringExt;
        self.env.retain(|(k, _)| k != name);
        self.env
            .push((name.into(), std::ffi::OsString::from_vec(value.to_vec())));
        self
    }

    /// Removes a meta-variable.
    pub fn env_remove(mut self, name: &str) -> Cgi {
        self.env.retain(|(k, _)| k != name);
        self
    }

    pub fn arg(mut self, arg: &str) -> Cgi {
        self.args.push(arg.into());
        self
    }

    pub fn method(self, method: &str) -> Cgi {
        self.env("REQUEST_METHOD", method)
    }

    /// Sets QUERY_STRING (as sent: percent-encoded) and REQUEST_URI.
    pub fn query(self, query: &str) -> Cgi {
        let uri = self.request_uri(query, self.var("PATH_INFO").unwrap_or(""));
        self.env("QUERY_STRING", query).env("REQUEST_URI", &uri)
    }

    /// Sets PATH_INFO (decoded, as servers pass it) and REQUEST_URI.
    pub fn path_info(self, path_info: &str) -> Cgi {
        let uri = self.request_uri(self.var("QUERY_STRING").unwrap_or(""), path_info);
        self.env("PATH_INFO", path_info).env("REQUEST_URI", &uri)
    }

    /// A request body, sent on stdin, with CONTENT_TYPE and CONTENT_LENGTH.
    pub fn body(self, content_type: &str, body: &[u8]) -> Cgi {
        let mut cgi = self
            .env("CONTENT_TYPE", content_type)
            .env("CONTENT_LENGTH", &body.len().to_string());
        cgi.body = body.to_vec();
        cgi
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str())
    }

    fn request_uri(&self, query: &str, path_info: &str) -> String {
        let script = self.var("SCRIPT_NAME").unwrap_or("");
        match query {
            "" => format!("{script}{path_info}"),
            q => format!("{script}{path_info}?{q}"),
        }
    }

    /// Starts the program with the body on its stdin and its stdout and stderr read, each on
    /// a thread of its own: a program that answers before reading all of its stdin would
    /// otherwise deadlock against us filling the pipe.
    fn spawn(self) -> Running {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start CGI {}: {e}", self.program.display()));
        let mut stdin = child.stdin.take().unwrap();
        let body = self.body;
        let writer = thread::spawn(move || {
            let _ = stdin.write_all(&body); // EPIPE is fine: the program may not read it all
        });
        let read_all = |mut from: Box<dyn Read + Send>| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = from.read_to_end(&mut buf);
                buf
            })
        };
        let stdout = read_all(Box::new(child.stdout.take().unwrap()));
        let stderr = read_all(Box::new(child.stderr.take().unwrap()));
        Running {
            program: self.program,
            child,
            writer,
            stdout,
            stderr,
        }
    }

    /// Runs the program and sends it SIGKILL after `delay` unless it has exited by then, as a
    /// crash of the machine or an OOM kill would. The answer is what the program had written
    /// when it exited or died: a client reading it would have seen that much.
    pub fn run_killed_after(self, delay: std::time::Duration) -> Killed {
        let mut running = self.spawn();
        let child = &mut running.child;
        let deadline = std::time::Instant::now() + delay;
        let mut exited = child.try_wait().unwrap();
        while exited.is_none() && std::time::Instant::now() < deadline {
            thread::sleep(std::time::Duration::from_millis(1));
            exited = child.try_wait().unwrap();
        }
        let killed = exited.is_none();
        if killed {
            // std's kill is SIGKILL.
            let _ = child.kill();
        }
        let (exit, stdout, stderr) = running.finish();
        let response = parse(&stdout)
            .ok()
            .map(|(status, reason, headers, body)| CgiResponse {
                status,
                reason,
                headers,
                body,
                exit,
                stderr: StderrEcho(stderr.clone()),
            });
        Killed {
            killed,
            response,
            stderr,
        }
    }

    /// Runs the program and parses its answer. Panics (with its stderr) if the output is not
    /// a CGI response, which is what a web server reports as "premature end of script headers".
    pub fn run(self) -> CgiResponse {
        let running = self.spawn();
        let program = running.program.clone();
        let (exit, stdout, stderr) = running.finish();
        match parse(&stdout) {
            Ok((status, reason, headers, body)) => CgiResponse {
                status,
                reason,
                headers,
                body,
                exit,
                stderr: StderrEcho(stderr),
            },
            Err(problem) => panic!(
                "CGI {} wrote no valid response ({problem}); exit {exit}\n\
                 stdout: {:?}\nstderr:\n{stderr}",
                program.display(),
                String::from_utf8_lossy(&stdout[..stdout.len().min(2000)])
            ),
        }
    }
}

/// A started CGI program and the threads feeding and reading it.
struct Running {
    program: PathBuf,
    child: std::process::Child,
    writer: thread::JoinHandle<()>,
    stdout: thread::JoinHandle<Vec<u8>>,
    stderr: thread::JoinHandle<Vec<u8>>,
}

impl Running {
    /// Waits for the program to end: its exit status, everything it wrote to stdout, its
    /// stderr as text.
    fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        let exit = self.child.wait().unwrap();
        self.writer.join().unwrap();
        let stdout = self.stdout.join().unwrap();
        let stderr = String::from_utf8_lossy(&self.stderr.join().unwrap()).into_owned();
        (exit, stdout, stderr)
    }
}

/// What the CGI answered. `stderr` is re-printed (prefixed `[cgi]`) if the test panics while
/// the response is alive.
#[derive(Debug)]
pub struct CgiResponse {
    pub status: u16,
    pub reason: String,
    /// The header lines in order, except `Status`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub exit: ExitStatus,
    pub stderr: StderrEcho,
}

impl CgiResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What [`Cgi::run_killed_after`] saw.
#[derive(Debug)]
pub struct Killed {
    /// Whether SIGKILL ended the program (false: it had exited by itself).
    pub killed: bool,
    /// The answer, if its header block was complete when the program exited or died.
    pub response: Option<CgiResponse>,
    pub stderr: String,
}

/// The CGI's stderr; printed when dropped during a panic.
#[derive(Debug)]
pub struct StderrEcho(pub String);

impl std::ops::Deref for StderrEcho {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for StderrEcho {
    fn drop(&mut self) {
        if thread::panicking() && !self.0.is_empty() {
            for line in self.0.lines() {
                eprintln!("[cgi] {line}");
            }
        }
    }
}

type Parsed = (u16, String, Vec<(String, String)>, Vec<u8>);

/// Splits a CGI response (RFC 3875 section 6): header lines ended by CRLF or LF, a blank line,
/// the body. The status comes from `Status:`, else 302 for a `Location:`, else 200.
fn parse(out: &[u8]) -> Result<Parsed, String> {
    let mut headers = Vec::new();
    let mut rest = out;
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err("header block not terminated by a blank line".into());
        };
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = &rest[end + 1..];
        if line.is_empty() {
            break;
        }
        let line = std::str::from_utf8(line).map_err(|_| "header line is not UTF-8")?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line without a colon: {line:?}"))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad header name in {line:?}"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    if headers.is_empty() {
        return Err("no header lines".into());
    }
    let status_header = headers
        .iter()
        .position(|(k, _)| k.eq_ignore_ascii_case("status"));
    let (status, reason) = match status_header {
        Some(i) => {
            let (_, value) = headers.remove(i);
            let (code, reason) = value.split_once(' ').unwrap_or((&value, ""));
            let code = code
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| format!("bad Status header {value:?}"))?;
            (code, reason.to_string())
        }
        None if headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("location")) =>
        {
            (302, "Found".into())
        }
        None => (200, "OK".into()),
    };
    Ok((status, reason, headers, rest.to_vec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_cgi_responses() {
        let (status, reason, headers, body) =
            super::parse(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope").unwrap();
        assert_eq!(
            (status, reason.as_str(), body.as_slice()),
            (404, "Not Found", &b"nope"[..])
        );
        assert_eq!(
            headers,
            [("Content-Type".to_string(), "text/plain".to_string())]
        );
        assert_eq!(super::parse(b"Location: /x\n\n").unwrap().0, 302);
        assert_eq!(super::parse(b"Content-Type: a/b\n\n").unwrap().0, 200);
        assert!(super::parse(b"").is_err());
        assert!(super::parse(b"Status: 200\r\n").is_err());
        assert!(super::parse(b"Status: abc\r\n\r\n").is_err());
    }
}
