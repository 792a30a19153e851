//! `imgserv-mirror`: manage the mirror map. See imgserv-mirror(1).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use imgserv::usecases::error::exit;
use imgserv::usecases::mirror::{self, Command};
use imgserv::web::server;

#[derive(Parser)]
#[command(version, about = "Manage the mirrors that serve copies of variants")]
struct Args {
    /// Configuration file (default: $IMGSERV_CONFIG, then /etc/imgserv/imgserv.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The mirror map (default: [mirrors] map of the configuration).
    #[arg(long, value_name = "FILE")]
    map: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Add a mirror: its name, base URL and bandwidth weight.
    Add {
        name: String,
        url: String,
        /// Share of requests relative to the other mirrors holding a file.
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// The files it holds (a list as `imgserv-precache --list` writes, or `rsync --list-only` output).
        #[arg(long, value_name = "FILE")]
        list: Option<PathBuf>,
    },
    /// Remove a mirror.
    Remove { name: String },
    /// List the mirrors with their weights and file counts.
    List,
    /// Replace a mirror's files with a list (`-`: standard input).
    ImportList { name: String, file: PathBuf },
    /// Print (or write to FILE) the files a mirror holds.
    ExportList { name: String, file: Option<PathBuf> },
    /// HEAD every file on the mirrors (all, or those named) and drop the missing ones.
    Verify {
        names: Vec<String>,
        /// Requests at once per mirror.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
        /// Timeout of each request, like 10s.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    imgserv::io::config::parse_duration(s)
        .ok_or_else(|| format!("expected a duration like 10s, got {s:?}"))
}

fn main() {
    let args: Args = imgserv::tools::cli::parse();
    server::init_logging();
    let map = match args.map {
        Some(map) => map,
        None => match server::load_config(args.config.as_deref(), &[]).map(|c| c.mirrors.map) {
            Ok(Some(map)) => map,
            Ok(None) => {
                eprintln!("imgserv-mirror: no mirror map: set [mirrors] map or give --map");
                std::process::exit(exit::CONFIG);
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(exit::CONFIG);
            }
        },
    };
    let command = match args.command {
        Cmd::Add {
            name,
            url,
            weight,
            list,
        } => Command::Add {
            name,
            url,
            weight,
            list,
        },
        Cmd::Remove { name } => Command::Remove { name },
        Cmd::List => Command::List,
        Cmd::ImportList { name, file } => Command::ImportList { name, file },
        Cmd::ExportList { name, file } => Command::ExportList { name, file },
        Cmd::Verify {
            names,
            jobs,
            timeout,
        } => Command::Verify {
            names,
            jobs,
            timeout,
        },
    };
    std::process::exit(mirror::run(command, &map));
}
