//! `imgserv-evict`: remove idle, old or surplus variants and sweep deleted originals, from
//! cron. See imgserv-evict(8).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use imgserv::{usecases::evict, web::server};

#[derive(Parser)]
#[command(
    version,
    about = "Remove idle, old or surplus variants; sweep deleted originals"
)]
struct Args {
    /// Configuration file (default: $IMGSERV_CONFIG, then /etc/imgserv/imgserv.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Remove variants not accessed for longer than this ([evict] max_idle).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    max_idle: Option<Duration>,
    /// Remove variants created longer ago than this ([evict] max_age).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    max_age: Option<Duration>,
    /// Keep all variants within this many bytes, least recently used out first ([evict] max_bytes).
    #[arg(long, value_name = "SIZE", value_parser = size)]
    max_bytes: Option<u64>,
    /// List what would go; remove nothing, sweep nothing.
    #[arg(long)]
    dry_run: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    imgserv::io::config::parse_duration(s)
        .ok_or_else(|| format!("expected a duration like 30d, got {s:?}"))
}

fn size(s: &str) -> Result<u64, String> {
    imgserv::io::config::parse_size(s)
        .ok_or_else(|| format!("expected a size like 10GiB, got {s:?}"))
}

fn main() {
    let args: Args = imgserv::tools::cli::parse();
    server::init_logging();
    let config = server::config_or_exit(args.config.as_deref());
    let mut limits = config.evict;
    limits.max_idle = args.max_idle.or(limits.max_idle);
    limits.max_age = args.max_age.or(limits.max_age);
    limits.max_bytes = args.max_bytes.or(limits.max_bytes);
    match evict::evict(&config, &limits, args.dry_run) {
        Ok(report) => {
            if args.dry_run {
                for (entry, reason) in &report.removed {
                    for path in &entry.paths {
                        println!("{reason:?}\t{}\t{path}", entry.bytes);
                    }
                }
                for copy in &report.remote.removed {
                    println!("Remote\t{}\t{}", copy.bytes, copy.url);
                }
                for entry in &report.temporaries {
                    println!("Temporary\t{}\t{}", entry.bytes, entry.paths[0]);
                }
            }
            log::info!("{}", report.summary());
        }
        Err(e) => {
            log::error!("{} ({}): {e}", e.code(), e.exit_code());
            std::process::exit(e.exit_code());
        }
    }
}
