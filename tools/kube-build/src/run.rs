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
    // Everything the build writes is under _output/local: refused now if that leaves the tree.
    tree.confined("_output/local/go")?;
    Ok(platforms)
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
    let gopath = tree.path("_output/local/go");
    let mut genv = build_env(tree, &gopath)?;
    setup_go::pick::use_chosen(&chosen, &mut genv, &env);
    let (cg, fp) = codegen::refresh(tree, req.force_codegen, &genv.toolchain_vars())?;
    let vv = version::get(tree, &env)?;
    let pkgs = scripts::version_ldflag_packages(tree);
    let flags_at = |date: &str| flags(tree, g, req, &version::ldflags(&vv, &pkgs, date));

    // The tree links with -buildid= and stamps the date, so go cannot tell that an installed
    // binary is current and relinks it on every run (much of make's no-op time). A build is
    // skipped instead when the fingerprint of every file of the tree, the go binary, the
    // commands (but the date) and the environment go reads is the one of the last build.
    let mut state = BuildState::load(tree.path("_output/local/.kit-build-state"), kube_tree::Jail::new(&tree.root)?);
    let now = build_date(&env);
    let (mut built, mut date_used, mut skipped) = (Vec::new(), now.clone(), 0);
    for p in platforms {
        let key = format!("{p}|{}", req.targets.join(" "));
        let outputs_there =
            req.targets.iter().all(|t| tree.path("_output/local/bin").join(p).join(bin_file(bin_name(t), p)).is_file());
        let cmds = install_cmds(&genv, g, &flags_at(&now), &req.targets, p, host);
        let fingerprint = build_key(&cmds, &genv.go, &now) ^ fp.all;
        let names = match state.get(&key) {
            Some((date, h)) if outputs_there && h == fingerprint => {
                log::status_v(2, format!("{p}: up to date (built {date})"));
                skipped += 1;
                date_used = date.to_string();
                cmds.iter()
                    .flat_map(|(_, group, st)| {
                        group.iter().map(move |t| (bin_name(t).to_string(), *st, Duration::ZERO))
                    })
                    .collect()
            }
            _ => {
                let names = run_installs(cmds, p)?;
                state.set(&key, &now, fingerprint)?;
                names
            }
        };
        built.extend(place_bins(tree, &gopath, p, host, &names)?);
    }
    Ok(Outcome { built, up_to_date: skipped == platforms.len(), codegen: cg, flags: flags_at(&date_used), genv })
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
    let (req, go) = parse(ctx)?;
    let start = Instant::now();
    let tree = ctx.tree()?;
    let g = GolangSh::read(&tree);
    let host = host_platform();
    let platforms = check(&tree, &g, &req, &host)?;
    let outcome = build(&tree, &g, &req, &go, &platforms, &host)?;
    render(ctx, &tree, &req, &outcome, start)?;
    Ok(Status::Ok)
}
