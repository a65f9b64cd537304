//! The tool's pipeline: parse the request, check it against the tree before any work, build
//! each platform (or skip it when nothing it reads changed), then report.

use crate::state::{self, BuildState, PlatformRecord};
use crate::{
    bin_name, build_date, build_env, build_key, check_target, codegen, flags, host_platform, install_cmds, localcache,
    made_by, outputs_stamp, parse_request, place_bins, run_installs, BuildRequest, Built, Flags, InstallCmd, Made,
    RequestFlags, GOPATH,
};
use camino::Utf8Path;
use kube_tree::cli::Ctx;
use kube_tree::goenv::{self, GoEnv};
use kube_tree::json::Json;
use kube_tree::scripts::{self, GolangSh};
use kube_tree::{log, version, Fail, Status, Tree};
use setup_go::Choice;
use std::time::Instant;

/// What the command line asks for, and which Go.
struct Parsed {
    req: BuildRequest,
    go: Choice,
}

fn parse(ctx: &mut Ctx) -> Result<Parsed, Fail> {
    let go = setup_go::pick::choice_flag(ctx)?;
    let mut flags = RequestFlags {
        debug: ctx.flag("--debug"),
        force_codegen: ctx.flag("--force-codegen"),
        ..RequestFlags::default()
    };
    while let Some(w) = ctx.opt_string("--what")? {
        flags.what.push(w);
    }
    while let Some(p) = ctx.opt_string("--platform")? {
        flags.platforms.push(p);
    }
    let words = ctx.rest();
    Ok(Parsed { req: parse_request(&words, flags, &|k| std::env::var(k).ok())?, go })
}

/// The platforms to build, each one the tree's, and the targets, each a main package inside the
/// tree: checked before any work (codegen can take a minute).
fn check(tree: &Tree, g: &GolangSh, req: &BuildRequest, host: &str) -> Result<Vec<String>, Fail> {
    let platforms = if req.platforms.is_empty() { vec![host.to_string()] } else { req.platforms.clone() };
    let supported = g.all_platforms();
    if supported.is_empty() && !req.platforms.is_empty() {
        return Err(Fail::new(
            "cannot read the platform lists of hack/lib/golang.sh, so KUBE_BUILD_PLATFORMS cannot be checked",
        ));
    }
    if let Some(p) = platforms.iter().find(|p| !supported.is_empty() && !supported.contains(p)) {
        return Err(Fail::new(format!(
            "{} is not a platform this tree builds (hack/lib/golang.sh lists: {})",
            p.escape_debug(),
            supported.join(" ")
        )));
    }
    for t in &req.targets {
        check_target(tree, t)?;
    }
    // The Makefile the generator step is read from: a FIFO or a link out is refused before
    // anything is written.
    codegen::has_generator(tree)?;
    // Everything go writes is under _output/local/go: refused now if any of it leaves the tree.
    goenv::check_write_dirs(&kube_tree::Jail::new(&tree.root)?, Utf8Path::new(GOPATH))?;
    Ok(platforms)
}

/// Points GOCACHE at the kit's shared cache when the tree's flags allow (see [`localcache`]),
/// and says which cache the build uses and why.
fn use_local_cache(
    genv: &mut GoEnv,
    g: &GolangSh,
    req: &BuildRequest,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Fail> {
    let choice = localcache::choose(g, req.debug, env);
    let own = genv.vars.iter().find(|(k, _)| k == "GOCACHE").and_then(|(_, v)| v.clone()).unwrap_or_default();
    log::status_v(2, choice.explain(camino::Utf8Path::new(&own)));
    if let localcache::LocalCache::Shared(dir) = choice {
        fs_err::create_dir_all(&dir)?;
        genv.vars.retain(|(k, _)| k != "GOCACHE");
        genv.vars.push(("GOCACHE".into(), Some(dir.to_string())));
    }
    Ok(())
}

/// What a run built (or found up to date).
struct BuildReport {
    built: Vec<Built>,
    up_to_date: bool,
    codegen: codegen::Codegen,
    flags: Flags,
    genv: GoEnv,
}

/// One platform of this run: the key of its record and the fingerprint of what it reads.
struct PlatformId<'a> {
    platform: &'a str,
    key: String,
    fingerprint: u64,
}

/// What a platform needs this run.
enum Step {
    /// Nothing: its record proves the binaries current; these are they.
    UpToDate(Vec<Made>),
    /// Its go commands.
    Build(Vec<InstallCmd>),
}

impl Step {
    fn run(self, platform: &str) -> StepResult {
        match self {
            Step::UpToDate(made) => StepResult::UpToDate(made),
            Step::Build(cmds) => StepResult::Built(run_installs(cmds, platform)),
        }
    }
}

/// What became of a platform's step: found up to date, or built by go (which may have failed).
enum StepResult {
    UpToDate(Vec<Made>),
    Built(Result<Vec<Made>, Fail>),
}

