//! vendor/k8s.io/<repo> -> ../../staging/src/k8s.io/<repo>: the check and the repair.

use crate::{Kind, Problem};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::{fsx, Fail, Tree, VendorLayout};

/// The exact link target hack/update-vendor.sh creates.
pub fn expected_target(repo: &str) -> String {
    format!("../../staging/src/k8s.io/{repo}")
}

/// A regular file this small holding a path is what git leaves for a symlink with core.symlinks=false.
const PLACEHOLDER_MAX: u64 = 4096;

fn rel(repo: &str) -> String {
    format!("vendor/k8s.io/{repo}")
}

pub fn check(tree: &Tree, repos: &[String]) -> Result<Vec<Problem>, Fail> {
    let dir = tree.path("vendor/k8s.io");
    let mut out = Vec::new();
    match tree.layout {
        VendorLayout::NoStaging => {}
        VendorLayout::Symlinks => {
            for r in repos {
                if let Some(p) = check_one(tree, &dir.join(r), r)? {
                    out.push(p);
                }
            }
            // Listed only where it is the tree's own: a vendor/k8s.io that leads out of the
            // tree is not read (its entries are reported missing one by one above).
            if inside(tree) {
                out.extend(orphans(&dir, repos)?);
                if inside(tree) {
                    out.extend(bad_names(&dir)?);
                }
            }
        }
        VendorLayout::Workspace => {
            if inside(tree) {
                out.extend(bad_names(&dir)?);
            }
            for r in repos {
                let p = dir.join(r);
                if let Ok(md) = std::fs::symlink_metadata(&p) {
                    let what = if md.file_type().is_symlink() {
                        "a symlink"
                    } else if md.is_dir() {
                        "a directory"
                    } else {
                        "a file"
                    };
                    out.push(Problem::new(
                        rel(r),
                        Kind::UnexpectedStagingEntry,
                        format!(
                        "go.work era: staging module k8s.io/{r} is used in place, but vendor/ still has {what} for it"
                    ),
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn check_one(tree: &Tree, p: &Utf8Path, repo: &str) -> Result<Option<Problem>, Fail> {
    let want = expected_target(repo);
    let md = match std::fs::symlink_metadata(p) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(Problem::new(rel(repo), Kind::MissingLink, format!("no link; expected -> {want}"))))
        }
        Err(e) => return Err(Fail::new(format!("cannot stat {p}: {e}"))),
    };
    let ft = md.file_type();
    if ft.is_symlink() {
        let target = fs_err::read_link(p)?;
        let target = target.to_string_lossy();
        if target == want {
            return Ok(None);
        }
        let kind = if p.exists() { Kind::WrongTarget } else { Kind::DanglingLink };
        let extra = if kind == Kind::WrongTarget && same_dir(p, &tree.path(&format!("staging/src/k8s.io/{repo}"))) {
            " (resolves to the staging repo, but not by the relative path update-vendor.sh writes)"
        } else if kind == Kind::DanglingLink {
            " (target does not exist)"
        } else {
            ""
        };
        return Ok(Some(Problem::new(rel(repo), kind, format!("-> {target}{extra}; expected -> {want}"))));
    }
    if ft.is_dir() {
        let n = fs_err::read_dir(p)?.count();
        let detail = if n == 0 {
            "empty directory in place of the link".to_string()
        } else {
            format!("real directory with {n} entries in place of the link (a copy of staging?); --fix replaces it only with --force")
        };
        return Ok(Some(Problem::new(rel(repo), Kind::DirCopy, detail)));
    }
    if !ft.is_file() {
        // Never opened: a FIFO would hang a read, a device could be endless.
        return Ok(Some(Problem::new(
            rel(repo),
            Kind::NotALink,
            format!("{} in place of the link", kube_tree::read::kind_of(ft)),
        )));
    }
    if md.len() <= PLACEHOLDER_MAX {
        // Confined and capped like every read of the tree; what is not text is no placeholder.
        let bytes = tree.confined(rel(repo))?.read_bytes(kube_tree::Cap::LINE)?.unwrap_or_default();
        if let Ok(text) = String::from_utf8(bytes) {
            let t = text.trim();
            if t.trim_end_matches('/').ends_with(&format!("staging/src/k8s.io/{repo}")) {
                return Ok(Some(Problem::new(
                    rel(repo),
                    Kind::WindowsPlaceholder,
                    format!("regular file holding \"{t}\": symlink lost (git core.symlinks=false or a Windows copy)"),
                )));
            }
        }
    }
    Ok(Some(Problem::new(
        rel(repo),
        Kind::NotALink,
        format!("regular file of {} bytes in place of the link", md.len()),
    )))
}

/// A name as bytes, shown losslessly: printable ASCII as is, everything else as `\xHH`.
pub fn shown_bytes(name: &[u8]) -> String {
    let mut out = String::new();
    for &b in name {
        if (b.is_ascii_graphic() && b != b'\\') || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Entries of vendor/k8s.io whose names are not UTF-8: no staging repo or vendored package is
/// named so, and they cannot be named to a repair, so they are reported and never touched.
/// Whether vendor/k8s.io resolves beneath the tree (links included).
fn inside(tree: &Tree) -> bool {
    tree.confined("vendor/k8s.io").and_then(|c| c.follow()).is_ok()
}

fn bad_names(dir: &Utf8Path) -> Result<Vec<Problem>, Fail> {
    use std::os::unix::ffi::OsStrExt;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Fail::new(format!("cannot read {dir}: {e}"))),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Fail::new(format!("cannot read {dir}: {e}")))?;
        if e.file_name().to_str().is_none() {
            let name = shown_bytes(e.file_name().as_bytes());
            out.push(Problem::new(
                rel(&name),
                Kind::NonUtf8Name,
                "a name that is not UTF-8 (bytes shown as \\xHH); not touched by --fix: remove it by hand",
            ));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn same_dir(a: &Utf8Path, b: &Utf8Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Links in vendor/k8s.io that point into staging/ but have no staging repo behind them.
fn orphans(dir: &Utf8Path, repos: &[String]) -> Result<Vec<Problem>, Fail> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Fail::new(format!("cannot read {dir}: {e}"))),
    };
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Fail::new(format!("cannot read {dir}: {e}")))?;
        // A name that is not UTF-8 is reported by `bad_names`, never repaired under a lossy one.
        let Ok(name) = e.file_name().into_string() else { continue };
        if repos.contains(&name) || !e.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
            continue;
        }
        let target = std::fs::read_link(e.path()).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
        if target.contains("staging/src/k8s.io/") {
            names.push((name, target));
        }
    }
    names.sort();
    for (name, target) in names {
        out.push(Problem::new(
            rel(&name),
            Kind::OrphanLink,
            format!("-> {target}, but staging/src/k8s.io/{name} does not exist"),
        ));
    }
    Ok(out)
}

pub fn fixable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::MissingLink
            | Kind::WrongTarget
            | Kind::DanglingLink
            | Kind::DirCopy
            | Kind::WindowsPlaceholder
            | Kind::NotALink
            | Kind::OrphanLink
            | Kind::UnexpectedStagingEntry
    )
}

