//! Skipping the sync-in when it would change nothing, and copying out only what the command
//! changed: the two full rsync walks of the tree are most of a no-op run's cost (a second each
//! for the v1.20 tree here), and both are avoidable when it is known what differs.
//!
//! Known means recorded, and verified where it can be:
//! * the host side: every entry of the synced area (all but `_output`, `.make`, `_tmp`, `.git`)
//!   is stamped (mode, size, mtime, ctime, inode) before the sync; the record keeps the sum.
//! * the container side: the build command runs under a small `sh` wrapper that lists every
//!   entry whose ctime moved while it ran (ctime cannot be set back), so what the command
//!   changed in the data container is known, including what it did not copy back. On a local
//!   engine the list is written to a host directory mounted into the build container, which is
//!   started early and waits there for a go while the tree is stamped and synced.
//! * other writers: the scripts' build/run.sh and build/shell.sh replace the rsync daemon
//!   container (same name), and a new data container has a new ID; the record names both.
//!
//! A run writes the record only when it ended with the volume equal to the host on the synced
//! area: every file the command changed came back with the copy-out as an update, or holds the
//! same bytes as the host's (one dry-run rsync by checksum), and every directory it changed
//! holds the same names again. A new file, a deletion (its directory changes), different bytes
//! left in the container by the copy-out filters, a failed or interrupted command, `--no-copy`,
//! a shell: no record, and the next run does the full sync and the full copy-out, as the
//! scripts always do.

use crate::itemized::Item;
use crate::layout::REMOTE_ROOT;
use crate::state::{state_file, StateTag};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::record::{self, Kind};
use kube_tree::{fnv, walk, Cap, Fail, Tree};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// What sync-in leaves out (`- /.make/ - /_tmp/ - /_output/`, `H /.git`).
pub(crate) const UNSYNCED: &[&str] = &["_output", ".make", "_tmp", ".git"];

/// The changed-entries list the wrapper writes in the data container, relative to the tree,
/// for the run tagged `tag`.
fn changed(tag: Option<&StateTag>) -> String {
    state_file(".kit-changed", tag)
}

/// The stamps of the host's synced area: a sum of per-entry hashes, so entries that the
/// copy-out rewrites can be swapped for their new stamps without walking again. Entries are
/// kept as (hash of the path, hash of the entry): no path is stored, this runs on every run.
#[derive(Debug, Default, Clone)]
pub(crate) struct HostStamps {
    pub entries: HashMap<u64, u64>,
    pub sum: u64,
}

impl HostStamps {
    pub(crate) fn take(root: &Utf8Path) -> Result<HostStamps, Fail> {
        let mut s = HostStamps::default();
        walk::entries(root, UNSYNCED, |rel, md| {
            let (path, h) = entry_hash(rel, md);
            s.sum = s.sum.wrapping_add(h);
            s.entries.insert(path, h);
        })?;
        Ok(s)
    }

    /// `rel` was rewritten in place (by the copy-out): its stamp becomes what it is now.
    /// False when it was not stamped before (a new entry) or is gone.
    pub(crate) fn restamp(&mut self, root: &Utf8Path, rel: &Utf8Path) -> bool {
        matches!(self.read_disk(root, rel), (Some(_), true))
    }

    /// The stamps after a copy-out that rsync itemized (`%i %n`, `-ii`): every entry of the
    /// synced area it created, rewrote, deleted or changed an attribute of takes its stamp from
    /// the disk now (or goes). What the copy-out only looked at keeps its old stamp, so a tree
    /// that differs from the result was changed by something else.
    pub(crate) fn follow(&mut self, root: &Utf8Path, itemized: &str) {
        for item in Item::all(itemized) {
            let (code, name) = (item.code, item.path());
            let touched = code.starts_with('*')
                || code.starts_with(['>', 'c', 'h'])
                || code.chars().skip(2).any(|c| c != '.' && c != ' ');
            let top = name.split('/').next().unwrap_or(name);
            if touched && !name.is_empty() && name != "." && !UNSYNCED.contains(&top) {
                self.read_disk(root, Utf8Path::new(name));
            }
        }
    }

