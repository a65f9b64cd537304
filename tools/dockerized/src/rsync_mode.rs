//! rsync mode (eras A and B, and any engine that is not local): the `kube-build` image, the data
//! container, the rsync daemon, sync in (unless the sync record proves it would change nothing),
//! the build container, copy out, and a new sync record when the run can prove the data
//! container equals the tree again (see [`crate::sync`]).

use crate::arrival::Times;
use crate::build::build_label;
use crate::engine::Cleanup;
use crate::job::Job;
use crate::opening::Opening;
use crate::options::RunOptions;
use crate::result::Request;
use crate::rsync::{keep_rsyncd, rsyncd_key, CopyOut, Rsyncd};
use crate::sync::{self, HostStamps, ListAt, Record};
use kube_tree::proc::interrupted;
use kube_tree::{log, Fail};
use std::process::ExitStatus;
use std::thread::JoinHandle;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// Runs `cmd` through the whole rsync cycle; None in a dry run.
pub(crate) fn run(
    job: Job,
    opts: &RunOptions,
    mut open: Opening,
    cmd: &[String],
    interactive: bool,
) -> Result<Option<ExitStatus>> {
    let setup = job.setup;
    let stamps = open.stamps.take();
    let mut cycle = Cycle::start(job, opts, &open, interactive)?;
    // A shell is the user's terminal, not wrapped: with no change list, the next run syncs in full.
    let (command, extra) = if cycle.wrapped {
        (sync::wrap(cmd, &cycle.list_at), cycle.list_at.engine_args())
    } else {
        (cmd.to_vec(), Vec::new())
    };
    // With the list in a host directory, the build container starts now and its command waits
    // for a go there: the container's start-up, most of a no-op run, overlaps the stamping and
    // the sync.
    let early = (cycle.wrapped && matches!(cycle.list_at, ListAt::Host(_)))
        .then(|| job.start_build_container(&open.containers, &command, &extra, build_label(cmd), &mut cycle.cleanup));
    let stamps = match stamps.map(|h| h.join().expect("the stamps thread panicked")) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            log::status_v(2, format!("no sync record this time: {e}"));
            None
        }
        None => None,
    };
    let before = stamps.clone();
    let in_sync = cycle.sync_in(stamps.as_ref())?;
    let status = match early {
        Some(running) => cycle.go(running)?,
        None => job.run_in_container(&open.containers, &command, &extra, interactive)?,
    };
    let ok = status.is_none_or(|s| s.success());
    let keep = ok && keep_rsyncd() && !interrupted();
    let copied = if opts.copy && ok { cycle.copy_out(in_sync, keep, stamps)? } else { String::new() };
    // The record of this success, for the next run of the same request. It needs no proof that
    // the container equals the tree: the next identical run would meet the same container
    // and tree, and make the same binaries. It does need the tree as the run left it: the
    // stamps taken before the sync with what the copy-out changed; an edit made while the
    // command ran is not in the binaries, and the next run must build it.
    if ok && opts.copy && cycle.wrapped && !opts.dry_run && !interrupted() {
        let key = Request::new(setup, cmd, &cycle.image_id, &open.cross_id, &cycle.data_id).key;
        job.record_success(key, before, &copied)?;
    }
    if keep {
        cycle.cleanup.keep(&setup.names.rsync);
    }
    Ok(status)
}

/// One rsync-mode run's engine objects, as its steps hand them on.
struct Cycle<'a> {
    job: Job<'a>,
    opts: &'a RunOptions,
    /// Not a shell: the command runs under the wrapper that lists what it changed.
    wrapped: bool,
    list_at: ListAt,
    image_id: String,
    data_id: String,
    /// How the data container's files carry their times.
    times: Times,
    /// Seeded from another tree's in this run (its first sync keeps the generated files).
    seeded_across: bool,
    /// What the rsync daemon must have been started from to be reused.
    key: String,
    rsyncd: Rsyncd,
    /// The run's containers, removed on every path out but those taken off it.
    cleanup: Cleanup<'a>,
}

