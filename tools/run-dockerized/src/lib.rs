//! run-dockerized: `build/run.sh <command>` for every era (see the dockerized crate).

use dockerized::fanout::{EngineSpec, FanOut, Me};
use dockerized::{binaries_json, built_binaries, RunOptions, FANOUT_VALUE_FLAGS};
use kube_tree::cli::{Ctx, Tool};
use kube_tree::json::Json;
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
  --cache shared|private  shared (default; also KUBE_BUILD_CACHE): one Go build cache per engine,
                        a volume (k8s-build-kit-go-cache, or KUBE_KIT_CACHE_VOLUME) mounted at
                        _output/dockerized/go/cache for every tree, branch and worktree (eras
                        B/C: the module cache too); trimmed to KUBE_KIT_CACHE_MAX (default 10G,
                        least recently used first). private: the tree's own cache, as the scripts
  --no-copy             leave the output in the data container (also KUBE_RUN_COPY_OUTPUT=n)
  --full-sync           sync everything in and out even if the last run's record says the data
                        container matches the tree (also KUBE_RUN_FULL_SYNC=y)
  --force               run the command even when nothing changed since its last success
  --dry-run             print every engine command, in order; run none
  --engines A,B,...     fan the platforms out over several engines (also KUBE_BUILD_ENGINES):
                        docker context names, unix:// tcp:// ssh:// URLs, podman:[URL]. The
                        platforms (KUBE_BUILD_PLATFORMS, or the tree's list for make cross) are
                        split by each one's measured time per engine (_output/dockerized/
                        .kit-fanout-durations), each engine runs the command for its share in
                        rsync mode, concurrently, and copies back into _output/dockerized/bin.
                        --dry-run prints the plan (engine, platforms, its run). An engine that
                        does not answer stops the run before any work, unless --skip-unreachable.
                        A failing engine fails the run (exit 1, naming it); the others are
                        stopped and their containers of this tree removed.
                        make quick-release / release-skip-tests (release with
                        KUBE_RELEASE_RUN_TESTS=n): the engines build make cross for their
                        share of release.sh's platforms, then the tree's build/package-tarballs.sh
                        packages all of them on the host into _output/release-tars, its server
                        images built on the first docker engine of the list (the tree reads
                        KUBE_BASE_IMAGE_REGISTRY, KUBE_BUILD_PULL_LATEST_IMAGES,
                        KUBE_BUILD_CONFORMANCE, KUBE_DOCKER_REGISTRY there); stdout then lists
                        the tarballs after the binaries.

No change, no build: when the last successful run of the same command (same environment passed
in, same kube-build and kube-cross images, same data container) left the tree as it is now
(every synced entry's stamps; an edit made while it ran means it did not) and its copied-out
binaries untouched, nothing is started: the binaries are reported as they are. Anything else
runs the command, and so do --force and a command that copied out no binaries (tests, `true`:
their effect is not a file to report).

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
build and rsync containers. stdout: the binaries built; with --json one object: the tree,
engine, mode, images and command, then the dry run's commands in order (`commands`) or the
outcome (`ok`, `output`, `binaries`); a fan-out's has `shares` (engine, platforms, run) and
`packaging`.",
    run,
    flags: dockerized::RunOptions::FANOUT_FLAGS,
    command_after: Some(FANOUT_VALUE_FLAGS),
};

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let mut opts = RunOptions::from_ctx_fanout(ctx)?;
    if std::env::var("KUBE_RUN_COPY_OUTPUT").is_ok_and(|v| !v.starts_with(['y', 'Y'])) {
        opts.copy = false;
    }
    if ctx.command.is_empty() {
        return Err(Fail::new("which command? e.g. run-dockerized make WHAT=cmd/kubectl"));
    }
    let tree = ctx.tree()?;
    let root = tree.root.clone();
    let cmd = ctx.command.clone();
    let engines = match opts.engines.clone() {
        Some(e) => Some(("--engines", e)),
        None => {
            std::env::var("KUBE_BUILD_ENGINES").ok().filter(|e| !e.trim().is_empty()).map(|e| ("KUBE_BUILD_ENGINES", e))
        }
    };
    if let Some((what, list)) = engines {
        return fan_out(ctx, &opts, &tree, &cmd, what, &list);
    }
    if opts.skip_unreachable {
        return Err(Fail::new("--skip-unreachable goes with --engines (or KUBE_BUILD_ENGINES)"));
    }
    let res = dockerized::run(tree, &opts, &cmd, false)?;
    if opts.dry_run {
        if ctx.json {
            ctx.say(res.subject.plan_json(&cmd, &res.plan).render());
        } else {
            res.plan.iter().for_each(|l| ctx.say(l));
        }
        return Ok(Status::Ok);
    }
    let status = res.status.expect("a real run has a status");
    let copied = if res.mode == dockerized::Mode::Bind {
        "written in place (bind mode)"
    } else if opts.copy {
        "copied back"
    } else {
        "left in the data container (--no-copy)"
    };
    if !status.success() {
        log::warn(format!("`{}` failed in the build container ({status})", cmd.join(" ")));
        if ctx.json {
            ctx.say(res.subject.outcome_json(&cmd, false, "none (the command failed)", &[]).render());
        }
        return Ok(Status::Problems(1));
    }
    let tree = kube_tree::Tree::open(&root)?;
    let binaries = built_binaries(&tree);
    if ctx.json {
        ctx.say(res.subject.outcome_json(&cmd, true, copied, &binaries).render());
    } else {
        // One path a line: a name with a newline cannot pass for two.
        binaries.iter().for_each(|b| ctx.say(log::printable(b.as_str())));
    }
    log::status(format!("`{}` done; output {copied}", cmd.join(" ")));
    Ok(Status::Ok)
}

