//! `cargo xtask bench <what>`: timings on the real tree, interleaved in one run, several rounds.
//! * `check-vendor`: against `find vendor staging -type l` (target: <= 2x find, < 100 ms).
//! * `bump-go`: a whole bump 1.15.5 -> 1.15.8 and back on a copy, and `--check` (target: < 100 ms).
//! * `dockerized`: `run-dockerized make WHAT=cmd/kubectl` against the tree's own
//!   `build/run.sh make WHAT=cmd/kubectl` on the same engine, cold and with nothing changed
//!   (targets: the no-change run >= 30x faster, a one-line kubectl edit >= 3x in rsync and bind
//!   mode, identical binaries, own overhead < 1 s).
//! * `overhead`: `run-dockerized true` (the tool's whole cycle around a no-op command, on a tree
//!   built once) beside the floor any containerized run pays: `docker run --rm <image> true`
//!   (target: < 1 s). `--keep` keeps the copy and its containers for the next run.
//! * `build`: a no-op `kube-build WHAT=cmd/kubectl` against the tree's no-op `make WHAT=cmd/kubectl`
//!   and a raw no-op `go install` of the same package (targets: >= 5x faster than make, <= 1.5x go).
//! * `shared-cache`: a new branch and a second worktree, cold runs on the shared Go build cache
//!   (see the `cache` module; targets: >= 4x); `new-branch`: its new-branch case alone;
//!   `second-worktree`: its second-worktree cases alone (no build/run.sh);
//!   `second-checkout`: kube-build in a second checkout
//!   against a cold `make`.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::Proc;
use kube_tree::{log, Fail};
use std::ffi::OsString;
use std::time::Duration;

mod cache;
mod engines;

use engines::{dockerized, dockerized_era_c, fanout, overhead};

/// Run by `cargo xtask bench` as `cargo bench -p xtask --bench kit -- ARGS`; cargo adds
/// `--bench`, which says nothing here.
fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).filter(|a| a != "--bench").collect();
    std::process::exit(run(args))
}

fn run(args: Vec<OsString>) -> i32 {
    match bench(args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("xtask bench: error: {e}");
            2
        }
    }
}

/// Median and minimum of a sample.
fn stats(v: &mut [Duration]) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[0]))
}

/// Times one command; it must exit with the expected code.
fn time(p: &Proc, want_code: i32) -> Result<Duration, Fail> {
    let out = p.output()?;
    if out.status.code() != Some(want_code) {
        return Err(Fail::new(format!(
            "`{}` exited {} (wanted {want_code}): {}",
            p.display(),
            out.status,
            out.first_lines(2)
        )));
    }
    Ok(out.elapsed)
}

/// One run of `p` that must exit 0, said on stderr as a step while it takes.
fn timed(what: &str, p: &Proc) -> Result<Duration, Fail> {
    let step = log::Step::start(what.to_string());
    let d = time(p, 0)?;
    step.done();
    Ok(d)
}

/// Builds one tool in release mode and returns its binary.
fn release_bin(package: &str) -> Result<Utf8PathBuf, Fail> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ws = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned();
    let step = log::Step::start(format!("building {package} (release)"));
    Proc::new(&cargo).args(["build", "--release", "--locked", "-q", "-p", package]).dir(&ws).read()?;
    step.done();
    let target = std::env::var("CARGO_TARGET_DIR").map(Utf8PathBuf::from).unwrap_or_else(|_| ws.join("target"));
    Ok(target.join("release").join(package))
}