    /// `rel`'s stamp becomes what the disk holds now, or goes with it: the stamp it had, and
    /// whether it is there now.
    fn read_disk(&mut self, root: &Utf8Path, rel: &Utf8Path) -> (Option<u64>, bool) {
        let (old, new) = match std::fs::symlink_metadata(root.join(rel)) {
            Ok(md) => {
                let (path, new) = entry_hash(rel, &md);
                (self.entries.insert(path, new), Some(new))
            }
            Err(_) => (self.entries.remove(&fnv::hash(rel.as_str().as_bytes())), None),
        };
        self.sum = self.sum.wrapping_sub(old.unwrap_or(0)).wrapping_add(new.unwrap_or(0));
        (old, new.is_some())
    }

    #[cfg(test)]
    fn has(&self, rel: &Utf8Path) -> bool {
        self.entries.contains_key(&fnv::hash(rel.as_str().as_bytes()))
    }
}

/// Two sums of a tree's stamps, to tell a change of ctime alone (a chmod to the mode a file
/// has, a hard link made and removed) from any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TreeSums {
    /// [`HostStamps::take`]'s sum, the one the records hold.
    pub all: u64,
    /// The same without ctimes.
    pub without_ctimes: u64,
}

pub(crate) fn sums(root: &Utf8Path) -> Result<TreeSums, Fail> {
    const CTIME: [usize; 2] = [4, 5]; // walk::stat_fields: ctime, ctime_nsec
    let (mut full, mut content) = (0u64, 0u64);
    walk::entries(root, UNSYNCED, |rel, md| {
        full = full.wrapping_add(entry_hash(rel, md).1);
        let mut h = fnv::Fnv::default();
        h.feed(rel.as_str().as_bytes());
        for (i, v) in walk::stat_fields(md).iter().enumerate() {
            if !CTIME.contains(&i) && (!md.is_dir() || i == 6) {
                h.feed(&v.to_le_bytes());
            }
        }
        content = content.wrapping_add(h.0);
    })?;
    Ok(TreeSums { all: full, without_ctimes: content })
}

/// (hash of the path, hash of the entry). Directories count by name and inode only: their
/// mtime moves with every entry added or removed, and those entries count themselves.
fn entry_hash(rel: &Utf8Path, md: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut h = fnv::Fnv::default();
    h.feed(rel.as_str().as_bytes());
    let path = h.0;
    if md.is_dir() {
        h.feed(b"/");
        h.feed(&md.ino().to_le_bytes());
    } else {
        for v in walk::stat_fields(md) {
            h.feed(&v.to_le_bytes());
        }
    }
    (path, h.0)
}

const SYNC_RECORD: Kind = Kind { name: "dockerized-sync-record", version: 1, cap: Cap::LIST };

/// What the last run left: the data and rsync containers it synced through and the stamps of
/// the host when the volume matched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub data: String,
    pub rsyncd: String,
    pub host: u64,
}

impl Record {
    /// The record of the run tagged `tag`.
    pub(crate) fn path(tree: &Tree, tag: Option<&StateTag>) -> Utf8PathBuf {
        tree.path(&state_file(".kit-sync-record", tag))
    }

    /// (One that cannot be used is said on stderr: the run syncs in full.)
    pub(crate) fn load(tree: &Tree, tag: Option<&StateTag>) -> Option<Record> {
        let file = tree.confined(Record::path(tree, tag)).ok()?;
        record::load(&file, SYNC_RECORD).or_absent("syncing in full")
    }

    pub(crate) fn save(&self, tree: &Tree, tag: Option<&StateTag>) -> Result<(), Fail> {
        record::save(&tree.confined(Record::path(tree, tag))?, SYNC_RECORD, self)
    }

    /// Forgotten before the command runs: a crash or an interrupt must not leave a record behind.
    pub(crate) fn forget(tree: &Tree, tag: Option<&StateTag>) -> Result<(), Fail> {
        tree.remove_file(Record::path(tree, tag))
    }
}

