//! The tool's pipeline: parse the request, check it against the tree before any work, build
//! each platform (or skip it when nothing it reads changed), then report.

use super::*;

fn parse(ctx: &mut Ctx) -> Result<(Request, Choice), Fail> {
    let go = setup_go::pick::choice_flag(ctx)?;
    let debug = ctx.flag("--debug");
    let force_codegen = ctx.flag("--force-codegen");
    let mut what = Vec::new();
    while let Some(w) = ctx.opt_string("--what")? {
        what.push(w);
    }
    let mut plats = Vec::new();
    while let Some(p) = ctx.opt_string("--platform")? {
        plats.push(p);
    }
    let words = ctx.rest();
    Ok((parse_request(&words, what, plats, debug, force_codegen, &|k| std::env::var(k).ok())?, go))
}

/// The platforms to build, each one the tree's, and the targets, each a main package inside the
/// tree: checked before any work (codegen can take a minute).
fn check(tree: &Tree, g: &GolangSh, req: &Request, host: &str) -> Result<Vec<String>, Fail> {
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
    req: &Request,
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
struct Outcome {
    built: Vec<Built>,
    up_to_date: bool,
    codegen: codegen::Codegen,
    flags: Flags,
    genv: GoEnv,
}

fn build(
    tree: &Tree,
    g: &GolangSh,
    req: &Request,
    go: &Choice,
    platforms: &[String],
    host: &str,
) -> Result<Outcome, Fail> {
    let env = |k: &str| std::env::var(k).ok();
    // The Go first (a bad --go changes nothing), and for the generators too.
    let chosen = setup_go::pick(tree, go, &env)?;
    let gopath = tree.path(GOPATH);
    let mut genv = build_env(tree, &gopath)?;
    setup_go::pick::use_chosen(&chosen, &mut genv, &env);
    use_local_cache(&mut genv, g, req, &env)?;
    let (cg, fp) = codegen::refresh(tree, req.force_codegen, &genv.toolchain_vars())?;
    // Again right before go runs: the generator step ran the tree's own scripts.
    goenv::check_write_dirs(&kube_tree::Jail::new(&tree.root)?, Utf8Path::new(GOPATH))?;
    let vv = version::get(tree, &env)?;
    let pkgs = scripts::version_ldflag_packages(tree)?;
    let flags_at = |date: &str| flags(tree, g, req, &version::ldflags(&vv, &pkgs, date));

    // The tree links with -buildid= and stamps the date, so go cannot tell that an installed
    // binary is current and relinks it on every run (much of make's no-op time). A build is
    // skipped instead when the fingerprint of every file of the tree, the go binary, the
    // commands (but the date) and the environment go reads is the one of the last build.
    let mut state = BuildState::load(tree.path("_output/local/.kit-build-state"), kube_tree::Jail::new(&tree.root)?);
    let now = build_date(&env);
    let (mut date_used, mut skipped) = (now.clone(), 0);
    // First what each platform needs: nothing (up to date) or its go commands.
    let mut plan: Vec<(&str, String, u64, Option<Cmds>)> = Vec::new();
    let mut names_of: Vec<Result<Names, Fail>> = Vec::new();
    for p in platforms {
        let key = format!("{p}|{}", req.targets.join(" "));
        let bins: Vec<String> = req.targets.iter().map(|t| bin_name(t).to_string()).collect();
        let outputs = outputs_stamp(tree, &gopath, p, host, &bins);
        let cmds = install_cmds(&genv, g, &flags_at(&now), &req.targets, p, host);
        let fingerprint = build_key(&cmds, &genv.go, &now) ^ fp.all;
        match state.get(&key) {
            Some(r) if r.fingerprint == fingerprint && Some(r.outputs) == outputs => {
                log::status_v(2, format!("{p}: up to date (built {})", r.date));
                skipped += 1;
                date_used = r.date.clone();
                names_of.push(Ok(cmds
                    .iter()
                    .flat_map(|(_, group, st)| {
                        group.iter().map(move |t| (bin_name(t).to_string(), *st, Duration::ZERO))
                    })
                    .collect()));
                plan.push((p, key, fingerprint, None));
            }
            other => {
                if other.is_some_and(|r| r.fingerprint == fingerprint) {
                    log::status(format!("{p}: the binaries changed since they were built; building again"));
                }
                let out = if p == host { genv.bin_dir() } else { genv.bin_dir().join(p.replace('/', "_")) };
                tree.confined(out)?.create_dir_all()?;
                names_of.push(Ok(Vec::new()));
                plan.push((p, key, fingerprint, Some(cmds)));
            }
        }
    }
    // Then the builds: platforms at once when the machine has the memory the tree asks for.
    let to_run = plan.iter().filter(|x| x.3.is_some()).count();
    // The tree's threshold; KUBE_PARALLEL_BUILD_MEMORY in the environment overrides it.
    let threshold = env("KUBE_PARALLEL_BUILD_MEMORY").and_then(|v| v.trim().parse().ok()).or(g.parallel_memory_gb);
    let parallel = to_run > 1 && physical_memory_gb() >= threshold.unwrap_or(40);
    if to_run > 1 {
        let how =
            if parallel { "in parallel" } else { "one after another (less memory than KUBE_PARALLEL_BUILD_MEMORY)" };
        log::status(format!("{to_run} platforms to build, {how}"));
    }
    let jobs: Vec<(usize, &str, Cmds)> =
        plan.iter_mut().enumerate().filter_map(|(i, x)| x.3.take().map(|c| (i, x.0, c))).collect();
    let ran: Vec<usize> = jobs.iter().map(|j| j.0).collect();
    if parallel {
        std::thread::scope(|sc| {
            let handles: Vec<_> = jobs.into_iter().map(|(i, p, c)| (i, sc.spawn(move || run_installs(c, p)))).collect();
            for (i, h) in handles {
                names_of[i] = h.join().unwrap_or_else(|_| Err(Fail::new("a build thread panicked")));
            }
        });
    } else {
        for (i, p, c) in jobs {
            names_of[i] = run_installs(c, p);
        }
    }
    let mut built = Vec::new();
    for (i, ((p, key, fingerprint, _), names)) in plan.iter().zip(names_of).enumerate() {
        let names = names?;
        let ran = ran.contains(&i);
        built.extend(place_bins(tree, &gopath, p, host, &names, !ran)?);
        if ran {
            // Stamped after the copy: the record holds the binaries as this build left them.
            let bins: Vec<String> = names.iter().map(|n| n.0.clone()).collect();
            let outputs = outputs_stamp(tree, &gopath, p, host, &bins)
                .ok_or_else(|| Fail::new(format!("{p}: a binary the build reported is missing")))?;
            let rec = Record { key: key.clone(), date: now.clone(), fingerprint: *fingerprint, outputs };
            state.set(rec)?;
        }
    }
    Ok(Outcome { built, up_to_date: skipped == platforms.len(), codegen: cg, flags: flags_at(&date_used), genv })
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

fn render(ctx: &mut Ctx, tree: &Tree, req: &Request, o: &Outcome, start: Instant) -> Result<(), Fail> {
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
    let (mut req, go) = parse(ctx)?;
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
