//! What `imgserv-admin` does, one function per subcommand; each prints its report and returns
//! the exit code.

use std::path::Path;

use crate::error::exit;
use crate::server;

/// `check-config [FILE]`: every problem on standard error with its key; `ok: FILE` otherwise.
pub fn check_config(file: Option<&Path>) -> i32 {
    let path = crate::config::config_path(file);
    match server::load_config(Some(&path), &[]) {
        Ok(_) => {
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
