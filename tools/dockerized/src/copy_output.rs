//! `build/copy-output.sh`: the data container's output into the tree, on its own.

use crate::arrival::Times;
use crate::clean::built_binaries;
use crate::containers::Containers;
use crate::engine::{Cleanup, Engine, EngineChoice};
use crate::job::Job;
use crate::rsync::{keep_rsyncd, rsyncd_key, CopyOut};
use crate::setup::{Mode, Setup};
use camino::Utf8PathBuf;
use kube_tree::{Fail, Tree};

/// What [`copy_output`] did.
pub enum Copied {
    /// Bind mode: the build wrote into the tree; nothing to copy.
    BindMode,
    /// A dry run: the engine and rsync commands it would run.
    Planned(Vec<String>),
    /// The binaries now under `_output/dockerized/bin`.
    Binaries(Vec<Utf8PathBuf>),
}

/// `build/copy-output.sh`: the data container's output into the tree (the copy-out of a full
/// run, on its own: after `--no-copy`, or a build container killed before its copy-out).
pub fn copy_output(tree: Tree, engine_choice: Option<EngineChoice>, dry_run: bool) -> Result<Copied, Fail> {
    let engine = Engine::new(engine_choice, dry_run)?;
    let setup = Setup::new(tree, &engine, None, None)?;
    let job = Job { engine: &engine, setup: &setup };
    if setup.mode == Mode::Bind {
        engine.check()?;
        return Ok(Copied::BindMode);
    }
    let answers = engine.query_all(&[
        engine.info_cmd(),
        Engine::image_id_cmd(&setup.names.image),
        Containers::cmd(engine.kind()),
    ])?;
    engine.take_info(answers[0].as_ref())?;
    let image_id = answers[1].as_ref().filter(|a| a.success()).map(|a| a.stdout.trim().to_string()).unwrap_or_default();
    let containers = Containers::read(engine.kind(), answers[2].as_ref())?;
    let listed = containers.get(&setup.names.data);
    let data_id = match listed {
        Some(d) => d.id.clone(),
        None if dry_run => String::new(),
        None => {
            return Err(Fail::new(format!(
                "no data container {} for this tree: nothing was built in a container here (run-dockerized first)",
                setup.names.data
            )))
        }
    };
    let mut cleanup = Cleanup::new(&engine);
    let key = rsyncd_key(&image_id, &data_id, &setup.user, setup.rsync_port);
    let rsyncd = job.start_rsyncd(&key, Some(&containers), &mut cleanup)?;
    job.copy_out(&rsyncd, CopyOut::Full, Times::of(listed))?;
    if keep_rsyncd() && !kube_tree::proc::interrupted() {
        cleanup.keep(&setup.names.rsync);
    }
    drop(cleanup);
    if dry_run {
        return Ok(Copied::Planned(engine.plan.borrow().clone()));
    }
    Ok(Copied::Binaries(built_binaries(&setup.tree)))
}
