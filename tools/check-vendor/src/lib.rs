//! check-vendor: the vendor tree of a Kubernetes checkout, checked without regenerating it.
//!
//! * symlink era: every `staging/src/k8s.io/<repo>` has `vendor/k8s.io/<repo>` -> exactly
//!   `../../staging/src/k8s.io/<repo>` (what hack/update-vendor.sh creates);
//! * `vendor/modules.txt` agrees with go.mod (headers, versions, `## explicit`, replacements) and
//!   every package it lists has a directory under vendor/;
//! * go.work era: `use` entries match the staging modules, the `## workspace` marker is there, and
//!   no staging links are left in vendor/.

mod links;
mod modules;

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::cli::{Ctx, Flag, Tool};
use kube_tree::json::Json;
use kube_tree::{log, Fail, Status, Tree};
use std::time::Instant;

pub use links::{apply_fixes, plan_fixes, Action, Fix};

pub const TOOL: Tool = Tool {
    name: "check-vendor",
    aliases: &["vendor"],
    summary: "check/repair vendor/k8s.io staging links, vendor/modules.txt vs go.mod, go.work",
    usage: "\
check-vendor: check the vendor tree of a Kubernetes checkout (all eras)

Usage: check-vendor [--fix [--dry-run] [--force]] [--probe [--go auto|host|PATH]] [--json]",
    flags: &[
        Flag::switch(
            "--fix",
            "recreate exactly the broken vendor/k8s.io links (nothing outside vendor/k8s.io is touched); \
             a non-empty real directory is replaced only with --force",
        ),
        Flag::switch("--dry-run", "with --fix: say what would be done, change nothing"),
        Flag::switch("--force", "with --fix: also replace real directory copies that hold files"),
        Flag::switch("--probe", "afterwards, build cmd/kube-proxy the way the tree's era needs (needs go)"),
        setup_go::pick::GO_FLAG,
    ],
    notes: "\
Output: one problem per line on stdout, `path<TAB>kind<TAB>detail` (or --json); in the fields,
backslash, tab, newline and CR are written \\\\, \\t, \\n, \\r, other control characters as
\\u{1b}, and a name that is not UTF-8 shows its bytes as \\xHH (such a name is reported as
non-utf8-name and never touched by --fix). A summary on stderr; exit 1 when
anything is wrong. --fix refuses (exit 2, nothing changed) a vendor/ or vendor/k8s.io that is
a symlink.",
    run,
    takes_command: false,
};

/// What a problem is; the names are the `kind` column of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    MissingLink,
    WrongTarget,
    DanglingLink,
    DirCopy,
    WindowsPlaceholder,
    NotALink,
    OrphanLink,
    UnexpectedStagingEntry,
    NoModulesTxt,
    ModulesUnparsed,
    ModulesNoWorkspaceMarker,
    ModulesUnexpectedWorkspaceMarker,
    ModulesMissingModule,
    ModulesVersionMismatch,
    ModulesNotExplicit,
    ModulesExtraExplicit,
    ModulesReplaceMismatch,
    ModulesMissingReplace,
    ModulesExtraReplace,
    ModulesMissingPackage,
    GoWorkMissingUse,
    GoWorkExtraUse,
    ProbeFailed,
    NonUtf8Name,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MissingLink => "missing-link",
            Kind::WrongTarget => "wrong-target",
            Kind::DanglingLink => "dangling-link",
            Kind::DirCopy => "dir-copy",
            Kind::WindowsPlaceholder => "windows-placeholder",
            Kind::NotALink => "not-a-link",
            Kind::OrphanLink => "orphan-link",
            Kind::UnexpectedStagingEntry => "unexpected-staging-entry",
            Kind::NoModulesTxt => "no-modules-txt",
            Kind::ModulesUnparsed => "modules-unparsed",
            Kind::ModulesNoWorkspaceMarker => "modules-no-workspace-marker",
            Kind::ModulesUnexpectedWorkspaceMarker => "modules-unexpected-workspace-marker",
            Kind::ModulesMissingModule => "modules-missing-module",
            Kind::ModulesVersionMismatch => "modules-version-mismatch",
            Kind::ModulesNotExplicit => "modules-not-explicit",
            Kind::ModulesExtraExplicit => "modules-extra-explicit",
            Kind::ModulesReplaceMismatch => "modules-replace-mismatch",
            Kind::ModulesMissingReplace => "modules-missing-replace",
            Kind::ModulesExtraReplace => "modules-extra-replace",
            Kind::ModulesMissingPackage => "modules-missing-package",
            Kind::GoWorkMissingUse => "gowork-missing-use",
            Kind::GoWorkExtraUse => "gowork-extra-use",
            Kind::ProbeFailed => "probe-failed",
            Kind::NonUtf8Name => "non-utf8-name",
        }
    }
}

/// One finding: a path relative to the tree root, its kind, and a human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub kind: Kind,
    pub detail: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, kind: Kind, detail: impl Into<String>) -> Problem {
        Problem { path: path.into(), kind, detail: detail.into() }
    }
    /// `path<TAB>kind<TAB>detail`, each field escaped ([`tsv_field`]) so that the line always
    /// has three fields, whatever names the tree holds.
    pub fn line(&self) -> String {
        format!("{}\t{}\t{}", tsv_field(&self.path), self.kind.as_str(), tsv_field(&self.detail))
    }
    fn to_json(&self) -> Json {
        Json::obj([
            ("path", Json::str(&self.path)),
            ("kind", Json::str(self.kind.as_str())),
            ("detail", Json::str(&self.detail)),
        ])
    }
}

