//! Finding the Kubernetes checkout: `--kube-root` > `KUBE_ROOT` > the current directory and its
//! parents > the remembered tree (`remember`) > `$GOPATH/src/k8s.io/kubernetes` (each GOPATH
//! entry) > `~/go/src/k8s.io/kubernetes`.

use crate::confine::Jail;
use crate::fail::{Fail, Result};
use crate::read::Cap;
use camino::{Utf8Path, Utf8PathBuf};

/// Where the root came from, for `--explain-tree` and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub root: Utf8PathBuf,
    pub how: String,
    pub why: String,
}

const MARKERS: [&str; 3] = ["hack/lib/golang.sh", "build/root/Makefile", "staging/src/k8s.io"];

/// Why `dir` is a Kubernetes checkout, or None.
pub fn looks_like_kube(dir: &Utf8Path) -> Option<String> {
    why_kube(dir).ok()
}

/// Why `dir` is a Kubernetes checkout, or why it is not (one line, pointing the right way).
pub fn why_kube(dir: &Utf8Path) -> std::result::Result<String, String> {
    if let Err(e) = std::fs::read_dir(dir) {
        return Err(format!("cannot be read: {e}"));
    }
    let markers_there = MARKERS.iter().all(|m| dir.join(m).exists());
    let gomod = Jail::new(dir).and_then(|j| j.path("go.mod")?.read_text(Cap::SCRIPT));
    match gomod {
        Ok(Some(text)) => {
            let module = text
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("module ").map(|m| m.trim().trim_matches('"').to_string()));
            match module.as_deref() {
                Some("k8s.io/kubernetes") => Ok("go.mod declares module k8s.io/kubernetes".to_string()),
                Some(m) => Err(format!("its go.mod declares module {m}, not k8s.io/kubernetes")),
                None if markers_there => Err(
                    "its go.mod has no `module` line, though the tree's build scripts are there: is go.mod damaged?"
                        .into(),
                ),
                None => Err("its go.mod has no `module k8s.io/kubernetes` line".into()),
            }
        }
        Err(e) => Err(format!("its go.mod cannot be read: {}", e.msg)),
        // Trees from before go.mod (and GOPATH copies that lost it) still carry the build scripts.
        Ok(None) if markers_there => Ok(format!("era-A markers present ({})", MARKERS.join(", "))),
        Ok(None) => Err(format!(
            "no go.mod with module k8s.io/kubernetes, and not all of {} (a tree from before go.mod)",
            MARKERS.join(", ")
        )),
    }
}

/// Resolves symlinks and `..` (like `pwd -P`), keeping the path UTF-8.
pub fn canonical(p: &Utf8Path) -> Result<Utf8PathBuf> {
    let c = fs_err::canonicalize(p)?;
    Utf8PathBuf::from_path_buf(c).map_err(|p| Fail::new(format!("path is not UTF-8: {}", p.display())))
}

/// The GOPATH entries in effect: `$GOPATH` split on ':', else `~/go` (Go's default).
pub fn gopath_entries(env: &dyn Fn(&str) -> Option<String>) -> Vec<Utf8PathBuf> {
    match env("GOPATH").filter(|g| !g.is_empty()) {
        Some(g) => g.split(':').filter(|s| !s.is_empty()).map(Utf8PathBuf::from).collect(),
        None => env("HOME").map(|h| vec![Utf8PathBuf::from(h).join("go")]).unwrap_or_default(),
    }
}

