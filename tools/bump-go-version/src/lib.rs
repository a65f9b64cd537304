//! bump-go-version (`cargo xtask bump-go 1.15.8`): every file that carries the Go version moves at
//! once, derived tags (kube-cross, go-runner) computed, all-or-nothing; `--check` reports drift.

pub mod carriers;
pub mod depsyaml;
mod textdiff;
pub mod version;

use carriers::{Evaluation, Options};
use kube_tree::cli::{Ctx, Flag, Tool};
use kube_tree::json::Json;
use kube_tree::{fsx, log, Fail, Status};
use std::os::unix::fs::PermissionsExt;
use version::GoVersion;

pub const TOOL: Tool = Tool {
    name: "bump-go-version",
    aliases: &["bump-go"],
    summary: "move every carrier of the Go version at once (derived tags too); --check for drift",
    usage: "\
bump-go-version: move every file that carries the Go version, for the tree's era

Usage: bump-go-version [--] <VERSION> [--dry-run | --diff] [--json] [-z] [options]
       bump-go-version --check [--json]  |  bump-go-version --recover
VERSION is a Go release name: 1.15.8, go1.15.8, 1.24rc2, 1.22.0",
    flags: &[
        Flag::switch("--dry-run", "list the files that would change; write nothing"),
        Flag::switch("--diff", "print a unified diff (git apply accepts it); write nothing"),
        Flag::switch("-z", "NUL-terminate the file list (for xargs -0 git add)"),
        Flag::value("--cross-rev", "N", "revision of the new kube-cross tag (default: -1, or .0 in the newer form)"),
        Flag::switch("--minimum", "also move hack/lib/golang.sh minimum_go_version to the new minor"),
        Flag::switch("--go-directive", "also move the `go` directive of go.mod, go.work and the staging go.mod files"),
        Flag::switch("--images", "era C: move the kube-cross and go-runner tags even if no such image is known"),
        Flag::switch("--allow-missing", "write even if a carrier the era requires is not found"),
        Flag::switch("--allow-downgrade", "move to an older Go than the tree's"),
        Flag::switch("--check", "verify that every carrier agrees: exit 1 on drift; writes nothing"),
        Flag::switch("--recover", "finish an interrupted bump (its journal), then exit"),
    ],
    notes: "All or nothing: no file is written unless every carrier could be moved. stdout: the changed files.",
    run,
    takes_command: false,
};

/// The rename journal of an all-or-nothing write (present only while one is under way).
pub const JOURNAL: &str = ".bump-go-version.journal";

/// The lock a bump holds for its whole life (beside the journal; removed when it ends).
pub const LOCK: &str = ".bump-go-version.lock";

fn running(b: fsx::Busy) -> String {
    let pid = b.pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "pid unknown".into());
    format!("a bump is running ({pid})")
}

/// Takes the writers' lock, or refuses naming the bump that holds it.
fn take_lock(lock: &kube_tree::Confined) -> Result<fsx::WriterLock, Fail> {
    fsx::WriterLock::acquire(lock)?
        .map_err(|b| Fail::new(format!("{}; its files are left alone: wait for it to finish ({LOCK})", running(b))))
}

/// The command line, parsed.
struct Args {
    to: Option<GoVersion>,
    check: bool,
    recover: bool,
    dry_run: bool,
    diff: bool,
    nul: bool,
    allow_missing: bool,
    allow_downgrade: bool,
    opts: Options,
}

