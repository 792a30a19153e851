//! What `imgserv-admin` does, one function per subcommand; each prints its report and returns
//! the exit code.

use std::fs;
use std::path::Path;

use crate::error::exit;
use crate::server;

/// `check-config [FILE]`: every problem on standard error with its key, exit 78 if any;
/// otherwise `ok: FILE`, with a warning for each directory this user could not write (run it
/// as the web server's user to check what the server will meet).
pub fn check_config(file: Option<&Path>) -> i32 {
    let path = crate::config::config_path(file);
    match server::load_config(Some(&path), &[]) {
        Ok(config) => {
            for (key, dir) in [
                ("cache.dir", &config.cache.dir),
                ("state.dir", &config.state.dir),
            ] {
                if let Err(why) = probe_writable(dir) {
                    eprintln!("warning: {key}: {} {why}", dir.display());
                }
            }
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

/// Whether this process can create files in `dir` (or create `dir` itself when missing), by
/// trying it: permission bits alone do not tell (ACLs, read-only mounts).
fn probe_writable(dir: &Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"));
    let probe = existing.join(format!(".imgserv-check-{}", std::process::id()));
    match fs::File::create(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if existing == dir => Err(format!("is not writable by this user: {e}")),
        Err(e) => Err(format!(
            "does not exist and cannot be created in {}: {e}",
            existing.display()
        )),
    }
}
