//! Code generation only when its inputs changed: after each successful run of the tree's own
//! generator step (`make generated_files`), a fingerprint of what it can read (see
//! [`crate::genscope`]; each file by path, size, mtime, ctime, inode) is kept under `_output`
//! and compared on the next build. An unchanged tree is known from one walk without reading a
//! file; only when something changed is the generator scope worked out.

use crate::genscope;
use crate::state::read_cache;
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fnv::Fnv;
use kube_tree::proc::Proc;
use kube_tree::{log, walk, Cap, Fail, Tree};
use std::time::Duration;

/// Where the fingerprint of the last successful generation is kept.
pub fn stamp_path(tree: &Tree) -> Utf8PathBuf {
    tree.path("_output/local/.kit-codegen-fingerprint")
}

/// The tree has a generator step that `make all` runs first (Makefile.generated_files era).
/// The Makefile is read confined and capped: a FIFO or a link out is refused (exit 2).
pub fn has_generator(tree: &Tree) -> Result<bool, Fail> {
    let make = tree.read_text("build/root/Makefile", Cap::SCRIPT)?;
    Ok(make.is_some_and(|m| m.lines().any(|l| l.starts_with("generated_files:"))))
}

/// Directories never looked into: outputs and VCS metadata.
const SKIP_DIRS: &[&str] = &["_output", ".git", ".make", "_tmp", "_artifacts"];

/// Two fingerprints from one walk of the tree: of the generator's inputs, and of every file
/// (what a build can read). Each file counts by path, size, mtime, ctime and inode: an edit
/// always moves ctime, even one that puts the old mtime back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprints {
    pub all: u64,
    pub files: usize,
    /// The files that may be generator inputs, for [`genscope::fingerprint`].
    pub candidates: Vec<genscope::Candidate>,
}

pub fn fingerprint(tree: &Tree) -> Result<Fingerprints, Fail> {
    let mut all = Fnv::default();
    let mut files = 0usize;
    let mut candidates = Vec::new();
    // Directories are entered, not counted; links (vendor/k8s.io/*) count, their targets are
    // walked where they live.
    walk::entries(&tree.root, SKIP_DIRS, |rel, md| {
        if md.is_dir() {
            return;
        }
        let stamp = walk::stat_bytes(rel, md);
        all.feed(&stamp);
        if md.is_file() && genscope::is_candidate(rel) {
            candidates.push(genscope::Candidate { rel: rel.to_owned(), stamp: kube_tree::fnv::hash(&stamp) });
        }
        files += 1;
    })?;
    Ok(Fingerprints { all: all.0, files, candidates })
}

/// The stamp: the fingerprint of the whole tree and of the generator scope, after the last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    all: u64,
    scope: u64,
}

impl Stamp {
    fn read(tree: &Tree, path: &Utf8Path) -> Option<Stamp> {
        let text = read_cache(tree, path, "codegen fingerprint")?;
        let mut w = text.split_whitespace().map(|h| u64::from_str_radix(h, 16));
        Some(Stamp { all: w.next()?.ok()?, scope: w.next()?.ok()? })
    }
    fn render(&self) -> String {
        format!("{:016x} {:016x}\n", self.all, self.scope)
    }
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

/// What [`refresh`] did, and the fingerprints of the tree as it is after it.
pub struct Refreshed {
    pub codegen: Codegen,
    pub fingerprints: Fingerprints,
}

/// Runs the tree's generator step if its inputs changed since the last success (or if forced).
/// `go_vars` put the chosen Go first for the generators (make runs `go`).
pub fn refresh(tree: &Tree, force: bool, go_vars: &[(String, String)]) -> Result<Refreshed, Fail> {
    let fp = fingerprint(tree)?;
    if !has_generator(tree)? {
        return Ok(Refreshed { codegen: Codegen::NotInTree, fingerprints: fp });
    }
    let stamp = stamp_path(tree);
    let stored = Stamp::read(tree, &stamp);
    if let (false, Some(st)) = (force, stored) {
        if st.all == fp.all {
            log::status_v(2, format!("codegen: nothing changed ({} files fingerprinted)", fp.files));
            return Ok(Refreshed { codegen: Codegen::UpToDate, fingerprints: fp });
        }
        let scope = genscope::fingerprint(tree, &fp.candidates)?;
        if scope.fingerprint == st.scope {
            log::status_v(2, format!("codegen: the change is outside the generators' {} input files", scope.files));
            tree.write_file(&stamp, Stamp { all: fp.all, scope: scope.fingerprint }.render().as_bytes())?;
            return Ok(Refreshed { codegen: Codegen::UpToDate, fingerprints: fp });
        }
    }
    let why = if force {
        "forced"
    } else if stored.is_none() {
        "first build"
    } else {
        "generator inputs changed"
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
    let scope = genscope::fingerprint(tree, &after.candidates)?.fingerprint;
    tree.write_file(&stamp, Stamp { all: after.all, scope }.render().as_bytes())?;
    Ok(Refreshed { codegen: Codegen::Ran, fingerprints: after })
}
