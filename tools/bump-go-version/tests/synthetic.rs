//! bump-go-version, run as the real binary, on generated trees of each era.

use camino::Utf8Path;
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

const BIN: &str = env!("CARGO_BIN_EXE_bump-go-version");

fn bg(root: &Utf8Path, args: &[&str]) -> Captured {
    Proc::new(BIN).arg("--kube-root").arg(root).args(args).env("KUBE_VERBOSE", "1").output().unwrap()
}

/// Every regular file of the tree with its content, to prove what changed and what did not.
fn snapshot(root: &Utf8Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    fn walk(root: &Utf8Path, d: &Utf8Path, m: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = camino::Utf8PathBuf::from_path_buf(e.path()).unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &p, m);
            } else if ft.is_file() {
                m.insert(p.strip_prefix(root).unwrap().to_string(), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    walk(root, root, &mut m);
    m
}

/// (file, old line, new line) for every line that differs between two snapshots.
fn line_changes(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<(String, String, String)> {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "files appeared or vanished");
    let mut out = Vec::new();
    for (k, va) in a {
        let vb = &b[k];
        assert_eq!(va.lines().count(), vb.lines().count(), "{k}: line count changed");
        for (x, y) in va.lines().zip(vb.lines()) {
            if x != y {
                out.push((k.clone(), x.to_string(), y.to_string()));
            }
        }
    }
    out
}

fn ch(f: &str, a: &str, b: &str) -> (String, String, String) {
    (f.to_string(), a.to_string(), b.to_string())
}

#[test]
fn era_a_moves_the_2019_checklist() {
    let root = fixture::scratch_tree("bg-a", &Spec::era_a());
    assert_eq!(bg(&root, &["--check"]).status.code(), Some(0));
    let before = snapshot(&root);
    let out = bg(&root, &["1.12.10"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "build/build-image/cross/Dockerfile\nbuild/build-image/cross/VERSION\nbuild/root/WORKSPACE\ntest/images/Makefile\n");
    assert_eq!(
        line_changes(&before, &snapshot(&root)),
        vec![
            ch("build/build-image/cross/Dockerfile", "FROM golang:1.12.9", "FROM golang:1.12.10"),
            ch("build/build-image/cross/VERSION", "v1.12.9-1", "v1.12.10-1"),
            ch("build/root/WORKSPACE", "    go_version = \"1.12.9\",", "    go_version = \"1.12.10\","),
            ch("test/images/Makefile", "GOLANG_VERSION=1.12.9", "GOLANG_VERSION=1.12.10"),
        ]
    );
    assert_eq!(bg(&root, &["--check"]).status.code(), Some(0));
}

#[test]
fn era_b_moves_dependencies_yaml_carriers_but_not_etcd_or_other_branches() {
    let root = fixture::scratch_tree("bg-b", &Spec::era_b());
    assert_eq!(bg(&root, &["--check"]).status.code(), Some(0), "{}", bg(&root, &["--check"]).stdout);
    let before = snapshot(&root);
    let out = bg(&root, &["go1.15.8"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("`mathc:` read as `match:`"), "typo tolerated with a warning: {}", out.stderr);
    assert_eq!(
        line_changes(&before, &snapshot(&root)),
        vec![
            ch("build/build-image/cross/VERSION", "v1.15.5-1", "v1.15.8-1"),
            ch("build/dependencies.yaml", "    version: 1.15.5", "    version: 1.15.8"),
            ch("build/dependencies.yaml", "    version: v1.15.5-1", "    version: v1.15.8-1"),
            ch("staging/publishing/rules.yaml", "default-go-version: 1.15.5", "default-go-version: 1.15.8"),
            ch("test/images/Makefile", "GOLANG_VERSION=1.15.5", "GOLANG_VERSION=1.15.8"),
        ]
    );
    // etcd's Go (same number) and the `go: 1.15.5` branch line of rules.yaml were left alone.
    let after = snapshot(&root);
    assert!(after["cluster/images/etcd/Makefile"].contains("GOLANG_VERSION := 1.15.5"));
    assert!(after["staging/publishing/rules.yaml"].contains("  - name: master\n    go: 1.15.5\n"));
    assert!(after["build/dependencies.yaml"].contains("golang: etcd release version\"\n    version: 1.15.5\n"));
}

#[test]
fn era_c_derives_new_tags_and_warns_on_a_minor_bump() {
    let root = fixture::scratch_tree("bg-c", &Spec::era_c());
    let before = snapshot(&root);
    // --images: derive and move the image tags (era C keeps them unless asked or known).
    let out = bg(&root, &["1.26rc1", "--json", "--images"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("minor bump 1.25 -> 1.26"), "{}", out.stderr);
    assert!(out.stdout.starts_with(r#"{"from":"1.25.6","to":"1.26rc1","written":true,"changes":[{"file":".go-version","line":1,"old":"1.25.6","new":"1.26rc1"}"#), "{}", out.stdout);
    assert_eq!(
        line_changes(&before, &snapshot(&root)),
        vec![
            ch(".go-version", "1.25.6", "1.26rc1"),
            ch("build/build-image/cross/VERSION", "v1.35.0-go1.25.6-bookworm.0", "v1.35.0-go1.26rc1-bookworm.0"),
            ch(
                "build/common.sh",
                "readonly __default_go_runner_version=v2.4.0-go1.25.6-bookworm.0",
                "readonly __default_go_runner_version=v2.4.0-go1.26rc1-bookworm.0"
            ),
            ch("build/dependencies.yaml", "    version: 1.25.6", "    version: 1.26rc1"),
            ch(
                "build/dependencies.yaml",
                "    version: v1.35.0-go1.25.6-bookworm.0",
                "    version: v1.35.0-go1.26rc1-bookworm.0"
            ),
            ch(
                "build/dependencies.yaml",
                "    version: v2.4.0-go1.25.6-bookworm.0",
                "    version: v2.4.0-go1.26rc1-bookworm.0"
            ),
            ch("staging/publishing/rules.yaml", "default-go-version: 1.25.6", "default-go-version: 1.26rc1"),
            ch("test/images/Makefile", "GOLANG_VERSION=1.25.6", "GOLANG_VERSION=1.26rc1"),
        ]
    );
    assert_eq!(bg(&root, &["--check"]).status.code(), Some(0));

    // --cross-rev, --minimum and --go-directive on the way to the final release.
    let before = snapshot(&root);
    let out = bg(&root, &["1.26.0", "--cross-rev", "2", "--minimum", "--go-directive", "--images"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("minor bump"), "{}", out.stderr);
    let changes = line_changes(&before, &snapshot(&root));
    assert!(changes.contains(&ch(
        "build/build-image/cross/VERSION",
        "v1.35.0-go1.26rc1-bookworm.0",
        "v1.35.0-go1.26.0-bookworm.2"
    )));
    assert!(changes.contains(&ch(
        "build/common.sh",
        "readonly __default_go_runner_version=v2.4.0-go1.26rc1-bookworm.0",
        "readonly __default_go_runner_version=v2.4.0-go1.26.0-bookworm.0"
    )));
    assert!(changes.contains(&ch("hack/lib/golang.sh", "  minimum_go_version=go1.25", "  minimum_go_version=go1.26")));
    assert!(changes.contains(&ch("go.mod", "go 1.25.0", "go 1.26.0")));
    assert!(changes.contains(&ch("go.work", "go 1.25.0", "go 1.26.0")));
    assert!(changes.contains(&ch("staging/src/k8s.io/client-go/go.mod", "go 1.25.0", "go 1.26.0")));
    assert_eq!(changes.len(), 8 + 1 + 5, "8 carriers, minimum_go_version, 5 go directives: {changes:#?}");
}

#[test]
fn bumping_to_the_current_version_changes_nothing() {
    let root = fixture::scratch_tree("bg-same", &Spec::era_b());
    let before = snapshot(&root);
    let out = bg(&root, &["1.15.5"]);
    assert_eq!((out.status.code(), out.stdout.as_str()), (Some(0), ""));
    assert!(out.stderr.contains("already at Go 1.15.5"), "{}", out.stderr);
    assert_eq!(before, snapshot(&root));
}

#[test]
fn bad_versions_and_flags_exit_2_with_one_line() {
    let root = fixture::scratch_tree("bg-bad", &Spec::era_b());
    let before = snapshot(&root);
    for args in [
        &["1.x"][..],
        &["v1.15.8"],
        &["2.0"],
        &["1.15.8", "--check"],
        &[],
        &["1.15.8", "--dry-run", "--diff"],
        &["1.15.8", "--cross-rev", "x"],
    ] {
        let out = bg(&root, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(out.stdout, "", "{args:?}");
        assert_eq!(out.stderr.trim().lines().count(), 1, "{args:?}: {}", out.stderr);
    }
    assert_eq!(before, snapshot(&root));
}

#[test]
fn check_names_the_disagreeing_file() {
    let root = fixture::scratch_tree("bg-check", &Spec::era_b());
    std::fs::write(root.join("test/images/Makefile"), "GOLANG_VERSION=1.15.4\nexport\n").unwrap();
    let out = bg(&root, &["--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, "test/images/Makefile:1\tdrift\tbuild/dependencies.yaml: golang: upstream version says 1.15.5, but this line has: GOLANG_VERSION=1.15.4\n");
}

#[test]
fn failures_write_nothing_anywhere() {
    let spec = Spec::era_b();
    // A carrier made read-only (mode 0444: refused even when running as root).
    let root = fixture::scratch_tree("bg-ro", &spec);
    let ro = root.join("test/images/Makefile");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = snapshot(&root);
    let out = bg(&root, &["1.15.8"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("read-only"), "{}", out.stderr);
    assert_eq!(before, snapshot(&root));

    // A carrier deleted: exit 1, the report names it, nothing written; --allow-missing goes on.
    let root = fixture::scratch_tree("bg-del", &spec);
    std::fs::remove_file(root.join("staging/publishing/rules.yaml")).unwrap();
    let before = snapshot(&root);
    let out = bg(&root, &["1.15.8"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("staging/publishing/rules.yaml\tmissing"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(before, snapshot(&root));
    let out = bg(&root, &["1.15.8", "--allow-missing"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(line_changes(&before, &snapshot(&root)).len(), 4);

    // A version line made ambiguous: a second GOLANG_VERSION with another value.
    let root = fixture::scratch_tree("bg-amb", &spec);
    std::fs::write(root.join("test/images/Makefile"), "GOLANG_VERSION=1.15.5\nGOLANG_VERSION=1.14.2\n").unwrap();
    let before = snapshot(&root);
    let out = bg(&root, &["1.15.8"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("test/images/Makefile:2\tdrift"), "{}", out.stderr);
    assert_eq!(before, snapshot(&root));
}

#[test]
fn diff_applies_with_git_and_equals_the_write() {
    if !testkit::require("diff_applies_with_git_and_equals_the_write", "git") {
        return;
    }
    let a = fixture::scratch_tree("bg-diff-a", &Spec::era_c());
    let b = fixture::scratch_tree("bg-diff-b", &Spec::era_c());
    let d = bg(&a, &["1.25.7", "--diff", "--images"]);
    assert_eq!(d.status.code(), Some(0));
    assert!(d.stdout.starts_with("diff --git a/.go-version b/.go-version\n"), "{}", d.stdout);
    let before = snapshot(&a);
    assert_eq!(before, snapshot(&b), "--diff wrote nothing");
    let patch = a.parent().unwrap().join("bump.patch");
    std::fs::write(&patch, &d.stdout).unwrap();
    let applied = Proc::new("git").args(["apply", "--verbose"]).arg(&patch).dir(&a).output().unwrap();
    assert!(applied.success(), "{}", applied.stderr);
    let w = bg(&b, &["1.25.7", "-z", "--images"]);
    assert_eq!(w.status.code(), Some(0));
    assert_eq!(w.stdout.split('\0').filter(|s| !s.is_empty()).count(), 6, "{:?}", w.stdout);
    assert_eq!(snapshot(&a), snapshot(&b));
    assert_ne!(snapshot(&a), before);
}

/// The writer's pause points (fsx's `KUBE_KIT_TEST_PAUSE_DIR` hook): two FIFOs, and a thread
/// that reads each point the writer announces (a writer open, one line, a close).
struct PausePoints {
    dir: camino::Utf8PathBuf,
    points: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl PausePoints {
    fn new(dir: camino::Utf8PathBuf) -> PausePoints {
        for f in ["at", "go"] {
            assert!(Proc::new("mkfifo").arg(dir.join(f)).output().unwrap().success(), "mkfifo {f}");
        }
        let (tx, points) = std::sync::mpsc::channel();
        let at = dir.join("at");
        let reader = std::thread::spawn(move || loop {
            // Blocks until a writer opens; an open with nothing written is the end (see Drop).
            let Ok(line) = std::fs::read_to_string(&at) else { return };
            if line.is_empty() || tx.send(line.trim().to_string()).is_err() {
                return;
            }
        });
        PausePoints { dir, points, reader: Some(reader) }
    }

    /// The next point the writer is held at (a deadline against a hung writer, not a timing check).
    fn next(&self) -> String {
        self.points.recv_timeout(std::time::Duration::from_secs(120)).expect("the writer reached no next point")
    }

    /// Lets the held writer go on.
    fn release(&self) {
        std::fs::write(self.dir.join("go"), "\n").unwrap();
    }
}

impl Drop for PausePoints {
    fn drop(&mut self) {
        // An open for writing with nothing written ends the reader thread.
        let _ = std::fs::OpenOptions::new().write(true).open(self.dir.join("at"));
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// SIGKILL at every point of a bump, in turn: before anything is staged, while staging, after
/// the journal's commit between renames. No file is ever half-written; a read-only `--check`
/// after it reports clean, pending or stale temps and writes nothing; the next bump leaves the
/// carriers all old or all new and no temp behind. The writer is held at each point by a pause
/// hook the test controls, so every phase is reached by construction.
#[test]
fn a_kill_during_the_write_leaves_no_half_written_file() {
    let root = fixture::scratch_tree("bg-kill", &Spec::era_b());
    let pause = PausePoints::new(fixture::scratch_dir("bg-kill-pause"));
    let old = snapshot(&root);
    let first = bg(&root, &["1.15.8"]);
    assert_eq!(first.status.code(), Some(0));
    let files = first.stdout.lines().count();
    assert!(files >= 2, "a bump of several files: {}", first.stdout);
    let new = snapshot(&root);
    assert_eq!(bg(&root, &["1.15.5", "--allow-downgrade"]).status.code(), Some(0));
    let points: Vec<String> =
        (1..=files).map(|i| format!("staging {i}")).chain((1..=files).map(|i| format!("renaming {i}"))).collect();
    let (mut committed, mut staged, mut clean) = (0, 0, 0);
    for (round, target) in points.iter().enumerate() {
        let mut child = std::process::Command::new(BIN)
            .args(["-q", "--kube-root", root.as_str(), "1.15.8"])
            .env("KUBE_KIT_TEST_PAUSE_DIR", &pause.dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Every point before the target in order, then the kill while the writer is held there.
        for expected in &points[..=round] {
            assert_eq!(&pause.next(), expected, "round {round}: the points come in order");
            if expected != target {
                pause.release();
            }
        }
        child.kill().unwrap();
        let _ = child.wait();
        let mut now = snapshot(&root);
        // A killed bump leaves its lock file (never the lock), which the next bump removes.
        now.remove(".bump-go-version.lock");
        let temp = |k: &String| k.contains(".new-") || k.contains(".old-");
        for (k, v) in now.iter().filter(|(k, _)| !temp(k) && !k.contains(".journal")) {
            assert!(v == &old[k] || v == &new[k], "round {round}: {k} is neither old nor new:\n{v}");
        }
        let journal = now.contains_key(".bump-go-version.journal");
        let temps = now.keys().any(temp);
        let check = bg(&root, &["--check"]);
        let mut after = snapshot(&root);
        after.remove(".bump-go-version.lock");
        assert_eq!(after, now, "round {round}: --check wrote");
        if journal {
            committed += 1;
            assert!(target.starts_with("renaming"), "round {round}: a journal before the commit ({target})");
            assert_eq!(check.status.code(), Some(1));
            assert!(check.stdout.contains("pending"), "round {round}: {}", check.stdout);
        } else if temps {
            staged += 1;
            assert!(target.starts_with("staging"), "round {round}: temps without a journal after the commit");
            assert_eq!(check.status.code(), Some(1));
            assert!(check.stdout.contains("stale-temp"), "round {round}: {}", check.stdout);
        } else {
            clean += 1;
            assert_eq!(target, "staging 1", "round {round}: nothing staged only before the first file");
            assert_eq!(check.status.code(), Some(0), "round {round}: {}", check.stdout);
        }
        let next = bg(&root, &["1.15.8"]);
        assert_eq!(next.status.code(), Some(0), "round {round}: {}", next.stderr);
        assert_eq!(snapshot(&root), new, "round {round}: the next bump left a mix or temps");
        assert_eq!(bg(&root, &["1.15.5", "--allow-downgrade"]).status.code(), Some(0));
    }
    assert_eq!((clean, staged, committed), (1, files - 1, files), "kills in every phase, each where it was aimed");
}
