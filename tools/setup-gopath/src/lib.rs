//! setup-gopath: put a checkout at `$GOPATH/src/k8s.io/kubernetes` (a symlink to an existing tree,
//! or a git clone), print the environment its era needs, and prove it by building cmd/kube-proxy.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::cli::{Ctx, Flag, Tool};
use kube_tree::goenv::{self, GoEnv, KUBE_IMPORT_PATH};
use kube_tree::json::Json;
use kube_tree::proc::Proc;
use kube_tree::{fsx, log, root, Fail, Status, Tree};
use std::time::Duration;

pub const TOOL: Tool = Tool {
    name: "setup-gopath",
    aliases: &["gopath"],
    summary: "put the checkout at $GOPATH/src/k8s.io/kubernetes (link or clone), print env, probe a build",
    usage: "\
setup-gopath: put a Kubernetes checkout at $GOPATH/src/k8s.io/kubernetes

Usage: setup-gopath [--gopath DIR] [--from PATH | --clone URL [--ref REF]]
                    [--print-env] [--probe [--go auto|host|PATH]] [--force] [--dry-run] [--json]",
    flags: &[
        Flag::value("--gopath", "DIR", "the GOPATH to use (default: first entry of $GOPATH, else ~/go)"),
        Flag::value("--from", "PATH", "link this checkout (default: the tree found as --kube-root describes)"),
        Flag::value(
            "--clone",
            "URL",
            "git clone URL there instead (into a temp dir, renamed into place when complete)",
        ),
        Flag::value("--ref", "REF", "with --clone: check out this branch, tag or commit"),
        Flag::switch("--print-env", "print shell lines for: eval \"$(setup-gopath --print-env)\""),
        Flag::switch("--probe", "build cmd/kube-proxy there with `go build` and report the binary or the errors"),
        setup_go::pick::GO_FLAG,
        Flag::switch("--force", "repoint an existing symlink that points at another tree (never a directory)"),
        Flag::switch("--dry-run", "say what would be done; change nothing"),
    ],
    notes: "Idempotent; an existing different directory is never replaced. stdout: the checkout path.",
    run,
    takes_command: false,
};

/// What happened (or would happen) at the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    AlreadyThere,
    Linked { target: Utf8PathBuf, replaced: Option<String> },
    Cloned { url: String, reference: Option<String> },
}

impl Placement {
    fn describe(&self, dest: &Utf8Path) -> String {
        match self {
            Placement::AlreadyThere => format!("{dest} already is the checkout"),
            Placement::Linked { target, replaced: None } => format!("link {dest} -> {target}"),
            Placement::Linked { target, replaced: Some(old) } => format!("repoint {dest} -> {target} (was -> {old})"),
            Placement::Cloned { url, reference } => {
                format!("clone {url}{} into {dest}", reference.as_ref().map(|r| format!(" at {r}")).unwrap_or_default())
            }
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Placement::AlreadyThere => "none",
            Placement::Linked { replaced: None, .. } => "link",
            Placement::Linked { .. } => "relink",
            Placement::Cloned { .. } => "clone",
        }
    }
}

/// Where the checkout comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Tree(Utf8PathBuf),
    Clone { url: String, reference: Option<String> },
}

fn absolute(p: Utf8PathBuf) -> Result<Utf8PathBuf, Fail> {
    if p.is_absolute() {
        return Ok(p);
    }
    let cwd = Utf8PathBuf::from_path_buf(std::env::current_dir()?)
        .map_err(|_| Fail::new("current directory is not UTF-8"))?;
    Ok(cwd.join(p))
}

