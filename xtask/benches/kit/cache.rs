//! `cargo xtask bench shared-cache`: the cold runs the shared Go build cache is for (issue 21),
//! each measured once (a cold run cannot be repeated without being made cold again):
//! * a new branch: a tree built on branch `a`, then `git checkout -b b` with one file changed,
//!   `make WHAT=cmd/kubectl` with build/run.sh (its data container is per branch, so it starts
//!   cold) against run-dockerized on the same engine (target: >= 4x faster), binaries identical;
//! * a second worktree (`git worktree add`), in rsync and in bind mode, against a third
//!   worktree's cold run with `--cache private` (target: >= 4x faster in each mode).
//!
//! `cargo xtask bench new-branch`: the new-branch case alone (about half the time).
//!
//! `cargo xtask bench second-checkout`: locally, kube-build in a second checkout of a tree one
//! kube-build has built, against `make WHAT=cmd/kubectl` cold in a third (no target: the ratio
//! is what the tree's flags allow, see kube-build's `localcache`).
//!
//! The tool's runs use a cache volume of this benchmark's own, removed at the end, so the
//! figures do not depend on what the machine built before.

use crate::engines::{clean_copy, sha_of, stand_in, OfficialName, KUBECTL_FILE};
use crate::{release_bin, timed};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::Proc;
use kube_tree::{log, Fail};
use std::time::Duration;

const EPOCH: &str = "1610582400";
const KUBECTL: &str = "_output/dockerized/bin/linux/amd64/kubectl";
const TARGET: f64 = 4.0;

/// git in `dir`, with an author for the commits (a benchmark's copies have no config of theirs).
fn git(dir: &Utf8Path, words: &[&str]) -> Result<String, Fail> {
    Proc::new("git")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "safe.directory=*"])
        .args(words)
        .dir(dir)
        .read()
}

/// A copy of the tree as a git checkout on branch `a`, its first commit holding every file.
fn checkout(tree: &Utf8Path, copy: &Utf8Path) -> Result<(), Fail> {
    if copy.exists() {
        clean_copy(copy)?;
        fs_err::remove_dir_all(copy.parent().expect("a copy has a parent"))?;
    }
    testkit::full_copy(tree, copy)?;
    let step = log::Step::start(format!("committing {copy} on branch a"));
    git(copy, &["init", "-q", "-b", "a"])?;
    git(copy, &["add", "-A"])?;
    git(copy, &["commit", "-q", "--no-verify", "-m", "a"])?;
    step.done();
    Ok(())
}

/// Branch `b` off `a` with one line added to a kubectl source file, committed (the worktrees
/// check it out).
fn new_branch(copy: &Utf8Path) -> Result<(), Fail> {
    use std::io::Write;
    git(copy, &["checkout", "-q", "-b", "b"])?;
    writeln!(fs_err::OpenOptions::new().append(true).open(copy.join(KUBECTL_FILE))?, "// on branch b")?;
    git(copy, &["commit", "-q", "--no-verify", "-am", "b"])?;
    Ok(())
}

/// The ratio line of one case, and whether it met the target.
fn ratio(what: &str, slow: Duration, fast: Duration) -> bool {
    let r = slow.as_secs_f64() / fast.as_secs_f64();
    println!(
        "{what}: {:.0} s against {:.1} s; ratio (target >= {TARGET}x)\t{r:.1}",
        slow.as_secs_f64(),
        fast.as_secs_f64()
    );
    r >= TARGET
}

/// Which of `shared-cache`'s cases run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Cases {
    All,
    NewBranch,
    /// The second-worktree cases alone: branch a and b built by the tool only (they warm the
    /// cache as a user's earlier work would), no build/run.sh.
    SecondWorktree,
}

pub(super) fn shared_cache(tree: &Utf8Path, cases: Cases) -> Result<bool, Fail> {
    let bin = release_bin("run-dockerized")?;
    let cross = stand_in()?;
    let _official = OfficialName::lend(&cross)?;
    let volume = format!("k8s-build-kit-bench-{}-go-cache", std::process::id());
    let base = testkit::cache_dir().join("bench-shared-cache");
    let (theirs, ours) = (base.join("script/kubernetes"), base.join("tool/kubernetes"));
    let worktrees: Vec<Utf8PathBuf> = ["wt1", "wt2"].iter().map(|w| base.join(w).join("kubernetes")).collect();
    let result = measure(tree, &bin, &volume, &theirs, &ours, &worktrees, cases);
    for copy in worktrees.iter().chain([&theirs, &ours]) {
        clean_copy(copy)?;
    }
    // make-clean finds build/run.sh's unlabelled objects by the names of the branch checked out
    // (the tool's own go by their tree label, every branch at once): branch a's go from branch a.
    if theirs.exists() && git(&theirs, &["checkout", "-q", "a"]).is_ok() {
        clean_copy(&theirs)?;
    }
    let _ = fs_err::remove_dir_all(&base);
    let _ = Proc::new("docker").args(["volume", "rm", "-f", &volume]).uninterruptible().output();
    testkit::remove_cache_password(&volume);
    result
}

