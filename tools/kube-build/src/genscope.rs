//! Which files the tree's generator step (`make generated_files`) can read, so that an edit
//! elsewhere (a kubectl command, a controller) does not rerun it.
//!
//! The generators (deepcopy, defaulter, conversion, openapi, prerelease-lifecycle) read the
//! packages that carry their `+k8s:` tags and every package those import, transitively (the
//! types they name); go-bindata reads fixed data directories; all of them are built from their
//! own sources and driven by build/root/Makefile* and hack/. The scope is that closure, taken
//! from the sources as they are now, so a tag added to a file widens it at once. Per-file facts
//! (tagged or not, imports) are cached by stat stamp, so only changed files are read again.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fnv::Fnv;
use kube_tree::{Cap, Fail, Tree};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where the per-file facts are kept between builds.
pub fn index_path(tree: &Tree) -> Utf8PathBuf {
    tree.path("_output/local/.kit-codegen-index")
}

/// Data directories go-bindata packs, and the files that drive the step.
const DATA_INPUTS: &[&str] = &[
    "build/root",
    "hack",
    "translations",
    "test/conformance/testdata",
    "test/e2e/testing-manifests",
    "test/e2e_node/testing-manifests",
    "test/images",
    "test/fixtures",
];

/// The generators' own sources (in the tree, through staging, or vendored).
const GENERATOR_ROOTS: &[&str] = &[
    "staging/src/k8s.io/code-generator",
    "vendor/k8s.io/gengo",
    "vendor/k8s.io/kube-openapi",
    "vendor/github.com/go-bindata/go-bindata",
];

/// One file of the walk that may be an input: its path and stat stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub rel: Utf8PathBuf,
    pub stamp: u64,
}

/// Whether a walked file can be an input at all: Go sources (not tests, not generated output)
/// and anything under the data inputs.
pub fn is_candidate(rel: &Utf8Path) -> bool {
    let name = rel.file_name().unwrap_or("");
    let go = name.ends_with(".go") && !name.ends_with("_test.go") && !name.starts_with("zz_generated");
    go || DATA_INPUTS.iter().any(|d| rel.starts_with(d))
}

/// What one Go file says that matters here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    pub tagged: bool,
    pub imports: Vec<String>,
}

/// Reads a Go file's generator tags and imports.
pub fn facts(text: &str) -> Facts {
    let tagged = text.contains("+k8s:") || text.contains("+genclient") || text.contains("+groupName=");
    let mut imports = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let l = line.trim();
        if in_block {
            if l.starts_with(')') {
                in_block = false;
            } else if let Some(p) = quoted(l) {
                imports.push(p);
            }
            continue;
        }
        if let Some(rest) = l.strip_prefix("import") {
            let rest = rest.trim_start();
            if let Some(block) = rest.strip_prefix('(') {
                in_block = true;
                if let Some(p) = quoted(block) {
                    imports.push(p);
                }
            } else if let Some(p) = quoted(rest) {
                imports.push(p);
            }
        } else if ["func ", "type ", "var ", "const "].iter().any(|k| l.starts_with(k)) {
            break;
        }
    }
    Facts { tagged, imports }
}

/// The import path in `alias "path" // comment`.
fn quoted(s: &str) -> Option<String> {
    let s = s.split("//").next()?;
    let i = s.find('"')?;
    let j = s[i + 1..].find('"')? + i + 1;
    Some(s[i + 1..j].to_string())
}

/// The per-file facts cache: `rel \t stamp \t T|- \t imports...`.
#[derive(Debug, Default)]
struct Index {
    entries: HashMap<Utf8PathBuf, (u64, Facts)>,
    changed: bool,
}

impl Index {
    fn load(tree: &Tree, path: &Utf8Path) -> Index {
        let mut entries = HashMap::new();
        // A damaged cache is only a cache: an unreadable file or line is read again from the sources.
        let text = crate::state::read_cache(tree, path, "codegen index").unwrap_or_default();
        for line in text.lines() {
            let mut f = line.split('\t');
            let (Some(rel), Some(stamp), Some(tag)) = (f.next(), f.next(), f.next()) else { continue };
            let Ok(stamp) = u64::from_str_radix(stamp, 16) else { continue };
            let imports = f.next().unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect();
            entries.insert(rel.into(), (stamp, Facts { tagged: tag == "T", imports }));
        }
        Index { entries, changed: false }
    }

    /// The facts of a source, from the cache while its stamp holds, else read (confined and
    /// capped: a source swapped for a FIFO or a link out since the walk is refused by name).
    fn get(&mut self, tree: &Tree, c: &Candidate) -> Result<Facts, Fail> {
        if let Some((s, f)) = self.entries.get(&c.rel) {
            if *s == c.stamp {
                return Ok(f.clone());
            }
        }
        let bytes = tree.confined(&c.rel)?.read_bytes(Cap::SOURCE)?.unwrap_or_default();
        let f = facts(&String::from_utf8_lossy(&bytes));
        self.entries.insert(c.rel.clone(), (c.stamp, f.clone()));
        self.changed = true;
        Ok(f)
    }