struct PlatformPlan<'a> {
    id: PlatformId<'a>,
    step: Step,
}

struct PlatformDone<'a> {
    id: PlatformId<'a>,
    result: StepResult,
}

fn build(
    tree: &Tree,
    g: &GolangSh,
    req: &BuildRequest,
    go: &Choice,
    platforms: &[String],
    host: &str,
) -> Result<BuildReport, Fail> {
    let env = |k: &str| std::env::var(k).ok();
    // The Go first (a bad --go changes nothing), and for the generators too.
    let chosen = setup_go::pick(tree, go, &env)?;
    let gopath = tree.path(GOPATH);
    let mut genv = build_env(tree, &gopath)?;
    setup_go::pick::use_chosen(&chosen, &mut genv, &env);
    use_local_cache(&mut genv, g, req, &env)?;
    let codegen::Refreshed { codegen: cg, fingerprints: fp } =
        codegen::refresh(tree, req.force_codegen, &genv.toolchain_vars())?;
    // Again right before go runs: the generator step ran the tree's own scripts.
    goenv::check_write_dirs(&kube_tree::Jail::new(&tree.root)?, Utf8Path::new(GOPATH))?;
    let vv = version::get(tree, &env)?;
    let pkgs = scripts::version_ldflag_packages(tree)?;
    let flags_at = |date: &str| flags(tree, g, req, &version::ldflags(&vv, &pkgs, date));

    // The tree links with -buildid= and stamps the date, so go cannot tell that an installed
    // binary is current and relinks it on every run (much of make's no-op time). A build is
    // skipped instead when the fingerprint of every file of the tree, the go binary, the
    // commands (but the date) and the environment go reads is the one of the last build.
    let mut state = BuildState::load(tree.confined(state::PATH)?);
    let now = build_date(&env);
    let mut date_used = now.clone();
    let mut plans = Vec::new();
    for p in platforms {
        let key = format!("{p}|{}", req.targets.join(" "));
        let bins: Vec<String> = req.targets.iter().map(|t| bin_name(t).to_string()).collect();
        let outputs = outputs_stamp(tree, &gopath, p, host, &bins);
        let cmds = install_cmds(&genv, g, &flags_at(&now), &req.targets, p, host);
        let fingerprint = build_key(&cmds, &genv.go, &now) ^ fp.all;
        let step = match state.get(&key) {
            Some(r) if r.fingerprint == fingerprint && Some(r.outputs) == outputs => {
                log::status_v(2, format!("{p}: up to date (built {})", r.date));
                date_used = r.date.clone();
                Step::UpToDate(made_by(&cmds))
            }
            other => {
                if other.is_some_and(|r| r.fingerprint == fingerprint) {
                    log::status(format!("{p}: the binaries changed since they were built; building again"));
                }
                let out = if p == host { genv.bin_dir() } else { genv.bin_dir().join(p.replace('/', "_")) };
                tree.confined(out)?.create_dir_all()?;
                Step::Build(cmds)
            }
        };
        plans.push(PlatformPlan { id: PlatformId { platform: p, key, fingerprint }, step });
    }
    let to_run = plans.iter().filter(|p| matches!(p.step, Step::Build(_))).count();
    let done = run_steps(plans, parallel_builds(g, to_run, &env));
    let built = place_and_record(tree, &gopath, host, &mut state, &now, done)?;
    Ok(BuildReport { built, up_to_date: to_run == 0, codegen: cg, flags: flags_at(&date_used), genv })
}

/// Whether `to_run` platforms build at once: when the machine has the memory the tree asks for
/// (its threshold; KUBE_PARALLEL_BUILD_MEMORY in the environment overrides it). Said when more
/// than one builds.
fn parallel_builds(g: &GolangSh, to_run: usize, env: &dyn Fn(&str) -> Option<String>) -> bool {
    let threshold = env("KUBE_PARALLEL_BUILD_MEMORY").and_then(|v| v.trim().parse().ok()).or(g.parallel_memory_gb);
    let parallel = to_run > 1 && physical_memory_gb() >= threshold.unwrap_or(40);
    if to_run > 1 {
        let how =
            if parallel { "in parallel" } else { "one after another (less memory than KUBE_PARALLEL_BUILD_MEMORY)" };
        log::status(format!("{to_run} platforms to build, {how}"));
    }
    parallel
}

