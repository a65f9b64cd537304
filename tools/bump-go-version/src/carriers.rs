//! Where a tree carries the Go version, by era, and the evaluation of those carriers against the
//! files: the line edits a bump makes, or the disagreements `--check` reports.

use crate::depsyaml::DepsYaml;
use crate::version::{carries, derive_tag, go_of_tag, replace_version, GoVersion};
use kube_tree::log::printable;
use kube_tree::{Cap, Era, Fail, Tree};
use regex::Regex;
use std::collections::BTreeMap;

pub const DEPS: &str = "build/dependencies.yaml";
pub const CROSS: &str = "build/build-image/cross/VERSION";

/// Which lines of a file a carrier looks at.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Every non-blank line (a refPath without `match`; one-line files such as .go-version).
    Every,
    /// Lines where the regex matches (anywhere in the line).
    Re(Regex),
    /// One line by number (the `version:` field of a dependencies.yaml entry).
    Line(usize),
}

/// One place that must carry `old` (and after a bump, `new`).
#[derive(Debug, Clone)]
pub struct Carrier {
    pub path: String,
    pub matcher: Matcher,
    pub old: String,
    pub new: String,
    /// Where this carrier comes from (`dependencies.yaml: golang: upstream version`, `era A`).
    pub source: String,
    pub required: bool,
}

impl Carrier {
    pub fn pattern(&self) -> String {
        match &self.matcher {
            Matcher::Every => "every line".into(),
            Matcher::Re(r) => format!("/{}/", r.as_str()),
            Matcher::Line(n) => format!("line {n}"),
        }
    }
}

/// What the user asked beyond the version itself.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub cross_rev: Option<u32>,
    pub minimum: bool,
    pub go_directive: bool,
    /// `--images`: on era C, move the kube-cross and go-runner tags even if no image is known.
    pub images: bool,
    /// Whether an image (`repo:tag`) is known to exist: on the engine, or its registry answers
    /// for it. None: never asked (every derived tag moves, as before era C).
    pub published: Option<fn(&str) -> bool>,
}

/// An era-C image tag the bump left as it is: no such image is known to be published.
#[derive(Debug, Clone)]
pub struct KeptTag {
    pub entry: String,
    pub tag: String,
    pub derived: String,
}

/// The carriers of `tree` and the Go version they carry now.
pub struct CarrierSet {
    pub current: String,
    pub carriers: Vec<Carrier>,
    pub warnings: Vec<String>,
    /// Era C: image tags that stay (see [`KeptTag`]).
    pub kept: Vec<KeptTag>,
}

/// The image an era-C dependencies.yaml entry names, when it is one whose tag the tree no
/// longer needs to move with Go (kube-cross only bootstraps; go-runner is replaced by the
/// tree's own log runner): `registry/kube-cross:<tag>` or `registry/go-runner:<tag>`.
fn era_c_image(tree: &Tree, entry: &str, tag: &str) -> Option<String> {
    let name = ["kube-cross", "go-runner"].into_iter().find(|n| entry.contains(n))?;
    let common = read(tree, "build/common.sh").ok().flatten().unwrap_or_default();
    let registry = common
        .find("KUBE_BASE_IMAGE_REGISTRY:-")
        .map(|i| &common[i + "KUBE_BASE_IMAGE_REGISTRY:-".len()..])
        .and_then(|r| r.split('}').next())
        .map(|r| r.trim_matches('"').to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "registry.k8s.io/build-image".into());
    Some(format!("{registry}/{name}:{tag}"))
}

fn re(s: &str) -> Result<Regex, Fail> {
    Regex::new(s).map_err(|e| Fail::new(format!("bad pattern /{s}/: {e}")))
}

/// A carrier or dependencies.yaml: confined (a link out, a FIFO, /dev/zero are refused) and
/// capped as a build file; `None` when missing.
fn read(tree: &Tree, rel: &str) -> Result<Option<String>, Fail> {
    let c = tree.confined(rel).and_then(|c| c.follow()).map_err(|e| Fail::new(format!("{rel}: {}", e.msg)))?;
    text_of(&c, rel)
}

fn text_of(c: &kube_tree::Confined, shown: &str) -> Result<Option<String>, Fail> {
    match c.read_bytes(Cap::SCRIPT)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| Fail::new(format!("{shown}: cannot be read as UTF-8 text (not valid UTF-8)"))),
    }
}

