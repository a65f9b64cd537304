//! One walk of a tree's files with their metadata (never following a symlink), in a stable
//! order: the input of every "did anything change" check in the kit.

use crate::Fail;
use camino::{Utf8Path, Utf8PathBuf};

/// Calls `visit(rel, metadata)` for every entry under `root` (directories too, before their
/// contents), sorted by name within each directory. Top-level directories named in `skip` are
/// neither visited nor entered; symlinks are visited, never followed.
pub fn entries(
    root: &Utf8Path,
    skip: &[&str],
    mut visit: impl FnMut(&Utf8Path, &std::fs::Metadata),
) -> Result<(), Fail> {
    walk_dir(root, Utf8Path::new(""), skip, &mut visit)
}

fn walk_dir(
    root: &Utf8Path,
    rel_dir: &Utf8Path,
    skip: &[&str],
    visit: &mut impl FnMut(&Utf8Path, &std::fs::Metadata),
) -> Result<(), Fail> {
    let dir = root.join(rel_dir);
    let mut found: Vec<(String, std::fs::Metadata)> = Vec::new();
    for e in fs_err::read_dir(&dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let md = e.metadata().map_err(|err| Fail::new(format!("{dir}/{name}: {err}")))?;
        found.push((name, md));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, md) in found {
        if md.is_dir() && rel_dir.as_str().is_empty() && skip.contains(&name.as_str()) {
            continue;
        }
        let rel: Utf8PathBuf = rel_dir.join(&name);
        visit(&rel, &md);
        if md.is_dir() {
            walk_dir(root, &rel, skip, visit)?;
        }
    }
    Ok(())
}

/// The stat fields that change whenever a file's content or identity does: mode, size, mtime,
/// ctime (an edit always moves it, even one that puts the old mtime back) and inode.
pub fn stat_fields(md: &std::fs::Metadata) -> [u64; 7] {
    use std::os::unix::fs::MetadataExt;
    [
        md.mode() as u64,
        md.len(),
        md.mtime() as u64,
        md.mtime_nsec() as u64,
        md.ctime() as u64,
        md.ctime_nsec() as u64,
        md.ino(),
    ]
}

/// The path and its [`stat_fields`], as bytes to hash.
pub fn stat_bytes(rel: &Utf8Path, md: &std::fs::Metadata) -> Vec<u8> {
    let mut b = Vec::with_capacity(rel.as_str().len() + 56);
    b.extend_from_slice(rel.as_str().as_bytes());
    for v in stat_fields(md) {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_sorted_depth_first_skipping_top_level_dirs_and_not_following_links() {
        let root = crate::fixture::scratch_dir("walk-entries");
        for d in ["a/b", "_output/x", "c", "z/_output"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("a/b/f"), "1").unwrap();
        std::fs::write(root.join("c/g"), "2").unwrap();
        std::os::unix::fs::symlink("../a", root.join("c/link")).unwrap();
        let mut seen = Vec::new();
        entries(&root, &["_output"], |rel, md| seen.push(format!("{rel}{}", if md.is_dir() { "/" } else { "" })))
            .unwrap();
        assert_eq!(seen, ["a/", "a/b/", "a/b/f", "c/", "c/g", "c/link", "z/", "z/_output/"]);
    }
}
