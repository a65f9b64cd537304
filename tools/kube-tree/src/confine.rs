//! The checked path type. Every write, rename, create or delete of the kit goes through a
//! [`Confined`] path: one proven to resolve beneath a root directory (the tree, or the GOPATH
//! setup-gopath fills), symlinks included. The parent is resolved component by component from
//! the root; a symlink on the way is allowed only while its target stays beneath the root, and
//! a `..` may not climb above it. The last component is never followed unless asked
//! ([`Confined::follow`]): a link *is* the entry a write replaces, so writing there cannot leak.
//! Each mutating call resolves the parent again just before it acts, so a directory swapped for
//! a link after the check is still refused.

use crate::fail::{Fail, Result};
use camino::{Utf8Component, Utf8Path, Utf8PathBuf};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

/// A directory that writes may not leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jail {
    root: Utf8PathBuf,
}

/// A path beneath a [`Jail`]'s root: `parent` resolved (canonical), `name` the entry in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    root: Utf8PathBuf,
    parent: Utf8PathBuf,
    name: String,
}

fn escape(p: impl std::fmt::Display, root: &Utf8Path, why: &str) -> Fail {
    Fail::new(format!("refusing {p}: {why}, outside {root}"))
}

fn canonical(p: &Utf8Path) -> std::io::Result<Utf8PathBuf> {
    let c = std::fs::canonicalize(p)?;
    Utf8PathBuf::from_path_buf(c).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "path is not UTF-8"))
}

impl Jail {
    /// `root` must be an existing directory; it is resolved once (like `pwd -P`).
    pub fn new(root: &Utf8Path) -> Result<Jail> {
        let root = canonical(root).map_err(|e| Fail::new(format!("{root}: {e}")))?;
        if !root.is_dir() {
            return Err(Fail::new(format!("{root} is not a directory")));
        }
        Ok(Jail { root })
    }

    pub fn root(&self) -> &Utf8Path {
        &self.root
    }

    /// Resolves `p` (relative to the root, or absolute) beneath the root, or refuses it.
    pub fn path(&self, p: impl AsRef<Utf8Path>) -> Result<Confined> {
        let p = p.as_ref();
        if p.as_str().contains('\0') {
            return Err(Fail::new(format!("refusing {p:?}: a NUL byte in a path")));
        }
        let rel = if p.is_absolute() { self.relative_of_absolute(p)? } else { p.to_owned() };
        let mut parts: Vec<&str> = Vec::new();
        for c in rel.components() {
            match c {
                Utf8Component::Normal(s) => parts.push(s),
                Utf8Component::CurDir => {}
                Utf8Component::ParentDir => parts.push(".."),
                _ => return Err(escape(p, &self.root, "not a relative path")),
            }
        }
        let Some(name) = parts.pop() else {
            return Err(Fail::new(format!("refusing {p}: it names the root itself, not an entry in it")));
        };
        if name == ".." {
            return Err(Fail::new(format!("refusing {p}: it must end in a name, not `..`")));
        }
        let parent = self.resolve_dir(&parts, p)?;
        Ok(Confined { root: self.root.clone(), parent, name: name.to_string() })
    }

    /// An absolute path as a path relative to the root: its deepest existing ancestor is
    /// resolved, the rest is appended as written.
    fn relative_of_absolute(&self, p: &Utf8Path) -> Result<Utf8PathBuf> {
        let mut existing = p;
        let mut tail: Vec<&str> = Vec::new();
        loop {
            if std::fs::symlink_metadata(existing).is_ok() {
                break;
            }
            match (existing.parent(), existing.file_name()) {
                (Some(up), Some(n)) => {
                    tail.push(n);
                    existing = up;
                }
                _ => return Err(escape(p, &self.root, "nothing of it exists")),
            }
        }
        // A directory on the way is resolved whole; the entry itself (when all of `p` exists)
        // may be a link, so only its parent is.
        let (base, last) = match (existing.parent(), existing.file_name()) {
            (Some(up), Some(n)) if tail.is_empty() => (up, Some(n)),
            _ => (existing, None),
        };
        let base = canonical(base).map_err(|e| Fail::new(format!("{p}: {e}")))?;
        let mut rel =
            base.strip_prefix(&self.root).map_err(|_| escape(p, &self.root, "it is not beneath the root"))?.to_owned();
        rel.extend(last);
        rel.extend(tail.iter().rev());
        if rel.as_str().is_empty() {
            return Err(Fail::new(format!("refusing {p}: it names the root itself, not an entry in it")));
        }
        Ok(rel)
    }

