//! bind mode (era C, or `--mode bind` on a local engine): kube-cross run directly with the tree
//! mounted at [`crate::setup::REMOTE_ROOT`].

use crate::containers::Containers;
use crate::job::Job;
use crate::options::RunOptions;
use crate::toolchain;
use kube_tree::Fail;
use std::process::ExitStatus;

/// Runs `cmd` in kube-cross on the mounted tree; None in a dry run.
pub(crate) fn run(
    job: Job,
    opts: &RunOptions,
    containers: &Containers,
    cmd: &[String],
    interactive: bool,
) -> Result<Option<ExitStatus>, Fail> {
    let setup = job.setup;
    if !opts.dry_run {
        setup.tree.confined("_output/dockerized")?.create_dir_all()?;
    }
    // Era C: the Go the tree names, served from the host when the container cannot fetch it.
    let go = toolchain::plan(&setup.tree, &|k| std::env::var(k).ok(), &toolchain::proxy_answers)?;
    toolchain::log_plan(&go);
    let extra = if opts.dry_run { Vec::new() } else { go.container_args(&setup.tree)? };
    job.prepare_cache()?;
    job.run_in_container(containers, cmd, &extra, interactive)
}