/// Decides what to do at `dest` without changing anything.
pub fn plan(dest: &Utf8Path, source: &Source, force: bool) -> Result<Placement, Fail> {
    let md = match std::fs::symlink_metadata(dest) {
        Ok(md) => Some(md),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Fail::new(format!("cannot inspect {dest}: {e}"))),
    };
    match (source, md) {
        (Source::Tree(src), None) => Ok(Placement::Linked { target: src.clone(), replaced: None }),
        (Source::Clone { url, reference }, None) => {
            Ok(Placement::Cloned { url: url.clone(), reference: reference.clone() })
        }
        (Source::Tree(src), Some(md)) => {
            let same = root::canonical(dest).ok().as_ref() == Some(src);
            if same {
                return Ok(Placement::AlreadyThere);
            }
            if md.file_type().is_symlink() {
                let old = fs_err::read_link(dest)?.to_string_lossy().into_owned();
                if force {
                    return Ok(Placement::Linked { target: src.clone(), replaced: Some(old) });
                }
                return Err(Fail::new(format!(
                    "{dest} is a symlink to {old}, not to {src}; pass --force to repoint it"
                )));
            }
            Err(Fail::new(format!(
                "{dest} already exists and is not {src}; refusing to replace it (move it away first)"
            )))
        }
        (Source::Clone { url, .. }, Some(_)) => {
            let origin = Proc::new("git")
                .args(["-C", dest.as_str(), "config", "--get", "remote.origin.url"])
                .timeout(kube_tree::proc::PROBE)
                .read()
                .unwrap_or_default();
            if origin.trim() == url {
                return Ok(Placement::AlreadyThere);
            }
            Err(Fail::new(format!("{dest} already exists and is not a clone of {url}; refusing to replace it")))
        }
    }
}

/// The directories from the first missing one down to `dir`, shallowest first.
fn missing_dirs(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out: Vec<Utf8PathBuf> =
        dir.ancestors().take_while(|d| std::fs::symlink_metadata(d).is_err()).map(Utf8Path::to_owned).collect();
    out.reverse();
    out
}

/// Carries out a placement inside `gopath` (every write is confined to it). A clone goes to a
/// temp sibling first, so a failed or interrupted clone never leaves a half checkout at the
/// destination; the directories made for it are removed again when it fails.
pub fn apply(gopath: &Utf8Path, dest: &Utf8Path, p: &Placement) -> Result<(), Fail> {
    if *p == Placement::AlreadyThere {
        return Ok(());
    }
    let made = missing_dirs(dest.parent().expect("dest has a parent"));
    // The deepest directory that exists now: a failure puts its times back too.
    let kept = dest.ancestors().find(|d| d.is_dir()).map(|d| d.as_std_path().to_owned());
    let times = fsx::DirTimes::of(kept);
    let res = (|| -> Result<(), Fail> {
        fs_err::create_dir_all(gopath)?;
        let jail = kube_tree::Jail::new(gopath)?;
        let dest = jail.path(dest)?;
        jail.path(dest.rel().parent().expect("under src/"))?.create_dir_all()?;
        match p {
            Placement::AlreadyThere => Ok(()),
            Placement::Linked { target, .. } => fsx::swap_in_symlink(&dest, target.as_str()),
            Placement::Cloned { url, reference } => clone_into(&dest, url, reference.as_deref()),
        }
    })();
    if res.is_err() {
        for d in made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        times.restore();
    }
    res
}

fn clone_into(dest: &kube_tree::Confined, url: &str, reference: Option<&str>) -> Result<(), Fail> {
    let tmp = dest.temp("clone");
    tmp.remove_dir_all()?;
    let res = (|| -> Result<(), Fail> {
        let step = log::Step::start(format!("git clone {url}"));
        let out = Proc::new("git")
            .args(["clone", "--quiet", "--", url])
            .arg(tmp.path())
            .output_with_progress("git clone", Duration::from_secs(15))?;
        if !out.success() {
            return Err(Fail::new(format!("git clone {url} failed: {}", out.first_lines(3).replace('\n', " | "))));
        }
        if let Some(r) = reference {
            // The trailing `--` makes git read REF as a revision, never as a path.
            let out = Proc::new("git").arg("-C").arg(tmp.path()).args(["checkout", "--quiet", r, "--"]).output()?;
            if !out.success() {
                return Err(Fail::new(format!("git checkout {r} failed: {}", out.first_lines(2).replace('\n', " | "))));
            }
        }
        step.done();
        if root::looks_like_kube(&tmp.path()).is_none() {
            return Err(Fail::new(format!("{url} is not a Kubernetes tree (no go.mod with module k8s.io/kubernetes)")));
        }
        tmp.rename_to(dest)
    })();
    if res.is_err() {
        let _ = tmp.remove_dir_all();
    }
    res
}

