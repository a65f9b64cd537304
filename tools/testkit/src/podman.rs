//! podman for the engine tests: the same base image and stand-in kube-cross as docker's (loaded
//! from docker's, since no registry is reachable), the ulimits this host lets root podman set,
//! and a rootless user's own podman where the machine allows one.

pub use crate::cli::conf_env;
use crate::cli::{Cli, CONF};
use crate::{cache_dir, cross_repo, engine::CROSS_TAG, FileLock, BASE_IMAGE, MISSING};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::Proc;
use kube_tree::Fail;

/// The private containers.conf root podman is given when this host refuses its default
/// ulimits (set once by [`ready`]).
/// Root podman is there with the real tree and this run's stand-in kube-cross; else the
/// test fails naming what is missing. Returns the pristine real tree.
pub fn ready(test: &str) -> Option<Utf8PathBuf> {
    if !crate::require(test, "podman") {
        return None;
    }
    let tree = crate::engine::ready(test)?;
    match prepare(&Cli::podman(), true) {
        Ok(()) => Some(tree),
        Err(e) => crate::fail(test, &e),
    }
}

/// A rootless podman: the user named by `KUBE_TEST_ROOTLESS_USER` (with /etc/subuid ranges;
/// .ci/run makes one), its own podman rootless and able to start a container. Else the test fails
/// naming what is missing. Returns the real tree and the user.
pub fn rootless(test: &str) -> Option<(Utf8PathBuf, String)> {
    let tree = ready(test)?;
    let Some(user) = std::env::var("KUBE_TEST_ROOTLESS_USER").ok().filter(|u| !u.is_empty()) else {
        crate::missing(
            test,
            "KUBE_TEST_ROOTLESS_USER is not set (a user with /etc/subuid and /etc/subgid ranges; .ci/run makes one)",
        )
    };
    let cli = Cli::podman_as(&user);
    let rootless = cli.proc(&["info", "--format", "{{.Host.Security.Rootless}}"]).output();
    match rootless {
        Ok(o) if o.success() && o.stdout.trim() == "true" => {}
        Ok(o) => crate::missing(test, &format!("{user}'s podman is not rootless here: {}", o.first_lines(2))),
        Err(e) => crate::missing(test, &format!("cannot run podman as {user}: {}", e.msg)),
    }
    match prepare(&cli, false) {
        Ok(()) => Some((tree, user)),
        Err(e) if e.msg.contains("/dev/net/tun") => {
            crate::missing(test, &format!("rootless networking is not allowed here: {}", e.msg))
        }
        Err(e) => crate::fail(test, &e),
    }
}

/// Loads the base image from docker (once per engine), sees that a container starts (root
/// podman: with a private containers.conf when this host refuses its default ulimits), and
/// builds the stand-in kube-cross from it.
fn prepare(cli: &Cli, root: bool) -> Result<(), Fail> {
    crate::sweep_at_exit();
    cli.used();
    let _lock = FileLock::take(cache_dir().join(".podman-images.lock"));
    let has = |image: &str| cli.proc(&["image", "inspect", image]).output().is_ok_and(|o| o.success());
    // World-readable: a rootless user's podman reads the files too.
    let shared = shared_dir()?;
    if !has(BASE_IMAGE) {
        let tar = shared.join(format!("{}-base.tar", std::process::id()));
        let saved = Proc::new("docker").args(["save", "-o", tar.as_str(), BASE_IMAGE]).output()?;
        if !saved.success() {
            return Err(Fail::new(format!("docker save {BASE_IMAGE}: {}", saved.first_lines(2))));
        }
        chmod(&tar, 0o644)?;
        let loaded = cli.proc(&["load", "-i", tar.as_str()]).output()?;
        let _ = std::fs::remove_file(&tar);
        if !loaded.success() {
            return Err(Fail::new(format!("podman load: {}", loaded.first_lines(2))));
        }
    }
    if root && CONF.get().is_none() {
        let _ = CONF.set(ulimits_conf(cli, &shared)?);
    }
    let started = cli.proc(&["run", "--rm", BASE_IMAGE, "true"]).output()?;
    if !started.success() {
        return Err(Fail::new(format!("podman cannot start a container here: {}", started.error_lines(3))));
    }
    let stand_in = format!("{}:{CROSS_TAG}", cross_repo());
    if !has(&stand_in) {
        let ctx = shared.join(format!("{}-stand-in", std::process::id()));
        fs_err::create_dir_all(&ctx)?;
        chmod(&ctx, 0o755)?;
        fs_err::write(ctx.join("Dockerfile"), crate::stand_in_dockerfile())?;
        chmod(&ctx.join("Dockerfile"), 0o644)?;
        let built = cli.proc(&["build", "-q", "-t", &stand_in, ctx.as_str()]).output()?;
        let _ = std::fs::remove_dir_all(&ctx);
        if !built.success() {
            return Err(Fail::new(format!("podman build of the stand-in: {}", built.error_lines(3))));
        }
    }
    Ok(())
}

