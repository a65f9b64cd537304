//! A fan-out's shares run side by side in the one process (no run of the tool per engine):
//! each share's lines, its own and its programs', carry its engine's prefix, and a share that
//! fails stops the other, whose programs are ended at once. No engine is needed: a stand-in
//! `docker` on PATH answers for two contexts, one that fails what it is asked and one that
//! hangs.

use camino::Utf8Path;
use kube_tree::fixture::{scratch_dir, scratch_tree, Spec};
use kube_tree::proc::Proc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_run-dockerized");

/// The stand-in: `info` answers 16 GB for both contexts, kube-cross is there, listing and
/// removing answer nothing, other questions fail; the kube-build image's build fails after 2 s
/// on `kit-bad` and hangs on `kit-slow` (its pid kept in `pids`).
fn stand_in(dir: &Utf8Path, pids: &Utf8Path) {
    let script = format!(
        r#"#!/bin/sh
ctx=""; prev=""
for a; do [ "$prev" = --context ] && ctx=$a; prev=$a; done
case " $* " in
  *" info "*) printf '16000000000\t[]\tnull\n'; exit 0 ;;
  *" ps "*|*" rm "*) exit 0 ;;
  *" inspect "*kube-cross*) echo sha256:0123; exit 0 ;;
esac
case "$ctx $*" in
  "kit-slow "*" build "*) echo $$ >> '{pids}'; exec sleep 300 ;;
  "kit-bad "*" build "*) sleep 2; echo "kit-bad says no to: $*" >&2; exit 1 ;;
  *) exit 1 ;;
esac
"#
    );
    let p = dir.join("docker");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn a_failing_share_stops_the_other_and_each_speaks_under_its_engine() {
    let root = scratch_tree("fan-shares", &Spec::era_b());
    // What the kube-build image is made of (the stand-in fails or hangs its build).
    for (f, text) in [
        ("build/build-image/Dockerfile", "FROM KUBE_BUILD_IMAGE_CROSS\nADD rsyncd.sh /\n"),
        ("build/build-image/rsyncd.sh", "#!/bin/sh\n"),
    ] {
        std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
        std::fs::write(root.join(f), text).unwrap();
    }
    let bin = scratch_dir("fan-shares-bin");
    let pids = bin.join("pids");
    stand_in(&bin, &pids);
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let t = Instant::now();
    let out = Proc::new(BIN)
        .arg("--kube-root")
        .arg(&root)
        .args(["--engines", "kit-bad,kit-slow", "--cache", "private", "make", "WHAT=cmd/kubectl"])
        .env("PATH", path)
        .env("XDG_CACHE_HOME", bin.join("cache"))
        .env("KUBE_BUILD_PLATFORMS", "linux/amd64 linux/arm64")
        .env("KUBE_CROSS_IMAGE", "kit-test.invalid/kube-cross")
        .env_remove("DOCKER_HOST")
        .env_remove("KUBE_RSYNC_PORT")
        .output()
        .unwrap();
    let took = t.elapsed();
    let err = &out.stderr;
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "no binaries reported: {}", out.stdout);
    assert!(err.contains("engine kit-bad failed building linux/amd64"), "{err}");
    // Each share's own lines (its status lines, its programs' words) under its engine.
    assert!(err.lines().any(|l| l.starts_with("[kit-bad] ") && l.contains("kit-bad says no")), "{err}");
    assert!(err.lines().any(|l| l.starts_with("[kit-slow] ") && l.contains("building kube-build:")), "{err}");
    let stray =
        |l: &&str| l.contains("says no") && !l.starts_with("[kit-bad] ") && !l.contains("engine kit-bad failed");
    assert!(!err.lines().any(|l| stray(&l)), "{err}");
    // The hanging share was stopped, not waited for, and its programs are gone.
    assert!(took < Duration::from_secs(60), "the run took {took:?}: the other share was waited for\n{err}");
    let hung = std::fs::read_to_string(&pids).unwrap_or_default();
    assert!(!hung.trim().is_empty(), "the slow engine was never asked anything: {err}");
    for pid in hung.split_whitespace() {
        assert!(!Utf8Path::new(&format!("/proc/{pid}")).exists(), "the slow share's program {pid} still runs\n{err}");
    }
}