fn measure(
    tree: &Utf8Path,
    bin: &Utf8Path,
    volume: &str,
    theirs: &Utf8Path,
    ours: &Utf8Path,
    worktrees: &[Utf8PathBuf],
    cases: Cases,
) -> Result<bool, Fail> {
    let script =
        Proc::new("build/run.sh").args(["make", "WHAT=cmd/kubectl"]).dir(theirs).env("SOURCE_DATE_EPOCH", EPOCH);
    let tool = |root: &Utf8Path, extra: &[&str]| {
        Proc::new(bin)
            .args(["-q", "--kube-root", root.as_str()])
            .args(extra)
            .args(["make", "WHAT=cmd/kubectl"])
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .env("KUBE_CROSS_IMAGE", testkit::cross_repo())
            .env("KUBE_KIT_CACHE_VOLUME", volume)
    };
    if cases == Cases::SecondWorktree {
        checkout(tree, ours)?;
        timed("branch a, cold: run-dockerized make WHAT=cmd/kubectl", &tool(ours, &[]))?;
        new_branch(ours)?;
        timed("branch b: run-dockerized make WHAT=cmd/kubectl", &tool(ours, &[]))?;
        return second_worktree(ours, worktrees, &tool);
    }
    for copy in [theirs, ours] {
        checkout(tree, copy)?;
    }
    let script_a = timed("branch a, cold: build/run.sh make WHAT=cmd/kubectl", &script)?;
    let tool_a = timed("branch a, cold: run-dockerized make WHAT=cmd/kubectl", &tool(ours, &[]))?;
    println!(
        "branch a, cold\tbuild/run.sh {:.0} s\trun-dockerized {:.0} s",
        script_a.as_secs_f64(),
        tool_a.as_secs_f64()
    );
    for copy in [theirs, ours] {
        new_branch(copy)?;
    }
    let script_b = timed("branch b: build/run.sh make WHAT=cmd/kubectl", &script)?;
    let tool_b = timed("branch b: run-dockerized make WHAT=cmd/kubectl", &tool(ours, &[]))?;
    let mut ok = ratio("new branch, build/run.sh against run-dockerized", script_b, tool_b);
    let same = sha_of(&theirs.join(KUBECTL))? == sha_of(&ours.join(KUBECTL))?;
    println!("new branch: kubectl identical to build/run.sh's private-cache build (SOURCE_DATE_EPOCH={EPOCH})\t{same}");
    ok &= same;
    if cases == Cases::NewBranch {
        println!("target (new branch >= {TARGET}x, identical binaries)\t{}", met(ok));
        return Ok(ok);
    }

    ok &= second_worktree(ours, worktrees, &tool)?;
    println!("targets (new branch and second worktree >= {TARGET}x, identical binaries)\t{}", met(ok));
    Ok(ok)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// Two worktrees of `ours` on branch b: one built cold with `--cache private`, the other on the
/// shared cache that `ours`'s builds warmed, in rsync and then in bind mode.
fn second_worktree(
    ours: &Utf8Path,
    worktrees: &[Utf8PathBuf],
    tool: &dyn Fn(&Utf8Path, &[&str]) -> Proc,
) -> Result<bool, Fail> {
    let mut ok = true;
    for (i, wt) in worktrees.iter().enumerate() {
        let parent = wt.parent().expect("a worktree has a parent");
        fs_err::create_dir_all(parent)?;
        git(ours, &["worktree", "add", "-q", "-b", &format!("wt{}", i + 1), wt.as_str(), "b"])?;
    }
    let (shared, private) = (&worktrees[0], &worktrees[1]);
    for mode in ["rsync", "bind"] {
        let cold = timed(
            &format!("second worktree, {mode} mode, --cache private (cold)"),
            &tool(private, &["--mode", mode, "--cache", "private"]),
        )?;
        let warm = timed(&format!("second worktree, {mode} mode, shared cache"), &tool(shared, &["--mode", mode]))?;
        ok &=
            ratio(&format!("second worktree, {mode} mode: --cache private cold against the shared cache"), cold, warm);
    }
    let same = sha_of(&shared.join(KUBECTL))? == sha_of(&private.join(KUBECTL))?;
    println!("second worktree: kubectl identical, shared and private cache\t{same}");
    Ok(ok && same)
}

pub(super) fn second_checkout(tree: &Utf8Path) -> Result<bool, Fail> {
    let bin = release_bin("kube-build")?;
    let base = testkit::cache_dir().join("bench-second-checkout");
    if base.exists() {
        fs_err::remove_dir_all(&base)?;
    }
    let copies: Vec<Utf8PathBuf> =
        ["first", "second", "make"].iter().map(|c| base.join(c).join("kubernetes")).collect();
    for copy in &copies {
        testkit::full_copy(tree, copy)?;
    }
    let ours = |root: &Utf8Path| {
        Proc::new(&bin).args(["-v", "--go", "host", "--kube-root", root.as_str(), "WHAT=cmd/kubectl"])
    };
    let first = timed("kube-build WHAT=cmd/kubectl in a first checkout (cold)", &ours(&copies[0]))?;
    let said = ours(&copies[1]).output()?;
    if !said.success() {
        return Err(Fail::new(format!("kube-build failed: {}", said.first_lines(3))));
    }
    let second = said.elapsed;
    let make = timed(
        "make WHAT=cmd/kubectl in a third checkout (cold)",
        &Proc::new("make").arg("WHAT=cmd/kubectl").dir(&copies[2]),
    )?;
    let why = said.stderr.lines().find(|l| l.contains("GOCACHE")).unwrap_or("(kube-build said nothing of its GOCACHE)");
    println!("kube-build, first checkout (cold)\t{:.0} s", first.as_secs_f64());
    println!("kube-build, second checkout\t{:.0} s\t{}", second.as_secs_f64(), why.trim());
    println!("make, third checkout (cold)\t{:.0} s", make.as_secs_f64());
    println!("ratio make cold / kube-build in a second checkout\t{:.1}", make.as_secs_f64() / second.as_secs_f64());
    fs_err::remove_dir_all(&base)?;
    Ok(true)
}
