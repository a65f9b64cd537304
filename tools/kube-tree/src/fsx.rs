//! File changes that never leave a half-done state: temp file + rename, symlink swaps.

use crate::fail::Result;
use camino::{Utf8Path, Utf8PathBuf};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

/// A sibling name for a temporary: same directory, so the final rename is atomic.
pub fn temp_sibling(path: &Utf8Path, tag: &str) -> Utf8PathBuf {
    let name = path.file_name().unwrap_or("tmp");
    let parent = path.parent().unwrap_or(Utf8Path::new("."));
    parent.join(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Removes temps of `path` (see [`temp_sibling`]) left by a process that no longer runs, e.g. one
/// killed between writing its temp and the rename.
pub fn remove_stale_temps(path: &Utf8Path) {
    let (Some(name), Some(parent)) = (path.file_name(), path.parent()) else { return };
    let prefix = format!(".{name}.");
    let Ok(rd) = std::fs::read_dir(parent) else { return };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = n.strip_prefix(&prefix) else { continue };
        let Some((_, pid)) = rest.rsplit_once('-') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes `contents` to `path` through a temp file in the same directory and a rename,
/// keeping the mode of the file it replaces.
pub fn atomic_write(path: &Utf8Path, contents: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path, "new");
    let mode = std::fs::metadata(path).ok().map(|m| m.permissions().mode());
    let res = (|| -> Result<()> {
        let mut f = fs_err::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        if let Some(m) = mode {
            fs_err::set_permissions(&tmp, std::fs::Permissions::from_mode(m))?;
        }
        fs_err::rename(&tmp, path)?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Puts a symlink `path -> target` in place of whatever non-directory is at `path`
/// (nothing, a file, another link), atomically: the link is made aside and renamed over.
pub fn swap_in_symlink(path: &Utf8Path, target: &str) -> Result<()> {
    let tmp = temp_sibling(path, "link");
    let _ = std::fs::remove_file(&tmp);
    fs_err::os::unix::fs::symlink(target, &tmp)?;
    if let Err(e) = fs_err::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(())
}

/// Replaces a real directory by a symlink: the directory is moved aside first, the link put in
/// place, and only then is the old directory deleted, so a failure leaves the directory intact.
pub fn replace_dir_with_symlink(path: &Utf8Path, target: &str) -> Result<()> {
    let aside = temp_sibling(path, "old");
    fs_err::rename(path, &aside)?;
    if let Err(e) = fs_err::os::unix::fs::symlink(target, path) {
        let _ = std::fs::rename(&aside, path);
        return Err(e.into());
    }
    fs_err::remove_dir_all(&aside)?;
    Ok(())
}

/// Writes several files all-or-nothing, even across a kill: every new content goes to a temp
/// sibling first (a failure there removes the temps and changes nothing); then a journal listing
/// the renames is committed (atomically), the temps are renamed into place and the journal is
/// removed. A process killed after the commit leaves the journal, and [`recover`] (run by the
/// next invocation) finishes the renames; killed before it, nothing changed and the temps are
/// strays that [`remove_stale_temps`] sweeps. A rename that fails outright rolls back.
pub fn write_all_or_nothing(files: &[(Utf8PathBuf, Vec<u8>)], journal: &Utf8Path) -> Result<()> {
    recover(journal)?;
    let mut temps: Vec<(Utf8PathBuf, &Utf8PathBuf)> = Vec::new();
    let staged = (|| -> Result<()> {
        for (path, contents) in files {
            let tmp = temp_sibling(path, "new");
            let mode = fs_err::metadata(path)?.permissions().mode();
            let mut f = fs_err::File::create(&tmp)?;
            temps.push((tmp.clone(), path));
            f.write_all(contents)?;
            f.sync_all()?;
            fs_err::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        }
        let plan: String = temps.iter().map(|(t, p)| format!("{t}\t{p}\n")).collect();
        atomic_write(journal, plan.as_bytes())
    })();
    if let Err(e) = staged {
        for (tmp, _) in &temps {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    let mut olds: Vec<(&Utf8PathBuf, Vec<u8>)> = Vec::new();
    for (i, (tmp, path)) in temps.iter().enumerate() {
        let old = fs_err::read(path)?;
        if let Err(e) = fs_err::rename(tmp, path) {
            for (p, content) in &olds {
                let _ = atomic_write(p, content);
            }
            for (t, _) in &temps[i..] {
                let _ = std::fs::remove_file(t);
            }
            let _ = std::fs::remove_file(journal);
            return Err(e.into());
        }
        olds.push((path, old));
    }
    fs_err::remove_file(journal)?;
    Ok(())
}

/// Finishes a committed [`write_all_or_nothing`] that was killed half-way: renames every temp
/// the journal lists that is still there. Returns whether there was anything to finish.
pub fn recover(journal: &Utf8Path) -> Result<bool> {
    remove_stale_temps(journal);
    let text = match std::fs::read_to_string(journal) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(crate::fail::Fail::new(format!("cannot read {journal}: {e}"))),
    };
    for line in text.lines() {
        if let Some((tmp, path)) = line.split_once('\t') {
            if Utf8Path::new(tmp).exists() {
                fs_err::rename(tmp, path)?;
            }
        }
    }
    fs_err::remove_file(journal)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> Utf8PathBuf {
        let d = Utf8PathBuf::from_path_buf(std::env::temp_dir()).unwrap().join(format!("kube-tree-fsx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn atomic_write_keeps_mode_and_leaves_no_temp() {
        let d = scratch("aw");
        let f = d.join("x.sh");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o751)).unwrap();
        atomic_write(&f, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o751);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_into_missing_dir_fails_cleanly() {
        let d = scratch("aw2");
        assert!(atomic_write(&d.join("nope/x"), b"y").is_err());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
    }

    #[test]
    fn symlink_swaps() {
        let d = scratch("sl");
        let p = d.join("api");
        std::fs::write(&p, "../../staging/src/k8s.io/api").unwrap();
        swap_in_symlink(&p, "target-a").unwrap();
        assert_eq!(std::fs::read_link(&p).unwrap().to_str(), Some("target-a"));
        swap_in_symlink(&p, "target-b").unwrap();
        assert_eq!(std::fs::read_link(&p).unwrap().to_str(), Some("target-b"));
        let dir = d.join("copy");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f.go"), "package x").unwrap();
        replace_dir_with_symlink(&dir, "target-c").unwrap();
        assert_eq!(std::fs::read_link(&dir).unwrap().to_str(), Some("target-c"));
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
    }

    #[test]
    fn writes_all_and_recovers_a_committed_journal() {
        let d = scratch("aon");
        let (a, b, j) = (d.join("a"), d.join("b"), d.join(".journal"));
        std::fs::write(&a, "a0").unwrap();
        std::fs::write(&b, "b0").unwrap();
        write_all_or_nothing(&[(a.clone(), b"a1".to_vec()), (b.clone(), b"b1".to_vec())], &j).unwrap();
        assert_eq!((std::fs::read_to_string(&a).unwrap(), std::fs::read_to_string(&b).unwrap()), ("a1".into(), "b1".into()));
        assert!(!j.exists());
        // A run killed after its commit: the journal names a temp not yet renamed.
        let t = temp_sibling(&b, "new");
        std::fs::write(&t, "b2").unwrap();
        std::fs::write(&j, format!("{t}\t{b}\n")).unwrap();
        assert!(recover(&j).unwrap());
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "b2");
        assert!(!j.exists() && !t.exists());
        assert!(!recover(&j).unwrap());
        // A file that cannot be staged: nothing changes.
        assert!(write_all_or_nothing(&[(a.clone(), b"a3".to_vec()), (d.join("missing/c"), b"c".to_vec())], &j).is_err());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "a1");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2, "no temps or journal left");
    }
}
