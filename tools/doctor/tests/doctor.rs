//! doctor, run as the real binary: on this machine, and with PATH stripped of go or rsync.

use camino::Utf8Path;
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{which, Captured, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_doctor");

fn doctor(root: &Utf8Path, path: Option<&Utf8Path>, args: &[&str]) -> Captured {
    let mut p = Proc::new(BIN).arg("--kube-root").arg(root).args(args);
    if let Some(path) = path {
        p = p.env("PATH", path);
    }
    p.output().unwrap()
}

/// A PATH directory holding links to everything doctor looks for, except `without`.
fn path_without(name: &str, without: &str) -> camino::Utf8PathBuf {
    let dir = fixture::scratch_dir(name);
    for tool in ["go", "rsync", "git", "make", "tar", "bash", "uname", "df", "date", "docker"] {
        if tool == without {
            continue;
        }
        if let Some(p) = which(tool) {
            std::os::unix::fs::symlink(p, dir.join(tool)).unwrap();
        }
    }
    dir
}

fn row<'a>(stderr: &'a str, check: &str) -> &'a str {
    stderr.lines().find(|l| l.split_whitespace().next() == Some(check)).unwrap_or_else(|| panic!("no {check} row in:\n{stderr}"))
}

#[test]
fn this_machine_has_what_the_tree_needs() {
    for tool in ["go", "rsync", "git", "make"] {
        if !testkit::require("this_machine_has_what_the_tree_needs", tool) {
            return;
        }
    }
    let root = fixture::scratch_tree("doc-ok", &Spec::era_b());
    let out = doctor(&root, None, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(row(&out.stderr, "go").contains(" ok "), "{}", out.stderr);
    assert!(row(&out.stderr, "go").contains(">= go1.15.0"), "the tree's minimum is read: {}", out.stderr);
    assert!(out.stdout.starts_with(r#"[{"check":"go","status":"ok","found":"go1."#), "{}", out.stdout);
    assert_eq!(out.stdout.matches(r#""check":"#).count(), 9);
}

#[test]
fn missing_go_or_rsync_fails_and_names_the_fix() {
    let root = fixture::scratch_tree("doc-missing", &Spec::era_b());
    for (tool, fix) in [("go", "install Go"), ("rsync", "apt-get install rsync")] {
        let path = path_without(&format!("doc-path-no-{tool}"), tool);
        let out = doctor(&root, Some(&path), &[]);
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        let r = row(&out.stderr, tool);
        assert!(r.contains("FAIL") && r.contains("not found") && r.contains(fix), "{r}");
    }
}

#[test]
fn a_tree_that_needs_a_newer_go_fails_the_go_check() {
    if !testkit::require("a_tree_that_needs_a_newer_go_fails_the_go_check", "go") {
        return;
    }
    let root = fixture::scratch_tree("doc-newer", &Spec::era_c());
    // This Go must be older than the fixture's go1.25 minimum for the check to mean anything.
    let v = Proc::new("go").arg("version").env("GOTOOLCHAIN", "local").read().unwrap();
    let have = kube_tree::gover::from_go_version_output(&v).unwrap();
    if have.minor >= 25 {
        testkit::skip("a_tree_that_needs_a_newer_go_fails_the_go_check", "the local Go is not older than go1.25");
        return;
    }
    let out = doctor(&root, None, &[]);
    assert_eq!(out.status.code(), Some(1));
    let r = row(&out.stderr, "go");
    assert!(r.contains(&format!("go{} < go1.25", have.text)) && r.contains("install Go 1.25 or newer"), "{r}");
}