/// One change inside vendor/k8s.io.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Put `path -> target` in place of nothing, a file or another link (atomic rename).
    Link { path: Utf8PathBuf, target: String },
    /// Move the directory aside, link, then delete the old directory.
    ReplaceDir { path: Utf8PathBuf, target: String },
    /// Remove a link or file that should not be there.
    Remove { path: Utf8PathBuf },
    /// Remove a directory that should not be there (go.work era, with --force).
    RemoveDir { path: Utf8PathBuf },
}

impl Action {
    pub fn path(&self) -> &Utf8Path {
        match self {
            Action::Link { path, .. }
            | Action::ReplaceDir { path, .. }
            | Action::Remove { path }
            | Action::RemoveDir { path } => path,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Action::Link { path, target } => format!("link {path} -> {target}"),
            Action::ReplaceDir { path, target } => format!("replace directory {path} by link -> {target}"),
            Action::Remove { path } => format!("remove {path}"),
            Action::RemoveDir { path } => format!("remove directory {path}"),
        }
    }
}

/// An applied action.
#[derive(Debug, Clone)]
pub struct Fix {
    pub action: Action,
}

/// Turns problems into actions; returns the actions and the refusals (as log lines).
pub fn plan_fixes(tree: &Tree, problems: &[Problem], force: bool) -> (Vec<Action>, Vec<String>) {
    let mut actions = Vec::new();
    let mut refused = Vec::new();
    for p in problems {
        let path = tree.path(&p.path);
        let repo = p.path.trim_start_matches("vendor/k8s.io/").to_string();
        let target = expected_target(&repo);
        let is_nonempty_dir = std::fs::symlink_metadata(&path).map(|m| m.is_dir()).unwrap_or(false)
            && std::fs::read_dir(&path).map(|mut d| d.next().is_some()).unwrap_or(false);
        let a = match p.kind {
            Kind::MissingLink | Kind::WrongTarget | Kind::DanglingLink | Kind::WindowsPlaceholder | Kind::NotALink => {
                Action::Link { path, target }
            }
            Kind::DirCopy if is_nonempty_dir && !force => {
                refused.push(format!("{} is a real directory with files; not replaced without --force", p.path));
                continue;
            }
            Kind::DirCopy => Action::ReplaceDir { path, target },
            Kind::OrphanLink => Action::Remove { path },
            Kind::UnexpectedStagingEntry if std::fs::symlink_metadata(&path).map(|m| m.is_dir()).unwrap_or(false) => {
                if !force {
                    refused.push(format!("{} is a real directory; not removed without --force", p.path));
                    continue;
                }
                Action::RemoveDir { path }
            }
            Kind::UnexpectedStagingEntry => Action::Remove { path },
            _ => continue,
        };
        actions.push(a);
    }
    (actions, refused)
}