/// The Go version the tree is on: dependencies.yaml's `golang: upstream version`, else
/// `.go-version`, else the one in the kube-cross tag.
pub fn current_go(tree: &Tree, deps: Option<&DepsYaml>) -> Result<String, Fail> {
    if let Some(d) = deps.and_then(|d| d.get("golang: upstream version")) {
        return Ok(d.version.clone());
    }
    if let Some(v) = &tree.go_version {
        return Ok(v.clone());
    }
    if let Some(v) = tree.cross_tag.as_deref().and_then(go_of_tag) {
        return Ok(v);
    }
    Err(Fail::new(format!(
        "cannot tell the tree's Go version: no {DEPS} golang entry, no .go-version, no Go in {CROSS}"
    )))
}

/// Builds the carriers for a move from the current version to `to` (None: `--check`, every
/// carrier must carry what it carries now).
pub fn carriers(tree: &Tree, to: Option<&GoVersion>, opts: &Options) -> Result<CarrierSet, Fail> {
    let deps = read_deps(tree)?;
    let current = current_go(tree, deps.as_ref())?;
    let new_go = to.map(|v| v.text.clone()).unwrap_or_else(|| current.clone());
    let bump = Bump { tree, to, opts, cross_rev: if to.is_some() { opts.cross_rev } else { None }, current, new_go };
    let mut warnings = deps.as_ref().map(|d| d.warnings.clone()).unwrap_or_default();
    let mut kept = Vec::new();
    let mut out = match &deps {
        Some(d) => bump.listed(d, &mut kept)?,
        None => bump.checklist()?,
    };
    // .go-version, in every era that has one (unless dependencies.yaml already lists it).
    if tree.go_version.is_some() && !out.iter().any(|c| c.path == ".go-version") {
        out.push(Carrier {
            path: ".go-version".into(),
            matcher: Matcher::Every,
            old: bump.current.clone(),
            new: bump.new_go.clone(),
            source: ".go-version".into(),
            required: true,
        });
    }
    if let Some(to) = to {
        out.extend(bump.asked_for(to, &mut warnings)?);
    }
    Ok(CarrierSet { current: bump.current, carriers: out, warnings, kept })
}

/// build/dependencies.yaml when the tree has one, checked: it names the Go it carries, and every
/// refPath stays in the tree.
fn read_deps(tree: &Tree) -> Result<Option<DepsYaml>, Fail> {
    let Some(text) = read(tree, DEPS)? else { return Ok(None) };
    let d = DepsYaml::read(&text).map_err(|e| Fail::new(format!("{DEPS}: {e}")))?;
    if d.get("golang: upstream version").is_none() {
        return Err(Fail::new(format!(
            "{DEPS}: no `golang: upstream version` entry, so the Go version it carries is unknown"
        )));
    }
    for dep in &d.deps {
        for r in &dep.ref_paths {
            check_ref_path(tree, &r.path)
                .map_err(|e| Fail::new(format!("{DEPS}:{}: refPath {}: {e}", r.line, r.path)))?;
        }
    }
    Ok(Some(d))
}

/// One bump's facts, shared by the ways carriers are found.
struct Bump<'a> {
    tree: &'a Tree,
    /// None: `--check` (every tag stays what it is).
    to: Option<&'a GoVersion>,
    opts: &'a Options,
    cross_rev: Option<u32>,
    current: String,
    new_go: String,
}