fn parse(ctx: &mut Ctx) -> Result<Args, Fail> {
    let check = ctx.flag("--check");
    let recover = ctx.flag("--recover");
    let dry_run = ctx.flag("--dry-run");
    let diff = ctx.flag("--diff");
    let nul = ctx.flag("-z");
    let allow_missing = ctx.flag("--allow-missing");
    let allow_downgrade = ctx.flag("--allow-downgrade");
    let minimum = ctx.flag("--minimum");
    let go_directive = ctx.flag("--go-directive");
    let images = ctx.flag("--images");
    let cross_rev = match ctx.opt_string("--cross-rev")? {
        Some(r) => Some(
            r.parse::<u16>()
                .map_err(|_| Fail::new(format!("--cross-rev {}: not a revision number (0-65535)", r.escape_debug())))?,
        ),
        None => None,
    };
    let version = ctx.free()?;
    ctx.finish()?;
    let to = match (&version, check || recover) {
        (Some(_), true) => return Err(Fail::new("--check and --recover take no version")),
        (None, false) => return Err(Fail::new("which Go version? e.g. bump-go-version 1.15.8 (or --check)")),
        (Some(v), false) => Some(GoVersion::release(v).map_err(Fail::new)?),
        (None, true) => None,
    };
    if dry_run && diff {
        return Err(Fail::new("--dry-run and --diff exclude each other"));
    }
    if check && recover {
        return Err(Fail::new("--check and --recover exclude each other"));
    }
    let opts = Options {
        cross_rev: cross_rev.map(u32::from),
        minimum,
        go_directive,
        images,
        published: Some(image_published),
    };
    Ok(Args { to, check, recover, dry_run, diff, nul, allow_missing, allow_downgrade, opts })
}

/// What an interrupted bump left: a committed journal (the carriers may be mixed until it is
/// finished) and temps of a bump killed before its commit.
fn leftovers(
    tree: &kube_tree::Tree,
    journal: &kube_tree::Confined,
    carriers: &[carriers::Carrier],
) -> Result<(bool, Vec<kube_tree::Confined>), Fail> {
    let pending = fsx::pending(journal)?.is_some();
    let mut stale = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in carriers.iter().filter(|c| seen.insert(c.path.as_str())) {
        if let Ok(target) = tree.confined(&c.path).and_then(|c| c.follow()) {
            stale.extend(fsx::stale_temps(&target));
        }
    }
    stale.extend(fsx::stale_temps(journal));
    Ok((pending, stale))
}

/// Refuses a downgrade unless asked for; returns the carrier problems that block the move.
fn blockers<'a>(
    args: &Args,
    current: &str,
    to: &GoVersion,
    ev: &'a Evaluation,
) -> Result<Vec<&'a carriers::Finding>, Fail> {
    if let Ok(cur) = GoVersion::parse(current) {
        if kube_tree::gover::cmp(to, &cur).is_lt() && !args.allow_downgrade {
            return Err(Fail::new(format!(
                "{} is older than the tree's Go {current}: a downgrade needs --allow-downgrade",
                to.text
            )));
        }
    }
    if args.allow_missing {
        for m in &ev.missing {
            log::warn(format!("allowed missing: {}", m.render()));
        }
        return Ok(ev.findings.iter().collect());
    }
    Ok(ev.findings.iter().chain(ev.missing.iter()).collect())
}

/// The write itself: stale temps swept, read-only carriers refused, then all-or-nothing.
fn write(ev: &Evaluation, stale: &[kube_tree::Confined], journal: &kube_tree::Confined) -> Result<bool, Fail> {
    // Temps of a bump killed before its commit changed nothing: sweep them.
    for t in stale {
        t.remove_file()?;
    }
    if ev.changes.is_empty() {
        return Ok(false);
    }
    for c in &ev.changes {
        let mode = fs_err::metadata(c.target.path())?.permissions().mode();
        if mode & 0o222 == 0 {
            return Err(Fail::new(format!("{} is read-only (mode {:o}); nothing written", c.path, mode & 0o777)));
        }
    }
    let files: Vec<_> = ev.changes.iter().map(|c| (c.target.clone(), c.new.clone().into_bytes())).collect();
    fsx::write_all_or_nothing(&files, journal)?;
    Ok(true)
}

