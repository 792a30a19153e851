//! `imgserv-upload`: add originals from files and directories. See imgserv-upload(1).

use std::path::PathBuf;

use clap::Parser;
use imgserv::{usecases::upload, web::server};

#[derive(Parser)]
#[command(version, about = "Add originals to the store and the catalog")]
struct Args {
    /// Configuration file (default: $IMGSERV_CONFIG, then /etc/imgserv/imgserv.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Category of every file, like /travel (the parent of folder categories).
    #[arg(long, value_name = "PATH", default_value = "/")]
    category: String,
    /// Metadata KEY=VALUE for every file (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = key_value)]
    meta: Vec<(String, String)>,
    /// Sub-folders of a directory become categories below --category.
    #[arg(long)]
    categories_from_dirs: bool,
    /// Files and directories (walked) to upload.
    #[arg(required = true, value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn main() {
    let args: Args = imgserv::tools::cli::parse();
    server::init_logging();
    let config = server::config_or_exit(args.config.as_deref());
    let opts = upload::Options {
        category: args.category,
        meta: args.meta,
        categories_from_dirs: args.categories_from_dirs,
    };
    std::process::exit(upload::main(&config, &args.paths, &opts));
}