fn bench(args: Vec<OsString>) -> Result<bool, Fail> {
    let mut a = pico_args::Arguments::from_vec(args);
    let rounds: usize = a.opt_value_from_str("--rounds")?.unwrap_or(20);
    let tree: Option<Utf8PathBuf> = a.opt_value_from_str::<_, String>("--tree")?.map(Utf8PathBuf::from);
    let keep = a.contains("--keep");
    let what: Option<String> = a.opt_free_from_str()?;
    if !a.finish().is_empty() || rounds < 3 {
        return Err(Fail::new(xtask::BENCH_USAGE));
    }
    let tree = match tree {
        Some(t) => t,
        None => testkit::real_tree()?,
    };
    println!("tree\t{tree}\nrounds\t{rounds}");
    match what.as_deref() {
        Some("check-vendor") => check_vendor(&tree, rounds),
        Some("bump-go") | Some("bump-go-version") => bump_go(&tree, rounds),
        Some("build") => build(&tree, rounds),
        Some("build-full") => build_full(&tree, rounds),
        Some("dockerized") => dockerized(&tree, rounds),
        Some("dockerized-era-c") => dockerized_era_c(rounds),
        Some("overhead") => overhead(&tree, rounds, keep),
        Some("fanout") => fanout(&tree, rounds),
        Some("shared-cache") => cache::shared_cache(&tree, cache::Cases::All),
        Some("new-branch") => cache::shared_cache(&tree, cache::Cases::NewBranch),
        Some("second-worktree") => cache::shared_cache(&tree, cache::Cases::SecondWorktree),
        Some("second-checkout") => cache::second_checkout(&tree),
        _ => Err(Fail::new(xtask::BENCH_USAGE)),
    }
}

fn check_vendor(tree: &Utf8Path, rounds: usize) -> Result<bool, Fail> {
    let bin = release_bin("check-vendor")?;
    let find = Proc::new("find").args(["vendor", "staging", "-type", "l"]).dir(tree);
    let ours = Proc::new(&bin).args(["-q", "--kube-root", tree.as_str()]).dir(tree);
    // Warm the page cache for both before measuring.
    time(&find, 0)?;
    time(&ours, 0)?;
    let (mut tf, mut to) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        tf.push(time(&find, 0)?);
        to.push(time(&ours, 0)?);
    }
    let ((mf, nf), (mo, no)) = (stats(&mut tf), stats(&mut to));
    let ratio = mo / mf;
    println!("find vendor staging -type l\tmedian {mf:.1} ms\tmin {nf:.1} ms");
    println!("check-vendor\tmedian {mo:.1} ms\tmin {no:.1} ms");
    println!("ratio check-vendor/find\t{ratio:.2}");
    let ok = ratio <= 2.0 && mo < 100.0;
    println!("target (<= 2x find, < 100 ms)\t{}", if ok { "met" } else { "MISSED" });
    Ok(ok)
}

fn bump_go(tree: &Utf8Path, rounds: usize) -> Result<bool, Fail> {
    let bin = release_bin("bump-go-version")?;
    let scratch = testkit::scratch("bench-bump");
    let copy = scratch.join("kubernetes");
    testkit::link_copy(tree, &copy)?;
    let bump = |v: &str| Proc::new(&bin).args(["-q", "--kube-root", copy.as_str(), "--allow-downgrade", v]);
    let check = Proc::new(&bin).args(["-q", "--kube-root", copy.as_str(), "--check"]);
    let grep = Proc::new("grep")
        .args([
            "-rIl",
            "--exclude-dir=vendor",
            "--exclude-dir=.git",
            "1\\.15\\.5",
            "build",
            "test/images",
            "staging/publishing",
            "cluster/addons",
        ])
        .dir(&copy);
    time(&check, 0)?;
    let (mut tb, mut tc, mut tg) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        tb.push(time(&bump(if i % 2 == 0 { "1.15.8" } else { "1.15.5" }), 0)?);
        tc.push(time(&check, 0)?);
        tg.push(time(&grep, 0)?);
    }
    if rounds % 2 == 1 {
        time(&bump("1.15.5"), 0)?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let ((mb, nb), (mc, nc), (mg, ng)) = (stats(&mut tb), stats(&mut tc), stats(&mut tg));
    println!("bump-go (write 8 lines in 7 files)\tmedian {mb:.1} ms\tmin {nb:.1} ms");
    println!("bump-go --check\tmedian {mc:.1} ms\tmin {nc:.1} ms");
    println!("grep -rIl 1.15.5 over the carrier dirs (reference)\tmedian {mg:.1} ms\tmin {ng:.1} ms");
    println!("ratio bump/grep\t{:.2}", mb / mg);
    let ok = mb < 100.0;
    println!("target (whole bump < 100 ms)\t{}", if ok { "met" } else { "MISSED" });
    Ok(ok)
}

