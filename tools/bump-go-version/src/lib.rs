//! bump-go-version (`cargo xtask bump-go 1.15.8`): every file that carries the Go version moves at
//! once, derived tags (kube-cross, go-runner) computed, all-or-nothing; `--check` reports drift.

pub mod carriers;
pub mod version;

use carriers::{Evaluation, Options};
use kube_tree::cli::{Ctx, Tool};
use kube_tree::json::Json;
use kube_tree::{fsx, log, textdiff, Fail, Status};
use std::os::unix::fs::PermissionsExt;
use version::GoVersion;

pub const TOOL: Tool = Tool {
    name: "bump-go-version",
    aliases: &["bump-go"],
    summary: "move every carrier of the Go version at once (derived tags too); --check for drift",
    usage: "\
bump-go-version: move every file that carries the Go version, for the tree's era

Usage: bump-go-version <VERSION> [--dry-run | --diff] [--json] [-z]
                       [--cross-rev N] [--minimum] [--go-directive] [--allow-missing]
       bump-go-version --check [--json]

  VERSION          1.15.8, go1.15.8, 1.24rc2, 1.22.0 ...
  --dry-run        list the files that would change; write nothing
  --diff           print a unified diff (git apply accepts it); write nothing
  -z               NUL-terminate the file list (for xargs -0 git add)
  --cross-rev N    revision of the new kube-cross tag (default: -1 in the old v<go>-<rev> form, .0 later)
  --minimum        also move hack/lib/golang.sh minimum_go_version to the new minor
  --go-directive   also move the `go` directive of go.mod, go.work and the staging go.mod files
  --allow-missing  write even if a carrier the era requires is not found
  --check          verify that every carrier agrees (like zeitgeist validate): exit 1 on drift

Carriers: era A: cross/VERSION, cross/Dockerfile, build/root/WORKSPACE, test/images/Makefile;
with build/dependencies.yaml: every refPath of the Go entries and of entries whose version is
derived from Go (kube-cross, go-runner), plus .go-version. Only the matched lines change.
stdout: the changed files, one per line; stderr: a summary. Nothing is written unless every
carrier could be moved (temp files + rename, modes kept).",
    run,
    command_after: None,
};

/// The rename journal of an all-or-nothing write (present only while one is under way).
pub const JOURNAL: &str = ".bump-go-version.journal";

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let check = ctx.flag("--check");
    let dry_run = ctx.flag("--dry-run");
    let diff = ctx.flag("--diff");
    let nul = ctx.flag("-z");
    let allow_missing = ctx.flag("--allow-missing");
    let minimum = ctx.flag("--minimum");
    let go_directive = ctx.flag("--go-directive");
    let cross_rev = match ctx.opt_string("--cross-rev")? {
        Some(r) => Some(r.parse::<u32>().map_err(|_| Fail::new(format!("--cross-rev {r}: not a revision number")))?),
        None => None,
    };
    let version: Option<String> = ctx.args.opt_free_from_str()?;
    ctx.finish()?;
    let to = match (&version, check) {
        (Some(_), true) => return Err(Fail::new("--check takes no version")),
        (None, false) => return Err(Fail::new("which Go version? e.g. bump-go-version 1.15.8 (or --check)")),
        (Some(v), false) => Some(GoVersion::parse(v).map_err(Fail::new)?),
        (None, true) => None,
    };
    if dry_run && diff {
        return Err(Fail::new("--dry-run and --diff exclude each other"));
    }
    let tree = ctx.tree()?;
    // A bump killed after committing its renames is finished before anything is read.
    let journal = tree.path(JOURNAL);
    if fsx::recover(&journal)? {
        log::warn(format!("finished the renames of an interrupted bump ({JOURNAL})"));
    }
    let opts = Options { cross_rev, minimum, go_directive };
    let set = carriers::carriers(&tree, to.as_ref(), &opts)?;
    for w in &set.warnings {
        log::warn(w);
    }
    let ev = carriers::evaluate(&tree, &set.carriers)?;

    if to.is_none() {
        return report_check(ctx, &set.current, &ev);
    }
    let to = to.unwrap();
    let blocking: Vec<_> = ev.findings.iter().chain(if allow_missing { [].iter() } else { ev.missing.iter() }).collect();
    if allow_missing {
        for m in &ev.missing {
            log::warn(format!("allowed missing: {}", m.render()));
        }
    }
    if !blocking.is_empty() {
        for f in &blocking {
            eprintln!("{}", f.render());
        }
        log::warn(format!("nothing written: {} carrier problem(s) must be resolved first (Go {} -> {})", blocking.len(), set.current, to.text));
        if ctx.json {
            ctx.say(json(&set.current, &to.text, &ev, false, &blocking).render());
        }
        return Ok(Status::Problems(blocking.len()));
    }

    if !(dry_run || diff) {
        // A bump killed between its temp files and the renames left temps: sweep them.
        let mut seen = std::collections::BTreeSet::new();
        for c in set.carriers.iter().filter(|c| seen.insert(c.path.as_str())) {
            fsx::remove_stale_temps(&tree.path(&c.path));
        }
    }
    let write = !(dry_run || diff || ev.changes.is_empty());
    if write {
        for c in &ev.changes {
            let p = tree.path(&c.path);
            let mode = fs_err::metadata(&p)?.permissions().mode();
            if mode & 0o222 == 0 {
                return Err(Fail::new(format!("{} is read-only (mode {:o}); nothing written", c.path, mode & 0o777)));
            }
        }
        let files: Vec<_> = ev.changes.iter().map(|c| (tree.path(&c.path), c.new.clone().into_bytes())).collect();
        fsx::write_all_or_nothing(&files, &journal)?;
    }

    if ctx.json {
        ctx.say(json(&set.current, &to.text, &ev, write, &[]).render());
    } else if diff {
        for c in &ev.changes {
            ctx.out.push_str(&textdiff::unified(&c.path, &c.old, &c.new));
        }
    } else {
        for c in &ev.changes {
            ctx.out.push_str(&c.path);
            ctx.out.push(if nul { '\0' } else { '\n' });
        }
    }
    let files = ev.changes.len();
    if files == 0 {
        log::status(format!("already at Go {}: nothing to change", to.text));
    } else {
        let verb = if write { "moved" } else { "would move" };
        log::status(format!("{verb} Go {} -> {}: {} line(s) in {files} file(s) (era {})", set.current, to.text, ev.edits.len(), tree.era.name()));
    }
    Ok(Status::Ok)
}

fn report_check(ctx: &mut Ctx, current: &str, ev: &Evaluation) -> Result<Status, Fail> {
    let problems: Vec<_> = ev.findings.iter().chain(ev.missing.iter()).collect();
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
        ("changes", Json::Arr(ev.edits.iter().map(|e| Json::obj([
            ("file", Json::str(&e.path)),
            ("line", Json::Num(e.line as f64)),
            ("old", Json::str(&e.old)),
            ("new", Json::str(&e.new)),
        ])).collect())),
        ("problems", Json::Arr(problems.iter().map(|p| Json::obj([
            ("file", Json::str(&p.path)),
            ("line", p.line.map(|l| Json::Num(l as f64)).unwrap_or(Json::Null)),
            ("kind", Json::str(p.kind)),
            ("detail", Json::str(&p.detail)),
        ])).collect())),
    ])
}