/// A value that reaches git, a path or a shell line: no control characters, and no leading `-`
/// where git would read it as an option.
fn plain_value(flag: &str, v: &str, dash_ok: bool) -> Result<(), Fail> {
    if v.is_empty() || v.chars().any(char::is_control) {
        return Err(Fail::new(format!(
            "{flag} {}: empty, or holds a control character (newline, tab, ...)",
            v.escape_debug()
        )));
    }
    if !dash_ok && v.starts_with('-') {
        return Err(Fail::new(format!("{flag} {v}: starts with `-`, which git would read as an option")));
    }
    Ok(())
}

/// The command line, parsed and checked.
struct Args {
    gopath: Utf8PathBuf,
    from: Option<Utf8PathBuf>,
    clone: Option<String>,
    reference: Option<String>,
    print_env: bool,
    probe: bool,
    force: bool,
    dry_run: bool,
    go: setup_go::Choice,
}

fn parse(ctx: &mut Ctx) -> Result<Args, Fail> {
    let gopath_flag = ctx.opt_path("--gopath")?;
    let from = ctx.opt_path("--from")?;
    let clone = ctx.opt_string("--clone")?;
    let reference = ctx.opt_string("--ref")?;
    let (print_env, probe, force, dry_run) =
        (ctx.flag("--print-env"), ctx.flag("--probe"), ctx.flag("--force"), ctx.flag("--dry-run"));
    let go = setup_go::pick::choice_flag(ctx)?;
    ctx.finish()?;
    if from.is_some() && clone.is_some() {
        return Err(Fail::new("--from and --clone exclude each other"));
    }
    if reference.is_some() && clone.is_none() {
        return Err(Fail::new("--ref goes with --clone"));
    }
    for (flag, v) in [("--clone", &clone), ("--ref", &reference)] {
        if let Some(v) = v {
            plain_value(flag, v, false)?;
        }
    }
    for (flag, v) in [("--gopath", &gopath_flag), ("--from", &from)] {
        if let Some(v) = v {
            plain_value(flag, v.as_str(), true)?;
        }
    }
    let gopath = match gopath_flag {
        Some(g) => absolute(g)?,
        None => root::gopath_entries(&|k| std::env::var(k).ok())
            .into_iter()
            .next()
            .ok_or_else(|| Fail::new("no GOPATH: set $GOPATH or $HOME, or pass --gopath"))?,
    };
    plain_value("GOPATH", gopath.as_str(), true)?;
    Ok(Args { gopath, from, clone, reference, print_env, probe, force, dry_run, go })
}

/// What was done, for the output.
struct Outcome {
    dest: Utf8PathBuf,
    placement: Placement,
    tree: Option<Tree>,
    goenv: Option<GoEnv>,
    probe: Option<goenv::Probe>,
}

fn source(ctx: &Ctx, a: &Args) -> Result<Source, Fail> {
    Ok(match (&a.clone, &a.from) {
        (Some(url), _) => Source::Clone { url: url.clone(), reference: a.reference.clone() },
        (None, Some(p)) => {
            let p = absolute(p.clone())?;
            if !p.is_dir() {
                return Err(Fail::new(format!("--from {p}: no such directory")));
            }
            if root::looks_like_kube(&p).is_none() {
                return Err(Fail::new(format!(
                    "--from {p} is not a Kubernetes tree (no go.mod with module k8s.io/kubernetes)"
                )));
            }
            Source::Tree(root::canonical(&p)?)
        }
        (None, None) => Source::Tree(ctx.tree()?.root),
    })
}

