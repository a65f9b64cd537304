//! run-dockerized: `build/run.sh <command>` for every era (see the dockerized crate).

use dockerized::{built_binaries, RunOptions, RUN_VALUE_FLAGS};
use kube_tree::cli::{Ctx, Tool};
use kube_tree::{log, Fail, Status};

pub const TOOL: Tool = Tool {
    name: "run-dockerized",
    aliases: &["run"],
    summary: "build/run.sh: run make (or any command) in the containerized build, copy output back",
    usage: "\
run-dockerized: run a command in the containerized build of the tree (build/run.sh)

Usage: run-dockerized [options] [--] <command...>
       e.g. run-dockerized make WHAT=cmd/kubectl; run-dockerized make cross;
            run-dockerized make kubectl KUBE_BUILD_PLATFORMS=darwin/amd64

  --mode rsync|bind     rsync (default for eras A/B and remote engines): kube-build image, data
                        container, rsync daemon on 127.0.0.1; bind (default for era C): kube-cross
                        with the tree mounted (local engines only)
  --engine docker|podman  (default: KUBE_CONTAINER_ENGINE, else docker; DOCKER_HOST/contexts apply)
  --cross-image IMG     kube-cross image (also KUBE_CROSS_IMAGE / KUBE_CROSS_VERSION)
  --mirror REGISTRY     pull kube-cross from a mirror and tag it with the name the tree expects
  --no-copy             leave the output in the data container (also KUBE_RUN_COPY_OUTPUT=n)
  --full-sync           sync everything in and out even if the last run's record says the data
                        container matches the tree (also KUBE_RUN_FULL_SYNC=y)
  --force               run the command even when nothing changed since its last success
  --dry-run             print every engine command, in order; run none

No change, no build: when the last successful run of the same command (same environment passed
in, same kube-build and kube-cross images, same data container) left the tree as it is now
(every synced entry's stamps) and its copied-out binaries untouched, nothing is started: the
binaries are reported as they are. Anything else runs the command, and so do --force and a
command that copied out no binaries (tests, `true`: their effect is not a file to report).

The environment the scripts pass (KUBE_BUILD_PLATFORMS, GOFLAGS, GOGCFLAGS, GOLDFLAGS when set,
GOPROXY, SOURCE_DATE_EPOCH, KUBE_VERBOSE, KUBERNETES_HTTP(S)_PROXY/NO_PROXY...) reaches the build.
A run records, when it can prove it, that the data container equals the tree: the tree's stamps
(mode, size, mtime, ctime, inode of every synced entry), the data container and the rsync daemon.
The next run skips the sync-in while all three match, and copies out only what its command
changed (listed by a small sh wrapper around the command, by ctime; on a local engine into a
host directory, and the build container starts while the tree is stamped and synced). Anything
else (a new or deleted file in the container, different bytes the copy-out filters keep there,
a failed command, a shell, --no-copy, the scripts' build/run.sh in between) leaves no record,
and says why: the next run syncs in full.
After a successful run the rsync daemon is left running on 127.0.0.1 for the next one (it is
reused only if it serves the same image, data container, user and port); KUBE_RSYNC_KEEP=n stops
it as the scripts do, make-clean removes it. A failure or SIGINT/SIGTERM stops and removes the
build and rsync containers. stdout: the binaries built.",
    run,
    flags: dockerized::RunOptions::FLAGS,
    command_after: Some(RUN_VALUE_FLAGS),
};

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let mut opts = RunOptions::from_ctx(ctx)?;
    if std::env::var("KUBE_RUN_COPY_OUTPUT").is_ok_and(|v| !v.starts_with(['y', 'Y'])) {
        opts.copy = false;
    }
    if ctx.command.is_empty() {
        return Err(Fail::new("which command? e.g. run-dockerized make WHAT=cmd/kubectl"));
    }
    let tree = ctx.tree()?;
    let root = tree.root.clone();
    let cmd = ctx.command.clone();
    let res = dockerized::run(tree, &opts, &cmd, false)?;
    if opts.dry_run {
        for l in &res.plan {
            ctx.say(l);
        }
        return Ok(Status::Ok);
    }
    let status = res.status.expect("a real run has a status");
    if !status.success() {
        log::warn(format!("`{}` failed in the build container ({status})", cmd.join(" ")));
        return Ok(Status::Problems(1));
    }
    let tree = kube_tree::Tree::open(&root)?;
    for b in built_binaries(&tree) {
        ctx.say(b.as_str());
    }
    let copied = if res.mode == dockerized::Mode::Bind {
        "written in place (bind mode)"
    } else if opts.copy {
        "copied back"
    } else {
        "left in the data container (--no-copy)"
    };
    log::status(format!("`{}` done; output {copied}", cmd.join(" ")));
    Ok(Status::Ok)
}