/// Before anything is read: a reader facing a running bump stops (a check says so), a writer
/// finishes what a bump killed after its commit left; `--recover` ends here. Some(status) ends
/// the run.
fn gate(
    ctx: &mut Ctx,
    args: &Args,
    writes: bool,
    lock: &kube_tree::Confined,
    journal: &kube_tree::Confined,
) -> Result<Option<Status>, Fail> {
    let holder = if writes { None } else { fsx::lock_holder(lock)? };
    if let Some(b) = holder {
        if !args.check {
            return Err(Fail::new(format!("{}: the carriers may be half-moved; try again when it ends", running(b))));
        }
        ctx.say(format!("{LOCK}\trunning\t{}: not interrupted; its carriers may be mixed until it ends", running(b)));
        log::warn(format!("{}: nothing checked ({LOCK})", running(b)));
        return Ok(Some(Status::Problems(1)));
    }
    if !writes && lock.exists() {
        // What a killed bump leaves: its file without the lock, which changed nothing.
        log::status_v(2, format!("{LOCK}: left by an ended bump, held by nobody; the next bump removes it"));
    }
    // A bump killed after committing its renames is finished before anything is read.
    if writes && fsx::recover(journal)? {
        log::warn(format!("finished the renames of an interrupted bump ({JOURNAL})"));
    } else if args.recover {
        log::status(format!("no interrupted bump to finish ({JOURNAL} absent)"));
    }
    Ok(args.recover.then_some(Status::Ok))
}

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let args = parse(ctx)?;
    let tree = ctx.tree()?;
    let journal = tree.confined(JOURNAL)?;
    let lock = tree.confined(LOCK)?;
    let writes = !(args.check || args.dry_run || args.diff);
    // Writers (a bump, --recover) hold the lock to the end; readers only look at it, and a
    // running bump is neither interrupted nor to be read half-way.
    let _held = if writes { Some(take_lock(&lock)?) } else { None };
    if let Some(done) = gate(ctx, &args, writes, &lock, &journal)? {
        return Ok(done);
    }
    let set = carriers::carriers(&tree, args.to.as_ref(), &args.opts)?;
    set.warnings.iter().for_each(log::warn);
    if let (false, Some(to)) = (set.kept.is_empty(), &args.to) {
        let tags: Vec<String> =
            set.kept.iter().map(|k| format!("{} stays {} (not {})", k.entry, k.tag, k.derived)).collect();
        log::status(format!(
            "{}: no such image is known (not on the engine, its registry does not answer; --images moves them anyway); \
             the tree fetches go{} itself (GOTOOLCHAIN), and run-dockerized serves it offline from the host",
            tags.join(", "),
            to.text
        ));
    }
    let (pending, stale) = leftovers(&tree, &journal, &set.carriers)?;
    if pending {
        // Read-only: report, never finish (that is a write).
        ctx.say(format!("{JOURNAL}\tpending\tan interrupted bump: carriers may be mixed until `bump-go-version --recover` (or the next bump) finishes it"));
        log::warn(format!("{JOURNAL}: an interrupted bump is pending; run bump-go-version --recover"));
        return Ok(Status::Problems(1));
    }
    let ev = carriers::evaluate(&tree, &set.carriers)?;
    let Some(to) = args.to.clone() else { return report_check(ctx, &set.current, &ev, &stale) };
    let blocking = blockers(&args, &set.current, &to, &ev)?;
    if !blocking.is_empty() {
        blocking.iter().for_each(|f| eprintln!("{}", f.render()));
        let (n, cur) = (blocking.len(), &set.current);
        log::warn(format!("nothing written: {n} carrier problem(s) must be resolved first (Go {cur} -> {})", to.text));
        if ctx.json {
            ctx.say(json(&set.current, &to.text, &ev, false, &blocking).render());
        }
        return Ok(Status::Problems(blocking.len()));
    }
    let written = writes && write(&ev, &stale, &journal)?;
    render(ctx, &args, &set.current, &to, &ev, written);
    let (files, lines, era) = (ev.changes.len(), ev.edits.len(), tree.era.name());
    if files == 0 {
        log::status(format!("already at Go {}: nothing to change", to.text));
    } else {
        let verb = if written { "moved" } else { "would move" };
        log::status(format!(
            "{verb} Go {} -> {}: {lines} line(s) in {files} file(s) (era {era})",
            set.current, to.text
        ));
    }
    Ok(Status::Ok)
}

