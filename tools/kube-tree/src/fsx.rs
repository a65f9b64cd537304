//! File changes that never leave a half-done state, all through [`Confined`] paths: temp file +
//! rename, symlink swaps, and several files at once, all-or-nothing even across a kill.

use crate::confine::{Confined, Jail};
use crate::fail::{Fail, Result};
use std::os::unix::fs::PermissionsExt;

/// The temps a writer of `path` makes beside it: `.NAME.new-PID-N` (new content) and
/// `.NAME.old-PID-N` (a hard link to the old file, for the rollback); `link` and `old` for
/// links. N tells the process's temps apart; earlier versions wrote none (`.NAME.new-PID`).
const TEMP_TAGS: [&str; 3] = ["new", "old", "link"];

/// Whether `name` is a temp this kit makes for `target` ([`Confined::temp`]): its tag and PID.
fn temp_of<'a>(name: &'a str, target: &str) -> Option<(&'a str, u32)> {
    let rest = name.strip_prefix('.')?.strip_prefix(target)?.strip_prefix('.')?;
    let (tag, id) = rest.split_once('-')?;
    let (pid, n) = id.split_once('-').unwrap_or((id, "0"));
    let digits = |d: &str| !d.is_empty() && d.len() <= 10 && d.bytes().all(|b| b.is_ascii_digit());
    if !TEMP_TAGS.contains(&tag) || !digits(pid) || !digits(n) {
        return None;
    }
    Some((tag, pid.parse().ok()?))
}

/// Temps of `path` (see [`Confined::temp`]) left by a process that no longer runs, e.g. one
/// killed between writing its temp and the rename. Reads only.
pub fn stale_temps(path: &Confined) -> Vec<Confined> {
    let Ok(rd) = std::fs::read_dir(path.parent()) else { return Vec::new() };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(n) = e.file_name().into_string() else { continue };
        let Some((_, pid)) = temp_of(&n, path.name()) else { continue };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            out.push(path.sibling(&n));
        }
    }
    out.sort_by(|a, b| a.name().cmp(b.name()));
    out
}

/// Puts a symlink `path -> target` in place of whatever non-directory is at `path`
/// (nothing, a file, another link), atomically: the link is made aside and renamed over.
pub fn swap_in_symlink(path: &Confined, target: &str) -> Result<()> {
    let tmp = path.temp("link");
    tmp.remove_file()?;
    tmp.symlink(target)?;
    if let Err(e) = tmp.rename_to(path) {
        let _ = tmp.remove_file();
        return Err(e);
    }
    Ok(())
}

/// Replaces a real directory by a symlink: the directory is moved aside first, the link put in
/// place, and only then is the old directory deleted, so a failure leaves the directory intact.
pub fn replace_dir_with_symlink(path: &Confined, target: &str) -> Result<()> {
    let aside = path.temp("old");
    path.rename_to(&aside)?;
    if let Err(e) = path.symlink(target) {
        let _ = aside.rename_to(path);
        return Err(e);
    }
    aside.remove_dir_all()
}

/// The access and modification times of directories, to put back after an aborted change (an
/// abort leaves every file and directory as it found them, times included).
#[derive(Debug)]
pub struct DirTimes(Vec<(std::path::PathBuf, filetime::FileTime, filetime::FileTime)>);

impl DirTimes {
    /// The times of the directories holding `entries`.
    pub fn take<'a>(entries: impl IntoIterator<Item = &'a Confined>) -> DirTimes {
        DirTimes::of(entries.into_iter().map(|e| e.parent().as_std_path().to_owned()))
    }
    pub fn of(dirs: impl IntoIterator<Item = std::path::PathBuf>) -> DirTimes {
        let mut v: Vec<_> = Vec::new();
        for d in dirs {
            if v.iter().any(|(p, _, _)| *p == d) {
                continue;
            }
            if let Ok(md) = std::fs::metadata(&d) {
                v.push((
                    d,
                    filetime::FileTime::from_last_access_time(&md),
                    filetime::FileTime::from_last_modification_time(&md),
                ));
            }
        }
        DirTimes(v)
    }
    pub fn restore(&self) {
        for (d, a, m) in &self.0 {
            let _ = filetime::set_file_times(d, *a, *m);
        }
    }
}

/// Another process holds a [`WriterLock`]: its pid as it wrote it in the lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub pid: Option<u32>,
}

