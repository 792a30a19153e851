//! `imgserv-precache`: render the redirector's variants ahead of time. See imgserv-precache(1).

use std::path::PathBuf;

use clap::Parser;
use imgserv::domain::geometry::Size;
use imgserv::usecases::error::exit;
use imgserv::{usecases::precache, web::server};

#[derive(Parser)]
#[command(
    version,
    about = "Render the variants the redirector would serve, ahead of time"
)]
struct Args {
    /// Configuration file (default: $IMGSERV_CONFIG, then /etc/imgserv/imgserv.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A box to fit each picture into, like 800x600 (repeatable).
    #[arg(long = "box", value_name = "WxH")]
    boxes: Vec<Size>,
    /// Every box of a preset from the configuration (repeatable).
    #[arg(long = "preset", value_name = "NAME")]
    presets: Vec<String>,
    /// Worker threads (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Write the path of every variant produced or found, relative to the cache directory, for
    /// `rsync --files-from` (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    list: Option<PathBuf>,
    /// Originals: paths below the originals root (or leading into it), directories, URLs.
    #[arg(required = true, value_name = "SRC|DIR")]
    sources: Vec<String>,
}

fn main() {
    let args: Args = imgserv::tools::cli::parse();
    server::init_logging();
    let config = server::config_or_exit(args.config.as_deref());
    let boxes = precache::boxes(&config, &args.boxes, &args.presets).unwrap_or_else(|e| {
        eprintln!("imgserv-precache: {e}");
        std::process::exit(exit::USAGE)
    });
    let jobs = args.jobs.unwrap_or(config.server.workers());
    std::process::exit(precache::main(
        &config,
        &args.sources,
        &precache::Options { boxes, jobs },
        args.list.as_deref(),
    ));
}