/// `--engines A,B`: the platforms split over the engines, one run of this tool per engine (see
/// `dockerized::fanout`); stdout: every binary the engines built.
fn fan_out(
    ctx: &mut Ctx,
    opts: &RunOptions,
    tree: &kube_tree::Tree,
    cmd: &[String],
    what: &str,
    list: &str,
) -> Result<Status, Fail> {
    let engines = EngineSpec::parse_list(what, list)?;
    if opts.engine.is_some() {
        return Err(Fail::new(format!("--engine and {what}: name every engine in {what} (podman:[URL] for podman)")));
    }
    if opts.mode.as_deref().is_some_and(|m| m != "rsync") {
        return Err(Fail::new("a fan-out runs every share in rsync mode: drop --mode"));
    }
    let mut pass = Vec::new();
    for (flag, v) in [("--mirror", &opts.mirror), ("--cross-image", &opts.cross_image), ("--cache", &opts.cache)] {
        if let Some(v) = v {
            pass.extend([flag.to_string(), v.clone()]);
        }
    }
    for (flag, on) in [("--force", opts.force), ("--full-sync", opts.full_sync), ("--no-copy", !opts.copy)] {
        if on {
            pass.push(flag.to_string());
        }
    }
    let fan = FanOut { engines, skip_unreachable: opts.skip_unreachable, me: me()?, pass };
    let plan = fan.plan(tree, cmd)?;
    let shares = plan.shares;
    if opts.dry_run {
        if ctx.json {
            ctx.say(fan_out_json(tree, cmd, &shares, plan.packaging.as_ref()).render());
            return Ok(Status::Ok);
        }
        for s in &shares {
            ctx.say(s.plan_line());
        }
        if let Some(p) = &plan.packaging {
            ctx.say(p.plan_line(tree));
        }
        return Ok(Status::Ok);
    }
    let t = std::time::Instant::now();
    let outcome = dockerized::fanout::execute(tree, &shares)?;
    if outcome.interrupted {
        return Err(Fail::interrupted());
    }
    let report = |ctx: &mut Ctx, ok: bool, binaries: &[String], tars: &[camino::Utf8PathBuf]| {
        if ctx.json {
            let j = Json::obj([
                ("tree", Json::str(tree.root.as_str())),
                ("command", Json::strs(cmd.iter().cloned())),
                ("dry_run", Json::Bool(false)),
                ("ok", Json::Bool(ok)),
                ("binaries", Json::strs(binaries.iter().cloned())),
                ("tarballs", binaries_json(tars)),
            ]);
            ctx.say(j.render());
        } else {
            binaries.iter().for_each(|b| ctx.say(log::printable(b)));
            tars.iter().for_each(|t| ctx.say(log::printable(t.as_str())));
        }
    };
    if let Some(f) = outcome.failed {
        log::warn(f);
        report(ctx, false, &[], &[]);
        return Ok(Status::Problems(1));
    }
    let tars = match plan.packaging.as_ref().map(|p| p.run(tree, &shares)).transpose()? {
        Some(Err(why)) => {
            log::warn(why);
            report(ctx, false, &outcome.binaries, &[]);
            return Ok(Status::Problems(1));
        }
        Some(Ok(tars)) => tars,
        None => Vec::new(),
    };
    report(ctx, true, &outcome.binaries, &tars);
    let what = cmd.join(" ");
    log::status(format!("`{what}` done on {} engine(s) in {}", shares.len(), log::human(t.elapsed())));
    Ok(Status::Ok)
}

/// A fan-out's dry run as one JSON object: each share's engine, platforms and run, and the
/// packaging of a release target.
fn fan_out_json(
    tree: &kube_tree::Tree,
    cmd: &[String],
    shares: &[dockerized::fanout::Share],
    packaging: Option<&dockerized::fanout::Packaging>,
) -> Json {
    let share = |s: &dockerized::fanout::Share| {
        Json::obj([
            ("engine", Json::str(&s.engine.spec)),
            ("platforms", Json::strs(s.platforms.iter().cloned())),
            ("run", Json::str(s.proc.display())),
        ])
    };
    let pack = packaging.map(|p| {
        Json::obj([
            ("target", Json::str(&p.target)),
            ("platforms", Json::strs(p.platforms.iter().cloned())),
            ("run", Json::str(p.proc(tree).display())),
        ])
    });
    Json::obj([
        ("tree", Json::str(tree.root.as_str())),
        ("command", Json::strs(cmd.iter().cloned())),
        ("dry_run", Json::Bool(true)),
        ("shares", Json::Arr(shares.iter().map(share).collect())),
        ("packaging", pack.unwrap_or(Json::Null)),
    ])
}

/// How to start this tool again: this binary, with `run-dockerized` first when it is the
/// xtask binary that dispatches to it.
fn me() -> Result<Me, Fail> {
    let program = std::env::current_exe().map_err(|e| Fail::new(format!("cannot find this program: {e}")))?;
    let own = program.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("run-dockerized"));
    Ok(Me { program, words: if own { Vec::new() } else { vec!["run-dockerized".into()] } })
}