impl<'a> Cycle<'a> {
    /// The image, the data container, the cache and the rsync daemon, and where the change
    /// list goes: a local engine gets it in a host directory, a remote one in the data container.
    fn start(job: Job<'a>, opts: &'a RunOptions, open: &Opening, interactive: bool) -> Result<Cycle<'a>> {
        let (engine, setup) = (job.engine, job.setup);
        let (image_id, built) = job.build_image(&open.cross_id, &open.facts)?;
        job.remove_old_versions(&open.containers, built)?;
        let data = job.ensure_data_container(&open.containers)?;
        job.prepare_cache()?;
        let key = rsyncd_key(&image_id, &data.id, &setup.user, setup.rsync_port);
        let mut cleanup = Cleanup::new(engine);
        let rsyncd = job.start_rsyncd(&key, Some(&open.containers), &mut cleanup)?;
        let list_at = if opts.dry_run || engine.is_remote() {
            ListAt::volume(setup.state_tag.as_ref())
        } else {
            ListAt::Host(setup.tree.path(&setup.state_file(".kit-run")))
        };
        if !opts.dry_run {
            list_at.prepare(&setup.tree)?;
        }
        let (data_id, times, seeded_across) = (data.id, data.times, data.seeded_across);
        Ok(Cycle {
            job,
            opts,
            wrapped: !interactive,
            list_at,
            image_id,
            data_id,
            times,
            seeded_across,
            key,
            rsyncd,
            cleanup,
        })
    }

    /// Syncs the sources in, unless the last run's record still holds: nothing it names has
    /// changed (the same data container, the same daemon (the scripts replace it), the same
    /// tree stamps). True when it held.
    fn sync_in(&mut self, stamps: Option<&HostStamps>) -> Result<bool> {
        let (job, tree, tag) = (self.job, &self.job.setup.tree, self.job.setup.state_tag.as_ref());
        let in_sync = !self.opts.full_sync
            && self.rsyncd.reused
            && Record::load(tree, tag).is_some_and(|r| {
                r.data == self.data_id && r.rsyncd == self.rsyncd.id && stamps.is_some_and(|s| s.sum == r.host)
            });
        if !self.opts.dry_run {
            Record::forget(tree, tag)?;
        }
        if in_sync {
            log::status(
                "sources unchanged since the last sync (same tree stamps, data container and rsync daemon): not syncing",
            );
        } else if let Err(e) = job.sync_in(&self.rsyncd, self.times, self.seeded_across) {
            if !self.rsyncd.reused || interrupted() {
                return Err(e);
            }
            log::warn(format!("the rsync daemon left running did not serve ({e}): starting a new one"));
            self.rsyncd = job.start_rsyncd(&self.key, None, &mut self.cleanup)?;
            job.sync_in(&self.rsyncd, self.times, self.seeded_across)?;
        }
        Ok(in_sync)
    }

    /// The build container started early: its go, now that the sources are in, and its end.
    fn go(&mut self, running: JoinHandle<Result<ExitStatus>>) -> Result<Option<ExitStatus>> {
        let setup = self.job.setup;
        self.list_at.go(&setup.tree)?;
        let status = running.join().expect("the build container thread panicked")?;
        if !interrupted() {
            // The command ended and `--rm` removed the container.
            self.cleanup.keep(&setup.names.build);
        }
        Ok(Some(status))
    }

    /// Copies out what the command changed (everything, when that is not known), then saves a
    /// sync record if the daemon stays (`keep`) and the stamps taken before the sync-in prove
    /// the data container equals the tree again. Returns what the copy-out itemized.
    fn copy_out(&mut self, in_sync: bool, keep: bool, stamps: Option<HostStamps>) -> Result<String> {
        let (job, tree) = (self.job, &self.job.setup.tree);
        let full = if self.wrapped { CopyOut::Everything(&self.list_at) } else { CopyOut::Full };
        let host_list = match self.list_at {
            ListAt::Host(_) => tree.read_record(self.list_at.host_path(tree)),
            ListAt::Volume(_) => None,
        };
        let first = match (&host_list, &self.list_at) {
            (Some(l), _) if in_sync && l.trim().is_empty() => None,
            (Some(_), _) | (None, ListAt::Volume(_)) if in_sync => Some(CopyOut::Changed(&self.list_at)),
            _ => Some(full),
        };
        // A daemon left running that fails here (on a run that skipped the sync-in, this is its
        // first use) is replaced, and everything is copied out through the new one.
        let itemized = match first.map(|how| job.copy_out(&self.rsyncd, how, self.times)) {
            None => {
                log::status_v(2, "the command changed nothing in the data container: nothing to copy out");
                String::new()
            }
            Some(Ok(itemized)) => itemized,
            Some(Err(e)) if self.rsyncd.reused && !interrupted() => {
                log::warn(format!(
                    "the rsync daemon left running did not serve ({e}): copying everything out through a new one"
                ));
                self.rsyncd = job.start_rsyncd(&self.key, None, &mut self.cleanup)?;
                job.copy_out(&self.rsyncd, full, self.times)?
            }
            Some(Err(e)) => return Err(e),
        };
        let changed = host_list.or_else(|| tree.read_record(self.list_at.host_path(tree)));
        let _ = tree.remove_file(self.list_at.host_path(tree));
        // The record needs the daemon it names to stay, and the stamps taken before the sync.
        if let (true, Some(stamps), Some(changed)) = (self.wrapped && keep && !self.opts.dry_run, stamps, changed) {
            self.save_record(stamps, &changed, &itemized)?;
        }
        Ok(itemized)
    }

    /// The sync record, when what the command changed (`changed`) and what the copy-out brought
    /// back (`itemized`) leave the data container equal to the tree.
    fn save_record(&self, mut stamps: HostStamps, changed: &str, itemized: &str) -> Result<()> {
        let setup = self.job.setup;
        let dirs = self.list_at.dirs(&setup.tree);
        let verdict = sync::settle(&setup.tree.root, changed, dirs.as_deref(), itemized, &mut stamps)
            .and_then(|kept| self.job.same_content(&self.rsyncd, &kept));
        match verdict {
            Ok(()) => Record { data: self.data_id.clone(), rsyncd: self.rsyncd.id.clone(), host: stamps.sum }
                .save(&setup.tree, setup.state_tag.as_ref())?,
            Err(why) => log::status(format!(
                "the next run syncs in full: the data container differs from the tree after this command ({why})"
            )),
        }
        Ok(())
    }
}
