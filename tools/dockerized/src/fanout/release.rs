//! Release targets in a fan-out (`make quick-release`, `release-skip-tests`, `release` without
//! its tests): what build/release.sh does, split in two. The shares build `make cross` for
//! their platforms, as release.sh's own `run_build_command make cross` would; then, with every
//! binary copied back into `_output/dockerized/bin`, the tree's own build/package-tarballs.sh
//! packages on the host (`kube::release::package_tarballs`, as release.sh ends) for all the
//! platforms at once, with a docker engine of the list building the server images.

use super::engines::EngineSpec;
use super::run::{follow_packaging, Share};
use crate::setup::VERSION_DEFS;
use crate::sync;
use camino::Utf8PathBuf;
use kube_tree::proc::Proc;
use kube_tree::{log, Fail, Tree};
use std::time::Duration;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// Make targets that end in build/release.sh's packaging.
const PACKAGED: &[&str] = &["quick-release", "release-skip-tests", "release"];

/// The host's packaging step of a fanned-out release target.
#[derive(Debug, Clone)]
pub struct Packaging {
    /// The make target asked for.
    pub target: String,
    /// KUBE_FASTBUILD as make would give it to release.sh.
    pub fast: bool,
    /// Every platform of the run (each share's, together).
    pub platforms: Vec<String>,
    /// The docker engine its `docker build` / `docker save` of the server images talk to.
    pub engine: Option<EngineSpec>,
}

/// What a make command asks of a fan-out when it names a release target: the command each
/// share runs instead (`make cross` with the other arguments), the platforms the tree's
/// release.sh would build when none are given, and the packaging. `None`: no release target.
pub struct ReleaseRequest {
    pub share_cmd: Vec<String>,
    pub default_platforms: Vec<String>,
    pub packaging: Packaging,
}

/// Reads `cmd` (`make TARGET VAR=... -flags`). Refused before any work: release-in-a-container
/// (it packages inside a container of its own), a release target beside other targets, and
/// `make release` with its tests on (the shares do not run the unit and integration tests).
pub fn request(tree: &Tree, cmd: &[String], all: impl FnOnce() -> Vec<String>) -> Result<Option<ReleaseRequest>> {
    if cmd.first().is_none_or(|m| m != "make") {
        return Ok(None);
    }
    let words = &cmd[1..];
    let is_target = |w: &&String| !w.contains('=') && !w.starts_with('-');
    let targets: Vec<&String> = words.iter().filter(is_target).collect();
    if targets.iter().any(|t| *t == "release-in-a-container") {
        return Err(Fail::new(
            "make release-in-a-container in a fan-out: it packages in a container of its own; \
             fan out make quick-release (or release-skip-tests) instead",
        ));
    }
    let Some(target) = targets.iter().find(|t| PACKAGED.contains(&t.as_str())) else { return Ok(None) };
    if targets.len() > 1 {
        return Err(Fail::new(format!(
            "make {target} beside other targets in a fan-out: run them separately (the release is packaged on the host after all shares)"
        )));
    }
    let make_var =
        |name: &str| words.iter().rev().find_map(|w| w.strip_prefix(&format!("{name}=")[..]).map(str::to_string));
    let env_var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // The Makefile: `quick-release release-skip-tests: KUBE_RELEASE_RUN_TESTS = n` and
    // `KUBE_FASTBUILD = true` (target-specific, so only a make argument overrides them);
    // `release` takes both from the environment, and release.sh runs the tests unless n.
    let fixed = target.as_str() != "release";
    let tests = make_var("KUBE_RELEASE_RUN_TESTS")
        .or_else(|| if fixed { Some("n".into()) } else { env_var("KUBE_RELEASE_RUN_TESTS") })
        .unwrap_or_else(|| "y".into());
    if tests.starts_with(['y', 'Y']) {
        return Err(Fail::new(
            "make release in a fan-out runs no unit or integration tests: add KUBE_RELEASE_RUN_TESTS=n \
             (or use make release-skip-tests) and run make test on one engine",
        ));
    }
    let fast = make_var("KUBE_FASTBUILD")
        .or_else(|| if fixed { Some("true".into()) } else { env_var("KUBE_FASTBUILD") })
        .is_some_and(|v| v == "true");
    for f in ["build/package-tarballs.sh", "build/lib/release.sh"] {
        if !tree.path(f).is_file() {
            return Err(Fail::new(format!(
                "make {target} in a fan-out packages with the tree's {f}, which this tree does not have"
            )));
        }
    }
    let share_cmd: Vec<String> = std::iter::once("make".to_string())
        .chain(words.iter().map(|w| if w == *target { "cross".to_string() } else { w.clone() }))
        .filter(|w| !w.starts_with("KUBE_FASTBUILD=") && !w.starts_with("KUBE_RELEASE_RUN_TESTS="))
        .collect();
    // hack/lib/golang.sh's setup_platforms: with KUBE_FASTBUILD=true, linux/amd64 (and
    // darwin/amd64 for clients and tests on a darwin builder), else every supported platform.
    let default_platforms = if fast {
        let mut p = vec!["linux/amd64".to_string()];
        if cfg!(target_os = "macos") {
            p.push("darwin/amd64".into());
        }
        p
    } else {
        all()
    };
    Ok(Some(ReleaseRequest {
        share_cmd,
        default_platforms,
        packaging: Packaging { target: target.to_string(), fast, platforms: Vec::new(), engine: None },
    }))
}

