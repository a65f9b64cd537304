//! `cargo xtask test --jobs N`: the workspace's test binaries run N at a time instead of one
//! after another (they share nothing fixed: each names its objects by process, its shared ones
//! by the run). For machines with cores to spare: on the 2-core CI machine kind the engine
//! tests keep both cores busy (code generation, compiles), and two at a time was slower than
//! one after another, so `.ci/run` does not use it.
//!
//! cargo builds the binaries and lists them (`--no-run --message-format=json`); each then runs as
//! cargo would run it (from its package's directory, with the harness arguments), the longest
//! known first ([`WEIGHTS`]); its output is printed whole when it ends, so lanes never
//! interleave, and a table of the time of each closes the run. No fail-fast. The doc-tests run
//! as one more job (`cargo test --doc`).

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::{interrupted, Proc, Started};
use kube_tree::{log, Fail};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// About how many seconds each long test binary takes in the full tier on the CI machine kind
/// (clean-clone runs; kube-build's real-tree tests from the two-lane run, the only one that
/// timed them apart), to start the longest first: a binary missing here is taken as short.
pub const WEIGHTS: &[(&str, u32)] = &[
    ("run-dockerized/fanout", 530),
    ("run-dockerized/engine", 420),
    ("kube-build/real_tree", 360),
    ("real_tree", 200),
    ("run-dockerized/podman", 160),
    ("xtask/engine_promises", 120),
    ("run-dockerized/shared_cache", 120),
    ("run-dockerized/mirror_and_sweep", 115),
    ("xtask/hostile", 90),
    ("run-dockerized/erac", 60),
    ("run-dockerized/no_change", 50),
];

/// One test binary as cargo built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestBinary {
    /// Its package's directory and its target's name (`run-dockerized/engine`,
    /// `dockerized/dockerized` for a library's unit tests); the workspace root's targets bare.
    pub name: String,
    pub exe: Utf8PathBuf,
    /// Its package's directory: cargo runs a test binary from there.
    pub dir: Utf8PathBuf,
}

/// The test binaries in cargo's `--message-format=json` output (its `compiler-artifact`
/// messages with an executable built in test mode) of the workspace at `root`.
pub fn parse_artifacts(json_lines: &str, root: &Utf8Path) -> Result<Vec<TestBinary>, Fail> {
    let mut out = Vec::new();
    for line in json_lines.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Fail::new(format!("cargo's JSON message: {e}")))?;
        let is_test = v["reason"] == "compiler-artifact" && v["profile"]["test"] == true;
        let (Some(exe), Some(name), Some(manifest)) =
            (v["executable"].as_str(), v["target"]["name"].as_str(), v["manifest_path"].as_str())
        else {
            continue;
        };
        if !is_test {
            continue;
        }
        let dir = Utf8Path::new(manifest).parent().map(Utf8Path::to_path_buf).unwrap_or_default();
        let name = match dir.file_name() {
            Some(pkg) if dir != root => format!("{pkg}/{name}"),
            _ => name.to_string(),
        };
        out.push(TestBinary { name, exe: exe.into(), dir });
    }
    Ok(out)
}

/// The order to start them in: heaviest first by [`WEIGHTS`], the rest as cargo listed them.
pub fn order(mut bins: Vec<TestBinary>) -> Vec<TestBinary> {
    let weight = |b: &TestBinary| WEIGHTS.iter().find(|w| w.0 == b.name).map_or(0, |w| w.1);
    bins.sort_by_key(|b| std::cmp::Reverse(weight(b)));
    bins
}

/// One job of the pool: a test binary, or the doc-tests.
struct Job {
    name: String,
    proc: Proc,
}

/// A job that ended.
struct Ended {
    name: String,
    ok: bool,
    took: Duration,
}

/// Builds the test binaries, then runs them `jobs` at a time with `harness` (the arguments after
/// `--`); the doc-tests too. Returns the exit code: 0 when every one passed, 101 otherwise.
pub fn run(jobs: usize, harness: &[String]) -> Result<i32, Fail> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace");
    let built = Proc::new(&cargo)
        .args(["test", "--workspace", "--locked", "--no-run", "--message-format=json-render-diagnostics"])
        .dir(root)
        .output_with_progress("building the test binaries", Duration::from_secs(60))?;
    if !built.success() {
        eprint!("{}", built.stderr);
        return Err(Fail::new("the test binaries did not build"));
    }
    let mut queue: Vec<Job> = order(parse_artifacts(&built.stdout, root)?)
        .into_iter()
        .map(|b| Job { name: b.name, proc: Proc::new(&b.exe).args(harness).dir(&b.dir) })
        .collect();
    queue.push(Job {
        name: "doc-tests".into(),
        proc: Proc::new(&cargo).args(["test", "--workspace", "--locked", "--doc"]).dir(root),
    });
    log::status(format!("{} test jobs, {jobs} at a time", queue.len()));
    let ended = pool(queue, jobs.max(1))?;
    let mut table: Vec<&Ended> = ended.iter().collect();
    table.sort_by_key(|e| std::cmp::Reverse(e.took));
    println!("+++ time per test binary ({jobs} at a time)");
    for e in &table {
        println!("{:10.1} s  {}  ({})", e.took.as_secs_f64(), e.name, if e.ok { "ok" } else { "FAILED" });
    }
    let total: Duration = ended.iter().map(|e| e.took).sum();
    println!("{:10.1} s  total in the test binaries", total.as_secs_f64());
    let failed: Vec<&str> = ended.iter().filter(|e| !e.ok).map(|e| e.name.as_str()).collect();
    if failed.is_empty() {
        return Ok(0);
    }
    println!("failed: {}", failed.join(" "));
    Ok(101)
}