/// Finds the checkout. `env` reads environment variables (injectable for tests).
pub fn discover(flag: Option<&Utf8Path>, cwd: &Utf8Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Found> {
    // An explicit choice is never second-guessed: if it is not a tree, that is the error.
    let explicit = match flag {
        Some(f) => Some((f.to_owned(), "--kube-root")),
        None => env("KUBE_ROOT").filter(|s| !s.is_empty()).map(|r| (Utf8PathBuf::from(r), "KUBE_ROOT")),
    };
    if let Some((dir, how)) = explicit {
        let dir = if dir.is_absolute() { dir } else { cwd.join(dir) };
        if dir.as_str().chars().any(char::is_control) {
            return Err(Fail::new(format!("{how} {}: a control character in the path", dir.as_str().escape_debug())));
        }
        match std::fs::metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Fail::new(format!("{how} {dir}: no such directory")))
            }
            Err(e) => return Err(Fail::new(format!("{how} {dir}: {e}"))),
            Ok(md) if !md.is_dir() => return Err(Fail::new(format!("{how} {dir}: not a directory"))),
            Ok(_) => {}
        }
        return match why_kube(&dir) {
            Ok(why) => Ok(Found { root: canonical(&dir)?, how: how.to_string(), why }),
            Err(why_not) => Err(Fail::new(format!("{how} {dir} is not a Kubernetes tree: {why_not}"))),
        };
    }
    for dir in cwd.ancestors() {
        if let Some(why) = looks_like_kube(dir) {
            let how = if dir == cwd { "current directory".to_string() } else { format!("parent of {cwd}") };
            return Ok(Found { root: canonical(dir)?, how, why });
        }
    }
    let mut tried =
        vec!["--kube-root (not given)".to_string(), "KUBE_ROOT (unset)".to_string(), format!("{cwd} and its parents")];
    match remembered(env)? {
        Remembered::Tree(found) => return Ok(found),
        Remembered::Tried(what) => tried.push(what),
    }
    let mut candidates: Vec<(Utf8PathBuf, &str)> =
        gopath_entries(env).into_iter().map(|g| (g.join("src/k8s.io/kubernetes"), "GOPATH")).collect();
    if let Some(h) = env("HOME") {
        let d = Utf8PathBuf::from(h).join("go/src/k8s.io/kubernetes");
        if !candidates.iter().any(|(c, _)| *c == d) {
            candidates.push((d, "~/go"));
        }
    }
    for (dir, how) in candidates {
        if let Some(why) = looks_like_kube(&dir) {
            return Ok(Found { root: canonical(&dir)?, how: format!("{how} ({dir})"), why });
        }
        tried.push(dir.to_string());
    }
    Err(Fail::new(format!(
        "no Kubernetes tree found (tried {}); pass --kube-root DIR, or get one: `cargo xtask fetch-tree` (Debian's v1.20.2 source, no git needed) or git clone --depth 1 https://github.com/kubernetes/kubernetes",
        tried.join(", ")
    )))
}

/// What the remembered tree gave discovery: the tree, or a line for the list of places tried.
enum Remembered {
    Tree(Found),
    Tried(String),
}

fn remembered(env: &dyn Fn(&str) -> Option<String>) -> Result<Remembered> {
    let record = crate::remember::record_path(env).map(|p| p.to_string()).unwrap_or_else(|| "(no HOME)".into());
    let dir = match crate::remember::recall(env) {
        Ok(Some(dir)) => dir,
        Ok(None) => return Ok(Remembered::Tried(format!("the remembered tree (none in {record})"))),
        // A damaged record is named, never a reason to stop looking.
        Err(e) => return Ok(Remembered::Tried(e.msg)),
    };
    match why_kube(&dir) {
        Ok(why) => Ok(Remembered::Tree(Found { root: canonical(&dir)?, how: format!("remembered in {record}"), why })),
        Err(why_not) => Ok(Remembered::Tried(format!(
            "the remembered tree {dir} ({why_not}; `{}` forgets it)",
            crate::remember::FORGET
        ))),
    }
}

/// A root with a control character in its path is refused wherever it was found: it would
/// split the TSV rows and log lines that name it, and reach shells and engines.
fn printable_root(found: Found) -> Result<Found> {
    if found.root.as_str().chars().any(char::is_control) {
        return Err(Fail::new(format!(
            "{} {}: a control character in the path",
            found.how,
            found.root.as_str().escape_debug()
        )));
    }
    Ok(found)
}

/// [`discover`] with the process environment and current directory.
pub fn discover_here(flag: Option<&Utf8Path>) -> Result<Found> {
    let cwd = std::env::current_dir()?;
    let cwd = Utf8PathBuf::from_path_buf(cwd)
        .map_err(|p| Fail::new(format!("current directory is not UTF-8: {}", p.display())))?;
    discover(flag, &cwd, &|k| std::env::var(k).ok()).and_then(printable_root)
}