impl Bump<'_> {
    /// The new tag for `old_tag`; in --check mode a tag stays what it is.
    fn derive(&self, old_tag: &str, rev: Option<u32>) -> Option<String> {
        match self.to {
            None => Some(old_tag.to_string()),
            Some(_) => derive_tag(old_tag, &self.current, &self.new_go, rev),
        }
    }

    /// The carriers dependencies.yaml lists (eras B and C): each entry's line and its refPaths.
    fn listed(&self, d: &DepsYaml, kept: &mut Vec<KeptTag>) -> Result<Vec<Carrier>, Fail> {
        let (tree, current) = (self.tree, &self.current);
        let mut out = Vec::new();
        for dep in &d.deps {
            // etcd's own Go version lives in the same file and is not Kubernetes'.
            if dep.name.contains("etcd") || dep.version.is_empty() {
                continue;
            }
            let is_cross = dep.name.contains("kube-cross") || tree.cross_tag.as_deref() == Some(dep.version.as_str());
            let new = if dep.version == *current {
                self.new_go.clone()
            } else if let Some(t) = derive_tag(&dep.version, current, current, None)
                .and(self.derive(&dep.version, if is_cross { self.cross_rev } else { None }))
            {
                t
            } else {
                continue;
            };
            // Era C: a tag names an image kubernetes/release publishes; the build fetches the
            // tree's Go itself when the image is older. Moved only when asked or known.
            if tree.era == Era::C && self.to.is_some() && new != dep.version && !self.opts.images {
                if let Some(image) = era_c_image(tree, &dep.name, &new) {
                    if !self.opts.published.is_some_and(|known| known(&image)) {
                        kept.push(KeptTag { entry: dep.name.clone(), tag: dep.version.clone(), derived: new });
                        continue;
                    }
                }
            }
            let source = format!("{DEPS}: {}", dep.name);
            out.push(Carrier {
                path: DEPS.into(),
                matcher: Matcher::Line(dep.version_line),
                old: dep.version.clone(),
                new: new.clone(),
                source: source.clone(),
                required: true,
            });
            for r in &dep.ref_paths {
                let matcher = match &r.matcher {
                    None => Matcher::Every,
                    Some(m) => Matcher::Re(re(m)?),
                };
                out.push(Carrier {
                    path: r.path.clone(),
                    matcher,
                    old: dep.version.clone(),
                    new: new.clone(),
                    source: source.clone(),
                    required: true,
                });
            }
        }
        Ok(out)
    }

    /// Era A (and any tree without dependencies.yaml): the 2019 checklist.
    fn checklist(&self) -> Result<Vec<Carrier>, Fail> {
        let tree = self.tree;
        let era = if tree.era == Era::A { "era A" } else { "no dependencies.yaml" };
        let mut out = Vec::new();
        if let Some(tag) = &tree.cross_tag {
            let new = self.derive(tag, self.cross_rev).ok_or_else(|| {
                Fail::new(format!("cannot derive the new kube-cross tag from {tag} (Go {})", self.current))
            })?;
            out.push(Carrier {
                path: CROSS.into(),
                matcher: Matcher::Every,
                old: tag.clone(),
                new,
                source: format!("{era}: kube-cross tag"),
                required: true,
            });
        }
        for (path, pat) in [
            ("build/build-image/cross/Dockerfile", r"^FROM golang:"),
            ("build/root/WORKSPACE", r#"go_version = ""#),
            ("test/images/Makefile", r"^GOLANG_VERSION\s*:?=\s*"),
        ] {
            out.push(Carrier {
                path: path.into(),
                matcher: Matcher::Re(re(&format!("{pat}\\S+"))?),
                old: self.current.clone(),
                new: self.new_go.clone(),
                source: era.into(),
                required: true,
            });
        }
        Ok(out)
    }

    /// What only a flag moves (`--minimum`, `--go-directive`), and the warning of a minor bump
    /// made without them.
    fn asked_for(&self, to: &GoVersion, warnings: &mut Vec<String>) -> Result<Vec<Carrier>, Fail> {
        let (tree, opts) = (self.tree, self.opts);
        let mut out = Vec::new();
        if opts.minimum {
            out.extend(value_carrier(
                tree,
                "hack/lib/golang.sh",
                r"minimum_go_version=go(\d+\.\d+(?:\.\d+)?)",
                |old| shape_like(old, to),
                "--minimum",
            )?);
        }
        if opts.go_directive {
            let mut files = vec!["go.mod".to_string(), "go.work".to_string()];
            files.extend(tree.staging_repos()?.iter().map(|r| format!("staging/src/k8s.io/{r}/go.mod")));
            for f in files {
                out.extend(value_carrier(
                    tree,
                    &f,
                    r"^go (\d+\.\d+(?:\.\d+)?)\s*$",
                    |old| shape_like(old, to),
                    "--go-directive",
                )?);
            }
        }
        let cur = GoVersion::parse(&self.current).ok();
        if cur.as_ref().is_some_and(|c| c.minor != to.minor) && !(opts.minimum && opts.go_directive) {
            warnings.push(format!(
                "minor bump {} -> {}: hack/lib/golang.sh minimum_go_version and the go.mod/go.work `go` directives may need it too (--minimum, --go-directive)",
                cur.map(|c| c.minor_line()).unwrap_or_default(), to.minor_line()
            ));
        }
        Ok(out)
    }
}

/// A refPath must name a file beneath the tree (a link to one inside is followed).
fn check_ref_path(tree: &Tree, rel: &str) -> Result<(), String> {
    if rel.starts_with('/') {
        return Err("an absolute path; refPaths are relative to the tree".into());
    }
    tree.confined(rel).and_then(|c| c.follow()).map(|_| ()).map_err(|e| e.msg)
}

/// `1.15.0` stays three-part, `1.22` two-part.
fn shape_like(old: &str, to: &GoVersion) -> String {
    if old.matches('.').count() >= 2 {
        format!("{}.0", to.minor_line())
    } else {
        to.minor_line()
    }
}

