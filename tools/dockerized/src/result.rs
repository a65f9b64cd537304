//! No change, no build: after a successful run the request and what it found are recorded; a
//! later run of the same request that finds everything as recorded reports the same binaries
//! and starts nothing. The proof, all of it from the host: the same command and environment
//! passed in, the same kube-build and kube-cross images (by ID) and image context inputs, the
//! same data container (by ID), the tree's stamps as the last run left them (every synced entry:
//! path, size, mtime, ctime, inode), and the copied-out binaries untouched. Any doubt, and every
//! other kind of run (a shell, a failure, an interrupt), forgets the record: the next run is real.

use crate::build::build_env_args;
use crate::clean::built_binaries;
use crate::job::Job;
use crate::opening::Opening;
use crate::options::RunOptions;
use crate::setup::{Mode, Setup};
use crate::state::{state_file, StateTag};
use crate::sync::HostStamps;
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fnv::Fnv;
use kube_tree::record::{self, Kind};
use kube_tree::{log, Cap, Fail, Tree};
use serde::{Deserialize, Serialize};
use std::process::ExitStatus;

/// The request and the engine objects a run used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub key: u64,
}

impl Request {
    /// The command, the environment the container gets, the images, the data container, and the
    /// host inputs of the image (its localtime, the rsync password's presence).
    pub(crate) fn new(setup: &Setup, cmd: &[String], image_id: &str, cross_id: &str, data_id: &str) -> Request {
        let mut h = Fnv::default();
        for w in cmd {
            h.feed(w.as_bytes());
            h.feed(b"\0");
        }
        for a in build_env_args(setup.platforms.as_deref()) {
            // `--env NAME` passes our value: the value counts.
            let v =
                if a.contains('=') || a.starts_with("--") { a.clone() } else { std::env::var(&a).unwrap_or_default() };
            h.feed(a.as_bytes());
            h.feed(v.as_bytes());
            h.feed(b"\0");
        }
        for id in [image_id, cross_id, data_id, setup.user.as_str()] {
            h.feed(id.as_bytes());
            h.feed(b"\0");
        }
        h.feed(&std::fs::read("/etc/localtime").unwrap_or_default());
        h.feed(&[setup.password_file().is_file() as u8]);
        Request { key: h.0 }
    }
}

/// The record of the last successful run (`_output/dockerized/.kit-last-run[.TAG]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastRun {
    pub key: u64,
    /// The tree's stamps after the run ([`HostStamps`]).
    pub host: u64,
    /// The binaries copied out, each with its stamp.
    pub outputs: Vec<Output>,
}

/// A binary copied out and its stamp (path, size, times, inode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Output {
    pub path: Utf8PathBuf,
    pub stamp: u64,
}

const LAST_RUN: Kind = Kind { name: "dockerized-last-run", version: 1, cap: Cap::LIST };
const PENDING_RUN: Kind = Kind { name: "dockerized-pending-run", version: 1, cap: Cap::LIST };

/// The record of the run tagged `tag` (a fan-out share's; None: a run of its own).
fn path(tree: &Tree, tag: Option<&StateTag>) -> Utf8PathBuf {
    tree.path(&state_file(".kit-last-run", tag))
}

/// What a share of a fan-out leaves instead of its record ([`crate::fanout`] settles them all
/// once every share has copied out: each share's copy-out rewrites files of the tree that the
/// others' records would hold): its request and what its copy-out itemized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub key: u64,
    pub copied: String,
}

fn pending_path(tree: &Tree, tag: Option<&StateTag>) -> Utf8PathBuf {
    tree.path(&state_file(".kit-pending-run", tag))
}

impl Pending {
    /// Saved as the pending record of the share tagged `tag`.
    pub(crate) fn save(&self, tree: &Tree, tag: &StateTag) -> Result<(), Fail> {
        record::save(&tree.confined(pending_path(tree, Some(tag)))?, PENDING_RUN, self)
    }

