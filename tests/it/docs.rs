//! The documentation cannot drift from the code: the sample configuration parses and holds
//! every key, every flag and subcommand is in its man page, every config key in imgserv.toml(5),
//! every stable error code in imgserv.cgi(8), and the README keeps its quick start.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::repo_root;

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A man page as searchable text: roff's `\-` is a plain `-`, font escapes are dropped.
fn man_page(relative: &str) -> String {
    let mut text = read(relative).replace("\\-", "-");
    for escape in ["\\fB", "\\fI", "\\fR", "\\fP", "\\&", "\\%"] {
        text = text.replace(escape, "");
    }
    text
}

/// `--help` output of a built binary, run outside any CGI environment.
fn help(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env_remove("GATEWAY_INTERFACE")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("--help is UTF-8")
}

/// Every `--long-flag` in a help text.
fn long_flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.len() > 2 && w.starts_with("--") && !w.starts_with("---"))
        .map(str::to_string)
        .collect()
}

/// Every `[section]` of `known_keys()`, with the sample's text from that header to the next.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            out.push((name.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

#[test]
fn sample_config_parses_and_has_every_key() {
    let text = read("etc/imgserv.toml");
    let tmp = tempfile::tempdir().unwrap();
    let mut substituted = text.clone();
    for (from, sub) in [
        ("/srv/imgserv/originals", "originals"),
        ("/var/cache/imgserv", "cache"),
        ("/var/lib/imgserv", "state"),
    ] {
        assert!(
            text.contains(from),
            "etc/imgserv.toml no longer uses {from}"
        );
        let dir = tmp.path().join(sub);
        fs::create_dir(&dir).unwrap();
        substituted = substituted.replace(from, dir.to_str().unwrap());
    }
    let config = imgserv::io::config::from_str(&substituted, tmp.path())
        .unwrap_or_else(|e| panic!("etc/imgserv.toml does not validate:\n{e}"));
    assert_eq!(
        config.originals.root,
        fs::canonicalize(tmp.path().join("originals")).unwrap()
    );

    // Every key is set in its section, except the ones whose default depends on the machine:
    // those are shown commented out (`# key = …`) in their section.
    let table: toml::Table = text.parse().unwrap();
    let sections = sections(&text);
    // Keys without a fixed default (machine-dependent, or off unless set) are shown commented.
    let machine_dependent = [
        ("server", "workers"),
        ("mirrors", "map"),
        ("auth", "command"),
        ("object_cache", "prefix"),
    ];
    for (section, keys) in imgserv::io::config::known_keys() {
        if let Some(block) = commented_section(&text, section) {
            for key in keys {
                assert!(
                    block.lines().any(|l| l.starts_with(&format!("# {key} = "))),
                    "etc/imgserv.toml: the commented-out [{section}] does not show {key}"
                );
                let env = format!(
                    "IMGSERV_{}_{}",
                    section.to_ascii_uppercase(),
                    key.to_ascii_uppercase()
                );
                assert!(
                    block.contains(&env),
                    "etc/imgserv.toml: {env} is not mentioned"
                );
            }
            continue;
        }
        for key in keys {
            let set = table
                .get(section)
                .and_then(|s| s.as_table())
                .is_some_and(|s| s.contains_key(*key));
            if machine_dependent.contains(&(section, key)) {
                let body = sections
                    .iter()
                    .find(|(name, _)| name == section)
                    .map_or("", |(_, body)| body.as_str());
                assert!(
                    set || body.lines().any(|l| l.starts_with(&format!("# {key} = "))),
                    "etc/imgserv.toml: [{section}] {key} is neither set nor shown commented out"
                );
            } else {
                assert!(set, "etc/imgserv.toml: [{section}] {key} is missing");
            }
            let env = format!(
                "IMGSERV_{}_{}",
                section.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            );
            assert!(
                text.contains(&env),
                "etc/imgserv.toml: {env} is not mentioned"
            );
        }
    }
}

