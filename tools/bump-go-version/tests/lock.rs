//! One writer at a time: a bump held half-way through its renames (by a gate the test opens)
//! is left alone by `--check`, `--recover`, `--dry-run` and a second bump; killed there, the
//! next command finishes it. The order is proven by events (the gate), never by timing.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};
use std::collections::BTreeMap;

const BIN: &str = env!("CARGO_BIN_EXE_bump-go-version");
const LOCK: &str = ".bump-go-version.lock";
const JOURNAL: &str = ".bump-go-version.journal";

fn bg(root: &Utf8Path, args: &[&str]) -> Captured {
    Proc::new(BIN).arg("--kube-root").arg(root).args(args).output().unwrap()
}

/// Every regular file of the tree with its content.
fn snapshot(root: &Utf8Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = Utf8PathBuf::from_path_buf(e.path()).unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                dirs.push(p);
            } else if ft.is_file() {
                m.insert(p.strip_prefix(root).unwrap().to_string(), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    m
}

/// The carriers of an era A tree and what each says.
fn carriers(root: &Utf8Path) -> Vec<String> {
    ["build/build-image/cross/VERSION", "build/build-image/cross/Dockerfile", "build/root/WORKSPACE"]
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
        .collect()
}

/// A bump to `to` that stops at the gate; returns it and its pid once it is there.
fn held_bump(root: &Utf8Path, gate: &Utf8Path, to: &str) -> (std::process::Child, String) {
    let _ = std::fs::remove_file(gate.join("reached"));
    let mut child = std::process::Command::new(BIN)
        .args(["-q", "--kube-root", root.as_str(), to])
        .env("KUBE_KIT_TEST_RENAME_GATE", gate)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Waits for the event "the bump is at its gate" (bounded only so a broken hook fails).
    for _ in 0..1200 {
        if let Ok(pid) = std::fs::read_to_string(gate.join("reached")) {
            return (child, pid);
        }
        assert!(child.try_wait().unwrap().is_none(), "the bump ended before its gate");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the bump never reached its gate");
}

#[test]
fn a_running_bump_is_left_alone_and_a_killed_one_is_recovered() {
    let dir = testkit::scratch("bump-lock");
    let root = dir.join("kubernetes");
    fixture::write_tree(&root, &Spec::era_a());
    let gate = dir.join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    assert!(Proc::new("mkfifo").arg(gate.join("gate")).output().unwrap().success());
    let before = carriers(&root);

    let (mut child, pid) = held_bump(&root, &gate, "1.12.10");
    let mid = snapshot(&root);
    assert!(mid.contains_key(JOURNAL) && mid.contains_key(LOCK), "held after its commit: {:?}", mid.keys());
    let running = format!("a bump is running (pid {pid})");
    let check = bg(&root, &["--check"]);
    assert_eq!(check.status.code(), Some(1), "{}", check.stderr);
    assert!(check.stdout.contains(&running) && !check.stdout.contains("pending"), "{}", check.stdout);
    assert!(!check.stderr.contains("--recover"), "no advice to recover a live bump: {}", check.stderr);
    for args in [&["--recover"][..], &["1.12.11"], &["1.12.10"], &["1.12.10", "--dry-run"]] {
        let out = bg(&root, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(&running), "{args:?}: {}", out.stderr);
    }
    assert_eq!(snapshot(&root), mid, "the others changed nothing of the running bump");
    drop(std::fs::OpenOptions::new().write(true).open(gate.join("gate")).unwrap());
    assert!(child.wait().unwrap().success(), "the held bump finished on its own");
    let bumped = carriers(&root);
    assert!(bumped.iter().all(|c| c.contains("1.12.10")), "{bumped:?}");
    let after = snapshot(&root);
    assert!(!after.contains_key(LOCK) && !after.contains_key(JOURNAL), "{:?}", after.keys());

    // Killed at the same point: the kernel drops the lock, so the next commands see an
    // interrupted bump, not a running one, and --recover finishes it.
    let (mut child, _) = held_bump(&root, &gate, "1.12.11");
    child.kill().unwrap();
    child.wait().unwrap();
    let check = bg(&root, &["--check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(check.stdout.contains("pending") && !check.stdout.contains("running"), "{}", check.stdout);
    let rec = bg(&root, &["--recover"]);
    assert_eq!(rec.status.code(), Some(0), "{}", rec.stderr);
    assert!(carriers(&root).iter().all(|c| c.contains("1.12.11")), "{:?}", carriers(&root));
    let done = snapshot(&root);
    assert!(!done.contains_key(LOCK) && !done.contains_key(JOURNAL), "{:?}", done.keys());
    assert_eq!(bg(&root, &["--check"]).status.code(), Some(0));
    assert_ne!(before, carriers(&root));
    std::fs::remove_dir_all(&dir).unwrap();
}