impl Packaging {
    /// The packaging run: build/package-tarballs.sh from the tree root, with the platforms of
    /// the run, the version the shares built with and the packaging engine's environment.
    pub fn proc(&self, tree: &Tree) -> Proc {
        let mut p = Proc::new("bash")
            .arg(tree.path("build/package-tarballs.sh"))
            .dir(&tree.root)
            .env("KUBE_BUILD_PLATFORMS", self.platforms.join(" "))
            .env("KUBE_FASTBUILD", if self.fast { "true" } else { "false" })
            .env("KUBE_GIT_VERSION_FILE", tree.path(VERSION_DEFS));
        if let Some(e) = &self.engine {
            p = e.apply_env(p);
        }
        p
    }

    /// The dry run's line: `host<TAB>PLATFORMS<TAB>COMMAND`.
    pub fn plan_line(&self, tree: &Tree) -> String {
        format!("host\t{}\t{}", self.platforms.join(" "), self.proc(tree).display())
    }

    /// Runs the packaging, its lines prefixed `[package]`, a progress line every 30 s; Err only
    /// when it could not run. `shares`' records follow what the packaging does to the tree (see
    /// [`follow_packaging`]).
    pub fn run(&self, tree: &Tree, shares: &[Share]) -> Result<Packaged> {
        let before = sync::sums(&tree.root)?;
        let engine = self.engine.as_ref().map_or("docker".to_string(), |e| e.spec.clone());
        log::status(format!(
            "[package] build/package-tarballs.sh for {} (images on {engine})",
            self.platforms.join(" ")
        ));
        // Its own process group (as every child's): the script runs its tarballs and image
        // builds as background jobs, and an interrupt must stop them with it.
        let mut child = self.proc(tree).start_lines(|_, line| log::line(format_args!("[package] {line}")))?;
        let mut beat = log::Heartbeat::new("[package] build/package-tarballs.sh", Duration::from_secs(30));
        let status = child.wait_watched(&mut beat)?;
        // Whether it packaged or not, what it did to the tree is known now.
        follow_packaging(tree, shares, before, sync::sums(&tree.root)?)?;
        if !status.success() {
            return Ok(Packaged::Failed(format!(
                "build/package-tarballs.sh failed ({status}) after {}; the binaries are in _output/dockerized/bin \
                 and a rerun with nothing changed only packages again",
                log::human(beat.elapsed())
            )));
        }
        log::status(format!("[package] done in {}", log::human(beat.elapsed())));
        let dir = tree.path("_output/release-tars");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Packaged::Failed(format!("{dir}: the packaging made no tarballs")));
        };
        let mut tars: Vec<Utf8PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Utf8PathBuf::from_path_buf(e.path()).ok())
            .filter(|p| p.as_str().ends_with(".tar.gz"))
            .collect();
        tars.sort();
        if tars.is_empty() {
            return Ok(Packaged::Failed(format!("{dir}: the packaging made no tarballs")));
        }
        Ok(Packaged::Tarballs(tars))
    }
}