/// Where the wrapper leaves its change list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListAt {
    /// A host directory mounted into the build container (a local engine): read in place, so a
    /// command that changed nothing needs no copy-out at all.
    Host(Utf8PathBuf),
    /// In the data container (a remote engine), at this path relative to the tree: the copy-out
    /// brings it back, listing it first.
    Volume(String),
}

impl ListAt {
    const MOUNT: &'static str = "/kit-run";

    /// In the data container, as the state file of the run tagged `tag`.
    pub(crate) fn volume(tag: Option<&StateTag>) -> ListAt {
        ListAt::Volume(changed(tag))
    }

    /// The list's path as the wrapper writes it, inside the build container.
    fn inner(&self) -> String {
        match self {
            ListAt::Host(_) => format!("{}/changed", ListAt::MOUNT),
            ListAt::Volume(list) => format!("{REMOTE_ROOT}/{list}"),
        }
    }

    /// What the build container needs for it (a mount, for a host directory).
    pub(crate) fn engine_args(&self) -> Vec<String> {
        match self {
            ListAt::Host(dir) => vec!["--volume".into(), format!("{dir}:{}", ListAt::MOUNT)],
            ListAt::Volume(_) => Vec::new(),
        }
    }

    /// Where the list is on the host after the run (for `Volume`, once the copy-out brought it).
    pub(crate) fn host_path(&self, tree: &Tree) -> Utf8PathBuf {
        match self {
            ListAt::Host(dir) => dir.join("changed"),
            ListAt::Volume(list) => tree.path(list),
        }
    }

    /// No list (or go) of an earlier run may be mistaken for this one's.
    pub(crate) fn prepare(&self, tree: &Tree) -> Result<(), Fail> {
        let mut stale = vec![self.host_path(tree)];
        if let ListAt::Host(dir) = self {
            tree.confined(dir)?.create_dir_all()?;
            stale.extend([dir.join("go"), dir.join("changed.dirs")]);
        }
        for f in stale {
            tree.remove_file(f)?;
        }
        Ok(())
    }

    /// What the changed directories hold (a host list only; see [`wrap`]).
    pub(crate) fn dirs(&self, tree: &Tree) -> Option<String> {
        match self {
            ListAt::Host(dir) => tree.read_record(dir.join("changed.dirs")),
            ListAt::Volume(_) => None,
        }
    }

    /// Lets a waiting command start (a host directory only: the sources are in place).
    pub(crate) fn go(&self, tree: &Tree) -> Result<(), Fail> {
        if let ListAt::Host(dir) = self {
            tree.write_file(dir.join("go"), b"")?;
        }
        Ok(())
    }
}

/// The build command under the wrapper: it runs `cmd` (exit status kept), then lists every
/// entry whose ctime is newer than the command's start (vendor/ on the side, the machine has
/// more than one core), in the data container the list's own path first (so the copy-out
/// brings it back with the files). The list appears only if the listing worked.
/// File times move in clock ticks (milliseconds), so the command starts only once the clock
/// has ticked past the start stamp: a change in the stamp's own tick would not be newer.
pub(crate) fn wrap(cmd: &[String], at: &ListAt) -> Vec<String> {
    let (wait, own, dirs) = match at {
        ListAt::Host(_) => (ListAt::MOUNT.to_string(), String::new(), "dirs"),
        ListAt::Volume(list) => (String::new(), format!("./{list}"), ""),
    };
    let mut v = vec!["sh".to_string(), "-c".to_string(), WRAP.to_string(), "kit-run".to_string()];
    v.extend([REMOTE_ROOT.to_string(), at.inner(), wait, own, dirs.to_string()]);
    v.extend(cmd.iter().cloned());
    v
}

/// The wrapper script: a shell file of its own, its values passed as arguments.
const WRAP: &str = include_str!("wrap.sh");

/// The copy-out filters with the changed-entries list (at `list` in the tree) let through first.
pub(crate) fn with_list(filters: &[String], list: &str) -> Vec<String> {
    let mut v = vec![format!("+ /{list}")];
    v.extend(filters.iter().cloned());
    v
}