    fn render(&self) -> String {
        let mut lines: Vec<String> = self
            .entries
            .iter()
            .map(|(rel, (s, f))| {
                format!("{rel}\t{s:016x}\t{}\t{}", if f.tagged { "T" } else { "-" }, f.imports.join(" "))
            })
            .collect();
        lines.sort();
        lines.join("\n") + "\n"
    }
}

/// The generator scope of the tree as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub fingerprint: u64,
    /// How many files it holds.
    pub files: usize,
}

/// The generator scope of the tree as it is now: its fingerprint and how many files it holds.
pub fn fingerprint(tree: &Tree, candidates: &[Candidate]) -> Result<Scope, Fail> {
    let path = index_path(tree);
    let mut index = Index::load(tree, &path);
    let mut by_dir: BTreeMap<&Utf8Path, Vec<&Candidate>> = BTreeMap::new();
    let mut data = Vec::new();
    for c in candidates {
        if c.rel.as_str().ends_with(".go") {
            by_dir.entry(c.rel.parent().unwrap_or(Utf8Path::new(""))).or_default().push(c);
        }
        if DATA_INPUTS.iter().any(|d| c.rel.starts_with(d)) {
            data.push(c);
        }
    }
    let staging: BTreeSet<String> = tree.staging_repos().unwrap_or_default().into_iter().collect();
    let dir_of = |import: &str| -> Option<Utf8PathBuf> {
        if let Some(rest) = import.strip_prefix("k8s.io/kubernetes/") {
            return Some(rest.into());
        }
        if let Some(rest) = import.strip_prefix("k8s.io/") {
            let repo = rest.split('/').next().unwrap_or("");
            if staging.contains(repo) {
                return Some(format!("staging/src/k8s.io/{rest}").into());
            }
        }
        Some(format!("vendor/{import}").into())
    };
    // Roots: every tagged package outside vendor/, and the generators' own packages.
    let mut queue: Vec<Utf8PathBuf> = Vec::new();
    for (dir, files) in &by_dir {
        let generator = GENERATOR_ROOTS.iter().any(|g| dir.starts_with(g));
        let mut tagged = false;
        if !generator && !dir.starts_with("vendor") {
            for c in files {
                if index.get(tree, c)?.tagged {
                    tagged = true;
                    break;
                }
            }
        }
        if generator || tagged {
            queue.push(dir.to_path_buf());
        }
    }
    let mut scope: BTreeSet<Utf8PathBuf> = BTreeSet::new();
    while let Some(dir) = queue.pop() {
        let Some(files) = by_dir.get(dir.as_path()) else { continue };
        if !scope.insert(dir.clone()) {
            continue;
        }
        for c in files {
            for i in index.get(tree, c)?.imports {
                if let Some(d) = dir_of(&i).filter(|d| by_dir.contains_key(d.as_path()) && !scope.contains(d)) {
                    queue.push(d);
                }
            }
        }
    }
    let mut h = Fnv::default();
    let mut n = 0;
    for dir in &scope {
        for c in &by_dir[dir.as_path()] {
            h.feed(c.rel.as_str().as_bytes());
            h.feed(&c.stamp.to_le_bytes());
            n += 1;
        }
    }
    for c in data {
        h.feed(c.rel.as_str().as_bytes());
        h.feed(&c.stamp.to_le_bytes());
        n += 1;
    }
    if index.changed {
        // Dropped files leave the cache too.
        let live: BTreeSet<&Utf8Path> = candidates.iter().map(|c| c.rel.as_path()).collect();
        index.entries.retain(|rel, _| live.contains(rel.as_path()));
        tree.write_file(&path, index.render().as_bytes())?;
    }
    Ok(Scope { fingerprint: h.0, files: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tags_and_every_import_form() {
        let f = facts(
            "// +k8s:deepcopy-gen=package\n\npackage v1\n\nimport \"fmt\"\nimport m \"k8s.io/apimachinery/pkg/apis/meta/v1\"\nimport (\n\t\"strings\" // why\n\truntime \"k8s.io/apimachinery/pkg/runtime\"\n\t_ \"embed\"\n)\n\ntype X struct{}\nimport \"not/an/import\"\n",
        );
        assert!(f.tagged);
        assert_eq!(
            f.imports,
            ["fmt", "k8s.io/apimachinery/pkg/apis/meta/v1", "strings", "k8s.io/apimachinery/pkg/runtime", "embed"]
        );
        assert!(!facts("package cmd\n\nimport \"os\"\n").tagged);
        assert!(facts("package x\n// +genclient\ntype Y struct{}\n").tagged);
    }

    #[test]
    fn candidates_are_sources_and_data() {
        for yes in ["pkg/apis/core/types.go", "hack/update-codegen.sh", "translations/kubectl/de_DE/LC_MESSAGES/k8s.po"]
        {
            assert!(is_candidate(Utf8Path::new(yes)), "{yes}");
        }
        for no in ["pkg/apis/core/types_test.go", "pkg/apis/core/zz_generated.deepcopy.go", "README.md", "docs/x.yaml"]
        {
            assert!(!is_candidate(Utf8Path::new(no)), "{no}");
        }
    }
}
