//! The Go environment a tree's era needs, and the probe that proves it: building cmd/kube-proxy.
//!
//! Symlink-era trees (no go.work) build only in GOPATH mode: `GO111MODULE=off` with the tree at
//! `$GOPATH/src/k8s.io/kubernetes` (hack/lib/init.sh of v1.20 exports the same). Workspace-era
//! trees build in module mode from the tree itself, with the toolchain `.go-version` names.

use crate::fail::{Fail, Result};
use crate::log;
use crate::proc::{quote, Proc};
use crate::tree::{Tree, VendorLayout};
use camino::{Utf8Path, Utf8PathBuf};
use std::time::Duration;

/// Import path of the checkout inside a GOPATH.
pub const KUBE_IMPORT_PATH: &str = "k8s.io/kubernetes";

/// Environment settings (value None = unset) plus where builds run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoEnv {
    pub vars: Vec<(String, Option<String>)>,
    /// Directory to run `go build` in (the logical GOPATH path in GOPATH mode).
    pub build_dir: Utf8PathBuf,
    /// Package argument for kube-proxy in this mode.
    pub kube_proxy_pkg: String,
    pub gopath_mode: bool,
    /// The `go` to run: `go` from PATH, or a chosen GOROOT's `bin/go` ([`GoEnv::use_goroot`]).
    pub go: Utf8PathBuf,
}

impl GoEnv {
    /// `env` reads the caller's environment (injectable for tests).
    pub fn for_tree(tree: &Tree, gopath: &Utf8Path, env: &dyn Fn(&str) -> Option<String>) -> GoEnv {
        let mut vars = vec![("GOPATH".to_string(), Some(gopath.to_string()))];
        match tree.layout {
            VendorLayout::Symlinks | VendorLayout::NoStaging => {
                vars.push(("GO111MODULE".into(), Some("off".into())));
                // -mod=... in a user's GOFLAGS is an error in GOPATH mode.
                if env("GOFLAGS").is_some_and(|f| f.contains("-mod")) {
                    vars.push(("GOFLAGS".into(), Some(String::new())));
                }
                vars.push(("GOWORK".into(), None));
                GoEnv {
                    vars,
                    build_dir: gopath.join("src").join(KUBE_IMPORT_PATH),
                    kube_proxy_pkg: format!("{KUBE_IMPORT_PATH}/cmd/kube-proxy"),
                    gopath_mode: true,
                    go: "go".into(),
                }
            }
            VendorLayout::Workspace => {
                vars.push(("GO111MODULE".into(), None));
                vars.push(("GOWORK".into(), None));
                let toolchain = if env("GOTOOLCHAIN").is_some_and(|t| !t.is_empty() && t != "auto") {
                    None
                } else if env("FORCE_HOST_GO").is_some_and(|f| !f.is_empty()) {
                    Some("local".to_string())
                } else {
                    tree.go_version.as_ref().map(|v| format!("go{v}"))
                };
                if let Some(t) = toolchain {
                    vars.push(("GOTOOLCHAIN".into(), Some(t)));
                }
                GoEnv {
                    vars,
                    build_dir: tree.root.clone(),
                    kube_proxy_pkg: "./cmd/kube-proxy".into(),
                    gopath_mode: false,
                    go: "go".into(),
                }
            }
        }
    }

    /// Lines for `eval "$(... --print-env)"`.
    pub fn shell_lines(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.vars {
            match v {
                Some(v) => s += &format!("export {k}={}\n", quote(v)),
                None => s += &format!("unset {k}\n"),
            }
        }
        s
    }

    /// Runs the Go installed at `goroot` instead of PATH's: its `bin/go`, first on PATH (for the
    /// tools go runs), GOROOT set, and `GOTOOLCHAIN=local` (so a newer go cannot switch away).
    pub fn use_goroot(&mut self, goroot: &Utf8Path, path: Option<&str>) {
        self.go = goroot.join("bin/go");
        self.vars.retain(|(k, _)| !["GOROOT", "PATH", "GOTOOLCHAIN"].contains(&k.as_str()));
        self.vars.push(("GOROOT".into(), Some(goroot.to_string())));
        let bin = goroot.join("bin");
        self.vars.push(("PATH".into(), Some(path.map(|p| format!("{bin}:{p}")).unwrap_or(bin.to_string()))));
        self.vars.push(("GOTOOLCHAIN".into(), Some("local".into())));
    }

    /// The settings [`GoEnv::use_goroot`] made, for other processes that run go (make).
    pub fn toolchain_vars(&self) -> Vec<(String, String)> {
        if self.go.as_str() == "go" {
            return Vec::new();
        }
        let keep = ["GOROOT", "PATH", "GOTOOLCHAIN"];
        self.vars
            .iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect()
    }