    /// Writes the file at `p` atomically, creating its directory, all beneath the root.
    pub fn write_file(&self, p: impl AsRef<Utf8Path>, contents: &[u8]) -> Result<()> {
        let f = self.path(p)?;
        if let Some(dir) = f.rel().parent().filter(|d| !d.as_str().is_empty()) {
            self.path(dir)?.create_dir_all()?;
        }
        f.write_atomic(contents)
    }

    /// Walks `parts` from the root; every step must stay beneath it.
    fn resolve_dir(&self, parts: &[&str], shown: &Utf8Path) -> Result<Utf8PathBuf> {
        let mut cur = self.root.clone();
        for part in parts {
            if *part == ".." {
                if cur == self.root {
                    return Err(escape(shown, &self.root, "`..` climbs above the root"));
                }
                cur.pop();
                continue;
            }
            let next = cur.join(part);
            match std::fs::symlink_metadata(&next) {
                Ok(md) if md.file_type().is_symlink() => {
                    let t = canonical(&next).map_err(|e| {
                        Fail::new(format!("refusing {shown}: {next} is a link that does not resolve ({e})"))
                    })?;
                    if !t.starts_with(&self.root) {
                        return Err(escape(shown, &self.root, &format!("{next} is a symlink to {t}")));
                    }
                    cur = t;
                }
                Ok(md) if !md.is_dir() => {
                    return Err(Fail::new(format!("refusing {shown}: {next} is not a directory")))
                }
                _ => cur = next,
            }
        }
        Ok(cur)
    }
}

impl Confined {
    /// The path to hand to the system (resolved parent + entry name).
    pub fn path(&self) -> Utf8PathBuf {
        self.parent.join(&self.name)
    }
    /// The path relative to the root.
    pub fn rel(&self) -> Utf8PathBuf {
        self.path().strip_prefix(&self.root).expect("beneath the root").to_owned()
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn parent(&self) -> &Utf8Path {
        &self.parent
    }
    pub fn jail(&self) -> Jail {
        Jail { root: self.root.clone() }
    }
    /// An entry beneath this one (a directory).
    pub fn join(&self, rel: impl AsRef<Utf8Path>) -> Result<Confined> {
        self.jail().path(self.rel().join(rel))
    }
    /// Another entry of the same directory.
    pub fn sibling(&self, name: &str) -> Confined {
        Confined { root: self.root.clone(), parent: self.parent.clone(), name: name.to_string() }
    }
    /// A temporary sibling `.NAME.TAG-PID`: same directory, so the final rename is atomic.
    pub fn temp(&self, tag: &str) -> Confined {
        // A number of its own for each temp of the process: two threads writing one file (a
        // fan-out's shares, each on its engine) never make the same temp.
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sibling(&format!(".{}.{tag}-{}-{n}", self.name, std::process::id()))
    }

    /// The entry a link names, when it is one and its target stays beneath the root
    /// (a carrier kept as a link is edited at its target, never replaced by a file).
    pub fn follow(&self) -> Result<Confined> {
        let p = self.path();
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_symlink() => {
                let t = canonical(&p)
                    .map_err(|e| Fail::new(format!("refusing {}: a link that does not resolve ({e})", self.rel())))?;
                if !t.starts_with(&self.root) {
                    return Err(escape(self.rel(), &self.root, &format!("it is a symlink to {t}")));
                }
                self.jail().path(t)
            }
            _ => Ok(self.clone()),
        }
    }