/// A section shipped commented out (absent means off): the lines from `# [section]` to the
/// next section, or `None` when the section is not commented out.
fn commented_section<'t>(text: &'t str, section: &str) -> Option<&'t str> {
    let header = format!("\n# [{section}]\n");
    let start = text.find(&header)? + 1;
    let rest = &text[start..];
    let end = rest.find("\n[").map_or(rest.len(), |i| i + 1);
    Some(&rest[..end])
}

#[test]
fn the_commented_out_ldap_section_validates_when_uncommented() {
    let text = read("etc/imgserv.toml");
    let block = commented_section(&text, "ldap").expect("etc/imgserv.toml has a # [ldap]");
    let tmp = tempfile::tempdir().unwrap();
    for dir in ["originals", "cache", "state"] {
        fs::create_dir(tmp.path().join(dir)).unwrap();
    }
    let ca = tmp.path().join("ca.pem");
    fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let uncommented: String = block
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.starts_with('[')
                || l.split_once(" = ").is_some_and(|(key, _)| {
                    !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                })
        })
        // user_dn is the alternative to the search settings, shown for reference.
        .filter(|l| !l.starts_with("user_dn = "))
        .map(|l| {
            if l.starts_with("ca_file = ") {
                format!("ca_file = {:?}\n", ca.to_str().unwrap())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(uncommented.contains("group_filter = "), "{uncommented}");
    let config = format!(
        "[originals]\nroot = \"originals\"\n[cache]\ndir = \"cache\"\n[state]\ndir = \"state\"\n{uncommented}"
    );
    let config = imgserv::io::config::from_str(&config, tmp.path())
        .unwrap_or_else(|e| panic!("the [ldap] example does not validate:\n{e}\n{uncommented}"));
    let ldap = config.ldap.expect("[ldap] read");
    assert!(ldap.starttls && ldap.admin_group.is_some());
}

#[test]
fn every_flag_of_imgserv_cgi_is_in_its_man_page() {
    let help = help(env!("CARGO_BIN_EXE_imgserv-cgi"), &["--help"]);
    let flags = long_flags(&help);
    for expected in ["--config", "--fastcgi", "--listen", "--help"] {
        assert!(
            flags.contains(expected),
            "{expected} not parsed from:\n{help}"
        );
    }
    let page = man_page("man/imgserv.cgi.8");
    for flag in &flags {
        assert!(
            page.contains(flag.as_str()),
            "man/imgserv.cgi.8 lacks {flag}"
        );
    }
}

#[test]
fn every_subcommand_of_imgserv_admin_is_in_its_man_page() {
    let program = env!("CARGO_BIN_EXE_imgserv-admin");
    let help = help(program, &["--help"]);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        commands.contains(&"check-config"),
        "no subcommands parsed from:\n{help}"
    );
    let page = man_page("man/imgserv-admin.8");
    for command in &commands {
        assert!(
            page.contains(command),
            "man/imgserv-admin.8 lacks {command}"
        );
        if *command != "help" {
            for flag in long_flags(&self::help(program, &[command, "--help"])) {
                assert!(
                    page.contains(&flag),
                    "man/imgserv-admin.8 lacks {command} {flag}"
                );
            }
        }
    }
    for flag in long_flags(&help) {
        assert!(page.contains(&flag), "man/imgserv-admin.8 lacks {flag}");
    }
}

#[test]
fn every_config_key_is_in_imgserv_toml_5() {
    let page = man_page("man/imgserv.toml.5");
    for (section, keys) in imgserv::io::config::known_keys() {
        // Each section is a subsection `.SS [section]`; its keys are documented below it.
        let header = format!(".SS [{section}]");
        let start = page
            .find(&header)
            .unwrap_or_else(|| panic!("man/imgserv.toml.5 lacks {header}"));
        let rest = &page[start + header.len()..];
        let body = &rest[..rest.find("\n.S").unwrap_or(rest.len())];
        for key in keys {
            assert!(
                body.contains(&format!(".B {key}\n")) || body.contains(&format!("B {key} ")),
                "man/imgserv.toml.5: [{section}] does not document {key}"
            );
            let env = format!(
                "IMGSERV_{}_{}",
                section.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            );
            assert!(page.contains(&env), "man/imgserv.toml.5 lacks {env}");
        }
    }
}

/// The stable codes: the quoted kebab-case strings of the `(status, "code", exit::…)` table.
fn error_codes(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter(|l| l.contains("exit::") && l.contains('"'))
        .filter_map(|l| l.split('"').nth(1))
        .filter(|code| {
            !code.is_empty()
                && code
                    .split('-')
                    .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_error_code_is_in_imgserv_cgi_8() {
    let codes = error_codes(&read("src/usecases/error.rs"));
    assert!(
        codes.contains("source-not-found") && codes.len() >= 10,
        "codes not parsed from src/usecases/error.rs: {codes:?}"
    );
    let page = man_page("man/imgserv.cgi.8");
    for code in &codes {
        assert!(
            page.contains(code.as_str()),
            "man/imgserv.cgi.8 lacks {code}"
        );
    }
}

/// The text of a roff `.EX` block as a reader sees it: `\-`, `\e` and `\(aq` unescaped.
fn unroff(block: &str) -> String {
    let mut out = String::new();
    let mut chars = block.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('-') => out.push('-'),
            Some('e') => out.push('\\'),
            Some('(') => {
                let name: String = chars.by_ref().take(2).collect();
                match name.as_str() {
                    "aq" => out.push('\''),
                    "dq" => out.push('"'),
                    other => panic!("unexpected roff escape \\({other}"),
                }
            }
            other => panic!("unexpected roff escape \\{other:?}"),
        }
    }
    out
}

/// The Python client of imgserv-signing(7), run as the page says, prints the signatures the
/// page gives for its test vectors, in order (and src/usecases/sign/tests.rs checks the server computes the
/// same ones): the page, an independent client and the server cannot drift apart.
#[test]
fn the_signing_pages_python_client_computes_its_test_vectors() {
    let page = read("man/imgserv-signing.7");
    let examples = &page[page.find(".SH EXAMPLES").expect("an EXAMPLES section")..];
    let start = examples.find(".EX\n").expect("a first example") + 4;
    let end = start + examples[start..].find(".EE\n").unwrap();
    let script = unroff(&examples[start..end]);
    assert!(script.contains("def sign_request("), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("imgserv_sign.py");
    fs::write(&file, &script).unwrap();
    let out = Command::new(crate::support::require_program("python3"))
        .arg(&file)
        .output()
        .expect("run python3");
    assert!(out.status.success(), "{out:?}");
    let printed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l[l.len().saturating_sub(64)..].to_string())
        .collect();

    // The page's signatures, in order: `.B <hex>` after "Signature:", and the URL's `sig=`.
    let vectors = &page[page.find(".SH TEST VECTORS").unwrap()..page.find(".SH EXAMPLES").unwrap()];
    let lines: Vec<&str> = vectors.lines().collect();
    let mut expected = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 && lines[i - 1] == "Signature:" {
            expected.push(line.trim_start_matches(".B ").to_string());
        } else if let Some((_, sig)) = line.split_once("&sig=") {
            let hex = sig.split('.').nth(1).unwrap_or_default();
            expected.push(hex.chars().take(64).collect());
        }
    }
    assert_eq!(expected.len(), 7, "vectors 1 to 7 in the page");
    assert_eq!(printed, expected);
}

#[test]
fn readme_keeps_its_quick_start() {
    let readme = read("README.md");
    for needle in ["make run", "make test", "http://127.0.0.1:8080/"] {
        assert!(readme.contains(needle), "README.md lacks {needle:?}");
    }
    assert!(Path::new(&repo_root().join("tests/fixtures/CREDITS.md")).is_file());
    assert!(readme.contains("tests/fixtures/CREDITS.md"));
}