fn execute(ctx: &Ctx, a: &Args) -> Result<Outcome, Fail> {
    let dest = a.gopath.join("src").join(KUBE_IMPORT_PATH);
    let source = source(ctx, a)?;
    let placement = plan(&dest, &source, a.force)?;
    if a.dry_run {
        log::status(format!("would {}", placement.describe(&dest)));
    } else {
        apply(&a.gopath, &dest, &placement)?;
        let level = if placement == Placement::AlreadyThere { 2 } else { 1 };
        log::status_v(level, placement.describe(&dest));
    }
    // The tree as seen through the GOPATH path (what the env and the probe use).
    let tree_path = match &source {
        Source::Tree(s) if !dest.exists() => s.clone(),
        _ => dest.clone(),
    };
    let tree = if tree_path.exists() { Some(Tree::open(&tree_path)?) } else { None };
    let goenv = tree.as_ref().map(|t| GoEnv::for_tree(t, &a.gopath, &|k| std::env::var(k).ok()));
    let probe = match (&goenv, a.probe, a.dry_run) {
        (Some(g), true, false) => {
            // The probe builds with the tree's Go; the printed env stays the GOPATH's only.
            let (mut g, vars) = (g.clone(), |k: &str| std::env::var(k).ok());
            setup_go::pick::apply(tree.as_ref().expect("a tree with its env"), &a.go, &mut g, &vars)?;
            Some(goenv::probe_kube_proxy(&g, &a.gopath.join("bin/kube-proxy"))?)
        }
        (_, true, _) => {
            log::status("probe skipped (dry run)");
            None
        }
        _ => None,
    };
    Ok(Outcome { dest, placement, tree, goenv, probe })
}

fn render(ctx: &mut Ctx, a: &Args, o: &Outcome) {
    if ctx.json {
        let envj = o
            .goenv
            .as_ref()
            .map(|g| Json::Obj(g.vars.iter().map(|(k, v)| (k.clone(), Json::opt_str(v.clone()))).collect()))
            .unwrap_or(Json::Null);
        let probej = o
            .probe
            .as_ref()
            .map(|p| {
                Json::obj([
                    ("ok", Json::Bool(p.ok)),
                    ("binary", Json::str(p.binary.as_str())),
                    ("elapsed_ms", Json::Num(p.elapsed.as_millis() as f64)),
                    ("go", Json::str(&p.go_version)),
                    ("error", Json::str(&p.error)),
                ])
            })
            .unwrap_or(Json::Null);
        let out = Json::obj([
            ("gopath", Json::str(a.gopath.as_str())),
            ("path", Json::str(o.dest.as_str())),
            ("action", Json::str(o.placement.kind())),
            ("dry_run", Json::Bool(a.dry_run)),
            ("era", Json::opt_str(o.tree.as_ref().map(|t| t.era.name()))),
            ("env", envj),
            ("probe", probej),
        ]);
        ctx.say(out.render());
    } else if a.print_env {
        if let Some(g) = &o.goenv {
            ctx.say(format!("# {} (era {})", o.dest, o.tree.as_ref().map(|t| t.era.name()).unwrap_or("?")));
            ctx.out.push_str(&g.shell_lines());
            ctx.say(format!("# then: cd {}", g.build_dir));
        }
    } else {
        ctx.say(o.dest.as_str());
        if let Some(p) = o.probe.as_ref().filter(|p| p.ok) {
            ctx.say(p.binary.as_str());
        }
    }
}

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let args = parse(ctx)?;
    let outcome = execute(ctx, &args)?;
    render(ctx, &args, &outcome);
    match &outcome.probe {
        Some(p) if !p.ok => {
            let pkg = outcome.goenv.as_ref().map(|g| g.kube_proxy_pkg.as_str()).unwrap_or("");
            log::warn(format!("probe: go build {pkg} failed ({}):", p.go_version));
            for l in p.error.lines() {
                log::line(format_args!("    {l}"));
            }
            Ok(Status::Problems(1))
        }
        Some(p) => {
            p.log_success();
            Ok(Status::Ok)
        }
        None => Ok(Status::Ok),
    }
}