    /// Resolves the parent again, right before a change: it must still be where it was.
    fn recheck(&self) -> Result<Utf8PathBuf> {
        let again = self.jail().path(self.rel())?;
        if again.parent != self.parent {
            return Err(escape(self.rel(), &self.root, "its directory moved since it was checked"));
        }
        Ok(self.path())
    }

    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(self.path()).is_ok()
    }

    /// Creates this directory and its missing parents, each beneath the root.
    pub fn create_dir_all(&self) -> Result<()> {
        let rel = self.rel();
        let mut acc = Utf8PathBuf::new();
        for c in rel.components() {
            acc.push(c);
            let step = self.jail().path(&acc)?;
            let p = step.recheck()?;
            match std::fs::symlink_metadata(&p) {
                Ok(md) if md.is_dir() => {}
                Ok(md) if md.file_type().is_symlink() => {
                    step.follow()?;
                }
                Ok(_) => return Err(Fail::new(format!("{p} exists and is not a directory"))),
                Err(_) => match std::fs::create_dir(&p) {
                    Ok(()) => {}
                    // Another thread (a fan-out share) made it between the look and the make:
                    // fine when what is there now is a real directory.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        if !std::fs::symlink_metadata(&p).is_ok_and(|md| md.is_dir()) {
                            return Err(Fail::new(format!("{p} appeared meanwhile and is not a directory")));
                        }
                    }
                    Err(e) => return Err(Fail::new(format!("failed to create directory `{p}`: {e}"))),
                },
            }
        }
        Ok(())
    }

    /// Writes `contents` through a temp sibling and a rename, keeping the mode of the file it
    /// replaces. A link in place is replaced by the file (use [`Confined::follow`] first to
    /// edit its target instead).
    pub fn write_atomic(&self, contents: &[u8]) -> Result<()> {
        let path = self.recheck()?;
        let tmp = self.temp("new");
        let mode = std::fs::symlink_metadata(&path).ok().filter(|m| m.is_file()).map(|m| m.permissions().mode());
        let res = (|| -> Result<()> {
            tmp.write_new(contents, mode)?;
            fs_err::rename(tmp.path(), &path)?;
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(tmp.path());
        }
        res
    }

    /// Dates this entry now, never through a link (a build's output, made newer than what it
    /// was made from).
    pub fn touch(&self) -> Result<()> {
        let path = self.recheck()?;
        let now = filetime::FileTime::now();
        filetime::set_symlink_file_times(&path, now, now).map_err(|e| Fail::new(format!("{}: {e}", self.rel())))
    }

    /// Creates this (new) file with `contents` and `mode`, synced to disk; never follows a link.
    pub fn write_new(&self, contents: &[u8], mode: Option<u32>) -> Result<()> {
        use fs_err::os::unix::fs::OpenOptionsExt;
        let path = self.recheck()?;
        let mut f = fs_err::OpenOptions::new().write(true).create_new(true).mode(mode.unwrap_or(0o644)).open(&path)?;
        f.write_all(contents)?;
        f.sync_all()?;
        if let Some(m) = mode {
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(m))?;
        }
        Ok(())
    }

    /// Sets the permission bits (never through a link).
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        let path = self.recheck()?;
        if std::fs::symlink_metadata(&path)?.file_type().is_symlink() {
            return Err(Fail::new(format!("refusing to chmod {}: it is a link", self.rel())));
        }
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    /// Renames this entry over `to` (same root).
    pub fn rename_to(&self, to: &Confined) -> Result<()> {
        let from = self.recheck()?;
        let dest = to.recheck()?;
        fs_err::rename(from, dest)?;
        Ok(())
    }

    /// A second name for this file (`to` must not exist): a backup that keeps inode and mtime.
    pub fn hard_link_to(&self, to: &Confined) -> Result<()> {
        let from = self.recheck()?;
        let dest = to.recheck()?;
        fs_err::hard_link(from, dest)?;
        Ok(())
    }

    /// Removes a file or a link (never what a link points to). Missing is fine.
    pub fn remove_file(&self) -> Result<()> {
        let p = self.recheck()?;
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Fail::new(format!("cannot remove {p}: {e}"))),
            _ => Ok(()),
        }
    }

    /// Removes a directory and everything in it (links inside are removed, never followed);
    /// a link in its place is removed as a link.
    pub fn remove_dir_all(&self) -> Result<()> {
        let p = self.recheck()?;
        match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Ok(md) if md.file_type().is_symlink() || !md.is_dir() => self.remove_file(),
            _ => Ok(fs_err::remove_dir_all(&p)?),
        }
    }

    /// Makes this entry a link to `target` (a text, not resolved: relative links stay relative).
    pub fn symlink(&self, target: &str) -> Result<()> {
        let p = self.recheck()?;
        fs_err::os::unix::fs::symlink(target, p)?;
        Ok(())
    }
}

