//! vendor/modules.txt against go.mod, its package directories, and go.work.

use crate::{Kind, Problem, Stats};
use kube_tree::gomod::{go_version_at_least, GoMod, ModulesTxt, VendoredModule};
use kube_tree::{Cap, Fail, Tree, VendorLayout};
use std::collections::{HashMap, HashSet};

const MT: &str = "vendor/modules.txt";

fn is_local(target: &str) -> bool {
    target.starts_with("./") || target.starts_with("../") || target.starts_with('/')
}

pub fn check(tree: &Tree, repos: &[String], stats: &mut Stats) -> Result<Vec<Problem>, Fail> {
    let mut out = Vec::new();
    if tree.layout == VendorLayout::Workspace {
        out.extend(check_work(tree, repos)?);
    }
    let Some(gomod) = &tree.gomod else { return Ok(out) };
    if !tree.path("vendor").is_dir() {
        return Ok(out);
    }
    // Confined and capped: a FIFO, a link out of the tree or /dev/zero is refused (exit 2).
    let text = match tree.read_text(MT, Cap::LIST)? {
        Some(t) => t,
        None => {
            out.push(Problem::new(
                MT,
                Kind::NoModulesTxt,
                "vendor/ exists but vendor/modules.txt does not (go build -mod=vendor will refuse)",
            ));
            return Ok(out);
        }
    };
    let mt = ModulesTxt::parse(&text);
    stats.modules = mt.modules.iter().filter(|m| m.version.is_some()).count();
    let workspace = tree.layout == VendorLayout::Workspace;

    for (line, l) in &mt.unparsed {
        out.push(Problem::new(format!("{MT}:{line}"), Kind::ModulesUnparsed, format!("line not understood: {l}")));
    }
    if workspace && !mt.workspace {
        out.push(Problem::new(
            MT,
            Kind::ModulesNoWorkspaceMarker,
            "go.work exists but modules.txt lacks the `## workspace` marker (run go work vendor)",
        ));
    }
    if !workspace && mt.workspace {
        out.push(Problem::new(
            MT,
            Kind::ModulesUnexpectedWorkspaceMarker,
            "`## workspace` marker but the tree has no go.work",
        ));
    }
    out.extend(check_requires(gomod, &mt, workspace));
    if workspace {
        out.extend(check_workspace_replaces(tree, &mt)?);
    } else {
        out.extend(check_replaces(gomod, &mt));
    }
    out.extend(check_packages(tree, &mt, workspace, stats));
    Ok(out)
}

/// Every require has its header with the same version, `## explicit` from go 1.14 on, and the
/// replacement go.mod gives it; no `## explicit` is left for a module go.mod no longer requires.
fn check_requires(gomod: &GoMod, mt: &ModulesTxt, workspace: bool) -> Vec<Problem> {
    let mut out = Vec::new();
    let explicit_needed = gomod.go.as_deref().is_some_and(|g| go_version_at_least(g, 1, 14));
    let gm = |line: usize| format!("go.mod:{line}");
    for r in &gomod.requires {
        let repl = gomod.replacement_for(&r.path, &r.version);
        let Some(m) = mt.module(&r.path) else {
            out.push(Problem::new(
                gm(r.line),
                Kind::ModulesMissingModule,
                format!("requires {} {}; {MT} has no `# {} {}` entry", r.path, r.version, r.path, r.version),
            ));
            continue;
        };
        let mline = format!("{MT}:{}", m.line);
        if m.version.as_deref() != Some(r.version.as_str()) {
            out.push(Problem::new(
                mline.clone(),
                Kind::ModulesVersionMismatch,
                format!(
                    "{} is {} in {MT} but go.mod:{} requires {}",
                    r.path,
                    m.version.as_deref().unwrap_or("?"),
                    r.line,
                    r.version
                ),
            ));
        }
        if explicit_needed && !m.explicit {
            out.push(Problem::new(
                mline.clone(),
                Kind::ModulesNotExplicit,
                format!("{} is required by go.mod:{} but not marked ## explicit", r.path, r.line),
            ));
        }
        // In a workspace, replacements merge from every module's go.mod and go.work; only
        // go itself knows the merged set, so they are compared in the symlink era only.
        if !workspace {
            let want = repl.map(|x| x.target());
            if want != m.replacement {
                out.push(Problem::new(
                    mline,
                    Kind::ModulesReplaceMismatch,
                    format!(
                        "{}: go.mod replaces it with {}, {MT} records {}",
                        r.path,
                        want.as_deref().unwrap_or("nothing"),
                        m.replacement.as_deref().unwrap_or("nothing")
                    ),
                ));
            }
        }
    }
    if explicit_needed && !workspace {
        let required: HashSet<&str> = gomod.requires.iter().map(|r| r.path.as_str()).collect();
        for m in mt.modules.iter().filter(|m| m.explicit && !required.contains(m.path.as_str())) {
            out.push(Problem::new(
                format!("{MT}:{}", m.line),
                Kind::ModulesExtraExplicit,
                format!("{} is marked ## explicit but go.mod does not require it", m.path),
            ));
        }
    }
    out
}

