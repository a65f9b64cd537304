//! `run-dockerized --engines`: one build fanned out over two real engines, the machine's
//! daemon and a private second dockerd (its own config, socket, roots and bridge) reached as a
//! docker context. Two platforms of a command come back byte for byte as one engine builds them;
//! a second daemon stopped mid-build fails the run, naming it, with nothing of the tree left
//! on the first engine; an unreachable engine stops the run before any work.

mod common;

use camino::{Utf8Path, Utf8PathBuf};
use common::*;
use kube_tree::proc::Proc;
use std::sync::{Arc, Mutex};
use testkit::daemon::SecondDaemon;

const PLATFORMS: (&str, &str) = ("KUBE_BUILD_PLATFORMS", "linux/amd64 linux/arm64");
const EPOCH: (&str, &str) = ("SOURCE_DATE_EPOCH", "1600000000");
/// linkcheck is a cgo binary by the tree's rules; the stand-in kube-cross has no arm64 C
/// compiler (the real one does), so the tests build it static, as the scripts let one ask.
const STATIC: (&str, &str) = ("KUBE_STATIC_OVERRIDES", "linkcheck");
/// linkcheck, by the tree's build script (no code generation: see the first test).
const BUILD_LINKCHECK: [&str; 2] = ["hack/make-rules/build.sh", "cmd/linkcheck"];

/// A second daemon holding this run's stand-in kube-cross, as docker context `kit-<name>-<pid>`
/// (removed on drop, before the daemon).
struct Second {
    context: String,
    daemon: Option<SecondDaemon>,
}

impl Second {
    fn start(test: &str, name: &str) -> Option<Second> {
        let daemon = match SecondDaemon::start(name) {
            Ok(d) => d,
            Err(e) => {
                testkit::skip_if_missing(test, &e);
                return None;
            }
        };
        let stand_in = format!("{}:{CROSS_TAG}", testkit::cross_repo());
        if let Err(e) = daemon.load_from_main(&stand_in) {
            panic!("loading the stand-in into the second daemon: {}", e.msg);
        }
        let context = format!("kit-{name}-{}", std::process::id());
        let _ =
            Proc::new("docker").args(["context", "rm", "-f", &context]).env("DOCKER_CONFIG", docker_config()).output();
        let made = Proc::new("docker")
            .env("DOCKER_CONFIG", docker_config())
            .args(["context", "create", &context, "--docker", &format!("host={}", daemon.host)])
            .output()
            .unwrap();
        assert!(made.success(), "docker context create: {}", made.stderr);
        Some(Second { context, daemon: Some(daemon) })
    }

    /// `docker -H <second> args`, its stdout; a failing docker fails the test with its words.
    fn docker(&self, args: &[&str]) -> String {
        self.daemon.as_ref().expect("running").docker().args(args).read().unwrap_or_else(|e| panic!("{}", e.msg))
    }

    /// Stops the daemon (SIGTERM: it stops its containers and exits), as a build host that
    /// goes away.
    fn stop(&mut self) {
        self.daemon.take();
    }
}

impl Drop for Second {
    fn drop(&mut self) {
        let _ = Proc::new("docker")
            .args(["context", "rm", "-f", &self.context])
            .env("DOCKER_CONFIG", docker_config())
            .output();
    }
}

fn copy_of(real: &Utf8Path, name: &str) -> Utf8PathBuf {
    let tree = testkit::scratch(name).join("kubernetes");
    testkit::full_copy(real, &tree).unwrap();
    Utf8PathBuf::from_path_buf(std::fs::canonicalize(&tree).unwrap()).unwrap()
}

/// The linkcheck a run built for `platform`.
fn built(tree: &Utf8Path, platform: &str) -> Vec<u8> {
    std::fs::read(tree.join("_output/dockerized/bin").join(platform).join("linkcheck")).unwrap()
}

/// The two proofs that keep the second engine running share one: a new daemon builds the
/// kube-build image from scratch, every step a layer commit (five minutes here under load), and
/// with one rsync password per cache the second tree's image then comes from its layer cache.
#[test]
#[ignore = "full tier: needs root (a second dockerd), docker and the real v1.20.2 tree"]
fn two_engines_build_and_release_what_one_engine_builds() {
    let test = "two_engines_build_and_release_what_one_engine_builds";
    let Some(real) = ready(test) else { return };
    let Some(second) = Second::start(test, "fan") else { return };
    two_engines_build_what_one_engine_builds(test, &real, &second);
    a_fanned_out_quick_release_packages_every_platform(test, &real, &second);
}

