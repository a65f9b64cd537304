//! The real Kubernetes tree the kit is measured and tested on: Debian's `kubernetes` source
//! package (v1.20.2) and the Go it was made for (1.15, from bullseye), fetched once with apt-get
//! through a private configuration (the machine's own sources are never edited) and cached.
//! `cargo xtask fetch-tree` ships this; testkit re-exports it for the tests.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::{self, Proc};
use kube_tree::{log, Fail};
use std::time::Duration;

/// The Debian suite that carries kubernetes 1.20.5+really1.20.2.
pub const SUITE: &str = "bookworm";
pub const MIRROR: &str = "http://deb.debian.org/debian";

/// `$KUBE_TEST_CACHE`, else `$XDG_CACHE_HOME/k8s-build-kit`, else `~/.cache/k8s-build-kit`.
pub fn cache_dir() -> Utf8PathBuf {
    if let Ok(d) = std::env::var("KUBE_TEST_CACHE") {
        return Utf8PathBuf::from(d);
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(Utf8PathBuf::from)
        .unwrap_or_else(|_| Utf8PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache"));
    base.join("k8s-build-kit")
}

/// The start of every error that means "a prerequisite is not installed here".
pub const MISSING: &str = "missing prerequisite: ";

/// A cross-process lock on a file (flock): the kernel releases it when its holder exits, even
/// killed, so a slow first fetch is never broken by a timer and a dead holder never blocks.
pub struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    pub fn take(path: Utf8PathBuf) -> FileLock {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("lock {path}: {e}"));
        f.lock().unwrap_or_else(|e| panic!("lock {path}: {e}"));
        FileLock(f)
    }
}

/// apt-get with a private configuration: its own sources list, lists, cache and an empty dpkg
/// status, so the machine's apt configuration and state are never read or changed.
struct PrivateApt {
    dir: Utf8PathBuf,
}

impl PrivateApt {
    fn new(dir: Utf8PathBuf, source_line: &str) -> Result<PrivateApt, Fail> {
        for d in ["lists/partial", "cache/archives/partial"] {
            fs_err::create_dir_all(dir.join(d))?;
        }
        fs_err::write(dir.join("sources.list"), format!("{source_line}\n"))?;
        fs_err::write(dir.join("status"), "")?;
        Ok(PrivateApt { dir })
    }

