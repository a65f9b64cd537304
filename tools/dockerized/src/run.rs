//! The whole containerized run of a command: the opening questions, the no-change skip, then
//! the run in its mode ([`crate::rsync_mode`] or [`crate::bind_mode`]) and the cache's upkeep.

use crate::bind_mode;
use crate::cache;
use crate::engine::Engine;
use crate::job::Job;
use crate::opening::Opening;
use crate::options::RunOptions;
use crate::report::RunSubject;
use crate::result::{self, LastRun, Request};
use crate::rsync_mode;
use crate::setup::{save_version_defs, Mode, Setup};
use kube_tree::{log, Fail, Tree};
use std::process::ExitStatus;

/// The outcome of a containerized run.
pub struct RunResult {
    /// None in a dry run.
    pub status: Option<ExitStatus>,
    pub plan: Vec<String>,
    pub mode: Mode,
    /// The tree, engine and images of the run (for `--json`).
    pub subject: RunSubject,
}

/// The whole containerized run of `cmd`: image, data container, sync in, build, copy out (rsync
/// mode), or kube-cross with the tree mounted (bind mode). Containers it starts are removed on
/// every path out, including SIGINT/SIGTERM.
pub fn run(tree: Tree, opts: &RunOptions, cmd: &[String], interactive: bool) -> Result<RunResult, Fail> {
    kube_tree::proc::install_interrupt_handler();
    let engine = Engine::new(opts.engine.clone(), opts.dry_run)?;
    let mut setup = Setup::new(tree, &engine, opts.mode.as_deref(), opts.cross_image.clone())?;
    if opts.cache.is_some() {
        setup.cache = cache::choose(opts.cache.as_deref())?;
    }
    setup.state_tag = opts.state_tag.clone();
    let job = Job { engine: &engine, setup: &setup };
    // Written before the tree is stamped: it is part of what gets synced.
    if !opts.dry_run {
        save_version_defs(&setup.tree)?;
    }
    let mut open = Opening::ask(job, opts)?;
    if unchanged(job, opts, cmd, interactive, &mut open)? {
        let subject = RunSubject::of(&engine, &setup);
        return Ok(RunResult { status: Some(result::success()), plan: Vec::new(), mode: setup.mode, subject });
    }
    if !opts.dry_run {
        LastRun::forget(&setup.tree, setup.state_tag.as_ref())?;
    }
    let status = match setup.mode {
        Mode::Rsync => rsync_mode::run(job, opts, open, cmd, interactive)?,
        Mode::Bind => bind_mode::run(job, opts, &open.containers, cmd, interactive)?,
    };
    if kube_tree::proc::interrupted() {
        return Err(Fail::interrupted());
    }
    job.after_build(status.as_ref());
    let plan = engine.plan.borrow().clone();
    Ok(RunResult { status, plan, mode: setup.mode, subject: RunSubject::of(&engine, &setup) })
}

/// No change, no build: true when the last successful run of this request covers this one
/// (see [`crate::result`]). Else the tree's stamps, when they had to be waited for, go back
/// into `open` for the sync record.
fn unchanged(job: Job, opts: &RunOptions, cmd: &[String], interactive: bool, open: &mut Opening) -> Result<bool, Fail> {
    let setup = job.setup;
    let last = (setup.mode == Mode::Rsync && !opts.dry_run && !interactive && opts.copy)
        .then(|| LastRun::load(&setup.tree, setup.state_tag.as_ref()))
        .flatten();
    let (Some(last), Some(image_id), Some(data)) = (last, &open.facts.image_id, open.containers.get(&setup.names.data))
    else {
        return Ok(false);
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
            return Ok(true);
        }
        None => log::status_v(2, "nothing changed since the last run, but --force: running it"),
        Some(why) => log::status_v(2, format!("running: {why} since the last successful run")),
    }
    open.stamps = host.map(|h| std::thread::spawn(move || h));
    Ok(false)
}