    /// Where `go install` puts binaries (`$GOPATH/bin`; GOBIN is unset by the build).
    pub fn bin_dir(&self) -> Utf8PathBuf {
        let gopath = self.vars.iter().find(|(k, _)| k == "GOPATH").and_then(|(_, v)| v.clone()).unwrap_or_default();
        Utf8PathBuf::from(gopath).join("bin")
    }

    /// `go <args>` with this environment.
    pub fn go(&self) -> Proc {
        self.apply(Proc::new(&self.go))
    }

    pub fn apply(&self, mut p: Proc) -> Proc {
        for (k, v) in &self.vars {
            p = match v {
                Some(v) => p.env(k, v),
                None => p.env_remove(k),
            };
        }
        // In GOPATH mode go must see the logical path (through the GOPATH link), not the real one.
        p.env("PWD", &self.build_dir).dir(&self.build_dir)
    }
}

/// Makes `<gopath>/src/k8s.io/kubernetes` a symlink to `root` (what hack/lib/golang.sh's
/// create_gopath_tree does for its fake GOPATH), replacing only a link that points elsewhere.
/// Returns the GOPATH's path.
pub fn ensure_gopath_link(gopath: &crate::Confined, root: &Utf8Path) -> Result<Utf8PathBuf> {
    let link = gopath.join(format!("src/{KUBE_IMPORT_PATH}"))?;
    gopath.join("src/k8s.io")?.create_dir_all()?;
    match std::fs::symlink_metadata(link.path()) {
        Ok(md) if md.file_type().is_symlink() && std::fs::read_link(link.path())? == root.as_std_path() => {}
        Ok(md) if md.is_dir() => return Err(Fail::new(format!("{link} is a directory, not the link to {root}"))),
        _ => crate::fsx::swap_in_symlink(&link, root.as_str())?,
    }
    Ok(gopath.path())
}

/// Proves that everything `go` writes for a build with GOPATH `gopath` (beneath `jail`'s root)
/// stays in the tree: the GOPATH is resolved along its whole path (`_output`, `_output/local`:
/// a link on the way must stay inside), the GOPATH itself may not be a link out, and nothing
/// beneath it (GOCACHE, GOMODCACHE, bin, pkg: go follows links when it writes) is a link that
/// leaves the tree, does not resolve, or leads to a directory elsewhere in the tree (only the
/// GOPATH's own `src/k8s.io/kubernetes` link to the root is one go needs). Refused naming it.
pub fn check_write_dirs(jail: &crate::Jail, gopath: &Utf8Path) -> Result<()> {
    let root = jail.root().to_owned();
    let gp = jail.path(gopath)?;
    let gp = gp.follow().map_err(|e| Fail::new(format!("{}; go would write there", e.msg)))?;
    match std::fs::symlink_metadata(gp.path()) {
        Err(_) => return Ok(()),
        Ok(md) if !md.is_dir() => return Err(Fail::new(format!("refusing {}: not a directory", gp.rel()))),
        Ok(_) => {}
    }
    let mut bad: Option<Fail> = None;
    crate::walk::entries(&gp.path(), &[], |rel, md| {
        // The GOPATH's link to the tree is the kit's own: `ensure_gopath_link` points it at the
        // root before go runs (a tree that moved leaves it pointing at the old place).
        if bad.is_some() || !md.file_type().is_symlink() || rel == format!("src/{KUBE_IMPORT_PATH}") {
            return;
        }
        let shown = gp.rel().join(rel);
        let why = match std::fs::canonicalize(gp.path().join(rel)) {
            Err(_) => Some("a link that does not resolve (go would create its target)".to_string()),
            Ok(t) if !t.starts_with(&root) => Some(format!("a symlink to {}, outside {root}", t.display())),
            Ok(t) if t.is_dir() && t != root.as_std_path() => {
                Some(format!("a link to the directory {} (go would write through it)", t.display()))
            }
            Ok(_) => None,
        };
        if let Some(why) = why {
            bad = Some(Fail::new(format!(
                "refusing {}: {why}; go writes beneath {}",
                log::printable(shown.as_str()),
                gp.rel()
            )));
        }
    })?;
    bad.map_or(Ok(()), Err)
}

/// The outcome of building cmd/kube-proxy.
#[derive(Debug, Clone)]
pub struct Probe {
    pub ok: bool,
    pub binary: Utf8PathBuf,
    pub elapsed: Duration,
    pub go_version: String,
    /// First lines of the build's error output when it failed.
    pub error: String,
}

impl Probe {
    /// The success line every tool with `--probe` prints.
    pub fn log_success(&self) {
        log::status(format!("probe: cmd/kube-proxy built in {} -> {}", log::human(self.elapsed), self.binary));
    }
}