/// A persistent full copy of the tree for the build benchmarks: preparing it costs a cold make
/// (minutes), so it is kept between runs.
fn build_copy(tree: &Utf8Path) -> Result<(Utf8PathBuf, Utf8PathBuf), Fail> {
    let base = testkit::cache_dir().join("bench-build");
    let copy = base.join("kubernetes");
    let ready = base.join("ready");
    if !ready.exists() {
        testkit::full_copy(tree, &copy)?;
        let step = log::Step::start("preparing: a cold make WHAT=cmd/kubectl in the copy");
        Proc::new("make").arg("WHAT=cmd/kubectl").dir(&copy).output_with_progress("make", Duration::from_secs(30))?;
        step.done();
        fs_err::write(&ready, "ok\n")?;
    }
    Ok((base, copy))
}

/// `make` with no WHAT against kube-build with no WHAT: make's first full build (its caches warm
/// from kubectl only), kube-build's right after it (both use the tree's GOCACHE,
/// `_output/local/go/cache`, so this one mostly links: it proves the full build, it is no race),
/// then the no-op of everything, `rounds` times, in turn.
fn build_full(tree: &Utf8Path, rounds: usize) -> Result<bool, Fail> {
    let bin = release_bin("kube-build")?;
    let (_, copy) = build_copy(tree)?;
    let make = Proc::new("make").dir(&copy).env_remove("WHAT");
    let ours = Proc::new(&bin).args(["-q", "--go", "host", "--kube-root", copy.as_str()]).env_remove("WHAT");
    let step = log::Step::start("make (no WHAT): the first full build");
    let make_first = make.output_with_progress("make", Duration::from_secs(60))?;
    if !make_first.success() {
        return Err(Fail::new(format!("make failed: {}", make_first.first_lines(5))));
    }
    step.done();
    let step = log::Step::start("kube-build (no WHAT): the first full build");
    let ours_first = ours.output_with_progress("kube-build", Duration::from_secs(60))?;
    if !ours_first.success() {
        return Err(Fail::new(format!("kube-build failed: {}", ours_first.first_lines(5))));
    }
    step.done();
    let n = ours_first.stdout.lines().count();
    println!("binaries built by kube-build (no WHAT)\t{n}");
    println!("make (no WHAT), first full build\t{:.0} s", make_first.elapsed.as_secs_f64());
    println!(
        "kube-build (no WHAT), right after make's (the same GOCACHE: mostly links)\t{:.0} s",
        ours_first.elapsed.as_secs_f64()
    );
    let (mut tm, mut to) = (Vec::new(), Vec::new());
    for _ in 0..rounds.min(5) {
        tm.push(time(&make, 0)?);
        to.push(time(&ours, 0)?);
    }
    let ((mm, _), (mo, _)) = (stats(&mut tm), stats(&mut to));
    println!("make (no WHAT), nothing changed\tmedian {mm:.0} ms");
    println!("kube-build (no WHAT), nothing changed\tmedian {mo:.0} ms");
    println!("ratio make/kube-build (full no-op)\t{:.1}", mm / mo);
    Ok(true)
}

