//! Finding the Kubernetes checkout: `--kube-root` > `KUBE_ROOT` > the current directory and its
//! parents > `$GOPATH/src/k8s.io/kubernetes` (each GOPATH entry) > `~/go/src/k8s.io/kubernetes`.

use crate::fail::{Fail, Result};
use camino::{Utf8Path, Utf8PathBuf};

/// Where the root came from, for `--explain-tree` and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub root: Utf8PathBuf,
    pub how: String,
    pub why: String,
}

/// Why `dir` is a Kubernetes checkout, or None.
pub fn looks_like_kube(dir: &Utf8Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("go.mod")) {
        let module = text
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix("module ").map(|m| m.trim().trim_matches('"').to_string()));
        return (module.as_deref() == Some("k8s.io/kubernetes"))
            .then(|| "go.mod declares module k8s.io/kubernetes".to_string());
    }
    // Trees from before go.mod (and GOPATH copies that lost it) still carry the build scripts.
    let markers = ["hack/lib/golang.sh", "build/root/Makefile", "staging/src/k8s.io"];
    markers
        .iter()
        .all(|m| dir.join(m).exists())
        .then(|| format!("era-A markers present ({})", markers.join(", ")))
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
        if !dir.is_dir() {
            return Err(Fail::new(format!("{how} {dir}: no such directory")));
        }
        return match looks_like_kube(&dir) {
            Some(why) => Ok(Found { root: canonical(&dir)?, how: how.to_string(), why }),
            None => Err(Fail::new(format!(
                "{how} {dir} is not a Kubernetes tree (no go.mod with module k8s.io/kubernetes, no hack/lib/golang.sh + build/root/Makefile + staging/)"
            ))),
        };
    }
    for dir in cwd.ancestors() {
        if let Some(why) = looks_like_kube(dir) {
            let how = if dir == cwd { "current directory".to_string() } else { format!("parent of {cwd}") };
            return Ok(Found { root: canonical(dir)?, how, why });
        }
    }
    let mut tried = vec!["--kube-root (not given)".to_string(), "KUBE_ROOT (unset)".to_string(), format!("{cwd} and its parents")];
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
    Err(Fail::new(format!("no Kubernetes tree found; tried {}; pass --kube-root DIR", tried.join(", "))))
}

/// [`discover`] with the process environment and current directory.
pub fn discover_here(flag: Option<&Utf8Path>) -> Result<Found> {
    let cwd = std::env::current_dir()?;
    let cwd = Utf8PathBuf::from_path_buf(cwd).map_err(|p| Fail::new(format!("current directory is not UTF-8: {}", p.display())))?;
    discover(flag, &cwd, &|k| std::env::var(k).ok())
}