/// Applies actions. Every path is checked first, before anything changes: it must be an entry
/// of the tree's own vendor/k8s.io directory, reached without a symlink (a `vendor` or
/// `vendor/k8s.io` that is a link, even one inside the tree, is refused).
pub fn apply_fixes(tree: &Tree, actions: &[Action]) -> Result<Vec<Fix>, Fail> {
    let dir = tree.path("vendor/k8s.io");
    let mut checked = Vec::new();
    for a in actions {
        let c = tree.confined(a.path())?;
        if c.parent() != dir {
            return Err(Fail::new(format!(
                "refusing to touch {}: it is not an entry of {dir} (a symlinked vendor/ or vendor/k8s.io?)",
                a.path()
            )));
        }
        checked.push(c);
    }
    if !checked.is_empty() {
        tree.confined("vendor/k8s.io")?.create_dir_all()?;
    }
    let mut done = Vec::new();
    for (a, c) in actions.iter().zip(&checked) {
        match a {
            Action::Link { target, .. } => fsx::swap_in_symlink(c, target)?,
            Action::ReplaceDir { target, .. } => fsx::replace_dir_with_symlink(c, target)?,
            Action::Remove { .. } => c.remove_file()?,
            Action::RemoveDir { .. } => {
                let aside = c.temp("old");
                c.rename_to(&aside)?;
                aside.remove_dir_all()?;
            }
        }
        // Counted as fixed only when the tree now says so.
        if !took_effect(a, c) {
            return Err(Fail::new(format!(
                "{}: done, but the tree does not show it; not counted as fixed",
                a.describe()
            )));
        }
        done.push(Fix { action: a.clone() });
    }
    Ok(done)
}

fn took_effect(a: &Action, c: &kube_tree::Confined) -> bool {
    match a {
        Action::Link { target, .. } | Action::ReplaceDir { target, .. } => {
            std::fs::read_link(c.path()).is_ok_and(|t| t.as_os_str() == target.as_str())
        }
        Action::Remove { .. } | Action::RemoveDir { .. } => !c.exists(),
    }
}