/// A command's two platforms fanned out come back byte for byte as one engine builds them;
/// the rerun skips on both engines; a touched file builds on both.
fn two_engines_build_what_one_engine_builds(test: &str, real: &Utf8Path, second: &Second) {
    let (one, two) = (copy_of(real, "fan-one"), copy_of(real, "fan-two"));
    let _guards = (testkit::EngineGuard::new(&one), testkit::EngineGuard::new(&two));
    let engines = format!("default,{}", second.context);
    // A small command, built by the tree's build script: what is proven (the split,
    // byte-identical shares, the records, the skip) depends neither on the target nor on make,
    // and make in three fresh data containers (one tree on one engine, the other on both)
    // redid the tree's whole code generation three times, minutes each. The real kubectl
    // builds are engine.rs's; a fanned-out make is the quick release's below.

    // The plan first: one platform each (an even split, nothing measured yet), nothing started.
    let plan = rd(&two, &["--engines", &engines, "--dry-run", "make", "WHAT=cmd/linkcheck"], &[PLATFORMS]);
    assert_eq!(plan.status.code(), Some(0), "{}", plan.stderr);
    let lines: Vec<&str> = plan.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", plan.stdout);
    assert!(
        lines[0].starts_with("default\tlinux/amd64\t")
            && lines[1].starts_with(&format!("{}\tlinux/arm64\t", second.context)),
        "{}",
        plan.stdout
    );
    assert!(lines.iter().all(|l| l.contains("--mode rsync") && l.contains("KUBE_RSYNC_PORT=")), "{}", plan.stdout);
    assert!(containers_of(&two).is_empty(), "a dry run started something");
    // make cross: the tree's whole platform list, halved.
    let cross = rd(&two, &["--engines", &engines, "--dry-run", "make", "cross"], &[]);
    assert_eq!(cross.status.code(), Some(0), "{}", cross.stderr);
    let shares: Vec<usize> = cross.stdout.lines().map(|l| l.split('\t').nth(1).unwrap().split(' ').count()).collect();
    let all = kube_tree::scripts::GolangSh::read(&kube_tree::Tree::open(&two).unwrap()).unwrap().all_platforms();
    assert!(all.len() >= 9 && shares.iter().sum::<usize>() == all.len(), "{shares:?} of {all:?}");
    assert!(shares.iter().all(|n| n.abs_diff(all.len() / 2) <= 1), "an even split: {shares:?}");
    assert!(cross.stdout.lines().all(|l| l.ends_with("-- make cross")), "{}", cross.stdout);

    let single = rd(&one, &[BUILD_LINKCHECK[0], BUILD_LINKCHECK[1]], &[PLATFORMS, EPOCH, STATIC]);
    assert_eq!(single.status.code(), Some(0), "{}", single.stderr);
    let fanned =
        rd(&two, &["--engines", &engines, BUILD_LINKCHECK[0], BUILD_LINKCHECK[1]], &[PLATFORMS, EPOCH, STATIC]);
    assert_eq!(fanned.status.code(), Some(0), "{}", fanned.stderr);
    fail_on_purpose(test);
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(built(&two, p) == built(&one, p), "{p}: the fanned-out linkcheck differs from one engine's");
        let listed = two.join("_output/dockerized/bin").join(p).join("linkcheck");
        assert!(fanned.stdout.lines().any(|l| l == listed.as_str()), "{p} reported: {}", fanned.stdout);
    }
    // Each engine built its share (its own data container there), logs were prefixed, and the
    // durations were kept for the next split.
    assert!(!containers_of(&two).is_empty(), "the default engine's share");
    let on_second = second.docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=io.k8s-build-kit.tree={two}"),
        "--format",
        "{{.Names}}",
    ]);
    assert!(on_second.lines().any(|n| n.starts_with("kube-build-data-")), "{on_second}");
    assert!(
        fanned.stderr.contains(&format!("[{}] ", second.context)) && fanned.stderr.contains("[default] "),
        "{}",
        fanned.stderr
    );
    let durations = std::fs::read_to_string(two.join("_output/dockerized/.kit-fanout-durations")).unwrap();
    assert!(durations.contains("linux/arm64") && durations.contains(&second.context), "{durations}");

    // Nothing changed: the rerun reports the same binaries and starts no container on either
    // engine (each share's copy-out rewrote files the other's record held; the fan-out settles
    // both records once all have copied out).
    let since = now();
    let again = rd(&two, &["--engines", &engines, BUILD_LINKCHECK[0], BUILD_LINKCHECK[1]], &[PLATFORMS, EPOCH, STATIC]);
    assert_eq!(again.status.code(), Some(0), "{}", again.stderr);
    assert_eq!(again.stdout, fanned.stdout, "the same binaries reported");
    for engine in ["default", second.context.as_str()] {
        let prefix = format!("[{engine}] ");
        assert!(
            again
                .stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains("nothing changed since the last successful")),
            "{engine} did not skip: {}",
            again.stderr
        );
    }
    let started = |events: String| events.lines().filter(|l| !l.trim().is_empty()).count();
    let label = format!("label=io.k8s-build-kit.tree={two}");
    let until = now();
    let args = ["events", "--since", &since, "--until", &until, "--filter", "event=create", "--filter", &label];
    assert_eq!(started(docker(&args)), 0, "a container was created on the default engine");
    assert_eq!(started(second.docker(&args)), 0, "a container was created on the second engine");

    // One file touched: neither share may skip.
    let f = two.join("cmd/linkcheck/links.go");
    std::fs::write(&f, std::fs::read(&f).unwrap()).unwrap();
    let edited =
        rd(&two, &["--engines", &engines, BUILD_LINKCHECK[0], BUILD_LINKCHECK[1]], &[PLATFORMS, EPOCH, STATIC]);
    assert_eq!(edited.status.code(), Some(0), "{}", edited.stderr);
    assert!(!edited.stderr.contains("nothing changed since the last successful"), "{}", edited.stderr);
}