/// One writer at a time: an exclusive `flock` on a file (beside the journal it guards), held
/// for the writer's whole life. The kernel releases it when the process ends, however it ends,
/// so a killed writer leaves the file but never the lock. Dropped, the file is removed.
#[derive(Debug)]
pub struct WriterLock {
    file: std::fs::File,
    path: Confined,
    /// The directory's times before the lock file was made, and its mtime right after: put
    /// back when the lock goes if nothing else changed the directory (a refusal changes nothing).
    dir_before: Option<(DirTimes, Option<filetime::FileTime>)>,
}

fn dir_mtime(c: &Confined) -> Option<filetime::FileTime> {
    std::fs::metadata(c.parent()).ok().map(|m| filetime::FileTime::from_last_modification_time(&m))
}

/// Opens a lock file without following a link or waiting on a FIFO; only a regular file.
fn open_lock(path: &Confined, create: bool) -> Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let checked = path.jail().path(path.rel())?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(checked.path());
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
        Err(e) => return Err(Fail::new(format!("cannot open the lock {}: {e}", path.rel()))),
    };
    if !file.metadata()?.is_file() {
        return Err(Fail::new(format!("refusing the lock {}: not a regular file", path.rel())));
    }
    Ok(Some(file))
}

fn flock(file: &std::fs::File, op: libc::c_int) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor this function borrows.
    unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) == 0 }
}

/// The pid a holder wrote (a few digits; anything else is unknown).
fn pid_in(file: &std::fs::File) -> Option<u32> {
    use std::io::Read;
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether a writer holds the lock at `path` now (reads only; a missing file: nobody).
pub fn lock_holder(path: &Confined) -> Result<Option<Busy>> {
    let Some(file) = open_lock(path, false)? else { return Ok(None) };
    if flock(&file, libc::LOCK_SH) {
        return Ok(None);
    }
    Ok(Some(Busy { pid: pid_in(&file) }))
}

impl WriterLock {
    /// Takes the lock, or says who holds it. A reader's brief shared probe ([`lock_holder`])
    /// is waited out (a few tries); a writer is not.
    pub fn acquire(path: &Confined) -> Result<std::result::Result<WriterLock, Busy>> {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;
        for _ in 0..25 {
            let before = (!path.exists()).then(|| DirTimes::take([path]));
            let file = open_lock(path, true)?.expect("created");
            let dir_before = before.map(|t| (t, dir_mtime(path)));
            if !flock(&file, libc::LOCK_EX) {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            // The previous holder may have removed the file between our open and our lock:
            // then the lock is on a name nobody else sees, and must be taken again.
            let same = std::fs::symlink_metadata(path.path())
                .is_ok_and(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0));
            if !same {
                continue;
            }
            file.set_len(0)?;
            (&file).write_all(std::process::id().to_string().as_bytes())?;
            return Ok(Ok(WriterLock { file, path: path.clone(), dir_before }));
        }
        let pid = open_lock(path, false)?.and_then(|f| pid_in(&f));
        Ok(Err(Busy { pid }))
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // Removed while still held, and only if the name is still this file.
        let ours = self.file.metadata().map(|m| m.ino()).ok();
        if std::fs::symlink_metadata(self.path.path()).ok().map(|m| m.ino()) == ours {
            let untouched = self.dir_before.as_ref().filter(|(_, after)| dir_mtime(&self.path) == *after);
            let _ = self.path.remove_file();
            if let Some((times, _)) = untouched {
                times.restore();
            }
        }
    }
}

/// First line of a journal: which writer made it and in which format.
const JOURNAL_HEADER: &str = "# k8s-build-kit rename journal v2";

/// One committed rename: `target` gets the content of `new`; `old` is the backup link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub target: Confined,
    pub new: Confined,
    pub old: Confined,
}

impl Entry {
    fn stage(target: &Confined) -> Entry {
        Entry { target: target.clone(), new: target.temp("new"), old: target.temp("old") }
    }
    fn line(&self) -> String {
        format!("{}\t{}\t{}\n", self.target.rel(), self.new.name(), self.old.name())
    }
    fn unstage(&self) {
        let _ = self.new.remove_file();
        let _ = self.old.remove_file();
    }
}