    /// The pending record of the share tagged `tag`, taken (the file goes). Err: unreadable.
    pub(crate) fn take(tree: &Tree, tag: &StateTag) -> Result<Option<Pending>, Fail> {
        let p = pending_path(tree, Some(tag));
        let found = record::load(&tree.confined(&p)?, PENDING_RUN).or_fail()?;
        if found.is_some() {
            tree.remove_file(&p)?;
        }
        Ok(found)
    }
}

fn stamp(p: &Utf8Path) -> Option<u64> {
    let md = std::fs::symlink_metadata(p).ok()?;
    Some(kube_tree::fnv::hash(&kube_tree::walk::stat_bytes(p, &md)))
}

/// The binaries under `_output/dockerized/bin` with their stamps.
pub(crate) fn outputs(tree: &Tree) -> Vec<Output> {
    built_binaries(tree).into_iter().filter_map(|path| stamp(&path).map(|stamp| Output { path, stamp })).collect()
}

impl LastRun {
    /// The record of the run tagged `tag`.
    /// (One that cannot be used is said on stderr: the run is real.)
    pub(crate) fn load(tree: &Tree, tag: Option<&StateTag>) -> Option<LastRun> {
        let file = tree.confined(path(tree, tag)).ok()?;
        record::load(&file, LAST_RUN).or_absent("the run is real")
    }

    /// Saved as the record of the run tagged `tag`.
    pub(crate) fn save(&self, tree: &Tree, tag: Option<&StateTag>) -> Result<(), Fail> {
        record::save(&tree.confined(path(tree, tag))?, LAST_RUN, self)
    }

    /// Forgotten by every run that is not skipped, before it does anything (with a pending
    /// record of an earlier fan-out share).
    pub(crate) fn forget(tree: &Tree, tag: Option<&StateTag>) -> Result<(), Fail> {
        tree.remove_file(pending_path(tree, tag))?;
        tree.remove_file(path(tree, tag))
    }

    /// Why this record does not cover the run about to start, or None when it does.
    pub(crate) fn differs(&self, req: &Request, host: Option<u64>, tree: &Tree) -> Option<&'static str> {
        if self.key != req.key {
            return Some("the command, its environment, the images or the data container changed");
        }
        if host != Some(self.host) {
            return Some("the tree changed");
        }
        if self.outputs.is_empty() || outputs(tree) != self.outputs {
            return Some("the copied-out binaries changed");
        }
        None
    }
}

impl Job<'_> {
    /// After a successful run: the record of request `key`, if the tree is as the run left it
    /// (`before`, the stamps taken before the sync, with what the copy-out changed). A share of
    /// a fan-out leaves it pending instead, for the fan-out to settle when all have copied out.
    pub(crate) fn record_success(&self, key: u64, before: Option<HostStamps>, copied: &str) -> Result<(), Fail> {
        let tree = &self.setup.tree;
        if let Some(tag) = &self.setup.state_tag {
            return Pending { key, copied: copied.to_string() }.save(tree, tag);
        }
        let Some(mut expected) = before else {
            log::status_v(2, "no record of this run: the tree was not stamped before it");
            return Ok(());
        };
        expected.follow(&tree.root, copied);
        match HostStamps::take(&tree.root) {
            Ok(now) if now.sum == expected.sum => {
                LastRun { key, host: now.sum, outputs: outputs(tree) }.save(tree, None)
            }
            Ok(_) => {
                log::status("the tree changed while the command ran (besides its copy-out): the next run builds again");
                Ok(())
            }
            Err(e) => {
                log::status_v(2, format!("no record of this run: {e}"));
                Ok(())
            }
        }
    }
}

