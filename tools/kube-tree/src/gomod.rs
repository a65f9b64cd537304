//! Readers for go.mod, go.work and vendor/modules.txt: only what the checks need, with line
//! numbers so a report can point at the line.

/// A `require` line of go.mod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Require {
    pub path: String,
    pub version: String,
    pub indirect: bool,
    pub line: usize,
}

/// A `replace` line: `old [old_version] => new [new_version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replace {
    pub old: String,
    pub old_version: Option<String>,
    pub new: String,
    pub new_version: Option<String>,
    pub line: usize,
}

impl Replace {
    /// The right-hand side as modules.txt writes it: `new` or `new version`.
    pub fn target(&self) -> String {
        match &self.new_version {
            Some(v) => format!("{} {}", self.new, v),
            None => self.new.clone(),
        }
    }
}

/// The parts of a go.mod (or go.work) file the toolkit reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoMod {
    pub module: Option<String>,
    pub go: Option<String>,
    pub requires: Vec<Require>,
    pub replaces: Vec<Replace>,
    /// `use` directories (go.work only), with their line numbers.
    pub uses: Vec<(String, usize)>,
}

/// The directives of go.mod and go.work, with how many words follow each (min, max).
const VERBS: &[(&str, (usize, usize))] = &[
    ("module", (1, 1)),
    ("go", (1, 1)),
    ("toolchain", (1, 1)),
    ("godebug", (1, 3)),
    ("require", (2, 2)),
    ("replace", (3, 5)),
    ("exclude", (2, 2)),
    ("retract", (1, 3)),
    ("tool", (1, 1)),
    ("ignore", (1, 1)),
    ("use", (1, 1)),
];

/// Splits a go.mod line into words, dropping a trailing `//` comment but reporting `// indirect`.
fn words(line: &str) -> (Vec<String>, bool) {
    let (code, comment) = match line.find("//") {
        Some(i) => (&line[..i], &line[i + 2..]),
        None => (line, ""),
    };
    let indirect = comment.split(';').any(|c| c.trim() == "indirect");
    let ws = code.split_whitespace().map(|w| w.trim_matches('"').to_string()).collect();
    (ws, indirect)
}

impl GoMod {
    /// Parses and checks the syntax: every directive known, with its words, blocks closed.
    /// The error is `LINE: reason` (the caller names the file).
    pub fn read(text: &str) -> Result<GoMod, String> {
        let mut block: Option<(String, usize)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let (ws, _) = words(raw);
            let Some(first) = ws.first() else { continue };
            let (verb, rest) = match &block {
                Some(_) if first == ")" && ws.len() == 1 => {
                    block = None;
                    continue;
                }
                Some((b, _)) => (b.clone(), &ws[..]),
                None if ws.len() == 2 && ws[1] == "(" => {
                    block = Some((ws[0].clone(), line));
                    if !VERBS.iter().any(|(v, _)| *v == ws[0]) {
                        return Err(format!("{line}: unknown directive `{}`", ws[0].escape_debug()));
                    }
                    continue;
                }
                None => (first.clone(), &ws[1..]),
            };
            let Some((_, arity)) = VERBS.iter().find(|(v, _)| *v == verb) else {
                return Err(format!("{line}: unknown directive `{}`", verb.escape_debug()));
            };
            let ok = match verb.as_str() {
                "replace" => rest
                    .iter()
                    .position(|w| w == "=>")
                    .is_some_and(|a| (1..=2).contains(&a) && (1..=2).contains(&(rest.len() - a - 1))),
                _ => rest.len() >= arity.0 && rest.len() <= arity.1,
            };
            if !ok {
                return Err(format!("{line}: malformed `{verb}` line: {}", raw.trim().escape_debug()));
            }
        }
        if let Some((b, line)) = block {
            return Err(format!("{line}: the `{b} (` block is never closed"));
        }
        Ok(GoMod::parse(text))
    }

    pub fn parse(text: &str) -> GoMod {
        let mut m = GoMod::default();
        let mut block: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let (ws, indirect) = words(raw);
            if ws.is_empty() {
                continue;
            }
            let (verb, rest): (String, Vec<String>) = match &block {
                Some(b) => {
                    if ws[0] == ")" {
                        block = None;
                        continue;
                    }
                    (b.clone(), ws)
                }
                None => {
                    if ws.len() == 2 && ws[1] == "(" {
                        block = Some(ws[0].clone());
                        continue;
                    }
                    (ws[0].clone(), ws[1..].to_vec())
                }
            };
            match verb.as_str() {
                "module" if !rest.is_empty() => m.module = Some(rest[0].clone()),
                "go" if !rest.is_empty() => m.go = Some(rest[0].clone()),
                "require" if rest.len() >= 2 => {
                    m.requires.push(Require { path: rest[0].clone(), version: rest[1].clone(), indirect, line })
                }
                "replace" => {
                    if let Some(arrow) = rest.iter().position(|w| w == "=>") {
                        let (l, r) = (&rest[..arrow], &rest[arrow + 1..]);
                        if !l.is_empty() && !r.is_empty() {
                            m.replaces.push(Replace {
                                old: l[0].clone(),
                                old_version: l.get(1).cloned(),
                                new: r[0].clone(),
                                new_version: r.get(1).cloned(),
                                line,
                            });
                        }
                    }
                }
                "use" if !rest.is_empty() => m.uses.push((rest[0].clone(), line)),
                _ => {}
            }
        }
        m
    }

    /// The replacement that applies to `path@version`: a versioned replace wins over a bare one.
    pub fn replacement_for(&self, path: &str, version: &str) -> Option<&Replace> {
        self.replaces
            .iter()
            .find(|r| r.old == path && r.old_version.as_deref() == Some(version))
            .or_else(|| self.replaces.iter().find(|r| r.old == path && r.old_version.is_none()))
    }
}

