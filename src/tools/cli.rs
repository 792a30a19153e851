//! Conventions shared by the command-line tools: flags parsed with clap, usage errors exiting
//! with sysexits' `EX_USAGE` (64) rather than clap's 2, help and version with 0.

use crate::usecases::error::exit;

/// Parses the process's arguments, or prints clap's message and exits.
pub fn parse<T: clap::Parser>() -> T {
    T::try_parse().unwrap_or_else(|e| {
        let code = if e.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        };
        let _ = e.print();
        std::process::exit(code)
    })
}
