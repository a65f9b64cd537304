//! Helpers of the engine tests (here so that every test crate that drives the engine shares
//! them): readiness, this run's tool invocation, engine listings, the small tree.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};
use std::ffi::OsStr;

/// The tree's kube-cross tag (build/build-image/cross/VERSION of v1.20.2).
pub const CROSS_TAG: &str = "v1.15.5-1";

/// The engine is there and this run's kube-cross stand-in exists, else the test fails naming
/// what is missing (the engine tests are full-tier only: `#[ignore = "full tier: ..."]`).
/// Returns the real tree; `Option` so that callers keep their `let Some(..) = ready(..)`.
pub fn ready(test: &str) -> Option<Utf8PathBuf> {
    if !crate::docker_ok() {
        crate::missing(test, "no reachable docker daemon (these tests need a real engine)");
    }
    let tree = crate::real_tree().unwrap_or_else(|e| crate::fail(test, &e));
    if let Err(e) = crate::ensure_base_image()
        .and_then(|_| crate::kube_cross_image(&format!("{}:{CROSS_TAG}", crate::cross_repo())))
        .and_then(|_| crate::keep_image_steps(&tree))
    {
        crate::fail(test, &e);
    }
    Some(tree)
}

/// What [`fail_on_purpose`]'s message ends with, after the count of the run's containers.
pub const ON_PURPOSE: &str = " container(s) of this run on the engine";

/// The deliberate failure that proves the guards (`KUBE_TEST_FAIL_ON_PURPOSE=1`). Its message
/// counts the containers of this run's trees on the engine at that moment, so that the parent
/// run can see the guard had something to remove.
pub fn fail_on_purpose(test: &str) {
    if std::env::var("KUBE_TEST_FAIL_ON_PURPOSE").is_ok_and(|v| v == "1") {
        let (containers, _) = crate::engine_objects(&format!("kube-fixture-{}-", std::process::id()));
        panic!(
            "{test}: failing on purpose (KUBE_TEST_FAIL_ON_PURPOSE=1) to prove the cleanup; {}{ON_PURPOSE}",
            containers.len()
        );
    }
}

/// The count [`fail_on_purpose`] put in a child run's output, if it did.
pub fn on_purpose_count(said: &str) -> Option<usize> {
    let end = said.find(ON_PURPOSE)?;
    let digits = said[..end].rsplit(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

static DOCKER_CONFIG: std::sync::OnceLock<Utf8PathBuf> = std::sync::OnceLock::new();

/// This process's own docker client configuration (`DOCKER_CONFIG`), made empty on first use:
/// the docker contexts a test creates go there, never into the user's `~/.docker`. Once made,
/// [`tool`] passes it to every tool run, so the tools see those contexts.
pub fn docker_config() -> Utf8PathBuf {
    DOCKER_CONFIG.get_or_init(|| crate::scratch("docker-config")).clone()
}

/// Runs a containerized tool (`program`, then `words`, e.g. the xtask binary and
/// `["run-dockerized"]`) on the tree at `root`, with this run's stand-in kube-cross and no
/// DOCKER_HOST, rsync port or keep choice from the caller's environment.
pub fn tool(
    program: impl AsRef<OsStr>,
    words: &[&str],
    root: &Utf8Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Captured {
    let mut p = Proc::new(program)
        .args(words)
        .arg("--kube-root")
        .arg(root)
        .env_remove("DOCKER_HOST")
        .env_remove("KUBE_RSYNC_PORT")
        .env_remove("KUBE_RSYNC_KEEP")
        .env("KUBE_CROSS_IMAGE", crate::cross_repo())
        .env("KUBE_KIT_CACHE_VOLUME", crate::cache_volume());
    if let Some(config) = DOCKER_CONFIG.get() {
        p = p.env("DOCKER_CONFIG", config);
    }
    for (k, v) in envs {
        p = p.env(k, v);
    }
    p.args(args).output().unwrap()
}

/// `docker args`, its stdout; a failing docker fails the test with the command and its words
/// (never an empty answer that a check could take for "nothing there").
pub fn docker(args: &[&str]) -> String {
    docker_try(args).unwrap_or_else(|e| panic!("{}", e.msg))
}

/// `docker args` where a failure is an answer (is this image there?): Err carries the command
/// and docker's words.
pub fn docker_try(args: &[&str]) -> Result<String, kube_tree::Fail> {
    Proc::new("docker").args(args).timeout(std::time::Duration::from_secs(300)).read()
}

pub fn id_of(container: &str) -> String {
    docker(&["inspect", "-f", "{{.Id}}", container])
}

/// Containers (all states) labelled as this tree's.
pub fn containers_of(root: &Utf8Path) -> Vec<String> {
    let mut v: Vec<String> =
        docker(&["ps", "-a", "--filter", &format!("label=io.k8s-build-kit.tree={root}"), "--format", "{{.Names}}"])
            .lines()
            .map(str::to_string)
            .collect();
    v.sort();
    v
}

/// A small era-B tree carrying the real build/build-image (for fast runs of simple commands).
pub fn small_tree(name: &str, real: &Utf8Path) -> Utf8PathBuf {
    let root = fixture::scratch_tree(name, &Spec::era_b());
    for f in ["Dockerfile", "rsyncd.sh", "VERSION"] {
        std::fs::copy(real.join("build/build-image").join(f), root.join("build/build-image").join(f)).unwrap();
    }
    std::fs::copy(real.join("build/common.sh"), root.join("build/common.sh")).unwrap();
    Utf8PathBuf::from_path_buf(std::fs::canonicalize(&root).unwrap()).unwrap()
}

pub fn kubectl_version(kubectl: &Utf8Path) -> String {
    Proc::new(kubectl).args(["version", "--client"]).read().unwrap()
}

#[cfg(test)]
mod tests {
    use super::{on_purpose_count, ON_PURPOSE};

    #[test]
    fn the_on_purpose_count_is_read_back_only_when_said() {
        let said = format!(
            "---- x stdout ----\npanicked at 'x: failing on purpose (...) to prove the cleanup; 3{ON_PURPOSE}'"
        );
        assert_eq!(on_purpose_count(&said), Some(3));
        assert_eq!(on_purpose_count("test x ... FAILED"), None);
        assert_eq!(on_purpose_count(&format!("cleanup; {ON_PURPOSE}")), None);
    }
}
