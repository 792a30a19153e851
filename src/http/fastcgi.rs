//! FastCGI 1.0 responder (in progress on branch `fastcgi`; this is the agreed interface).

use std::sync::Arc;

use super::Handler;

pub enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl Listener {
    pub fn bind(addr: &str) -> std::io::Result<Listener> {
        Ok(Listener::Tcp(std::net::TcpListener::bind(addr)?))
    }

    pub fn from_stdin() -> std::io::Result<Option<Listener>> {
        Ok(None)
    }
}

pub struct Options {
    pub workers: usize,
    pub max_conns: usize,
    pub max_body: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 2,
            max_conns: 256,
            max_body: 64 << 20,
        }
    }
}

pub fn serve(
    _listener: Listener,
    _handler: Arc<dyn Handler>,
    _opts: &Options,
) -> std::io::Result<()> {
    Err(std::io::Error::other("FastCGI is not built yet"))
}