fn build(tree: &Utf8Path, rounds: usize) -> Result<bool, Fail> {
    let bin = release_bin("kube-build")?;
    let (base, copy) = build_copy(tree)?;
    let make = Proc::new("make").arg("WHAT=cmd/kubectl").dir(&copy);
    // --go host: make builds with the go on PATH; so does this, like for like.
    let ours = Proc::new(&bin).args(["-q", "--go", "host", "--kube-root", copy.as_str(), "WHAT=cmd/kubectl"]);
    let gopath = copy.join("_output/local/go");
    let logical = gopath.join("src/k8s.io/kubernetes");
    let raw_bin = base.join("raw-bin");
    let trim = format!("-trimpath={copy}");
    // The same package, env and compile flags, without the version -X flags and -buildid=, into
    // a GOBIN of its own: a true no-op for go's own up-to-date check.
    let raw = Proc::new("go")
        .args([
            "install",
            "-installsuffix",
            "static",
            "-gcflags",
            &trim,
            "-asmflags",
            &trim,
            "-tags",
            "selinux,notest,",
            "k8s.io/kubernetes/cmd/kubectl",
        ])
        .env("GOPATH", &gopath)
        .env("GO111MODULE", "off")
        .env("GOCACHE", gopath.join("cache"))
        .env("CGO_ENABLED", "0")
        .env("GOBIN", &raw_bin)
        .env("PWD", &logical)
        .dir(&logical);
    for p in [&make, &ours, &raw] {
        time(p, 0)?;
    }
    let (mut tm, mut to, mut tr) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        tm.push(time(&make, 0)?);
        to.push(time(&ours, 0)?);
        tr.push(time(&raw, 0)?);
    }
    let ((mm, nm), (mo, no), (mr, nr)) = (stats(&mut tm), stats(&mut to), stats(&mut tr));
    println!("make WHAT=cmd/kubectl (no-op)\tmedian {mm:.0} ms\tmin {nm:.0} ms");
    println!("kube-build WHAT=cmd/kubectl (no-op)\tmedian {mo:.0} ms\tmin {no:.0} ms");
    println!("raw go install cmd/kubectl (no-op)\tmedian {mr:.0} ms\tmin {nr:.0} ms");
    println!("ratio make/kube-build\t{:.1}", mm / mo);
    println!("ratio kube-build/go install\t{:.2}", mo / mr);
    let ok = mm / mo >= 5.0 && mo / mr <= 1.5;
    println!("target (>= 5x faster than make, <= 1.5x go install)\t{}", if ok { "met" } else { "MISSED" });
    Ok(build_edit_loops(&copy, &make, &ours, rounds)? && ok)
}

/// The edit loops on the build copy: one line appended to a file before each run, `make` and
/// kube-build (`ours`) in turn; true when each met its target.
fn build_edit_loops(copy: &Utf8Path, make: &Proc, ours: &Proc, rounds: usize) -> Result<bool, Fail> {
    let edits = rounds.min(5);
    let edit = |rel: &str| -> Result<(), Fail> {
        use std::io::Write;
        let mut f = fs_err::OpenOptions::new().append(true).open(copy.join(rel))?;
        writeln!(f, "// bench edit")?;
        Ok(())
    };
    let mut loop_ok = true;
    for (what, rel, target) in [
        ("one-line kubectl edit", "staging/src/k8s.io/kubectl/pkg/cmd/version/version.go", 2.0),
        ("one-line API-type edit", "staging/src/k8s.io/api/core/v1/types.go", 1.0),
    ] {
        let (mut tm, mut to) = (Vec::new(), Vec::new());
        for _ in 0..edits {
            edit(rel)?;
            tm.push(time(make, 0)?);
            edit(rel)?;
            to.push(time(ours, 0)?);
        }
        let ((mm, _), (mo, _)) = (stats(&mut tm), stats(&mut to));
        let met = mm / mo >= target;
        loop_ok &= met;
        println!("make after a {what}\tmedian {mm:.0} ms");
        println!("kube-build after a {what}\tmedian {mo:.0} ms");
        println!(
            "ratio make/kube-build ({what}, target >= {target:.0}x)\t{:.1}\t{}",
            mm / mo,
            if met { "met" } else { "MISSED" }
        );
    }
    Ok(loop_ok)
}