impl Job<'_> {
    /// No change, no build: true when the last successful run of this request covers this
    /// one. Else the record is forgotten before anything runs, and the tree's stamps, when they
    /// had to be waited for, go back into `open` for the sync record.
    pub(crate) fn skip_unchanged(
        &self,
        opts: &RunOptions,
        cmd: &[String],
        interactive: bool,
        open: &mut Opening,
    ) -> Result<bool, Fail> {
        if self.last_run_covers(opts, cmd, interactive, open) {
            return Ok(true);
        }
        if !opts.dry_run {
            LastRun::forget(&self.setup.tree, self.setup.state_tag.as_ref())?;
        }
        Ok(false)
    }

    fn last_run_covers(&self, opts: &RunOptions, cmd: &[String], interactive: bool, open: &mut Opening) -> bool {
        let setup = self.setup;
        let last = (setup.mode == Mode::Rsync && !opts.dry_run && !interactive && opts.copy)
            .then(|| LastRun::load(&setup.tree, setup.state_tag.as_ref()))
            .flatten();
        let (Some(last), Some(image_id), Some(data)) =
            (last, &open.facts.image_id, open.containers.get(&setup.names.data))
        else {
            return false;
        };
        let host = open.stamps.take().map(|h| h.join().expect("the stamps thread panicked"));
        let sum = host.as_ref().and_then(|h| h.as_ref().ok()).map(|h| h.sum);
        let req = Request::new(setup, cmd, image_id, &open.cross_id, &data.id);
        match last.differs(&req, sum, &setup.tree) {
            None if !opts.force => {
                log::status(format!(
                    "nothing changed since the last successful `{}` (tree, images, data container, environment, outputs): not running it (--force runs it)",
                    cmd.join(" ")
                ));
                return true;
            }
            None => log::status_v(2, "nothing changed since the last run, but --force: running it"),
            Some(why) => log::status_v(2, format!("running: {why} since the last successful run")),
        }
        open.stamps = host.map(|h| std::thread::spawn(move || h));
        false
    }
}

/// An exit status of 0, for a run that did not need to start.
pub(crate) fn success() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(0)
}

#[cfg(test)]
mod tests {
    use super::{LastRun, Pending};
    use crate::engine::{Engine, EngineChoice, Kind};
    use crate::job::Job;
    use crate::setup::{Mode, Setup};
    use crate::state::StateTag;
    use kube_tree::fixture::{scratch_tree, Spec};
    use kube_tree::Tree;

    #[test]
    fn each_share_keeps_its_own_records() {
        let root = scratch_tree("result-tags", &Spec::era_c());
        let tree = Tree::open(&root).unwrap();
        let tag = StateTag::new("e01").unwrap();
        let last = LastRun { key: 1, host: 2, outputs: Vec::new() };
        last.save(&tree, Some(&tag)).unwrap();
        assert_eq!(LastRun::load(&tree, None), None);
        assert_eq!(LastRun::load(&tree, Some(&tag)), Some(last.clone()));
        // Forgetting the tree's own record leaves the share's.
        LastRun::forget(&tree, None).unwrap();
        assert_eq!(LastRun::load(&tree, Some(&tag)), Some(last));

        // A share's success is left pending, under its tag, for the fan-out to settle.
        let engine = Engine::new(Some(EngineChoice::of(Kind::Docker)), true).unwrap();
        let mut setup = Setup::new(Tree::open(&root).unwrap(), &engine, Some(Mode::Rsync), None).unwrap();
        setup.state_tag = Some(tag.clone());
        Job { engine: &engine, setup: &setup }.record_success(7, None, "copied").unwrap();
        LastRun::forget(&tree, Some(&tag)).unwrap();
        assert_eq!(LastRun::load(&tree, Some(&tag)), None);
        assert_eq!(Pending::take(&tree, &tag).unwrap(), None, "forgotten with the record");
        Job { engine: &engine, setup: &setup }.record_success(7, None, "copied").unwrap();
        assert_eq!(Pending::take(&tree, &tag).unwrap(), Some(Pending { key: 7, copied: "copied".into() }));
        // A record in an earlier kit's format (or anything else) is not believed: no record.
        std::fs::write(root.join("_output/dockerized/.kit-last-run"), "key 0000000000000001\nhost 2\n").unwrap();
        assert_eq!(LastRun::load(&tree, None), None);
        std::fs::write(root.join("_output/dockerized/.kit-pending-run.e01"), "key 07\ncopied").unwrap();
        assert!(Pending::take(&tree, &tag).is_err(), "a pending record that cannot be read is an error");
        std::fs::remove_dir_all(root.parent().unwrap()).unwrap();
    }
}