/// Reads a journal without acting on it. Nothing in it is obeyed unless it is one of ours:
/// a target beneath the root, and temps named by our pattern in the target's own directory.
pub fn pending(journal: &Confined) -> Result<Option<Vec<Entry>>> {
    // Confined and capped: a journal that is a FIFO, a link out or /dev/zero is refused.
    let Some(text) = journal.read_bytes(crate::read::Cap::LIST)? else { return Ok(None) };
    let bad = |n: usize, why: &str| {
        Fail::new(format!("{}:{n}: {why}; not obeyed (inspect it, then remove it)", journal.rel()))
    };
    let text = String::from_utf8(text).map_err(|_| bad(1, "not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(JOURNAL_HEADER) {
        return Err(bad(1, "not a journal this kit wrote"));
    }
    let jail: Jail = journal.jail();
    let mut out = Vec::new();
    for (i, l) in lines.enumerate() {
        let n = i + 2;
        let f: Vec<&str> = l.split('\t').collect();
        let [target, new, old] = f[..] else { return Err(bad(n, "not three tab-separated fields")) };
        if target.starts_with('/') {
            return Err(bad(n, "an absolute path"));
        }
        let target = jail.path(target).map_err(|e| bad(n, &e.msg))?;
        for (name, tag) in [(new, "new"), (old, "old")] {
            if temp_of(name, target.name()).map(|(t, _)| t) != Some(tag) {
                return Err(bad(n, &format!("`{name}` is not a temp this kit names for {}", target.rel())));
            }
        }
        out.push(Entry { new: target.sibling(new), old: target.sibling(old), target });
    }
    Ok(Some(out))
}

/// A test hook: `KUBE_KIT_TEST_RENAME_PAUSE_MS` stretches the window between the journal's
/// commit and each rename, so the kill tests can land kills there on purpose.
fn test_pause() -> impl Fn() {
    let ms: u64 =
        std::env::var("KUBE_KIT_TEST_RENAME_PAUSE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0).min(1000);
    move || {
        if ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}

/// A test hook that the test controls: with `KUBE_KIT_TEST_PAUSE_DIR` naming a directory that
/// holds two FIFOs, `at` and `go`, the writer announces each point (`staging N`, `renaming N`)
/// by one line into `at`, then waits for a line from `go`. The test holds the writer at the
/// point it chose, and may kill it there: kills land in each phase by construction, not by timing.
fn pause_point(point: &str, n: usize) {
    use std::io::{Read, Write};
    let Some(dir) = std::env::var_os("KUBE_KIT_TEST_PAUSE_DIR") else { return };
    let dir = std::path::PathBuf::from(dir);
    if let Ok(mut at) = std::fs::OpenOptions::new().write(true).open(dir.join("at")) {
        let _ = writeln!(at, "{point} {n}");
    }
    // Only a byte read lets the writer go on: an end of file means the test's previous release
    // had not closed its end yet when this open paired with it, so open again and wait.
    loop {
        let Ok(mut go) = std::fs::File::open(dir.join("go")) else { return };
        match go.read(&mut [0u8; 1]) {
            Ok(1) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

/// A test hook the lock tests control without timing: with `KUBE_KIT_TEST_RENAME_GATE=DIR`
/// (a directory of the test's, holding a FIFO `gate`), a writer that has committed its journal
/// writes its pid to `DIR/reached` and waits until the test opens and closes `DIR/gate`.
fn test_gate() -> Result<()> {
    let Some(dir) = std::env::var_os("KUBE_KIT_TEST_RENAME_GATE") else { return Ok(()) };
    let dir = camino::Utf8PathBuf::from_path_buf(dir.into()).map_err(|_| Fail::new("gate dir is not UTF-8"))?;
    Jail::new(&dir)?.write_file("reached", std::process::id().to_string().as_bytes())?;
    let mut gate = fs_err::File::open(dir.join("gate"))?;
    std::io::copy(&mut gate, &mut std::io::sink())?;
    Ok(())
}

/// Finishes a committed [`write_all_or_nothing`] that was killed half-way: renames every temp
/// still there over its target and drops the backups. Returns whether there was anything.
pub fn recover(journal: &Confined) -> Result<bool> {
    let Some(entries) = pending(journal)? else { return Ok(false) };
    for e in &entries {
        if e.new.exists() {
            e.new.rename_to(&e.target)?;
        }
    }
    for e in &entries {
        e.old.remove_file()?;
    }
    journal.remove_file()?;
    Ok(true)
}

/// Writes several files all-or-nothing, even across a kill. Staging: each new content goes to
/// a temp sibling and each old file gets a backup hard link (a file that cannot take one, such
/// as an immutable one, stops everything here, before any change). Then a journal of the renames
/// is committed, the temps are renamed into place, and the backups and journal removed. Killed
/// after the commit, [`recover`] (the next writer) finishes; killed before, the temps are
/// strays that [`stale_temps`] finds (the next writer removes them). A rename that fails puts the backups back, so untouched
/// and restored files keep their inode and mtime.
pub fn write_all_or_nothing(files: &[(Confined, Vec<u8>)], journal: &Confined) -> Result<()> {
    recover(journal)?;
    let entries: Vec<Entry> = files.iter().map(|(t, _)| Entry::stage(t)).collect();
    // Staging adds and removes names in these directories; an abort puts their times back.
    let dirs = DirTimes::take(files.iter().map(|(t, _)| t).chain([journal]));
    let staged = (|| -> Result<()> {
        for (i, (e, (target, contents))) in entries.iter().zip(files).enumerate() {
            pause_point("staging", i + 1);
            let md = std::fs::symlink_metadata(target.path()).map_err(|err| Fail::new(format!("{target}: {err}")))?;
            if !md.is_file() {
                return Err(Fail::new(format!("{} is not a regular file", target.rel())));
            }
            e.new.write_new(contents, Some(md.permissions().mode()))?;
            target.hard_link_to(&e.old)?;
        }
        let plan: String =
            std::iter::once(format!("{JOURNAL_HEADER}\n")).chain(entries.iter().map(Entry::line)).collect();
        journal.write_atomic(plan.as_bytes())
    })();
    if let Err(e) = staged {
        entries.iter().for_each(Entry::unstage);
        dirs.restore();
        return Err(e);
    }
    let pause = test_pause();
    // The gate holds a half-done write: after the first rename when there are several.
    let gate_at = entries.len().min(2) - 1;
    for (i, e) in entries.iter().enumerate() {
        pause();
        pause_point("renaming", i + 1);
        if i == gate_at {
            test_gate()?;
        }
        if let Err(err) = e.new.rename_to(&e.target) {
            for done in &entries[..i] {
                let _ = done.old.rename_to(&done.target);
            }
            entries.iter().for_each(Entry::unstage);
            let _ = journal.remove_file();
            dirs.restore();
            return Err(err);
        }
    }
    for e in &entries {
        e.old.remove_file()?;
    }
    journal.remove_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> Jail {
        // Removed when the test process exits (fixture's scratch directories).
        let d = crate::fixture::scratch_dir(&format!("fsx-{name}"));
        Jail::new(&d).unwrap()
    }

    fn count(j: &Jail) -> usize {
        std::fs::read_dir(j.root()).unwrap().count()
    }

    #[test]
    fn symlink_swaps() {
        let j = scratch("sl");
        let p = j.path("api").unwrap();
        std::fs::write(p.path(), "../../staging/src/k8s.io/api").unwrap();
        swap_in_symlink(&p, "target-a").unwrap();
        assert_eq!(std::fs::read_link(p.path()).unwrap().to_str(), Some("target-a"));
        swap_in_symlink(&p, "target-b").unwrap();
        assert_eq!(std::fs::read_link(p.path()).unwrap().to_str(), Some("target-b"));
        let dir = j.path("copy").unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f.go"), "package x").unwrap();
        replace_dir_with_symlink(&dir, "target-c").unwrap();
        assert_eq!(std::fs::read_link(dir.path()).unwrap().to_str(), Some("target-c"));
        assert_eq!(count(&j), 2);
    }

    #[test]
    fn writes_all_and_recovers_a_committed_journal() {
        let j = scratch("aon");
        let (a, b, jr) = (j.path("a").unwrap(), j.path("b").unwrap(), j.path(".journal").unwrap());
        std::fs::write(a.path(), "a0").unwrap();
        std::fs::write(b.path(), "b0").unwrap();
        write_all_or_nothing(&[(a.clone(), b"a1".to_vec()), (b.clone(), b"b1".to_vec())], &jr).unwrap();
        assert_eq!(
            (std::fs::read_to_string(a.path()).unwrap(), std::fs::read_to_string(b.path()).unwrap()),
            ("a1".into(), "b1".into())
        );
        assert!(!jr.exists());
        assert_eq!(count(&j), 2, "no temps, backups or journal left");
        // A run killed after its commit: the journal names a temp not yet renamed.
        let e = Entry::stage(&b);
        std::fs::write(e.new.path(), "b2").unwrap();
        std::fs::hard_link(b.path(), e.old.path()).unwrap();
        std::fs::write(jr.path(), format!("{JOURNAL_HEADER}\n{}", e.line())).unwrap();
        assert_eq!(pending(&jr).unwrap().unwrap().len(), 1);
        assert!(recover(&jr).unwrap());
        assert_eq!(std::fs::read_to_string(b.path()).unwrap(), "b2");
        assert_eq!(count(&j), 2);
        assert!(!recover(&jr).unwrap());
        // A file that cannot be staged: nothing changes, not even the inode of the others.
        let ino = |c: &Confined| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(c.path()).unwrap());
        let before = ino(&a);
        assert!(write_all_or_nothing(&[(a.clone(), b"a3".to_vec()), (j.path("missing").unwrap(), b"c".to_vec())], &jr)
            .is_err());
        assert_eq!(std::fs::read_to_string(a.path()).unwrap(), "a1");
        assert_eq!(ino(&a), before);
        assert_eq!(count(&j), 2, "no temps or journal left");
    }

    #[test]
    fn a_journal_that_is_not_ours_is_refused_and_left_alone() {
        let j = scratch("hostile");
        let jr = j.path(".journal").unwrap();
        std::fs::write(j.root().join("victim"), "precious").unwrap();
        std::fs::write(j.root().join(".victim.new-1"), "payload").unwrap();
        for text in [
            "/tmp/payload\t/tmp/precious\n".to_string(),
            format!("{JOURNAL_HEADER}\n../victim\t.victim.new-1\t.victim.old-1\n"),
            format!("{JOURNAL_HEADER}\nvictim\tpayload\t.victim.old-1\n"),
            format!("{JOURNAL_HEADER}\nvictim\t../.victim.new-1\t.victim.old-1\n"),
            format!("{JOURNAL_HEADER}\nvictim\t.victim.old-1\t.victim.new-1\n"),
            format!("{JOURNAL_HEADER}\n/abs/victim\t.victim.new-1\t.victim.old-1\n"),
            format!("{JOURNAL_HEADER}\nvictim .victim.new-1\n"),
        ] {
            std::fs::write(jr.path(), &text).unwrap();
            assert!(recover(&jr).is_err(), "{text:?}");
            assert_eq!(std::fs::read_to_string(j.root().join("victim")).unwrap(), "precious");
            assert!(jr.exists(), "left for the user to inspect");
        }
    }

    #[test]
    fn stale_temps_are_ours_only() {
        let j = scratch("stale");
        let f = j.path("f").unwrap();
        for n in [
            ".f.new-999999999",
            ".f.old-999999999-3",
            ".f.old-999999999-x",
            ".f.bak-999999999",
            ".f.new-x",
            ".g.new-999999999",
            &format!(".f.new-{}", std::process::id()),
        ] {
            std::fs::write(j.root().join(n), "").unwrap();
        }
        let names: Vec<String> = stale_temps(&f).iter().map(|c| c.name().to_string()).collect();
        assert_eq!(names, [".f.new-999999999", ".f.old-999999999-3"]);
    }

    #[test]
    fn one_writer_at_a_time_and_the_lock_file_goes_with_it() {
        let j = scratch("lock");
        let path = j.path(".w.lock").unwrap();
        assert_eq!(lock_holder(&path).unwrap(), None, "no file: nobody");
        let held = WriterLock::acquire(&path).unwrap().expect("free");
        let me = Some(std::process::id());
        assert_eq!(lock_holder(&path).unwrap(), Some(Busy { pid: me }));
        assert_eq!(WriterLock::acquire(&path).unwrap().unwrap_err(), Busy { pid: me });
        drop(held);
        assert!(!path.exists(), "released and removed");
        // A file a killed writer left (no lock on it) is no holder, and is taken over.
        std::fs::write(path.path(), "999999999").unwrap();
        assert_eq!(lock_holder(&path).unwrap(), None);
        drop(WriterLock::acquire(&path).unwrap().expect("stale file"));
        // A lock that is a link, or a FIFO, is refused without following or waiting.
        std::os::unix::fs::symlink("/dev/null", path.path()).unwrap();
        assert!(WriterLock::acquire(&path).is_err() && lock_holder(&path).is_err());
        std::fs::remove_dir_all(j.root()).unwrap();
    }
}