    fn cmd(&self, args: &[&str], cwd: &Utf8Path) -> Proc {
        let d = &self.dir;
        let opts = [
            format!("Dir::Etc::SourceList={d}/sources.list"),
            "Dir::Etc::SourceParts=/nonexistent".to_string(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::State::Status={d}/status"),
            format!("Dir::Cache={d}/cache"),
            "APT::Sandbox::User=root".to_string(),
        ];
        let mut p = Proc::new("apt-get").dir(cwd);
        for o in &opts {
            p = p.arg("-o").arg(o);
        }
        p.arg("-q").args(args)
    }

    fn run(&self, what: &str, args: &[&str], cwd: &Utf8Path) -> Result<(), Fail> {
        let out = self.cmd(args, cwd).output_with_progress(what, Duration::from_secs(15))?;
        if !out.success() {
            return Err(Fail::new(format!("{what} failed: {}", out.first_lines(3))));
        }
        Ok(())
    }
}

pub fn need(tools: &[&str], why: &str) -> Result<(), Fail> {
    for tool in tools {
        if proc::which(tool).is_none() {
            return Err(Fail::new(format!("{MISSING}{tool} not found (install it) to {why}")));
        }
    }
    Ok(())
}

/// Fetches once into `base/<name>` what `fetch` builds in a temp directory; `<name>.complete`
/// marks success, a lock keeps concurrent test processes from fetching twice.
pub fn cached(name: &str, fetch: impl FnOnce(&Utf8Path, &Utf8Path) -> Result<(), Fail>) -> Result<Utf8PathBuf, Fail> {
    let base = cache_dir();
    let out = base.join(name);
    let done = base.join(format!("{name}.complete"));
    if done.exists() {
        return Ok(out);
    }
    fs_err::create_dir_all(&base)?;
    let _lock = FileLock::take(base.join(format!(".{name}.lock")));
    if done.exists() {
        return Ok(out);
    }
    let tmp = base.join(format!("{name}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&out);
    fs_err::create_dir_all(&tmp)?;
    fetch(&base, &tmp)?;
    fs_err::rename(&tmp, &out)?;
    fs_err::write(&done, "ok\n")?;
    Ok(out)
}

/// The pristine real tree (fetched on first use). Treat it as read-only: copy it to change it.
pub fn real_tree() -> Result<Utf8PathBuf, Fail> {
    let dir = cached("debian-kubernetes", |base, tmp| {
        need(&["apt-get", "dpkg-source"], "fetch the real tree")?;
        let step = log::Step::start(format!("fetching Debian's kubernetes source package into {base}"));
        let apt = PrivateApt::new(
            base.join("apt-src"),
            &format!("deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} {SUITE} main"),
        )?;
        apt.run("apt-get update (private deb-src list)", &["update"], base)?;
        let dl = tmp.join("download");
        fs_err::create_dir_all(&dl)?;
        apt.run("apt-get source kubernetes", &["source", "--download-only", "kubernetes"], &dl)?;
        let dsc = fs_err::read_dir(&dl)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "dsc"))
            .ok_or_else(|| Fail::new("apt-get source left no .dsc"))?;
        Proc::new("dpkg-source")
            .args(["-x", "--skip-debianization"])
            .arg(&dsc)
            .arg(tmp.join("tree"))
            .dir(&dl)
            .read()?;
        fs_err::remove_dir_all(&dl)?;
        step.done();
        Ok(())
    })?;
    Ok(dir.join("tree"))
}

/// The Go the real tree was made for (1.15, its go.mod's `go 1.15`), from Debian bullseye's
/// golang-1.15 packages, unpacked with dpkg-deb. Debian bookworm's Go 1.19 builds the tree for
/// Linux, but the tree's vendored golang.org/x/sys no longer compiles for darwin with it.
pub fn tree_go() -> Result<Utf8PathBuf, Fail> {
    let dir = cached("go-1.15-bullseye", |base, tmp| {
        need(&["apt-get", "dpkg-deb"], "fetch Go 1.15")?;
        let step = log::Step::start("fetching Debian bullseye's golang-1.15");
        let apt = PrivateApt::new(
            base.join("apt-bullseye"),
            &format!("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} bullseye main"),
        )?;
        apt.run("apt-get update (private bullseye list)", &["update"], base)?;
        let dl = tmp.join("download");
        fs_err::create_dir_all(&dl)?;
        apt.run("apt-get download golang-1.15", &["download", "golang-1.15-go", "golang-1.15-src"], &dl)?;
        for e in fs_err::read_dir(&dl)? {
            let deb = e?.path();
            Proc::new("dpkg-deb").arg("-x").arg(&deb).arg(tmp.join("root")).read()?;
        }
        fs_err::remove_dir_all(&dl)?;
        step.done();
        Ok(())
    })?;
    Ok(dir.join("root/usr/lib/go-1.15/bin"))
}

/// The rootfs tarball (`rootfs.tar` in the returned directory) the full tier's stand-in
/// kube-cross image is built from: Debian bookworm by debootstrap, with Go 1.19, rsync, make,
/// git, iproute2, gcc and libc6-dev (no image registry is reachable). Made once and cached;
/// `fetch-tree --rootfs` makes it ahead (CI, beside its other first steps), the tests on first
/// use. Needs root.
pub fn stand_in_rootfs() -> Result<Utf8PathBuf, Fail> {
    cached("rootfs-bookworm", |_base, tmp| {
        need(&["debootstrap", "tar"], "build the test kube-cross image")?;
        let step = log::Step::start("debootstrap bookworm with Go, rsync, make, git, iproute2, gcc");
        let rootfs = tmp.join("rootfs");
        let out = Proc::new("debootstrap")
            .args([
                "--variant=minbase",
                "--include=golang-go,rsync,make,git,iproute2,gcc,libc6-dev,ca-certificates",
                SUITE,
                rootfs.as_str(),
                MIRROR,
            ])
            .output_with_progress("debootstrap", Duration::from_secs(30))?;
        if !out.success() {
            return Err(Fail::new(format!("debootstrap failed: {}", out.first_lines(3))));
        }
        Proc::new("tar").args(["-C", rootfs.as_str(), "-cf"]).arg(tmp.join("rootfs.tar")).arg(".").read()?;
        fs_err::remove_dir_all(&rootfs)?;
        step.done();
        Ok(())
    })
}