/// Reads what the command changed (`changed`, the wrapper's list; `dirs`, what the changed
/// directories hold) against what the copy-out itemized (`itemized`, rsync `-ii
/// --out-format='%i %n'`), and restamps the host files the copy-out rewrote. Ok when the volume
/// equals the host again on the synced area, but for the files returned: changed in the
/// container and left there by the copy-out filters, equal only if their content is (see
/// [`same_content_args`]). Err with the first entry that makes a difference.
pub(crate) fn settle(
    root: &Utf8Path,
    changed: &str,
    dirs: Option<&str>,
    itemized: &str,
    stamps: &mut HostStamps,
) -> Result<Vec<String>, String> {
    // name -> the itemize code (">f.st......", ".f.........", "cd+++++++++", ...); rsync names
    // directories with a trailing slash.
    let items: HashMap<&str, Item> = Item::all(itemized).map(|i| (i.path(), i)).collect();
    let held = dirs.map(dir_entries);
    let mut seen = HashSet::new();
    let mut compare = Vec::new();
    for entry in changed.lines().filter(|l| !l.is_empty()).map(|l| l.strip_prefix("./").unwrap_or(l)) {
        // The list itself is under `_output/` too.
        if entry.starts_with("_output/") || !seen.insert(entry) {
            continue;
        }
        if let Some(inside) = held.as_ref().and_then(|h| h.get(entry)) {
            // A directory: the same names on both sides, or a difference.
            if *inside != host_entries(root, entry) {
                return Err(format!("{}/ gained or lost entries", entry));
            }
            continue;
        }
        match items.get(entry) {
            // Came back as an update of a file (or link) the host had: the host is restamped.
            Some(item) if !item.is_new() && matches!(item.code.get(1..2), Some("f") | Some("L")) => {
                if item.rewritten() && !stamps.restamp(root, Utf8Path::new(entry)) {
                    return Err(format!("{entry} is new on this side"));
                }
            }
            Some(item) if item.code.get(1..2) == Some("d") => return Err(format!("{entry}/ gained or lost entries")),
            Some(_) => return Err(format!("{entry} is new")),
            // The tree's root itself shows as `.`.
            None if entry == "." => return Err("the top directory gained or lost entries".into()),
            None => compare.push(entry.to_string()),
        }
    }
    Ok(compare)
}

/// `./dir/` header lines, each followed by `./dir/entry` lines -> dir -> entry names (the
/// unsynced top-level names left out of `.`).
fn dir_entries(text: &str) -> HashMap<String, std::collections::BTreeSet<String>> {
    let mut map: HashMap<String, std::collections::BTreeSet<String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let rel = line.strip_prefix("./").unwrap_or(line);
        if line.ends_with('/') {
            let dir = if rel.is_empty() { ".".to_string() } else { rel.trim_end_matches('/').to_string() };
            map.entry(dir.clone()).or_default();
            current = Some(dir);
        } else if let Some(dir) = &current {
            let name = rel.rsplit('/').next().unwrap_or(rel);
            if !(dir == "." && UNSYNCED.contains(&name)) {
                map.get_mut(dir).expect("a header came first").insert(name.to_string());
            }
        }
    }
    map
}

/// The names in a host directory (the unsynced ones left out at the top); empty if it is gone.
fn host_entries(root: &Utf8Path, dir: &str) -> std::collections::BTreeSet<String> {
    let top = dir == ".";
    std::fs::read_dir(if top { root.to_path_buf() } else { root.join(dir) })
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| !(top && UNSYNCED.contains(&n.as_str())))
                .collect()
        })
        .unwrap_or_default()
}

/// rsync arguments that compare the listed files (`files_from`) by content, changing nothing:
/// a generator that rewrites a file with the same bytes (build-time bindata, for one) leaves the
/// two sides equal for a build. [`differs`] reads the answer.
pub(crate) fn same_content_args(files_from: &Utf8Path) -> Vec<String> {
    vec![
        "--dry-run".into(),
        "--checksum".into(),
        "-ii".into(),
        "--out-format=%i %n".into(),
        format!("--files-from={files_from}"),
    ]
}

