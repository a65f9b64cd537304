//! The whole containerized run of a command: the opening questions, the no-change skip, then
//! the run in its mode ([`crate::rsync_mode`] or [`crate::bind_mode`]) and the cache's upkeep.

use crate::bind_mode;
use crate::cache;
use crate::engine::Engine;
use crate::job::Job;
use crate::opening::Opening;
use crate::options::RunOptions;
use crate::report::RunSubject;
use crate::result;
use crate::rsync_mode;
use crate::setup::{save_version_defs, Mode, Setup};
use kube_tree::{Fail, Tree};
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
    let engine = match &opts.share {
        Some(share) => share.engine.engine(opts.dry_run)?,
        None => Engine::new(opts.engine.clone(), opts.dry_run)?,
    };
    let mut setup = Setup::new(tree, &engine, opts.mode, opts.cross_image.clone())?;
    if opts.cache.is_some() {
        setup.cache = cache::choose(opts.cache)?;
    }
    if let Some(share) = &opts.share {
        setup.state_tag = Some(share.tag.clone());
        setup.platforms = Some(share.platforms.join(" "));
        setup.rsync_port = Some(share.rsync_port);
    }
    let job = Job { engine: &engine, setup: &setup };
    // Written before the tree is stamped: it is part of what gets synced.
    if !opts.dry_run {
        save_version_defs(&setup.tree)?;
    }
    let mut open = Opening::ask(job, opts)?;
    if job.skip_unchanged(opts, cmd, interactive, &mut open)? {
        let subject = RunSubject::of(&engine, &setup);
        return Ok(RunResult { status: Some(result::success()), plan: Vec::new(), mode: setup.mode, subject });
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
