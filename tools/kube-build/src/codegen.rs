//! Code generation only when its inputs changed: a fingerprint of the tree's Go sources (path,
//! size, mtime, ctime, inode) is kept under `_output` after each successful run of the tree's own generator
//! step (`make generated_files`), and compared on the next build.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fnv::Fnv;
use kube_tree::proc::Proc;
use kube_tree::{log, walk, Fail, Tree};
use std::time::Duration;

/// Where the fingerprint of the last successful generation is kept.
pub fn stamp_path(tree: &Tree) -> Utf8PathBuf {
    tree.path("_output/local/.kit-codegen-fingerprint")
}

/// The tree has a generator step that `make all` runs first (Makefile.generated_files era).
pub fn has_generator(tree: &Tree) -> bool {
    std::fs::read_to_string(tree.path("build/root/Makefile"))
        .is_ok_and(|m| m.lines().any(|l| l.starts_with("generated_files:")))
}

/// Directories never looked into: outputs and VCS metadata.
const SKIP_DIRS: &[&str] = &["_output", ".git", ".make", "_tmp", "_artifacts"];

/// Inputs of the generator step: Go sources outside vendor/ (vendor/k8s.io links lead into
/// staging/, walked directly), generated files excluded.
fn is_codegen_input(rel: &Utf8Path, name: &str) -> bool {
    name.ends_with(".go") && !name.starts_with("zz_generated") && !rel.starts_with("vendor")
}

/// Two fingerprints from one walk of the tree: of the generator's inputs, and of every file
/// (what a build can read). Each file counts by path, size, mtime, ctime and inode: an edit
/// always moves ctime, even one that puts the old mtime back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprints {
    pub codegen: u64,
    pub all: u64,
    pub files: usize,
}

pub fn fingerprint(tree: &Tree) -> Result<Fingerprints, Fail> {
    let (mut cg, mut all) = (Fnv::default(), Fnv::default());
    let mut files = 0usize;
    // Directories are entered, not counted; links (vendor/k8s.io/*) count, their targets are
    // walked where they live.
    walk::entries(&tree.root, SKIP_DIRS, |rel, md| {
        if md.is_dir() {
            return;
        }
        let stamp = walk::stat_bytes(rel, md);
        all.feed(&stamp);
        if md.is_file() && is_codegen_input(rel, rel.file_name().unwrap_or("")) {
            cg.feed(&stamp);
        }
        files += 1;
    })?;
    Ok(Fingerprints { codegen: cg.0, all: all.0, files })
}

/// What happened to code generation in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codegen {
    /// The tree has no generator step in its Makefile (generated code is checked in).
    NotInTree,
    UpToDate,
    Ran,
}

impl Codegen {
    pub fn name(self) -> &'static str {
        match self {
            Codegen::NotInTree => "none",
            Codegen::UpToDate => "up-to-date",
            Codegen::Ran => "ran",
        }
    }
}

/// Runs the tree's generator step if its inputs changed since the last success (or if forced).
/// Returns what happened and the fingerprints of the tree as it is now.
/// `go_vars` put the chosen Go first for the generators (make runs `go`).
pub fn refresh(tree: &Tree, force: bool, go_vars: &[(String, String)]) -> Result<(Codegen, Fingerprints), Fail> {
    let fp = fingerprint(tree)?;
    if !has_generator(tree) {
        return Ok((Codegen::NotInTree, fp));
    }
    let stamp = stamp_path(tree);
    let stored = std::fs::read_to_string(&stamp).ok().and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
    if !force && stored == Some(fp.codegen) {
        log::status_v(2, format!("codegen: inputs unchanged ({} files fingerprinted)", fp.files));
        return Ok((Codegen::UpToDate, fp));
    }
    let why = if force {
        "forced"
    } else if stored.is_none() {
        "first build"
    } else {
        "inputs changed"
    };
    let step = log::Step::start(format!("codegen ({why}): make generated_files"));
    let mut make = Proc::new("make");
    for (k, v) in go_vars {
        make = make.env(k, v);
    }
    let out =
        make.args(["generated_files"]).dir(&tree.root).output_with_progress("codegen", Duration::from_secs(15))?;
    if !out.success() {
        let _ = tree.remove_file(&stamp);
        return Err(Fail::new(format!("make generated_files failed: {}", out.first_lines(5).replace('\n', " | "))));
    }
    step.done();
    // Generators may write .go files that are not zz_generated.*: the stamp is taken afterwards.
    let after = fingerprint(tree)?;
    tree.write_file(&stamp, format!("{:016x}\n", after.codegen).as_bytes())?;
    Ok((Codegen::Ran, after))
}