/// Runs each platform's step, all at once when `parallel`; the results in the plans' order.
fn run_steps(plans: Vec<PlatformPlan<'_>>, parallel: bool) -> Vec<PlatformDone<'_>> {
    if !parallel {
        return plans.into_iter().map(|p| PlatformDone { result: p.step.run(p.id.platform), id: p.id }).collect();
    }
    std::thread::scope(|sc| {
        let running: Vec<_> = plans
            .into_iter()
            .map(|p| {
                let (platform, step) = (p.id.platform, p.step);
                (p.id, sc.spawn(move || step.run(platform)))
            })
            .collect();
        let panicked = || StepResult::Built(Err(Fail::new("a build thread panicked")));
        running
            .into_iter()
            .map(|(id, h)| PlatformDone { id, result: h.join().unwrap_or_else(|_| panicked()) })
            .collect()
    })
}

/// Copies each platform's binaries into place and records every platform that was built; the
/// first failed build is the error (the platforms before it are placed and recorded).
fn place_and_record(
    tree: &Tree,
    gopath: &Utf8Path,
    host: &str,
    state: &mut BuildState,
    now: &str,
    done: Vec<PlatformDone<'_>>,
) -> Result<Vec<Built>, Fail> {
    let mut built = Vec::new();
    for PlatformDone { id, result } in done {
        let (made, ran) = match result {
            StepResult::UpToDate(made) => (made, false),
            StepResult::Built(made) => (made?, true),
        };
        built.extend(place_bins(tree, gopath, id.platform, host, &made, !ran)?);
        if ran {
            // Stamped after the copy: the record holds the binaries as this build left them.
            let bins: Vec<String> = made.iter().map(|m| m.name.clone()).collect();
            let outputs = outputs_stamp(tree, gopath, id.platform, host, &bins)
                .ok_or_else(|| Fail::new(format!("{}: a binary the build reported is missing", id.platform)))?;
            state.set(PlatformRecord { key: id.key, date: now.to_string(), fingerprint: id.fingerprint, outputs })?;
        }
    }
    Ok(built)
}

/// The machine's memory in GB (what the scripts compare with KUBE_PARALLEL_BUILD_MEMORY).
fn physical_memory_gb() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    kb / 1024 / 1024
}

fn render(ctx: &mut Ctx, tree: &Tree, req: &BuildRequest, o: &BuildReport, start: Instant) -> Result<(), Fail> {
    for b in &o.built {
        let rel = b.path.strip_prefix(&tree.root).unwrap_or(&b.path);
        let mb = b.size as f64 / 1e6;
        log::status(format!("{} {} {mb:.1} MB in {} -> {rel}", b.name, b.platform, log::human(b.elapsed)));
    }
    let verb = if o.up_to_date { "up to date:" } else { "built" };
    let n = o.built.len();
    let plural = if n == 1 { "y" } else { "ies" };
    log::status(format!("{verb} {n} binar{plural} in {} (codegen: {})", log::human(start.elapsed()), o.codegen.name()));
    if !ctx.json {
        for b in &o.built {
            ctx.say(b.path.as_str());
        }
        return Ok(());
    }
    let go_version = o.genv.go().arg("version").timeout(kube_tree::proc::GO_PROBE).read()?.trim().to_string();
    let binaries = o.built.iter().map(|b| {
        Json::obj([
            ("name", Json::str(&b.name)),
            ("platform", Json::str(&b.platform)),
            ("path", Json::str(b.path.as_str())),
            ("size", Json::Num(b.size as f64)),
            ("static", Json::Bool(b.static_)),
        ])
    });
    let out = Json::obj([
        ("tree", Json::str(tree.root.as_str())),
        ("era", Json::str(tree.era.name())),
        ("go", Json::str(go_version)),
        ("codegen", Json::str(o.codegen.name())),
        ("up_to_date", Json::Bool(o.up_to_date)),
        ("gcflags", Json::str(&o.flags.gcflags)),
        ("ldflags", Json::str(&o.flags.ldflags)),
        ("tags", Json::str(&o.flags.tags)),
        ("goflags", Json::opt_str(req.goflags.clone())),
        ("binaries", Json::Arr(binaries.collect())),
    ]);
    ctx.say(out.render());
    Ok(())
}

pub(crate) fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let Parsed { mut req, go } = parse(ctx)?;
    let start = Instant::now();
    let tree = ctx.tree()?;
    let g = GolangSh::read(&tree)?;
    if req.targets.is_empty() {
        // As `make` with no WHAT: everything the tree's build lists.
        if g.all_targets.is_empty() {
            return Err(Fail::new(
                "no WHAT, and KUBE_ALL_TARGETS cannot be read from hack/lib/golang.sh: name the targets (WHAT=cmd/kubectl)",
            ));
        }
        log::status(format!("no WHAT: all {} targets of the tree (KUBE_ALL_TARGETS)", g.all_targets.len()));
        req.targets = g.all_targets.clone();
    }
    let host = host_platform();
    let platforms = check(&tree, &g, &req, &host)?;
    let outcome = build(&tree, &g, &req, &go, &platforms, &host)?;
    render(ctx, &tree, &req, &outcome, start)?;
    Ok(Status::Ok)
}
