//! `imgserv-admin`: administration of an imgserv installation. See imgserv-admin(8).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use imgserv::admin;

#[derive(Parser)]
#[command(version, about = "Administer imgserv")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file; report every problem with its key, exit 78 if any.
    CheckConfig {
        /// The file (default: $IMGSERV_CONFIG, then /etc/imgserv/imgserv.toml).
        file: Option<PathBuf>,
    },
}

fn main() {
    let args: Args = imgserv::cli::parse();
    let code = match args.command {
        Command::CheckConfig { file } => admin::check_config(file.as_deref()),
    };
    std::process::exit(code);
}