/// From the itemized answer to [`same_content_args`]: the first of `files` whose content differs
/// (would be transferred, or is not there).
pub(crate) fn differs<'a>(files: &'a [String], itemized: &str) -> Option<&'a str> {
    let items: HashMap<&str, Item> = Item::all(itemized).map(|i| (i.name, i)).collect();
    files.iter().map(String::as_str).find(|f| items.get(f).is_none_or(|i| i.code.starts_with('>') || i.is_new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a copy-out itemized, followed: new files and directories, rewrites, attribute
    /// changes and deletions take their stamps from the disk, and the sum is a new walk's. An
    /// edit it did not itemize (made while the command ran) leaves the sums apart.
    #[test]
    fn the_stamps_follow_a_copy_out_and_nothing_else() {
        let root = kube_tree::fixture::scratch_dir("sync-follow");
        std::fs::create_dir_all(root.join("pkg/a")).unwrap();
        for f in ["pkg/a/zz_generated.go", "pkg/a/gone.go", "pkg/a/mode.go", "pkg/a/seen.go", "README.md"] {
            std::fs::write(root.join(f), "old").unwrap();
        }
        let mut stamps = HostStamps::take(&root).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(root.join("pkg/a/zz_generated.go"), "new!").unwrap();
        std::fs::create_dir_all(root.join("pkg/b")).unwrap();
        std::fs::write(root.join("pkg/b/new.go"), "n").unwrap();
        std::fs::remove_file(root.join("pkg/a/gone.go")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("pkg/a/mode.go"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir_all(root.join("_output/dockerized/bin")).unwrap();
        let itemized = ">f.st...... pkg/a/zz_generated.go\ncd+++++++++ pkg/b/\n>f+++++++++ pkg/b/new.go\n\
                        *deleting   pkg/a/gone.go\n.f...p..... pkg/a/mode.go\n.f          pkg/a/seen.go\n\
                        .d..t...... ./\ncd+++++++++ _output/dockerized/bin/\n";
        stamps.follow(&root, itemized);
        assert_eq!(stamps.sum, HostStamps::take(&root).unwrap().sum, "the copy-out, followed");

        std::fs::write(root.join("pkg/a/seen.go"), "edited while the command ran").unwrap();
        assert_ne!(stamps.sum, HostStamps::take(&root).unwrap().sum, "an edit it did not make");
    }

    /// A hard link made and removed, and a chmod to the mode the file has (what the tree's
    /// packaging does to build/nsswitch.conf), move only ctimes; an edit moves both sums.
    #[test]
    fn the_second_sum_ignores_ctime_alone() {
        use std::os::unix::fs::PermissionsExt;
        let root = kube_tree::fixture::scratch_dir("sync-sums");
        std::fs::create_dir_all(root.join("build")).unwrap();
        let f = root.join("build/nsswitch.conf");
        std::fs::write(&f, "hosts: files dns\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = sums(&root).unwrap();
        assert_eq!(before.all, HostStamps::take(&root).unwrap().sum);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::hard_link(&f, root.join("build/linked")).unwrap();
        std::fs::set_permissions(root.join("build/linked"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::remove_file(root.join("build/linked")).unwrap();
        let touched = sums(&root).unwrap();
        assert_ne!(touched.all, before.all, "the ctime moved");
        assert_eq!(touched.without_ctimes, before.without_ctimes, "nothing but the ctime");
        std::fs::write(&f, "hosts: dns files\n").unwrap();
        assert_ne!(sums(&root).unwrap().without_ctimes, before.without_ctimes, "an edit");
    }

    #[test]
    fn a_rewritten_file_is_restamped_and_anything_else_leaves_no_record() {
        let root = kube_tree::fixture::scratch_dir("sync-settle");
        std::fs::create_dir_all(root.join("pkg/a")).unwrap();
        std::fs::create_dir_all(root.join("_output/dockerized")).unwrap();
        std::fs::write(root.join("pkg/a/zz_generated.deepcopy.go"), "old").unwrap();
        std::fs::write(root.join("README.md"), "x").unwrap();
        let mut stamps = HostStamps::take(&root).unwrap();
        assert!(stamps.has(Utf8Path::new("pkg/a/zz_generated.deepcopy.go")) && stamps.has(Utf8Path::new("pkg/a")));
        assert!(
            !stamps.has(Utf8Path::new("_output")) && !stamps.has(Utf8Path::new("_output/dockerized")),
            "the unsynced area is not stamped"
        );

        // The copy-out rewrote the generated file: after restamping, the sum is what a new walk gives.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(root.join("pkg/a/zz_generated.deepcopy.go"), "new!").unwrap();
        let changed = format!(
            "./{}\n./pkg/a/zz_generated.deepcopy.go\n./_output/dockerized/bin/linux/amd64/kubectl\n",
            changed(None)
        );
        let itemized = format!(">f+++++++++ {}\n>f.st...... pkg/a/zz_generated.deepcopy.go\n>f..t...... _output/dockerized/bin/linux/amd64/kubectl\n", super::changed(None));
        assert_eq!(settle(&root, &changed, None, &itemized, &mut stamps), Ok(vec![]));
        assert_eq!(stamps.sum, HostStamps::take(&root).unwrap().sum);

        // Changed in the container and identical on the host already: nothing to restamp.
        let mut same = stamps.clone();
        assert_eq!(
            settle(
                &root,
                "./pkg/a/zz_generated.deepcopy.go\n",
                None,
                ".f......... pkg/a/zz_generated.deepcopy.go\n",
                &mut same
            ),
            Ok(vec![])
        );
        assert_eq!(same.sum, stamps.sum);

        // Left in the container by the filters: equal only if the content is.
        assert_eq!(settle(&root, "./README.md\n", None, "", &mut stamps.clone()), Ok(vec!["README.md".to_string()]));
        let files = vec!["README.md".to_string(), "hack/x.go".to_string()];
        assert_eq!(differs(&files, ".f..t...... README.md\n.f..t...... hack/x.go\n"), None, "only the times differ");
        assert_eq!(differs(&files, ".f..t...... README.md\n>fc.t...... hack/x.go\n"), Some("hack/x.go"));
        assert_eq!(differs(&files, ".f..t...... README.md\n"), Some("hack/x.go"), "not there");

        // A directory whose entries changed (the top one too: a top-level file removed shows
        // only there), unless it holds the same names again; a new file.
        for (changed, dirs, itemized, why) in [
            ("./pkg/a\n", None, ".d..t...... pkg/a/\n", "pkg/a/ gained or lost entries"),
            (
                "./pkg/a\n",
                Some("./pkg/a/\n./pkg/a/zz_generated.deepcopy.go\n./pkg/a/tmp123\n"),
                "",
                "pkg/a/ gained or lost entries",
            ),
            (".\n", None, "", "the top directory gained or lost entries"),
            (".\n", Some("./\n./README.md\n"), "", "./ gained or lost entries"),
            (
                "./pkg/a/zz_generated.new.go\n",
                None,
                ">f+++++++++ pkg/a/zz_generated.new.go\n",
                "pkg/a/zz_generated.new.go is new",
            ),
        ] {
            let mut s = stamps.clone();
            let got = settle(&root, changed, dirs, itemized, &mut s);
            assert!(got.as_ref().is_err_and(|e| e.starts_with(why)), "{changed}: {got:?}");
        }
        // The same names (a generator's temporary file came and went); at the top, the
        // unsynced names do not count.
        let same = "./pkg/a/\n./pkg/a/zz_generated.deepcopy.go\n./\n./README.md\n./pkg\n./_output\n./.make\n";
        assert_eq!(settle(&root, "./pkg/a\n.\n", Some(same), ".d..t...... pkg/a/\n", &mut stamps.clone()), Ok(vec![]));
    }

    #[test]
    fn records_round_trip_and_are_forgotten() {
        let root = kube_tree::fixture::scratch_tree("sync-record", &kube_tree::fixture::Spec::era_b());
        let tree = Tree::open(&root).unwrap();
        assert_eq!(Record::load(&tree, None), None);
        let r = Record { data: "d1".into(), rsyncd: "r1".into(), host: 0xfeed };
        r.save(&tree, None).unwrap();
        assert_eq!(Record::load(&tree, None), Some(r));
        Record::forget(&tree, None).unwrap();
        assert_eq!(Record::load(&tree, None), None);
        Record::forget(&tree, None).unwrap();

        // A fan-out share's record and change list are its own: the tree's run never reads them.
        let tag = StateTag::new("e0123abcd").unwrap();
        let r = Record { data: "d2".into(), rsyncd: "r2".into(), host: 0xbeef };
        r.save(&tree, Some(&tag)).unwrap();
        assert_eq!(Record::load(&tree, None), None);
        assert_eq!(Record::load(&tree, Some(&tag)), Some(r));
        assert!(Record::path(&tree, Some(&tag)).as_str().ends_with("_output/dockerized/.kit-sync-record.e0123abcd"));
        let at = ListAt::volume(Some(&tag));
        assert_eq!(at.host_path(&tree), tree.path("_output/dockerized/.kit-changed.e0123abcd"));
        let ListAt::Volume(list) = &at else { panic!("{at:?}") };
        assert_eq!(with_list(&[], list), ["+ /_output/dockerized/.kit-changed.e0123abcd"]);
    }

    #[test]
    fn the_wrapper_keeps_the_status_and_lists_what_changed() {
        // Run against a scratch dir standing in for the container's tree.
        let root = kube_tree::fixture::scratch_dir("sync-wrap");
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::create_dir_all(root.join("_output/dockerized/go")).unwrap();
        std::fs::write(root.join("pkg/old.go"), "x").unwrap();
        std::fs::write(root.join("_output/dockerized/go/cache"), "x").unwrap();
        std::fs::write(root.join("pkg/same.go"), "x").unwrap();
        // The first write comes at once: it must still be newer than the start stamp.
        let cmd = ["sh".to_string(), "-c".to_string(), "echo z > pkg/old.go; echo y > pkg/new.go; [ ! -d vendor ] || echo v > vendor/x/a.go; touch _output/dockerized/go/cache; exit 7".to_string()];
        let run = |at: &ListAt, list: &Utf8Path| -> String {
            let mut w = wrap(&cmd, at);
            for a in &mut w[4..9] {
                *a = a.replace(REMOTE_ROOT, root.as_str()).replace(ListAt::MOUNT, list.parent().unwrap().as_str());
            }
            let out = std::process::Command::new(&w[0]).args(&w[1..]).current_dir(&root).output().unwrap();
            assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
            std::fs::read_to_string(list).unwrap()
        };
        let list = run(&ListAt::volume(None), &root.join(changed(None)));
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines[0], format!("./{}", changed(None)));
        assert!(
            lines.contains(&"./pkg/old.go") && lines.contains(&"./pkg/new.go") && lines.contains(&"./pkg"),
            "{list}"
        );
        assert!(!lines.contains(&"./pkg/same.go") && !list.contains("go/cache"), "{list}");
        // On the host side, the list is not in the tree and does not name itself; vendor/ is
        // listed by its own find.
        std::fs::create_dir_all(root.join("vendor/x")).unwrap();
        std::fs::write(root.join("vendor/x/a.go"), "x").unwrap();
        let host = kube_tree::fixture::scratch_dir("sync-wrap-list");
        std::fs::write(host.join("go"), "").unwrap();
        let list = run(&ListAt::Host(host.clone()), &host.join("changed"));
        assert!(
            !list.contains(".kit-changed") && list.contains("./pkg/old.go\n") && list.contains("./vendor/x/a.go\n"),
            "{list}"
        );
        assert!(std::fs::read_dir(&host).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    }
}