/// None when root podman starts a container as it is; else a containers.conf whose
/// default_ulimits stay within this process's own limits (root podman asks for the maximum by
/// default, which a host withholding CAP_SYS_RESOURCE refuses).
fn ulimits_conf(cli: &Cli, shared: &Utf8Path) -> Result<Option<Utf8PathBuf>, Fail> {
    let first = cli.proc(&["run", "--rm", BASE_IMAGE, "true"]).output()?;
    if first.success() || !first.stderr.contains("error setting rlimit") {
        return Ok(None);
    }
    let conf = shared.join(format!("{}-containers-ulimits.conf", std::process::id()));
    fs_err::write(&conf, "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=20000:20000\"]\n")?;
    chmod(&conf, 0o644)?;
    Ok(Some(conf))
}

/// `shared` in this run's temp directory ([`crate::run_tmp`]): readable by every user (the
/// cache is under root's home). Its entries are named `<pid>-...`.
fn shared_dir() -> Result<Utf8PathBuf, Fail> {
    let d = crate::run_tmp()?.join("shared");
    fs_err::create_dir_all(&d)?;
    chmod(&d, 0o755)?;
    Ok(d)
}

fn chmod(p: &Utf8Path, mode: u32) -> Result<(), Fail> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A copy of `src` that `user` owns, in a directory of its own in this run's temp directory
/// (`user-<user>/<pid>-<name>`, so the exit sweep finds what the engine made for it).
pub fn tree_for(user: &str, name: &str, src: &Utf8Path) -> Result<Utf8PathBuf, Fail> {
    let base = crate::run_tmp()?.join(format!("user-{user}"));
    fs_err::create_dir_all(&base)?;
    crate::sweep_scratch(&base);
    let dir = base.join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    crate::full_copy(src, &dir)?;
    let owned = Proc::new("chown").args(["-R", &format!("{user}:"), base.as_str()]).output()?;
    if !owned.success() {
        return Err(Fail::new(format!("{MISSING}chown to {user}: {}", owned.first_lines(1))));
    }
    Ok(dir)
}

/// A copy of the binary at `bin` that any user may run (the build's target directory may be
/// under a home another user cannot enter).
pub fn shared_copy(bin: &Utf8Path) -> Result<Utf8PathBuf, Fail> {
    crate::sweep_scratch(&shared_dir()?);
    let to = shared_dir()?.join(format!("{}-{}", std::process::id(), bin.file_name().unwrap_or("tool")));
    fs_err::copy(bin, &to)?;
    chmod(&to, 0o755)?;
    Ok(to)
}

/// `user`'s entry in the password database: (uid, home).
fn passwd(user: &str) -> Result<(u32, String), Fail> {
    let line = Proc::new("getent").args(["passwd", user]).read()?;
    let f: Vec<&str> = line.trim().split(':').collect();
    match (f.get(2).and_then(|u| u.parse().ok()), f.get(5)) {
        (Some(uid), Some(home)) => Ok((uid, home.to_string())),
        _ => Err(Fail::new(format!("{MISSING}user {user} (getent passwd: `{}`)", line.trim()))),
    }
}

pub fn uid_of(user: &str) -> Result<u32, Fail> {
    passwd(user).map(|p| p.0)
}

pub fn home_of(user: &str) -> Result<String, Fail> {
    passwd(user).map(|p| p.1)
}
