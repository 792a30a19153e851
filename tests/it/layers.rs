//! The shape of the code, checked: the layers under `src/` import only downwards, the modules
//! of a layer do not import each other in a circle, and no module grows past the size a
//! newcomer can read (600 lines of code, tests, comments and blank lines aside).
//!
//! Layers, bottom to top: `domain` (pure code), `io` (storage and I/O), `usecases`, `web`
//! (transports and routes), `tools` (what the command-line programs share). `bin/` is glue on
//! top of all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::support::repo_root;

const LAYERS: [&str; 5] = ["domain", "io", "usecases", "web", "tools"];
const MAX_CODE_LINES: usize = 600;

/// A source file and the module path it defines (`["io", "cache", "eviction"]`).
struct Source {
    path: PathBuf,
    module: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    let src = repo_root().join("src");
    let mut out = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&src).unwrap().with_extension("");
                let mut module: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if module.last().is_some_and(|m| m == "mod") {
                    module.pop();
                }
                let text = fs::read_to_string(&path).unwrap();
                out.push(Source { path, module, text });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The text before the file's unit tests (`#[cfg(test)]` at the start of a line), with
/// comments removed line by line.
fn code_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Files that are test code as a whole: declared under `#[cfg(test)]` by their parent.
fn test_only(sources: &[Source]) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for s in sources {
        let lines: Vec<&str> = s.text.lines().collect();
        for pair in lines.windows(2) {
            if pair[0].trim() == "#[cfg(test)]" {
                let decl = pair[1].trim();
                let name = decl
                    .strip_suffix(';')
                    .and_then(|d| d.rsplit_once("mod "))
                    .map(|(_, name)| name.to_string());
                if let Some(name) = name {
                    let mut module = s.module.clone();
                    module.push(name);
                    out.insert(module);
                }
            }
        }
    }
    out
}

/// `crate::a::b::...` paths in code (not in comments), as their first two segments.
fn imports(code: &[&str]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for line in code {
        let mut rest = *line;
        while let Some(i) = rest.find("crate::") {
            let path = &rest[i + "crate::".len()..];
            let segments: Vec<&str> = path
                .split("::")
                .take(2)
                .map(|s| {
                    let end = s
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(s.len());
                    &s[..end]
                })
                .collect();
            if let [layer, module, ..] = segments[..] {
                out.insert((layer.to_string(), module.to_string()));
            }
            rest = &rest[i + "crate::".len()..];
        }
    }
    out
}

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

#[test]
fn src_holds_only_the_layers() {
    let src = repo_root().join("src");
    let mut top: Vec<String> = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    let mut want: Vec<String> = LAYERS.iter().map(|l| l.to_string()).collect();
    want.push("lib.rs".into());
    want.sort();
    assert_eq!(
        top, want,
        "src/ should hold the layer folders and lib.rs only"
    );
}

#[test]
fn layers_import_only_downwards() {
    let mut wrong = Vec::new();
    for s in sources() {
        let Some(own) = s.module.first().and_then(|l| rank(l)) else {
            continue; // lib.rs
        };
        for (layer, module) in imports(&code_lines(&s.text)) {
            match rank(&layer) {
                Some(r) if r <= own => {}
                Some(_) => wrong.push(format!(
                    "{} imports crate::{layer}::{module}, a layer above it",
                    rel(&s.path)
                )),
                None => wrong.push(format!(
                    "{} imports crate::{layer}, which is in no layer",
                    rel(&s.path)
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn modules_of_a_layer_import_no_circle() {
    // Units are a layer's direct children (`io::cache`, `usecases::variant`).
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources() {
        let (Some(layer), Some(module)) = (s.module.first(), s.module.get(1)) else {
            continue;
        };
        let me = format!("{layer}::{module}");
        for (l, m) in imports(&code_lines(&s.text)) {
            let other = format!("{l}::{m}");
            if l == *layer && other != me {
                graph.entry(me.clone()).or_default().insert(other);
            }
        }
    }
    // Depth-first search for a back edge, reporting the circle it closes.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut circle = path[i..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!(
                "modules import each other in a circle: {}",
                circle.join(" -> ")
            );
        }
    }
}

#[test]
fn no_module_is_over_600_lines_of_code() {
    let sources = sources();
    let tests = test_only(&sources);
    let over: Vec<String> = sources
        .iter()
        .filter(|s| !tests.contains(&s.module))
        .map(|s| (rel(&s.path), code_lines(&s.text).len()))
        .filter(|(_, n)| *n > MAX_CODE_LINES)
        .map(|(path, n)| format!("{path}: {n} lines of code"))
        .collect();
    assert!(
        over.is_empty(),
        "split these by concern (limit {MAX_CODE_LINES}):\n{}",
        over.join("\n")
    );
}

fn rel(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}