/// The engines' clock now, as `docker events` reads it.
fn now() -> String {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string()
}

#[test]
#[ignore = "full tier: needs root (a second dockerd), docker and the real v1.20.2 tree"]
fn a_dead_engine_fails_the_run_and_leaves_nothing() {
    let test = "a_dead_engine_fails_the_run_and_leaves_nothing";
    let Some(real) = ready(test) else { return };
    let Some(mut second) = Second::start(test, "dead") else { return };
    let tree = copy_of(&real, "fan-dead");
    let _guard = testkit::EngineGuard::new(&tree);
    let engines = format!("default,{}", second.context);

    // An unreachable engine: one line, exit 2, nothing started; --skip-unreachable plans
    // everything on the rest.
    let out = rd(&tree, &["--engines", "default,tcp://127.0.0.1:9", "make", "WHAT=cmd/kubectl"], &[PLATFORMS]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("unreachable engine(s): tcp://127.0.0.1:9"), "{}", out.stderr);
    assert!(containers_of(&tree).is_empty());
    let out = rd(
        &tree,
        &["--engines", "default,tcp://127.0.0.1:9", "--skip-unreachable", "--dry-run", "make", "WHAT=cmd/kubectl"],
        &[PLATFORMS],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("default\tlinux/amd64 linux/arm64\t") && out.stdout.lines().count() == 1,
        "{}",
        out.stdout
    );

    // The second daemon goes away while its share builds.
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = lines.clone();
    let mut run = Proc::new(BIN)
        .env("DOCKER_CONFIG", docker_config())
        .arg("--kube-root")
        .arg(&tree)
        .args(["--engines", &engines, "make", "WHAT=cmd/kubectl"])
        .env_remove("DOCKER_HOST")
        .env("KUBE_CROSS_IMAGE", testkit::cross_repo())
        .env("KUBE_KIT_CACHE_VOLUME", testkit::cache_volume())
        .env(PLATFORMS.0, PLATFORMS.1)
        .start_lines(move |_, l| seen.lock().unwrap().push(l.to_string()))
        .unwrap();
    // Its share has begun building there (its kube-build image, from scratch on a new daemon:
    // minutes of layer commits that waiting for the build container cost the suite).
    let prefix = format!("[{}] ", second.context);
    let building =
        || lines.lock().unwrap().iter().any(|l| l.starts_with(&prefix) && l.contains("building kube-build:"));
    let t = std::time::Instant::now();
    while !building() {
        assert!(t.elapsed().as_secs() < 600, "the second engine's build never started: {:?}", lines.lock().unwrap());
        assert!(run.try_wait().unwrap().is_none(), "the run ended early: {:?}", lines.lock().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    second.stop();
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed().as_secs() < 900, "the run did not end after its engine died");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let said = lines.lock().unwrap().join("\n");
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("engine {} failed", second.context)) && said.contains("linux/arm64"), "{said}");
    assert!(containers_of(&tree).is_empty(), "left on the first engine: {:?}\n{said}", containers_of(&tree));
}