fn render(ctx: &mut Ctx, args: &Args, current: &str, to: &GoVersion, ev: &Evaluation, write: bool) {
    if ctx.json {
        ctx.say(json(current, &to.text, ev, write, &[]).render());
    } else if args.diff {
        for c in &ev.changes {
            ctx.out.push_str(&textdiff::unified(&c.path, &c.old, &c.new));
        }
    } else {
        for c in &ev.changes {
            ctx.out.push_str(&c.path);
            ctx.out.push(if args.nul { '\0' } else { '\n' });
        }
    }
}

fn report_check(ctx: &mut Ctx, current: &str, ev: &Evaluation, stale: &[kube_tree::Confined]) -> Result<Status, Fail> {
    let temps: Vec<carriers::Finding> = stale
        .iter()
        .map(|t| carriers::Finding {
            path: t.rel().to_string(),
            line: None,
            kind: "stale-temp",
            detail: "left by a killed bump; the next bump removes it".into(),
        })
        .collect();
    let problems: Vec<_> = ev.findings.iter().chain(ev.missing.iter()).chain(temps.iter()).collect();
    if ctx.json {
        ctx.say(json(current, current, ev, false, &problems).render());
    } else {
        for p in &problems {
            ctx.say(p.render());
        }
    }
    if problems.is_empty() {
        log::status(format!("every Go version carrier says {current}"));
    } else {
        log::warn(format!("{} carrier(s) disagree with Go {current}", problems.len()));
    }
    Ok(Status::from_count(problems.len()))
}

fn json(from: &str, to: &str, ev: &Evaluation, written: bool, problems: &[&carriers::Finding]) -> Json {
    Json::obj([
        ("from", Json::str(from)),
        ("to", Json::str(to)),
        ("written", Json::Bool(written)),
        (
            "changes",
            Json::Arr(
                ev.edits
                    .iter()
                    .map(|e| {
                        Json::obj([
                            ("file", Json::str(&e.path)),
                            ("line", Json::Num(e.line as f64)),
                            ("old", Json::str(&e.old)),
                            ("new", Json::str(&e.new)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "problems",
            Json::Arr(
                problems
                    .iter()
                    .map(|p| {
                        Json::obj([
                            ("file", Json::str(&p.path)),
                            ("line", p.line.map(|l| Json::Num(l as f64)).unwrap_or(Json::Null)),
                            ("kind", Json::str(p.kind)),
                            ("detail", Json::str(&p.detail)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// An image is known to exist: the engine holds it, or its registry answers for its manifest.
/// Each asked with a deadline; a reference that is not a valid image name is never asked.
fn image_published(image: &str) -> bool {
    if kube_tree::values::image_ref("image", image).is_err() {
        return false;
    }
    let deadline = std::time::Duration::from_secs(10);
    let engine =
        std::env::var("KUBE_CONTAINER_ENGINE").ok().filter(|e| e == "podman").unwrap_or_else(|| "docker".into());
    let on_engine = kube_tree::proc::Proc::new(&engine)
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .timeout(deadline)
        .output()
        .is_ok_and(|o| o.success());
    if on_engine {
        return true;
    }
    let Some((repo, tag)) = image.rsplit_once(':') else { return false };
    let Some((host, path)) = repo.split_once('/') else { return false };
    let url = format!("https://{host}/v2/{path}/manifests/{tag}");
    setup_go::mirror::answers(&url, deadline).is_ok_and(|code| code == 200)
}
