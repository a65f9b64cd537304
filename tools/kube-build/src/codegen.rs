//! Code generation only when its inputs changed: a fingerprint of the tree's Go sources (path,
//! size, mtime) is kept under `_output` after each successful run of the tree's own generator
//! step (`make generated_files`), and compared on the next build.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::Proc;
use kube_tree::{fsx, log, Fail, Tree};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// Where the fingerprint of the last successful generation is kept.
pub fn stamp_path(tree: &Tree) -> Utf8PathBuf {
    tree.path("_output/local/.kit-codegen-fingerprint")
}

/// The tree has a generator step that `make all` runs first (Makefile.generated_files era).
pub fn has_generator(tree: &Tree) -> bool {
    std::fs::read_to_string(tree.path("build/root/Makefile")).is_ok_and(|m| m.lines().any(|l| l.starts_with("generated_files:")))
}

/// Directories never looked into: outputs, VCS, third-party code (no generation tags there;
/// vendor/k8s.io links lead into staging/, which is walked directly).
const SKIP_DIRS: &[&str] = &["_output", ".git", ".make", "_tmp", "vendor", "_artifacts"];

fn is_input(name: &str) -> bool {
    name.ends_with(".go") && !name.starts_with("zz_generated")
}

/// FNV-1a over (relative path, size, mtime) of every input, in sorted order.
pub fn fingerprint(tree: &Tree) -> Result<(u64, usize), Fail> {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut n = 0usize;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    };
    let mut stack: Vec<Utf8PathBuf> = vec![tree.root.clone()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<(String, std::fs::Metadata)> = Vec::new();
        for e in fs_err::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            // symlink_metadata: links (vendor/k8s.io/*, the fake GOPATH) are not followed.
            let md = std::fs::symlink_metadata(e.path()).map_err(|err| Fail::new(format!("{dir}/{name}: {err}")))?;
            entries.push((name, md));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, md) in entries.into_iter().rev() {
            if md.is_dir() {
                if !(dir == tree.root && SKIP_DIRS.contains(&name.as_str())) {
                    stack.push(dir.join(&name));
                }
            } else if md.is_file() && is_input(&name) {
                let rel = dir.strip_prefix(&tree.root).unwrap_or(Utf8Path::new("")).join(&name);
                feed(rel.as_str().as_bytes());
                feed(&md.len().to_le_bytes());
                feed(&md.mtime().to_le_bytes());
                feed(&md.mtime_nsec().to_le_bytes());
                n += 1;
            }
        }
    }
    Ok((h, n))
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
pub fn refresh(tree: &Tree, force: bool) -> Result<Codegen, Fail> {
    if !has_generator(tree) {
        return Ok(Codegen::NotInTree);
    }
    let stamp = stamp_path(tree);
    let (before, n) = fingerprint(tree)?;
    let stored = std::fs::read_to_string(&stamp).ok().and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
    if !force && stored == Some(before) {
        log::status_v(2, format!("codegen: {n} inputs unchanged"));
        return Ok(Codegen::UpToDate);
    }
    let why = if force { "forced" } else if stored.is_none() { "first build" } else { "inputs changed" };
    let step = log::Step::start(format!("codegen ({why}): make generated_files"));
    let out = Proc::new("make").args(["generated_files"]).dir(&tree.root).output_with_progress("codegen", Duration::from_secs(15))?;
    if !out.success() {
        let _ = std::fs::remove_file(&stamp);
        return Err(Fail::new(format!("make generated_files failed: {}", out.first_lines(5).replace('\n', " | "))));
    }
    step.done();
    // Generators may write .go files that are not zz_generated.*: the stamp is taken afterwards.
    let (after, _) = fingerprint(tree)?;
    fs_err::create_dir_all(stamp.parent().unwrap())?;
    fsx::atomic_write(&stamp, format!("{after:016x}\n").as_bytes())?;
    Ok(Codegen::Ran)
}