/// From go 1.14 on, modules.txt records every replace of go.mod, and only those.
fn check_replaces(gomod: &GoMod, mt: &ModulesTxt) -> Vec<Problem> {
    let mut out = Vec::new();
    if !gomod.go.as_deref().is_some_and(|g| go_version_at_least(g, 1, 14)) {
        return out;
    }
    for r in &gomod.replaces {
        let recorded = match &r.old_version {
            None => mt.replace_only(&r.old).map(|m| m.replacement.clone()),
            Some(v) => mt
                .modules
                .iter()
                .find(|m| m.path == r.old && m.version.as_deref() == Some(v))
                .map(|m| m.replacement.clone()),
        };
        let old = match &r.old_version {
            Some(v) => format!("{} {v}", r.old),
            None => r.old.clone(),
        };
        match recorded {
            None => out.push(Problem::new(
                format!("go.mod:{}", r.line),
                Kind::ModulesMissingReplace,
                format!("replace {old} => {} is not recorded in {MT}", r.target()),
            )),
            Some(got) if got.as_deref() != Some(r.target().as_str()) => out.push(Problem::new(
                format!("go.mod:{}", r.line),
                Kind::ModulesReplaceMismatch,
                format!("replace {old} => {}, {MT} records {}", r.target(), got.as_deref().unwrap_or("nothing")),
            )),
            Some(_) => {}
        }
    }
    for m in mt.modules.iter().filter(|m| m.version.is_none()) {
        let known = gomod.replaces.iter().any(|r| r.old == m.path && r.old_version.is_none());
        if !known {
            out.push(extra_replace(m, "which go.mod does not have"));
        }
    }
    out
}

/// A workspace module is used in place, so cmd/go rejects a replace-only line for it
/// ("is marked as replaced in vendor/modules.txt, but not replaced in the workspace").
fn check_workspace_replaces(tree: &Tree, mt: &ModulesTxt) -> Result<Vec<Problem>, Fail> {
    let work = read_go_work(tree)?;
    let used: HashSet<String> = work.uses.iter().map(|(u, _)| norm_use(u)).collect();
    Ok(mt
        .modules
        .iter()
        .filter(|m| m.version.is_none() && m.replacement.as_deref().is_some_and(|r| used.contains(&norm_use(r))))
        .map(|m| extra_replace(m, ", but that is a workspace module (go.work uses it in place)"))
        .collect())
}

/// `./a/b/` and `a/b` name the same use; `.` stays `.`.
fn norm_use(u: &str) -> String {
    let t = u.trim_start_matches("./").trim_end_matches('/');
    if t.is_empty() {
        ".".to_string()
    } else {
        t.to_string()
    }
}

/// Every listed package has a directory under vendor/ (through the staging links). One line per
/// module, so a lost link does not drown the report in hundreds of package lines.
fn check_packages(tree: &Tree, mt: &ModulesTxt, workspace: bool, stats: &mut Stats) -> Vec<Problem> {
    let vendor = tree.path("vendor");
    let mut out = Vec::new();
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for m in &mt.modules {
        if workspace && m.replacement.as_deref().is_some_and(is_local) {
            continue;
        }
        let missing: Vec<&(String, usize)> = m
            .packages
            .iter()
            .filter(|(pkg, _)| seen.insert(pkg.as_str(), ()).is_none())
            .inspect(|_| stats.packages += 1)
            .filter(|(pkg, _)| !vendor.join(pkg).is_dir())
            .collect();
        if let Some((first, line)) = missing.first() {
            out.push(Problem::new(
                format!("vendor/{first}"),
                Kind::ModulesMissingPackage,
                missing_detail(m, missing.len(), *line),
            ));
        }
    }
    out
}

fn missing_detail(m: &VendoredModule, n: usize, line: usize) -> String {
    if n == 1 {
        format!("package listed at {MT}:{line} (module {}) has no directory", m.path)
    } else {
        format!(
            "{n} of {} packages of module {} have no directory (first listed at {MT}:{line})",
            m.packages.len(),
            m.path
        )
    }
}

/// go.work `use` entries are exactly `.` and the staging modules.
fn check_work(tree: &Tree, repos: &[String]) -> Result<Vec<Problem>, Fail> {
    let work = read_go_work(tree)?;
    let uses: HashMap<String, usize> = work.uses.iter().map(|(u, l)| (norm_use(u), *l)).collect();
    let mut expected: Vec<String> = repos.iter().map(|r| format!("staging/src/k8s.io/{r}")).collect();
    expected.push(".".into());
    let mut out = Vec::new();
    for e in &expected {
        if !uses.contains_key(e) {
            out.push(Problem::new(
                "go.work",
                Kind::GoWorkMissingUse,
                format!("{e} is a module of the tree but go.work does not use it"),
            ));
        }
    }
    let mut extra: Vec<(&String, &usize)> = uses.iter().filter(|(u, _)| !expected.contains(u)).collect();
    extra.sort();
    for (u, line) in extra {
        let why = if tree.path(u).is_dir() { "is not a staging module" } else { "does not exist" };
        out.push(Problem::new(format!("go.work:{line}"), Kind::GoWorkExtraUse, format!("uses ./{u}, which {why}")));
    }
    Ok(out)
}

/// A replace-only line of modules.txt that should not be there, and why.
fn extra_replace(m: &kube_tree::gomod::VendoredModule, why: &str) -> Problem {
    let sep = if why.starts_with(',') { "" } else { " " };
    Problem::new(
        format!("{MT}:{}", m.line),
        Kind::ModulesExtraReplace,
        format!("records replace {} => {}{sep}{why}", m.path, m.replacement.as_deref().unwrap_or("?")),
    )
}

/// The tree's go.work, its syntax checked (file and line on error).
fn read_go_work(tree: &Tree) -> Result<GoMod, Fail> {
    let path = tree.path("go.work");
    let text = tree.read_text("go.work", Cap::SCRIPT)?.ok_or_else(|| Fail::new(format!("{path}: not found")))?;
    GoMod::read(&text).map_err(|e| Fail::new(format!("{path}:{e}")))
}
