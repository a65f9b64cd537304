//! bump-go on era C, on the real upstream build/dependencies.yaml (tests/fixtures/era-c, Feb
//! 2026): `.go-version` moves alone with its golang entry; kube-cross and go-runner tags name
//! images kubernetes/release publishes, so they move only with --images or when the image is
//! known, and a kube-cross older than `.go-version` is not drift.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::{Captured, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_bump-go-version");

/// A copy of the fixture's files in a scratch directory of this test.
fn era_c_copy(name: &str) -> Utf8PathBuf {
    let root = testkit::scratch(name).join("kubernetes");
    Proc::new("cp").arg("-a").arg(testkit::erac::fixture_dir()).arg(&root).read().unwrap();
    root
}

/// bump-go with no engine and no registry in reach (a socket and a proxy that do not exist).
fn bump(root: &Utf8Path, args: &[&str]) -> Captured {
    Proc::new(BIN)
        .arg("--kube-root")
        .arg(root)
        .args(args)
        .env("DOCKER_HOST", format!("unix://{root}/no-engine.sock"))
        .env("HTTPS_PROXY", "http://127.0.0.1:1")
        .env_remove("KUBE_CONTAINER_ENGINE")
        .output()
        .unwrap()
}

fn files(out: &Captured) -> Vec<&str> {
    out.stdout.lines().collect()
}

#[test]
fn era_c_moves_go_version_and_keeps_image_tags_no_image_is_known_for() {
    let root = era_c_copy("bump-era-c");
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    let (cross, common) = (read("build/build-image/cross/VERSION"), read("build/common.sh"));

    let out = bump(&root, &["--dry-run", "1.25.8"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        files(&out),
        [".go-version", "build/dependencies.yaml", "staging/publishing/rules.yaml"],
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("registry.k8s.io/kube-cross: dependents stays v1.36.0-go1.25.7-bullseye.0 (not v1.36.0-go1.25.8-bullseye.0)")
            && out.stderr.contains("registry.k8s.io/go-runner: dependents stays v2.4.0-go1.25.7-bookworm.0")
            && out.stderr.contains("fetches go1.25.8 itself"),
        "{}",
        out.stderr
    );
    // --images: the derived tags move too (the era-B behaviour).
    let out = bump(&root, &["--dry-run", "--images", "1.25.8"]);
    assert_eq!(
        files(&out),
        [
            ".go-version",
            "build/build-image/cross/VERSION",
            "build/common.sh",
            "build/dependencies.yaml",
            "staging/publishing/rules.yaml"
        ],
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(" stays "), "{}", out.stderr);

    // Written: only the golang entry's carriers changed; --check then finds no drift, though
    // kube-cross is older than .go-version.
    let out = bump(&root, &["1.25.8"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(read(".go-version").trim(), "1.25.8");
    assert!(read("staging/publishing/rules.yaml").contains("default-go-version: 1.25.8"));
    let deps = read("build/dependencies.yaml");
    assert!(deps.contains("version: 1.25.8") && deps.contains("version: v1.36.0-go1.25.7-bullseye.0"), "{deps}");
    assert_eq!((read("build/build-image/cross/VERSION"), read("build/common.sh")), (cross, common));
    let check = bump(&root, &["--check"]);
    assert_eq!(check.status.code(), Some(0), "{}{}", check.stdout, check.stderr);
    assert!(check.stderr.contains("every Go version carrier says 1.25.8"), "{}", check.stderr);
    std::fs::remove_dir_all(root.parent().unwrap()).unwrap();
}