impl std::fmt::Display for Confined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> (Utf8PathBuf, Utf8PathBuf) {
        // Removed when the test process exits (fixture's scratch directories).
        let base = crate::fixture::scratch_dir(&format!("confine-{name}"));
        let (root, outside) = (base.join("tree"), base.join("outside"));
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        (canonical(&root).unwrap(), canonical(&outside).unwrap())
    }

    #[test]
    fn stays_beneath_the_root() {
        let (root, outside) = scratch("beneath");
        let j = Jail::new(&root).unwrap();
        assert_eq!(j.path("a/b/f").unwrap().path(), root.join("a/b/f"));
        assert_eq!(j.path("a/../a/f").unwrap().rel(), "a/f");
        assert_eq!(j.path(root.join("a/new/f")).unwrap().rel(), "a/new/f");
        assert_eq!(j.path(root.join("new/f")).unwrap().rel(), "new/f");
        assert_eq!(j.path(root.join("a")).unwrap().rel(), "a");
        assert!(j.path(&root).is_err());
        for bad in ["../outside/x", "a/../../outside/x", "..", "", "/etc/passwd"] {
            assert!(j.path(bad).is_err(), "{bad}");
        }
        assert!(j.path(outside.join("x")).is_err());
        std::os::unix::fs::symlink(&outside, root.join("a/out")).unwrap();
        let e = j.path("a/out/x").unwrap_err();
        assert!(e.msg.contains("symlink to"), "{e}");
        assert!(j.path(root.join("a/out/x")).is_err());
        // A link inside the tree is fine as a directory on the way and as the entry itself.
        std::os::unix::fs::symlink("b", root.join("a/in")).unwrap();
        assert_eq!(j.path("a/in/f").unwrap().path(), root.join("a/b/f"));
        assert_eq!(j.path("a/out").unwrap().rel(), "a/out", "the entry itself is not followed");
        assert!(j.path("a/out").unwrap().follow().is_err());
        std::fs::write(root.join("a/b/t"), "x").unwrap();
        std::os::unix::fs::symlink("b/t", root.join("a/lt")).unwrap();
        assert_eq!(j.path("a/lt").unwrap().follow().unwrap().rel(), "a/b/t");
    }

    #[test]
    fn writes_refuse_a_directory_swapped_for_a_link() {
        let (root, outside) = scratch("swap");
        let j = Jail::new(&root).unwrap();
        let c = j.path("a/b/f").unwrap();
        std::fs::rename(root.join("a/b"), root.join("a/b.old")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/b")).unwrap();
        assert!(c.write_atomic(b"x").is_err());
        assert!(j.path("a/b/sub").and_then(|c| c.create_dir_all()).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn atomic_write_keeps_mode_and_leaves_no_temp() {
        let (root, _) = scratch("aw");
        let j = Jail::new(&root).unwrap();
        let f = j.path("a/x.sh").unwrap();
        std::fs::write(f.path(), "old").unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o751)).unwrap();
        f.write_atomic(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "new");
        assert_eq!(std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777, 0o751);
        assert_eq!(std::fs::read_dir(root.join("a")).unwrap().count(), 2);
        j.path("c/d/e").unwrap().create_dir_all().unwrap();
        assert!(root.join("c/d/e").is_dir());
    }

    #[test]
    fn threads_making_one_directory_all_succeed() {
        // Fan-out shares of one tree make its `_output` at the same moment.
        let (root, _) = scratch("race");
        let j = Jail::new(&root).unwrap();
        for round in 0..50 {
            let rel = format!("r{round}/x/y");
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            j.path(&rel).unwrap().create_dir_all()
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().unwrap().unwrap();
                }
            });
            assert!(root.join(&rel).is_dir());
        }
    }
}