/// A job running, and the lines it printed so far.
struct Running {
    name: String,
    started: Started,
    lines: Arc<Mutex<Vec<String>>>,
}

fn pool(mut queue: Vec<Job>, jobs: usize) -> Result<Vec<Ended>, Fail> {
    queue.reverse(); // popped from the end: the heaviest first
    let mut running: Vec<Running> = Vec::new();
    let mut ended = Vec::new();
    let t0 = Instant::now();
    let mut next_beat = Duration::from_secs(60);
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < jobs && !interrupted() {
            let Some(job) = queue.pop() else { break };
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            let started = job.proc.start_lines(move |_, l| sink.lock().expect("lines").push(l.to_string()))?;
            log::status(format!("started {}", job.name));
            running.push(Running { name: job.name, started, lines });
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].started.try_wait()? {
                Some(status) => {
                    let r = running.swap_remove(i);
                    let took = r.started.start.elapsed();
                    println!("     Running {} ({} s)", r.name, took.as_secs());
                    for l in r.lines.lock().expect("lines").iter() {
                        println!("{l}");
                    }
                    log::status(format!(
                        "{} {} in {}",
                        r.name,
                        if status.success() { "passed" } else { "FAILED" },
                        log::human(took)
                    ));
                    ended.push(Ended { name: r.name, ok: status.success(), took });
                }
                None => i += 1,
            }
        }
        if interrupted() {
            running.iter().for_each(|r| r.started.terminate());
        }
        if t0.elapsed() >= next_beat {
            let names: Vec<String> =
                running.iter().map(|r| format!("{} ({})", r.name, log::human(r.started.start.elapsed()))).collect();
            log::status(format!(
                "running: {}; {} waiting ({} so far)",
                names.join(", "),
                queue.len(),
                log::human(t0.elapsed())
            ));
            next_beat += Duration::from_secs(60);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if interrupted() {
        return Err(Fail::interrupted());
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::{order, parse_artifacts, TestBinary};

    #[test]
    fn cargo_lists_the_test_binaries_and_the_heaviest_start_first() {
        let json = r#"{"reason":"compiler-artifact","target":{"name":"kube_tree","kind":["lib"]},"profile":{"test":false},"executable":null,"manifest_path":"/w/tools/kube-tree/Cargo.toml"}
{"reason":"compiler-artifact","target":{"name":"kube_tree","kind":["lib"]},"profile":{"test":true},"executable":"/w/target/debug/deps/kube_tree-1","manifest_path":"/w/tools/kube-tree/Cargo.toml"}
{"reason":"compiler-artifact","target":{"name":"engine","kind":["test"]},"profile":{"test":true},"executable":"/w/target/debug/deps/engine-2","manifest_path":"/w/tools/run-dockerized/Cargo.toml"}
{"reason":"compiler-artifact","target":{"name":"run-dockerized","kind":["bin"]},"profile":{"test":false},"executable":"/w/target/debug/run-dockerized","manifest_path":"/w/tools/run-dockerized/Cargo.toml"}
{"reason":"compiler-artifact","target":{"name":"real_tree","kind":["test"]},"profile":{"test":true},"executable":"/w/target/debug/deps/real_tree-3","manifest_path":"/w/Cargo.toml"}
{"reason":"build-finished","success":true}
"#;
        let bins = parse_artifacts(json, "/w".into()).unwrap();
        let names: Vec<&str> = bins.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["kube-tree/kube_tree", "run-dockerized/engine", "real_tree"], "test-mode executables only");
        assert_eq!(bins[1].dir, "/w/tools/run-dockerized");
        let fanout = TestBinary { name: "run-dockerized/fanout".into(), exe: "/x".into(), dir: "/w".into() };
        let mut all = bins.clone();
        all.push(fanout);
        let ordered: Vec<String> = order(all).into_iter().map(|b| b.name).collect();
        assert_eq!(ordered, ["run-dockerized/fanout", "run-dockerized/engine", "real_tree", "kube-tree/kube_tree"]);
        assert!(parse_artifacts("{not json", "/w".into()).is_err());
    }
}