/// What a packaging that ran came to.
#[derive(Debug)]
pub enum Packaged {
    /// The tarballs in `_output/release-tars`.
    Tarballs(Vec<Utf8PathBuf>),
    /// Why it failed (the run exits 1; the binaries stay).
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_tree::fixture::{scratch_tree, Spec};

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn tree(name: &str) -> Tree {
        let root = scratch_tree(name, &Spec::era_b());
        for f in ["build/package-tarballs.sh", "build/lib/release.sh"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), "#!/bin/bash\n").unwrap();
        }
        Tree::open(&root).unwrap()
    }

    fn all() -> Vec<String> {
        vec!["linux/amd64".into(), "linux/arm64".into(), "windows/amd64".into()]
    }

    #[test]
    fn release_targets_become_make_cross_and_a_host_packaging() {
        let t = tree("release-request");
        let r = request(&t, &words("make quick-release KUBE_VERBOSE=3"), all).unwrap().unwrap();
        assert_eq!(r.share_cmd, words("make cross KUBE_VERBOSE=3"));
        assert!(r.packaging.fast);
        assert_eq!(r.default_platforms[0], "linux/amd64");
        // A make argument overrides the Makefile's target-specific KUBE_FASTBUILD.
        let r = request(&t, &words("make release-skip-tests KUBE_FASTBUILD=false"), all).unwrap().unwrap();
        assert!(!r.packaging.fast);
        assert_eq!(r.default_platforms, all());
        assert_eq!(r.share_cmd, words("make cross"));
        let r = request(&t, &words("make release KUBE_RELEASE_RUN_TESTS=n"), all).unwrap().unwrap();
        assert_eq!(r.packaging.target, "release");
        assert!(request(&t, &words("make cross"), all).unwrap().is_none());
        assert!(request(&t, &words("true"), all).unwrap().is_none());
        for bad in
            ["make release", "make quick-release kubectl", "make release-in-a-container", "make cross quick-release"]
        {
            let e = request(&t, &words(bad), all).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.msg.contains("fan-out"), "{bad}: {}", e.msg);
        }
        std::fs::remove_file(t.path("build/package-tarballs.sh")).unwrap();
        let e = request(&t, &words("make quick-release"), all).err().unwrap();
        assert!(e.msg.contains("build/package-tarballs.sh"), "{}", e.msg);
    }

    #[test]
    fn the_packaging_gets_the_platforms_version_and_engine() {
        let t = tree("release-packaging");
        let engine = EngineSpec::parse("kit-second").unwrap();
        let p = Packaging {
            target: "quick-release".into(),
            fast: true,
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            engine: Some(engine),
        };
        let line = p.plan_line(&t);
        assert!(line.starts_with("host\tlinux/amd64 linux/arm64\t"), "{line}");
        for want in [
            "KUBE_BUILD_PLATFORMS='linux/amd64 linux/arm64'",
            "KUBE_FASTBUILD=true",
            "DOCKER_CONTEXT=kit-second",
            "package-tarballs.sh",
        ] {
            assert!(line.contains(want), "{want} not in {line}");
        }
        assert!(line.contains(".dockerized-kube-version-defs"), "{line}");
    }
}