/// A carrier whose old value is read from the file (first capture group of `pat`).
fn value_carrier(
    tree: &Tree,
    rel: &str,
    pat: &str,
    new: impl Fn(&str) -> String,
    flag: &str,
) -> Result<Option<Carrier>, Fail> {
    let Some(text) = read(tree, rel)? else { return Ok(None) };
    let r = re(pat)?;
    let Some(old) = text.lines().find_map(|l| r.captures(l).map(|c| c[1].to_string())) else { return Ok(None) };
    let new = new(&old);
    Ok(Some(Carrier { path: rel.into(), matcher: Matcher::Re(r), new, old, source: flag.into(), required: false }))
}

/// One changed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEdit {
    pub path: String,
    pub line: usize,
    pub old: String,
    pub new: String,
}

/// A finding that blocks a bump (and that --check reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub line: Option<usize>,
    pub kind: &'static str,
    pub detail: String,
}

impl Finding {
    pub fn render(&self) -> String {
        let loc = match self.line {
            Some(l) => format!("{}:{l}", self.path),
            None => self.path.clone(),
        };
        // Each field with its control characters escaped: a line of the tree shown in a
        // finding can neither split the record nor drive the terminal.
        format!("{}\t{}\t{}", printable(&loc), self.kind, printable(&self.detail))
    }
}

/// A file's content before and after.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// The carrier as the tree names it; `target` is where it is written (a link's target).
    pub path: String,
    pub target: kube_tree::Confined,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Default)]
pub struct Evaluation {
    pub changes: Vec<FileChange>,
    pub edits: Vec<LineEdit>,
    pub findings: Vec<Finding>,
    /// Required carriers whose file or line is missing (separate: --allow-missing lets them pass).
    pub missing: Vec<Finding>,
}

fn strip_eol(l: &str) -> (&str, &str) {
    let body = l.trim_end_matches(['\n', '\r']);
    (body, &l[body.len()..])
}

/// Applies the carriers to the files in memory. Longer values go first, so a kube-cross tag is
/// rewritten as a whole before the bare Go version is looked for in the same line.
pub fn evaluate(tree: &Tree, carriers: &[Carrier]) -> Result<Evaluation, Fail> {
    let mut by_file: BTreeMap<&str, Vec<&Carrier>> = BTreeMap::new();
    for c in carriers {
        by_file.entry(c.path.as_str()).or_default().push(c);
    }
    let mut ev = Evaluation::default();
    for (path, mut cs) in by_file {
        cs.sort_by_key(|c| std::cmp::Reverse(c.old.len()));
        let target =
            tree.confined(path).and_then(|c| c.follow()).map_err(|e| Fail::new(format!("carrier {path}: {e}")))?;
        let text = match text_of(&target, &format!("carrier {path}"))? {
            Some(t) => t,
            None => {
                for c in cs.iter().filter(|c| c.required) {
                    ev.missing.push(Finding {
                        path: path.into(),
                        line: None,
                        kind: "missing",
                        detail: format!("file not found; {} expects {} ({})", c.source, c.old, c.pattern()),
                    });
                }
                continue;
            }
        };
        let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        for c in cs {
            let mut matched = false;
            for (i, l) in lines.iter_mut().enumerate() {
                let (body, eol) = strip_eol(l);
                let span = match &c.matcher {
                    Matcher::Every if body.trim().is_empty() => None,
                    Matcher::Every => Some(0..body.len()),
                    // As zeitgeist reads it: the regex selects the line, the line carries the version.
                    Matcher::Re(r) => r.is_match(body).then_some(0..body.len()),
                    Matcher::Line(n) => (i + 1 == *n).then_some(0..body.len()),
                };
                let Some(span) = span else { continue };
                matched = true;
                let seg = &body[span.clone()];
                if let Some(rep) = replace_version(seg, &c.old, &c.new) {
                    *l = format!("{}{rep}{}{eol}", &body[..span.start], &body[span.end..]);
                } else if !carries(seg, &c.new) {
                    ev.findings.push(Finding {
                        path: path.into(),
                        line: Some(i + 1),
                        kind: "drift",
                        detail: format!("{} says {}, but this line has: {}", c.source, c.old, body.trim()),
                    });
                }
            }
            if !matched && c.required {
                ev.missing.push(Finding {
                    path: path.into(),
                    line: None,
                    kind: "missing",
                    detail: format!("no line matches {} ({} expects {})", c.pattern(), c.source, c.old),
                });
            }
        }
        let new: String = lines.concat();
        if new != text {
            for (i, (a, b)) in text.split_inclusive('\n').zip(new.split_inclusive('\n')).enumerate() {
                if a != b {
                    ev.edits.push(LineEdit {
                        path: path.into(),
                        line: i + 1,
                        old: strip_eol(a).0.into(),
                        new: strip_eol(b).0.into(),
                    });
                }
            }
            ev.changes.push(FileChange { path: path.into(), target, old: text, new });
        }
    }
    Ok(ev)
}