/// A TSV field: backslash, tab, newline and carriage return written as `\\`, `\t`, `\n`, `\r`
/// (the convention of PostgreSQL's and MySQL's text formats), so a record is always one line;
/// any other control character as Rust writes it (`\u{1b}`).
pub fn tsv_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            // ESC and the other control characters never reach a terminal raw.
            c if c.is_control() => out.extend(c.escape_debug()),
            c => out.push(c),
        }
    }
    out
}

/// Counts of what was looked at, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub staging_repos: usize,
    pub modules: usize,
    pub packages: usize,
}

/// Every check for the tree's layout. Reads only; never changes the tree.
pub fn check(tree: &Tree) -> Result<(Vec<Problem>, Stats), Fail> {
    let repos = tree.staging_repos()?;
    let mut stats = Stats { staging_repos: repos.len(), ..Stats::default() };
    let mut problems = links::check(tree, &repos)?;
    problems.extend(modules::check(tree, &repos, &mut stats)?);
    Ok((problems, stats))
}

/// `--fix` (with `--dry-run`, `--force`): the repairs made (or said).
fn fix(tree: &Tree, problems: &mut Vec<Problem>, dry_run: bool, force: bool) -> Result<Vec<Fix>, Fail> {
    let (actions, refused) = plan_fixes(tree, problems, force);
    for r in &refused {
        log::warn(r);
    }
    if dry_run {
        for a in &actions {
            log::status(format!("would {}", a.describe()));
        }
        if actions.is_empty() {
            log::status("nothing to fix");
        }
        return Ok(Vec::new());
    }
    if actions.is_empty() {
        return Ok(Vec::new());
    }
    let fixed = apply_fixes(tree, &actions)?;
    for f in &fixed {
        log::status(format!("fixed: {}", f.action.describe()));
    }
    *problems = check(tree)?.0;
    Ok(fixed)
}

fn summary(tree: &Tree, problems: &[Problem], stats: &Stats, found: usize, fixed: usize, fix: bool, took: String) {
    if problems.is_empty() {
        log::status(format!(
            "vendor consistent (era {}, {}): {} staging repos, {} modules, {} package dirs checked in {took}",
            tree.era.name(),
            tree.layout.name(),
            stats.staging_repos,
            stats.modules,
            stats.packages
        ));
    } else {
        let fixable = problems.iter().filter(|p| links::fixable(p.kind)).count();
        let hint = if fixable > 0 && !fix { format!(", {fixable} fixable with --fix") } else { String::new() };
        log::warn(format!("{} problem(s) in {} (found {found}, fixed {fixed}{hint})", problems.len(), tree.root));
    }
}

/// The command line, parsed.
struct Args {
    fix: bool,
    dry_run: bool,
    force: bool,
    probe: bool,
    go: setup_go::Choice,
}

fn parse(ctx: &mut Ctx) -> Result<Args, Fail> {
    let a = Args {
        fix: ctx.flag("--fix"),
        dry_run: ctx.flag("--dry-run"),
        force: ctx.flag("--force"),
        probe: ctx.flag("--probe"),
        go: setup_go::pick::choice_flag(ctx)?,
    };
    ctx.finish()?;
    if (a.dry_run || a.force) && !a.fix {
        return Err(Fail::new("--dry-run and --force go with --fix"));
    }
    Ok(a)
}

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let args = parse(ctx)?;
    let tree = ctx.tree()?;
    let start = Instant::now();
    let (mut problems, stats) = check(&tree)?;
    let found = problems.len();
    let fixed = if args.fix { fix(&tree, &mut problems, args.dry_run, args.force)? } else { Vec::new() };
    if args.probe {
        let gopath = probe_gopath(&tree)?;
        let vars = |k: &str| std::env::var(k).ok();
        let mut env = kube_tree::goenv::GoEnv::for_tree(&tree, &gopath, &vars);
        setup_go::pick::apply(&tree, &args.go, &mut env, &vars)?;
        let p = kube_tree::goenv::probe_kube_proxy(&env, &gopath.join("bin/kube-proxy"))?;
        if p.ok {
            p.log_success();
        } else {
            problems.push(Problem::new("cmd/kube-proxy", Kind::ProbeFailed, p.error.replace('\n', " | ")));
        }
    }
    if ctx.json {
        let out = Json::obj([
            ("tree", tree.to_json()),
            ("problems", Json::Arr(problems.iter().map(Problem::to_json).collect())),
            ("fixed", Json::Arr(fixed.iter().map(|f| Json::str(f.action.describe())).collect())),
        ]);
        ctx.say(out.render());
    } else {
        for p in &problems {
            ctx.say(p.line());
        }
    }
    summary(&tree, &problems, &stats, found, fixed.len(), args.fix, log::human(start.elapsed()));
    Ok(Status::from_count(problems.len()))
}

/// A private GOPATH for the probe, outside the tree, keyed by the tree's path so reruns reuse it.
fn probe_gopath(tree: &Tree) -> Result<Utf8PathBuf, Fail> {
    kube_tree::goenv::ensure_gopath_link(&probe_gopath_dir(&tree.root)?, &tree.root)
}

/// Where `--probe` keeps the GOPATH of the tree at `root` (in the temp directory, so that
/// whoever owns the temp directory can remove it; the tests do).
pub fn probe_gopath_dir(root: &Utf8Path) -> Result<kube_tree::Confined, Fail> {
    let hash = kube_tree::fnv::hash(root.as_str().as_bytes());
    let base = Utf8PathBuf::from_path_buf(std::env::temp_dir()).map_err(|_| Fail::new("temp dir is not UTF-8"))?;
    kube_tree::Jail::new(&base)?.path(format!("kube-probe-gopath-{hash:016x}"))
}
