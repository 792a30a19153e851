//! Accessibility checks in the browser: axe-core (pinned by `tests/browser/package-lock.json`,
//! installed by `scripts/install-deps.sh` with `npm ci`) injected into the page of a
//! [`Browser`] session and run there. It owns the injection, the shape of axe's findings and the
//! rule the dashboard is held to (nothing "serious" or "critical"); not the browser itself.

use std::fs;
use std::sync::OnceLock;

use serde_json::json;

use super::browser::Browser;
use super::repo_root;

/// What `tests/browser/package.json` pins and `scripts/install-deps.sh` installs with `npm ci`.
pub(crate) const AXE_JS: &str = "tests/browser/node_modules/axe-core/axe.min.js";

/// One rule axe-core found broken on a page.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The rule, e.g. "image-alt", "label", "color-contrast".
    pub id: String,
    /// "minor", "moderate", "serious" or "critical".
    pub impact: String,
    pub help: String,
    pub help_url: String,
    pub nodes: Vec<ViolationNode>,
}

/// An element that breaks a rule.
#[derive(Debug, Clone)]
pub struct ViolationNode {
    /// CSS selectors (more than one when the element is inside frames or shadow roots).
    pub target: Vec<String>,
    /// The element's opening markup.
    pub html: String,
}

impl Violation {
    /// Impact "serious" or "critical": what the dashboard must never have.
    pub fn is_serious(&self) -> bool {
        matches!(self.impact.as_str(), "serious" | "critical")
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] {}: {} ({})",
            self.impact, self.id, self.help, self.help_url
        )?;
        for node in &self.nodes {
            write!(f, "\n    {} {}", node.target.join(" >>> "), node.html)?;
        }
        Ok(())
    }
}

fn string(v: &serde_json::Value) -> String {
    v.as_str().map(String::from).unwrap_or_default()
}

impl Browser {
    /// Runs axe-core on the current page (injecting it when the page has not got it yet) and
    /// returns every violation, whatever its impact. Works under a strict
    /// Content-Security-Policy (WebDriver's scripts are exempt from it), not in a session with
    /// JavaScript off (it panics saying so: axe is asynchronous, and such a session runs no timer
    /// or promise).
    pub fn axe(&self) -> Vec<Violation> {
        assert!(
            self.options().javascript,
            "axe-core needs timers and promises, which a session with JavaScript off never runs: \
             check the page in a session with scripts on (browser::shared())"
        );
        static AXE: OnceLock<String> = OnceLock::new();
        let source = AXE.get_or_init(|| {
            let path = repo_root().join(AXE_JS);
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        });
        let present = self.execute("return typeof window.axe === 'object'", vec![]);
        if present != json!(true) {
            // axe.min.js is a UMD bundle: run as a function body it still sets `window.axe`.
            self.execute(source, vec![]);
        }
        let result = self.execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']})
               .then(r => done({violations: r.violations.map(v => ({
                  id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
                  nodes: v.nodes.map(n => ({target: n.target.map(String), html: n.html}))}))}))
               .catch(e => done({error: String(e && e.stack || e)}));",
            vec![],
        );
        if let Some(error) = result.get("error") {
            panic!("axe.run failed on {}: {error}", self.current_url());
        }
        result["violations"]
            .as_array()
            .expect("axe's violations")
            .iter()
            .map(|v| Violation {
                id: string(&v["id"]),
                impact: string(&v["impact"]),
                help: string(&v["help"]),
                help_url: string(&v["helpUrl"]),
                nodes: v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| ViolationNode {
                        target: n["target"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(string)
                            .collect(),
                        html: string(&n["html"]),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Runs axe-core and panics listing every violation of impact "serious" or "critical";
    /// the lesser ones are printed on stderr and returned. `page` names the page in messages.
    pub fn assert_accessible(&self, page: &str) -> Vec<Violation> {
        let violations = self.axe();
        let (serious, lesser): (Vec<_>, Vec<_>) =
            violations.into_iter().partition(|v| v.is_serious());
        for v in &lesser {
            eprintln!("axe on {page} (allowed, below serious): {v}");
        }
        assert!(
            serious.is_empty(),
            "axe found {} serious or critical violation(s) on {page} ({}):\n{}",
            serious.len(),
            self.current_url(),
            serious
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        lesser
    }
}
