//! One engine's CLI as the tests run it, and what it needs: podman's configuration root here,
//! and the list of engines this process used (for the exit sweep).

use camino::Utf8PathBuf;
use kube_tree::proc::Proc;
use kube_tree::Fail;
use std::time::Duration;

pub(crate) static CONF: std::sync::OnceLock<Option<Utf8PathBuf>> = std::sync::OnceLock::new();

/// The environment root podman needs here (`CONTAINERS_CONF`, or nothing): for the tools run
/// with `--engine podman` as for the tests' own podman commands.
pub fn conf_env() -> Vec<(String, String)> {
    match CONF.get() {
        Some(Some(conf)) => vec![("CONTAINERS_CONF".into(), conf.to_string())],
        _ => Vec::new(),
    }
}

/// One engine's CLI as the tests run it: `docker`, `podman`, or `runuser -u USER -- podman`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli(Vec<String>);

impl Cli {
    pub fn docker() -> Cli {
        Cli(vec!["docker".into()])
    }
    pub fn podman() -> Cli {
        Cli(vec!["podman".into()])
    }
    /// `user`'s own (rootless) podman.
    /// `user`'s rootless podman. runuser keeps the caller's environment: a TMPDIR of the
    /// caller's (a CI's own) would be one the user cannot write, where podman keeps its state.
    pub fn podman_as(user: &str) -> Cli {
        Cli(["runuser", "-u", user, "--", "env", "-u", "TMPDIR", "podman"].map(String::from).to_vec())
    }
    pub fn is_podman(&self) -> bool {
        self.0.last().is_some_and(|p| p == "podman")
    }
    /// The engine command with `args`, its questions bounded in time.
    pub fn proc<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Proc {
        let mut p = Proc::new(&self.0[0]).args(&self.0[1..]).args(args);
        if self.is_podman() {
            for (k, v) in conf_env() {
                p = p.env(k, v);
            }
        }
        p
    }
    /// What the engine prints; a failure fails the test, with the command and the engine's words.
    pub fn read(&self, args: &[&str]) -> String {
        self.try_read(args).unwrap_or_else(|e| panic!("{}", e.msg))
    }
    /// What the engine prints, or its failure (where a failure is an answer: is this image there?).
    pub fn try_read(&self, args: &[&str]) -> Result<String, Fail> {
        self.proc(args).timeout(Duration::from_secs(120)).read()
    }
    /// For a clean-up, which goes on: what the engine prints, or None after a warning that
    /// names the command that failed (a sweep that could not look must say so, not see nothing).
    pub(crate) fn read_for_cleanup(&self, args: &[&str]) -> Option<String> {
        match self.try_read(args) {
            Ok(out) => Some(out),
            Err(e) => {
                eprintln!("testkit: clean-up could not ask the engine: {}", e.msg);
                None
            }
        }
    }
    /// Runs a removal, even after an interrupt; its outcome does not matter.
    pub(crate) fn remove(&self, args: &[&str], what: &[String]) {
        if !what.is_empty() {
            let _ = self.proc(args).args(what).uninterruptible().output();
        }
    }
    /// Remembers that this process used the engine, for the exit sweep.
    pub fn used(&self) {
        let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
        if !used.contains(self) {
            used.push(self.clone());
        }
    }
}

/// The engines this process used (docker is always swept).
pub(crate) static USED: std::sync::Mutex<Vec<Cli>> = std::sync::Mutex::new(Vec::new());