/// Compares Go versions like `1.15`, `1.22.0`, `1.24rc2` by their numeric parts
/// (a pre-release sorts before the release).
pub fn go_version_at_least(v: &str, major: u32, minor: u32) -> bool {
    let v = v.trim_start_matches("go");
    let mut it = v.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
    let a: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let b: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (a, b) >= (major, minor)
}

/// One `# module ...` section of vendor/modules.txt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendoredModule {
    pub path: String,
    /// None for a replacement-only line (`# path => new [version]`).
    pub version: Option<String>,
    /// Right-hand side of `=>`, as written (`./staging/src/k8s.io/api` or `example.com/x v1.0.0`).
    pub replacement: Option<String>,
    pub explicit: bool,
    pub packages: Vec<(String, usize)>,
    pub line: usize,
}

/// vendor/modules.txt as cmd/go writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulesTxt {
    /// The `## workspace` marker: vendored for a go.work workspace.
    pub workspace: bool,
    pub modules: Vec<VendoredModule>,
    /// Lines that fit no known shape, with their numbers.
    pub unparsed: Vec<(usize, String)>,
}

impl ModulesTxt {
    pub fn parse(text: &str) -> ModulesTxt {
        let mut mt = ModulesTxt::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim_end();
            if l.is_empty() {
                continue;
            }
            if let Some(ann) = l.strip_prefix("## ") {
                let mut known = false;
                for part in ann.split(';').map(str::trim) {
                    if part == "workspace" {
                        mt.workspace = true;
                        known = true;
                    } else if part == "explicit" {
                        if let Some(m) = mt.modules.last_mut() {
                            m.explicit = true;
                            known = true;
                        }
                    } else if part.starts_with("go ") {
                        known = true;
                    }
                }
                if !known {
                    mt.unparsed.push((line, l.to_string()));
                }
            } else if let Some(h) = l.strip_prefix("# ") {
                let (left, right) = match h.split_once(" => ") {
                    Some((a, b)) => (a.trim(), Some(b.trim().to_string())),
                    None => (h.trim(), None),
                };
                let mut lw = left.split_whitespace();
                let path = lw.next().unwrap_or("").to_string();
                mt.modules.push(VendoredModule {
                    path,
                    version: lw.next().map(str::to_string),
                    replacement: right,
                    explicit: false,
                    packages: Vec::new(),
                    line,
                });
            } else if !l.starts_with('#') && !l.contains(' ') && mt.modules.last().is_some() {
                mt.modules.last_mut().unwrap().packages.push((l.to_string(), line));
            } else {
                mt.unparsed.push((line, l.to_string()));
            }
        }
        mt
    }

    /// The versioned entry for `path` (the one a `require` resolves to).
    pub fn module(&self, path: &str) -> Option<&VendoredModule> {
        self.modules.iter().find(|m| m.path == path && m.version.is_some())
    }

    /// The replacement-only entry for `path` (`# path => ...`).
    pub fn replace_only(&self, path: &str) -> Option<&VendoredModule> {
        self.modules.iter().find(|m| m.path == path && m.version.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_reports_broken_syntax_with_the_line() {
        let good = "module k8s.io/kubernetes\n\ngo 1.15\n\nrequire (\n\tgithub.com/a/b v1.0.0 // indirect\n)\n\nreplace k8s.io/api => ./staging/src/k8s.io/api\nreplace (\n\tx v1 => y v2\n)\n";
        assert_eq!(GoMod::read(good).unwrap().module.as_deref(), Some("k8s.io/kubernetes"));
        for (text, want) in [
            ("module\n", "1: malformed `module`"),
            ("module a\nrequire (\n\tx v1\n", "2: the `require (` block"),
            ("module a\nfrobnicate x\n", "2: unknown directive"),
            ("module a\nreplace x\n", "2: malformed `replace`"),
            ("module a\nrequire x\n", "2: malformed `require`"),
            ("module a\n)\n", "2: unknown directive"),
        ] {
            let e = GoMod::read(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    const GOMOD: &str = r#"// generated
module k8s.io/kubernetes

go 1.15

require (
	github.com/a/b v1.2.3
	github.com/c/d v0.1.0 // indirect
	k8s.io/api v0.0.0
)

require single.example/x v9.9.9

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	github.com/a/b v1.2.3 => github.com/fork/b v1.2.4
)
replace github.com/c/d => github.com/c/d v0.1.0
"#;

    #[test]
    fn parses_gomod_blocks_and_singles() {
        let m = GoMod::parse(GOMOD);
        assert_eq!(m.module.as_deref(), Some("k8s.io/kubernetes"));
        assert_eq!(m.go.as_deref(), Some("1.15"));
        assert_eq!(m.requires.len(), 4);
        assert!(m.requires[1].indirect && !m.requires[0].indirect);
        assert_eq!(
            m.requires[3],
            Require { path: "single.example/x".into(), version: "v9.9.9".into(), indirect: false, line: 12 }
        );
        assert_eq!(m.replaces.len(), 3);
        assert_eq!(m.replaces[0].target(), "./staging/src/k8s.io/api");
        assert_eq!(m.replacement_for("github.com/a/b", "v1.2.3").unwrap().target(), "github.com/fork/b v1.2.4");
        assert!(m.replacement_for("github.com/a/b", "v0.0.1").is_none());
        assert_eq!(m.replacement_for("github.com/c/d", "v0.1.0").unwrap().line, 18);
    }

    #[test]
    fn parses_gowork_uses() {
        let w = GoMod::parse("go 1.22\n\nuse (\n\t.\n\t./staging/src/k8s.io/api\n)\nuse ./x\n");
        assert_eq!(w.go.as_deref(), Some("1.22"));
        let uses: Vec<_> = w.uses.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(uses, [".", "./staging/src/k8s.io/api", "./x"]);
    }

    #[test]
    fn parses_modules_txt() {
        let t = "## workspace\n# github.com/a/b v1.2.3 => github.com/fork/b v1.2.4\n## explicit; go 1.17\ngithub.com/a/b\ngithub.com/a/b/sub\n# k8s.io/api => ./staging/src/k8s.io/api\n# x/y v1.0.0\nx/y\n## weird\n";
        let mt = ModulesTxt::parse(t);
        assert!(mt.workspace);
        assert_eq!(mt.modules.len(), 3);
        let ab = mt.module("github.com/a/b").unwrap();
        assert!(ab.explicit);
        assert_eq!(ab.replacement.as_deref(), Some("github.com/fork/b v1.2.4"));
        assert_eq!(ab.packages.len(), 2);
        assert!(mt.module("k8s.io/api").is_none());
        assert_eq!(mt.replace_only("k8s.io/api").unwrap().replacement.as_deref(), Some("./staging/src/k8s.io/api"));
        assert!(!mt.module("x/y").unwrap().explicit);
        assert_eq!(mt.unparsed, vec![(9, "## weird".to_string())]);
    }

    #[test]
    fn go_versions() {
        assert!(go_version_at_least("1.15", 1, 14));
        assert!(go_version_at_least("go1.22.0", 1, 17));
        assert!(!go_version_at_least("1.12", 1, 14));
        assert!(go_version_at_least("1.24rc2", 1, 24));
    }
}