/// Builds cmd/kube-proxy into `out` with `go` from PATH, showing progress.
pub fn probe_kube_proxy(env: &GoEnv, out: &Utf8Path) -> Result<Probe> {
    let go_version = env
        .go()
        .arg("version")
        .timeout(crate::proc::GO_PROBE)
        .read()
        .map_err(|e| Fail::new(format!("go is needed for --probe: {}", e.msg)))?;
    let step = log::Step::start(format!("probe: go build {} ({})", env.kube_proxy_pkg, go_version.trim()));
    // -trimpath: the result (and go's build cache) does not depend on where the tree is.
    let cmd = env.go().args(["build", "-trimpath", "-o"]).arg(out).arg(&env.kube_proxy_pkg);
    let res = cmd.output_with_progress("probe", Duration::from_secs(15))?;
    let elapsed = step.done();
    Ok(Probe {
        ok: res.success() && out.is_file(),
        binary: out.to_owned(),
        elapsed,
        go_version: go_version.trim().to_string(),
        error: if res.success() { String::new() } else { res.first_lines(8) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{self, Spec};

    #[test]
    fn gopath_mode_for_symlink_trees() {
        let t = fixture::scratch_tree("goenv-a", &Spec::era_a());
        let tree = Tree::open(&t).unwrap();
        let env =
            GoEnv::for_tree(&tree, Utf8Path::new("/gp"), &|k| (k == "GOFLAGS").then(|| "-mod=vendor".to_string()));
        assert!(env.gopath_mode);
        assert_eq!(env.build_dir, "/gp/src/k8s.io/kubernetes");
        assert_eq!(env.shell_lines(), "export GOPATH=/gp\nexport GO111MODULE=off\nexport GOFLAGS=''\nunset GOWORK\n");
    }

    #[test]
    fn module_mode_for_workspace_trees() {
        let t = fixture::scratch_tree("goenv-c", &Spec::era_c());
        let tree = Tree::open(&t).unwrap();
        let env = GoEnv::for_tree(&tree, Utf8Path::new("/gp"), &|_| None);
        assert!(!env.gopath_mode);
        assert_eq!(env.build_dir, tree.root);
        assert!(env.shell_lines().contains("export GOTOOLCHAIN=go1.25.6\n"), "{}", env.shell_lines());
        let forced = GoEnv::for_tree(&tree, Utf8Path::new("/gp"), &|k| (k == "FORCE_HOST_GO").then(|| "1".into()));
        assert!(forced.shell_lines().contains("export GOTOOLCHAIN=local\n"));
        let user = GoEnv::for_tree(&tree, Utf8Path::new("/gp"), &|k| (k == "GOTOOLCHAIN").then(|| "go1.24.11".into()));
        assert!(!user.shell_lines().contains("GOTOOLCHAIN"));
    }

    #[test]
    fn go_write_dirs_must_stay_in_the_tree() {
        let dir = crate::fixture::scratch_dir("goenv-writes");
        let (root, out) = (dir.join("tree"), dir.join("out"));
        std::fs::create_dir_all(root.join("_output/local/go/src/k8s.io")).unwrap();
        std::fs::create_dir_all(root.join("hack")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let jail = crate::Jail::new(&root).unwrap();
        let gp = Utf8Path::new("_output/local/go");
        // The GOPATH link, even one left pointing where the tree was, is replaced before go runs.
        std::os::unix::fs::symlink("/moved/away", root.join("_output/local/go/src/k8s.io/kubernetes")).unwrap();
        check_write_dirs(&jail, gp).unwrap();
        let cache = root.join("_output/local/go/cache");
        let refused = |why: &str| {
            let e = check_write_dirs(&jail, gp).unwrap_err();
            assert!(e.msg.contains("_output/local/go/cache") && e.msg.contains(why), "{}", e.msg);
        };
        std::os::unix::fs::symlink(&out, &cache).unwrap();
        refused("outside");
        std::fs::remove_file(&cache).unwrap();
        std::os::unix::fs::symlink(out.join("nothing"), &cache).unwrap();
        refused("does not resolve");
        std::fs::remove_file(&cache).unwrap();
        std::os::unix::fs::symlink(root.join("hack"), &cache).unwrap();
        refused("write through it");
        std::fs::remove_file(&cache).unwrap();
        // The GOPATH itself a link out, and a directory on its way a link out.
        std::fs::rename(root.join("_output/local/go"), root.join("_output/local/go.real")).unwrap();
        std::os::unix::fs::symlink(&out, root.join("_output/local/go")).unwrap();
        assert!(check_write_dirs(&jail, gp).unwrap_err().msg.contains("symlink to"));
        std::fs::remove_file(root.join("_output/local/go")).unwrap();
        std::fs::rename(root.join("_output/local"), root.join("_output/local.real")).unwrap();
        std::os::unix::fs::symlink(&out, root.join("_output/local")).unwrap();
        assert!(check_write_dirs(&jail, gp).unwrap_err().msg.contains("symlink to"));
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing written outside");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