/// `make quick-release` fanned out: each engine builds `make cross` for its platform, then the
/// tree's own build/package-tarballs.sh packages both on the host. The tree is the real one with
/// its build targets' own packages cut down to a few lines (testkit::release), so the release
/// builds in minutes; its scripts, generators and packaging are the tree's. The server images
/// are built on the first docker engine from test-only stand-ins of the base images.
fn a_fanned_out_quick_release_packages_every_platform(test: &str, real: &Utf8Path, second: &Second) {
    let tree = testkit::scratch("fan-release").join("kubernetes");
    let cut = testkit::release::cut_down_tree(real, &tree).unwrap();
    assert!(cut.iter().any(|t| t == "cmd/kube-apiserver") && cut.iter().any(|t| t == "test/e2e/e2e.test"), "{cut:?}");
    let tree = Utf8PathBuf::from_path_buf(std::fs::canonicalize(&tree).unwrap()).unwrap();
    let mut guard = testkit::EngineGuard::new(&tree);
    let registry = format!("k8s-build-kit-test-{}/base", std::process::id());
    guard.tags = testkit::release::base_image_stand_ins(&guard.cli, &tree, &registry).unwrap();
    // The images the packaging tags under the official names and removes itself; any it
    // leaves after a failure go with the test (none of them was there before).
    let official = || -> Vec<String> {
        docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .filter(|t| t.starts_with("k8s.gcr.io/kube-"))
            .map(str::to_string)
            .collect()
    };
    let before = official();
    let engines = format!("default,{}", second.context);
    let env = [
        PLATFORMS,
        EPOCH,
        ("KUBE_BASE_IMAGE_REGISTRY", registry.as_str()),
        ("KUBE_BUILD_PULL_LATEST_IMAGES", "n"),
        ("KUBE_BUILD_CONFORMANCE", "n"),
    ];

    // The plan: make cross on each engine for one platform, then the host's packaging of both.
    let plan = rd(&tree, &["--engines", &engines, "--dry-run", "make", "quick-release"], &env);
    assert_eq!(plan.status.code(), Some(0), "{}", plan.stderr);
    let lines: Vec<&str> = plan.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", plan.stdout);
    assert!(lines[..2].iter().all(|l| l.ends_with("-- make cross")), "{}", plan.stdout);
    assert!(lines[2].starts_with("host\tlinux/amd64 linux/arm64\t"), "{}", plan.stdout);
    assert!(
        lines[2].contains("build/package-tarballs.sh") && lines[2].contains("DOCKER_CONTEXT=default"),
        "{}",
        lines[2]
    );

    let out = rd(&tree, &["--engines", &engines, "make", "quick-release"], &env);
    for t in official().into_iter().filter(|t| !before.contains(t)) {
        guard.tags.push(t);
    }
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    fail_on_purpose(test);
    assert!(
        out.stderr.contains(&format!("[{}] ", second.context)) && out.stderr.contains("[package] "),
        "{}",
        out.stderr
    );
    let tars = tree.join("_output/release-tars");
    for name in [
        "kubernetes.tar.gz",
        "kubernetes-src.tar.gz",
        "kubernetes-manifests.tar.gz",
        "kubernetes-client-linux-amd64.tar.gz",
        "kubernetes-client-linux-arm64.tar.gz",
        "kubernetes-node-linux-amd64.tar.gz",
        "kubernetes-node-linux-arm64.tar.gz",
        "kubernetes-server-linux-amd64.tar.gz",
        "kubernetes-server-linux-arm64.tar.gz",
        "kubernetes-test-linux-arm64.tar.gz",
    ] {
        let path = tars.join(name);
        assert!(path.is_file(), "{name} missing: {}", std::fs::read_dir(&tars).map(|d| d.count()).unwrap_or(0));
        assert!(out.stdout.lines().any(|l| l == path.as_str()), "{name} not reported: {}", out.stdout);
    }
    // The arm64 server tarball holds what the second engine built, and its server images.
    let x = testkit::scratch("fan-release-x");
    let untar = Proc::new("tar")
        .args(["-xzf", tars.join("kubernetes-server-linux-arm64.tar.gz").as_str(), "-C", x.as_str()])
        .output()
        .unwrap();
    assert!(untar.success(), "{}", untar.stderr);
    let bin = x.join("kubernetes/server/bin");
    for b in ["kube-apiserver", "kubelet", "kubectl", "kube-proxy"] {
        let packed = std::fs::read(bin.join(b)).unwrap();
        assert!(
            packed == std::fs::read(tree.join("_output/dockerized/bin/linux/arm64").join(b)).unwrap(),
            "{b} differs"
        );
        assert_eq!(u16::from_le_bytes([packed[18], packed[19]]), 0xb7, "{b} is not an arm64 ELF");
    }
    for image in ["kube-apiserver.tar", "kube-proxy.tar"] {
        assert!(bin.join(image).metadata().unwrap().len() > 1024, "{image}");
    }
    assert_eq!(std::fs::read_to_string(bin.join("kube-apiserver.docker_tag")).unwrap().trim(), "v1.20.2");
    assert!(official().iter().all(|t| before.contains(t)), "the packaging left images: {:?}", official());

    // A packaging that fails (its base images are not there, and their registry refuses at
    // once) fails the run with exit 1 and keeps the binaries.
    let missing = "127.0.0.1:9/k8s-build-kit-test-missing".to_string();
    let mut bad = env;
    bad[2] = ("KUBE_BASE_IMAGE_REGISTRY", missing.as_str());
    let failed = rd(&tree, &["--engines", &engines, "make", "quick-release"], &bad);
    assert_eq!(failed.status.code(), Some(1), "{}", failed.stderr);
    assert!(failed.stderr.contains("build/package-tarballs.sh failed"), "{}", failed.stderr);
    assert!(tree.join("_output/dockerized/bin/linux/arm64/kube-apiserver").is_file(), "the binaries went");
    // The rerun: both shares find nothing changed and start no container; only the packaging runs.
    let since = now();
    let again = rd(&tree, &["--engines", &engines, "make", "quick-release"], &env);
    assert_eq!(again.status.code(), Some(0), "{}", again.stderr);
    for engine in ["default", second.context.as_str()] {
        let skipped = again
            .stderr
            .lines()
            .any(|l| l.starts_with(&format!("[{engine}] ")) && l.contains("nothing changed since the last successful"));
        assert!(skipped, "{engine} built again: {}", again.stderr);
    }
    let label = format!("label=io.k8s-build-kit.tree={tree}");
    let until = now();
    let args = ["events", "--since", &since, "--until", &until, "--filter", "event=create", "--filter", &label];
    let created = |events: String| events.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(created(docker(&args)) + created(second.docker(&args)), 0, "a share started a container");
    assert!(again.stderr.contains("[package] done"), "{}", again.stderr);
    assert_eq!(again.stdout, out.stdout, "the same binaries and tarballs reported");

    // SIGTERM while it packages: the run stops (130) and takes the script's background jobs
    // (tarballs, image builds) with it; none of them outlives it.
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = lines.clone();
    let mut p = Proc::new(BIN).env("DOCKER_CONFIG", docker_config()).arg("--kube-root").arg(&tree).args([
        "--engines",
        &engines,
        "make",
        "quick-release",
    ]);
    p = p
        .env_remove("DOCKER_HOST")
        .env("KUBE_CROSS_IMAGE", testkit::cross_repo())
        .env("KUBE_KIT_CACHE_VOLUME", testkit::cache_volume());
    for (k, v) in env {
        p = p.env(k, v);
    }
    let mut run = p.start_lines(move |_, l| seen.lock().unwrap().push(l.to_string())).unwrap();
    let t = std::time::Instant::now();
    while !lines.lock().unwrap().iter().any(|l| l.contains("[package] +++")) {
        assert!(t.elapsed().as_secs() < 300, "the packaging never began: {:?}", lines.lock().unwrap());
        assert!(run.try_wait().unwrap().is_none(), "it ended first: {:?}", lines.lock().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run.terminate();
    // It ends (its jobs do not hold its output open); the deadline only guards against a hang.
    let stopped = std::time::Instant::now();
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(stopped.elapsed().as_secs() < 120, "it did not stop (the jobs held its output)");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{:?}", lines.lock().unwrap());
    // Nothing of the tree's packaging is left: what was signalled may still be exiting, so
    // look until it is gone (again only a hang guard, no time claim).
    let of_tree = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(tree.as_str()) && !c.contains("--kube-root"))
            .collect()
    };
    let mut left = of_tree();
    while !left.is_empty() && stopped.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = of_tree();
    }
    assert!(left.is_empty(), "the packaging left {left:?}");
    for t in official().into_iter().filter(|t| !before.contains(t)) {
        guard.tags.push(t);
    }
}
