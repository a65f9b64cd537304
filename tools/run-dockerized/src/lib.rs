//! run-dockerized: `build/run.sh <command>` for every era (see the dockerized crate).

use dockerized::fanout::{EngineSpec, FanOut, Packaged};
use dockerized::{binaries_json, built_binaries, EngineList, Mode, RunOptions};
use kube_tree::cli::{Ctx, Tool};
use kube_tree::json::Json;
use kube_tree::{log, Fail, Status};

pub const TOOL: Tool = Tool {
    name: "run-dockerized",
    aliases: &["run"],
    summary: "build/run.sh: run make (or any command) in the containerized build, copy output back",
    usage: "\
run-dockerized: run a command in the containerized build of the tree (build/run.sh)

Usage: run-dockerized [options] [--] <command...>   e.g. run-dockerized make WHAT=cmd/kubectl",
    flags: RunOptions::FANOUT_FLAGS,
    notes: "\
No change, no build: a command whose last success left the tree and binaries as they are is not
run again. stdout: the binaries built (--json: one object with the run and its outcome).",
    run,
    takes_command: true,
};

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let opts = RunOptions::from_ctx_fanout(ctx)?;
    if ctx.command.is_empty() {
        return Err(Fail::new("which command? e.g. run-dockerized make WHAT=cmd/kubectl"));
    }
    let tree = ctx.tree()?;
    let root = tree.root.clone();
    let cmd = ctx.command.clone();
    if let Some(engines) = &opts.engines {
        return fan_out(ctx, &opts, &tree, &cmd, engines);
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
    let copied = if res.mode == Mode::Bind {
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

/// `--engines A,B`: the platforms split over the engines, one share per engine run side by side (see
/// `dockerized::fanout`); stdout: every binary the engines built.
fn fan_out(
    ctx: &mut Ctx,
    opts: &RunOptions,
    tree: &kube_tree::Tree,
    cmd: &[String],
    given: &EngineList,
) -> Result<Status, Fail> {
    let what = given.from;
    let engines = EngineSpec::parse_list(what, &given.list)?;
    if opts.engine.is_some() {
        return Err(Fail::new(format!("--engine and {what}: name every engine in {what} (podman:[URL] for podman)")));
    }
    if opts.mode.is_some_and(|m| m != Mode::Rsync) {
        return Err(Fail::new("a fan-out runs every share in rsync mode: drop --mode"));
    }
    let fan = FanOut { engines, skip_unreachable: opts.skip_unreachable, opts: opts.clone() };
    let plan = fan.plan(tree, cmd)?;
    let shares = plan.shares;
    if opts.dry_run {
        if ctx.json {
            ctx.say(fan_out_json(tree, cmd, &shares, plan.packaging.as_ref()).render());
            return Ok(Status::Ok);
        }
        for s in &shares {
            ctx.say(s.plan_line(tree));
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
    let binaries: Vec<String> =
        built_binaries(&kube_tree::Tree::open(&tree.root)?).iter().map(|b| b.as_str().to_string()).collect();
    let tars = match plan.packaging.as_ref().map(|p| p.run(tree, &shares)).transpose()? {
        Some(Packaged::Failed(why)) => {
            log::warn(why);
            report(ctx, false, &binaries, &[]);
            return Ok(Status::Problems(1));
        }
        Some(Packaged::Tarballs(tars)) => tars,
        None => Vec::new(),
    };
    report(ctx, true, &binaries, &tars);
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
            ("run", Json::str(s.alone(tree).display())),
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
