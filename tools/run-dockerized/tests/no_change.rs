//! No change, no build, against the real engine: a run is recorded only for the tree it built.
//! An edit made while the command runs is not in its output, so the next run must run.

mod common;

use common::*;
use filetime::FileTime;
use kube_tree::proc::Proc;
use std::time::{Duration, Instant};

/// A command that leaves a binary (the record needs outputs) and marks inside the container
/// when it has begun. Built from a marker saying `two`, it holds until the test lets it go
/// (`/tmp/kit-go` in the container), so the test's edit lands while it runs by construction,
/// not inside a time window; the command's text stays the same for every run (the record
/// keys on it).
const CMD: &[&str] = &[
    "sh",
    "-c",
    "touch /tmp/kit-begun; mkdir -p _output/dockerized/bin/linux/amd64 \
     && cat hack/marker.txt > _output/dockerized/bin/linux/amd64/tool \
     && if grep -qx two hack/marker.txt; then while [ ! -e /tmp/kit-go ]; do sleep 0.1; done; fi",
];

#[test]
#[ignore = "full tier: needs docker and the real v1.20.2 tree"]
fn an_edit_made_while_the_command_ran_is_built_by_the_next_run() {
    let test = "an_edit_made_while_the_command_ran_is_built_by_the_next_run";
    let Some(real) = ready(test) else { return };
    let root = small_tree("dock-no-change", &real);
    let _guard = testkit::EngineGuard::new(&root);
    let marker = root.join("hack/marker.txt");
    let tool = root.join("_output/dockerized/bin/linux/amd64/tool");
    let skipped = |stderr: &str| stderr.contains("nothing changed since the last successful");
    std::fs::write(&marker, "one\n").unwrap();

    // The control: a run, then the same run with nothing changed does not start.
    let out = rd(&root, CMD, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    fail_on_purpose(test);
    assert_eq!(std::fs::read_to_string(&tool).unwrap(), "one\n");
    let out = rd(&root, CMD, &[]);
    assert!(out.status.success() && skipped(&out.stderr), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), tool.as_str(), "the same binary reported");

    // An edit before the run: it runs and builds it. The edit keeps the size and lands in the
    // same second as the copy the container holds (rsync's default quick check compares whole
    // seconds and skipped it: this run built `one`). While it runs (after its sync: the command
    // has begun in the container), another edit.
    let synced = FileTime::from_last_modification_time(&std::fs::metadata(&marker).unwrap());
    std::fs::write(&marker, "two\n").unwrap();
    let nanos = synced.nanoseconds();
    let same_second =
        FileTime::from_unix_time(synced.unix_seconds(), if nanos < 500_000_000 { nanos + 1000 } else { nanos - 1000 });
    filetime::set_file_mtime(&marker, same_second).unwrap();
    let root2 = root.clone();
    let run = std::thread::spawn(move || rd(&root2, CMD, &[]));
    let t = Instant::now();
    let build = loop {
        let names =
            docker(&["ps", "--filter", &format!("label=io.k8s-build-kit.tree={root}"), "--format", "{{.Names}}"]);
        let build = names.lines().find(|n| n.starts_with("kube-build-") && !n.contains("-data-")).map(str::to_string);
        let begun = build.filter(|b| {
            Proc::new("docker").args(["exec", b, "test", "-e", "/tmp/kit-begun"]).output().is_ok_and(|o| o.success())
        });
        if let Some(b) = begun {
            break b;
        }
        assert!(!run.is_finished(), "the run ended before it was seen running");
        assert!(t.elapsed() < Duration::from_secs(300), "the command never began");
        std::thread::sleep(Duration::from_millis(200));
    };
    std::fs::write(&marker, "three\n").unwrap();
    docker(&["exec", &build, "touch", "/tmp/kit-go"]);
    let out = run.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&tool).unwrap(), "two\n", "built from the tree as it was synced");
    assert!(out.stderr.contains("the tree changed while the command ran"), "{}", out.stderr);

    // The next run is real and builds the edit; the one after that has nothing to do.
    let out = rd(&root, CMD, &[]);
    assert!(out.status.success() && !skipped(&out.stderr), "the edit was taken as built: {}", out.stderr);
    assert_eq!(std::fs::read_to_string(&tool).unwrap(), "three\n");
    let out = rd(&root, CMD, &[]);
    assert!(out.status.success() && skipped(&out.stderr), "{}", out.stderr);
}
