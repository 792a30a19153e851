//! `imgserv-upload`: adds originals from the file system to the store and the catalog through
//! the same checks as the upload API (`ingest`), walking directories, skipping duplicates and
//! reporting every file that is not an image without stopping.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::io::catalog::{Catalog, Inserted};
use crate::io::config::Config;
use crate::io::store;
use crate::usecases::error::{Error, exit};
use crate::usecases::ingest::{self, Upload};

/// What to upload and how to describe it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The category of every file (`/travel`); with `categories_from_dirs` the parent of the
    /// sub-folder categories.
    pub category: String,
    /// `key=value` metadata given to every file.
    pub meta: Vec<(String, String)>,
    /// Sub-folders of a directory argument become categories below `category`.
    pub categories_from_dirs: bool,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Added(String),
    Duplicate(String),
    Failed(String),
}

/// The files named by `args` (directories walked, in name order), each with the category it
/// goes to.
pub fn files(args: &[PathBuf], opts: &Options) -> Vec<(PathBuf, String)> {
    let base = opts.category.trim_end_matches('/').to_string();
    let mut out = Vec::new();
    for arg in args {
        if !arg.is_dir() {
            out.push((arg.clone(), category_or_root(&base)));
            continue;
        }
        for entry in walkdir::WalkDir::new(arg)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            if !entry.file_type().is_file() {
                continue;
            }
            let category = if opts.categories_from_dirs {
                let rel = entry.path().parent().and_then(|p| p.strip_prefix(arg).ok());
                let sub: Vec<String> = rel
                    .map(|r| r.iter().map(|c| c.to_string_lossy().into_owned()).collect())
                    .unwrap_or_default();
                category_or_root(&format!("{base}/{}", sub.join("/")))
            } else {
                category_or_root(&base)
            };
            out.push((entry.path().to_path_buf(), category));
        }
    }
    out
}

fn category_or_root(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

/// `k=v` pairs as a JSON object; a value that parses as JSON (a number, `true`) keeps its type.
pub fn meta(pairs: &[(String, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| {
            let value = serde_json::from_str::<Value>(v)
                .ok()
                .filter(|j| !j.is_object() && !j.is_array())
                .unwrap_or_else(|| Value::String(v.clone()));
            (k.clone(), value)
        })
        .collect()
}

/// Uploads every file, printing `<id>  <file>` for each original added or already there and a
/// line on standard error for each failure; returns the exit code (65 when anything failed).
pub fn main(config: &Config, args: &[PathBuf], opts: &Options) -> i32 {
    let setup = || -> Result<(Box<dyn store::Store>, Catalog), Error> {
        Ok((
            store::open(&config.store)?,
            Catalog::open(&config.state.catalog_path())?,
        ))
    };
    let (store, mut catalog) = match setup() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("imgserv-upload: {e}");
            return e.exit_code();
        }
    };
    let files = files(args, opts);
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| indicatif::ProgressBar::new(files.len() as u64));
    let meta = meta(&opts.meta);
    let (mut added, mut duplicates, mut failed) = (0, 0, 0);
    for (path, category) in &files {
        let upload = Upload {
            category: category.clone(),
            meta: meta.clone(),
            owner: None,
        };
        let outcome = match std::fs::read(path) {
            Err(e) => Outcome::Failed(e.to_string()),
            Ok(bytes) => {
                match ingest::ingest(config, store.as_ref(), &mut catalog, &bytes, &upload) {
                    Ok(Inserted::New(image)) => Outcome::Added(image.id.to_string()),
                    Ok(Inserted::Existed(image)) => Outcome::Duplicate(image.id.to_string()),
                    Err(e) => Outcome::Failed(format!("{} ({})", e, e.code())),
                }
            }
        };
        let line = report(path, &outcome);
        // Ids on standard output, failures on standard error, around the progress bar.
        let print = || match outcome {
            Outcome::Failed(_) => eprintln!("{line}"),
            _ => println!("{line}"),
        };
        match &bar {
            Some(bar) => {
                bar.suspend(print);
                bar.inc(1);
            }
            None => print(),
        }
        match outcome {
            Outcome::Added(_) => added += 1,
            Outcome::Duplicate(_) => duplicates += 1,
            Outcome::Failed(_) => failed += 1,
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "{} files: {added} added, {duplicates} already there, {failed} failed",
        files.len()
    );
    if failed > 0 { exit::DATAERR } else { exit::OK }
}

fn report(path: &Path, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Added(id) => format!("{id}  {}", path.display()),
        Outcome::Duplicate(id) => format!("{id}  {} (already there)", path.display()),
        Outcome::Failed(why) => format!("failed: {}: {why}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_from_directories() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("norway/fjords")).unwrap();
        std::fs::write(t.path().join("a.jpg"), b"").unwrap();
        std::fs::write(t.path().join("norway/b.jpg"), b"").unwrap();
        std::fs::write(t.path().join("norway/fjords/c.jpg"), b"").unwrap();
        let opts = Options {
            category: "/travel".into(),
            categories_from_dirs: true,
            ..Options::default()
        };
        let got: Vec<(String, String)> = files(&[t.path().to_path_buf()], &opts)
            .into_iter()
            .map(|(p, c)| (p.file_name().unwrap().to_string_lossy().into_owned(), c))
            .collect();
        assert_eq!(
            got,
            [
                ("a.jpg".to_string(), "/travel".to_string()),
                ("b.jpg".to_string(), "/travel/norway".to_string()),
                ("c.jpg".to_string(), "/travel/norway/fjords".to_string()),
            ]
        );
        let flat = files(&[t.path().to_path_buf()], &Options::default());
        assert!(flat.iter().all(|(_, c)| c == "/"));
    }

    #[test]
    fn metadata_pairs() {
        let m = meta(&[
            ("title".into(), "Fjord".into()),
            ("year".into(), "2024".into()),
            ("x".into(), "{}".into()),
        ]);
        assert_eq!(m["title"], Value::String("Fjord".into()));
        assert_eq!(m["year"], Value::from(2024));
        assert_eq!(m["x"], Value::String("{}".into()));
    }
}
