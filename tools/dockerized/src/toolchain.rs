//! Era C's Go in the build container, offline. Today's scripts run kube-cross as a bootstrap
//! only: hack/lib/golang.sh exports `GOTOOLCHAIN=go<.go-version>` and the image's go switches to
//! that toolchain, downloading it (with the checksum database) unless an executable of that name
//! is on PATH. Behind a firewall the download fails though the host may hold that very Go
//! (setup-go's). So, when the user chose nothing (no GOTOOLCHAIN, GOPROXY or FORCE_HOST_GO) and
//! the Go proxy does not answer, the host's Go of exactly that version is mounted read-only and a
//! `go<version>` on the container's PATH runs it: go's own first step of a switch, so the tree's
//! GOTOOLCHAIN semantics stay upstream's (a file GOPROXY would need sum.golang.org's signed
//! records, which only a machine that fetched them has).

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::gover::GoVersion;
use kube_tree::{log, Era, Fail, Tree};
use std::time::Duration;

/// Where the served Go and its `go<version>` command appear in the container.
pub const SERVED_GOROOT: &str = "/usr/local/k8s-build-kit/go";
pub const SERVED_BIN_DIR: &str = "/usr/local/bin";
/// The host side of the `go<version>` command (in the tree, which the container mounts anyway).
const LAUNCHER_DIR: &str = "_output/dockerized/kit-go";
/// How long the Go proxy gets to answer before the build is taken to be offline.
const PROXY_PROBE: Duration = Duration::from_secs(4);
const PROXY_URL: &str = "https://proxy.golang.org/golang.org/toolchain/@v/list";

/// How the build container gets the Go the tree names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoPlan {
    /// Not an era-C tree, or no `.go-version`: nothing to do.
    NotNeeded,
    /// As upstream: the container fetches it (or the user's choice applies); `why` says so.
    Upstream { version: String, why: String },
    /// The host's Go of that version, mounted read-only.
    Serve { version: String, goroot: Utf8PathBuf, place: &'static str },
    /// Offline and no Go of that version on the host: the build will fail fetching it.
    Missing { version: String },
}

/// The Go version the build asks for: `GO_VERSION`, else `.go-version` (as golang.sh reads it).
pub fn wanted_version(tree: &Tree, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env("GO_VERSION").filter(|v| !v.is_empty()).or_else(|| tree.go_version.clone()).map(|v| v.trim().to_string())
}

/// The user's own choice of how the container gets Go, which the kit never overrides.
pub fn user_choice(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(t) = set("GOTOOLCHAIN").filter(|t| t != "auto") {
        return Some(format!("GOTOOLCHAIN={t} is yours"));
    }
    if set("FORCE_HOST_GO").is_some() {
        return Some("FORCE_HOST_GO is set: the image's own Go builds".into());
    }
    set("GOPROXY").map(|p| format!("GOPROXY={p} serves the toolchain"))
}

/// Decides how the container gets the tree's Go. `online` is asked only when it matters.
pub fn plan(
    tree: &Tree,
    env: &dyn Fn(&str) -> Option<String>,
    online: &dyn Fn() -> Option<String>,
) -> Result<GoPlan, Fail> {
    if tree.era != Era::C {
        return Ok(GoPlan::NotNeeded);
    }
    let Some(version) = wanted_version(tree, env) else { return Ok(GoPlan::NotNeeded) };
    let v = GoVersion::parse(&format!("go{version}"))
        .map_err(|e| Fail::new(format!("Go version `{}` (.go-version or GO_VERSION): {e}", version.escape_debug())))?;
    if let Some(why) = user_choice(env) {
        return Ok(GoPlan::Upstream { version, why });
    }
    if let Some(why) = online() {
        return Ok(GoPlan::Upstream { version, why });
    }
    if !cfg!(all(target_os = "linux", target_arch = "x86_64"))
        && !cfg!(all(target_os = "linux", target_arch = "aarch64"))
    {
        return Ok(GoPlan::Missing { version });
    }
    let cache = setup_go::pick::cache_dir(env).join("go");
    let all = setup_go::local::all(&cache, env);
    Ok(match setup_go::local::best(&all, &v, true) {
        Some(found) if servable(&found.goroot) => {
            GoPlan::Serve { version, goroot: found.goroot.clone(), place: found.place }
        }
        _ => GoPlan::Missing { version },
    })
}

/// The Go proxy answers from here: the container can fetch the toolchain as upstream does.
pub fn proxy_answers() -> Option<String> {
    setup_go::mirror::answers(PROXY_URL, PROXY_PROBE).ok().map(|code| format!("the Go proxy answers (HTTP {code})"))
}

/// A GOROOT that a `--volume`/`--mount` field can name (no separator or control character).
fn servable(goroot: &Utf8Path) -> bool {
    let g = goroot.as_str();
    g.starts_with('/') && !g.contains([':', ',', '"']) && !g.chars().any(char::is_control)
}

impl GoPlan {
    /// One line for the log and doctor: which Go the container uses and how it gets it.
    pub fn describe(&self) -> String {
        match self {
            GoPlan::NotNeeded => "the image's own Go (the tree names no toolchain to switch to)".into(),
            GoPlan::Upstream { version, why } => {
                format!("go{version}, fetched in the container as upstream does ({why})")
            }
            GoPlan::Serve { version, goroot, place } => {
                format!("go{version} from the host ({goroot}, found in {place}), mounted read-only: no network needed")
            }
            GoPlan::Missing { version } => format!(
                "go{version} is not on this host and the Go proxy does not answer: the container will fail fetching it \
                 (`setup-go --go {version}` from a mirror, or set GOPROXY)"
            ),
        }
    }

    /// The `run` arguments that serve the Go (none unless [`GoPlan::Serve`]); writes the
    /// `go<version>` launcher into the tree's `_output/dockerized/kit-go/`.
    pub fn container_args(&self, tree: &Tree) -> Result<Vec<String>, Fail> {
        let GoPlan::Serve { version, goroot, .. } = self else { return Ok(Vec::new()) };
        let name = format!("go{version}");
        let dir = tree.confined(LAUNCHER_DIR)?;
        dir.create_dir_all()?;
        let launcher = dir.join(&name)?;
        // The launcher runs the mounted go by its path, so go finds its GOROOT from it (a switch
        // unsets GOROOT before running the `go<version>` it found on PATH).
        let text = format!("#!/bin/sh\nexec {SERVED_GOROOT}/bin/go \"$@\"\n");
        if tree.read_record(launcher.rel()).as_deref() != Some(text.as_str()) {
            if launcher.exists() {
                launcher.remove_file()?;
            }
            launcher.write_new(text.as_bytes(), Some(0o755))?;
        }
        Ok([bind_args(goroot, SERVED_GOROOT)?, bind_args(&launcher.path(), &format!("{SERVED_BIN_DIR}/{name}"))?]
            .concat())
    }
}

/// A read-only bind mount: `--volume` as the scripts write them, `--mount` for a path with a `:`.
fn bind_args(source: &Utf8Path, target: &str) -> Result<Vec<String>, Fail> {
    let s = source.as_str();
    if s.chars().any(char::is_control) || (s.contains(':') && s.contains([',', '"'])) {
        return Err(Fail::new(format!("cannot mount `{}` into the build container", s.escape_debug())));
    }
    Ok(if s.contains(':') {
        vec!["--mount".into(), format!("type=bind,source={s},target={target},readonly")]
    } else {
        vec!["--volume".into(), format!("{s}:{target}:ro")]
    })
}

/// Logs the plan of a run (status line) and warns when the build cannot get its Go.
pub fn log_plan(p: &GoPlan) {
    match p {
        GoPlan::NotNeeded => {}
        GoPlan::Missing { .. } => log::warn(format!("container Go: {}", p.describe())),
        _ => log::status(format!("container Go: {}", p.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::{bind_args, plan, user_choice, GoPlan};
    use camino::Utf8PathBuf;
    use kube_tree::fixture::{scratch_tree, Spec};
    use kube_tree::Tree;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_users_choice_wins_and_auto_is_no_choice() {
        assert_eq!(user_choice(&env_of(&[("GOTOOLCHAIN", "auto")])), None);
        assert!(user_choice(&env_of(&[("GOTOOLCHAIN", "local")])).unwrap().contains("GOTOOLCHAIN=local"));
        assert!(user_choice(&env_of(&[("GOPROXY", "file:///srv/proxy")])).unwrap().contains("file:///srv/proxy"));
        assert!(user_choice(&env_of(&[("FORCE_HOST_GO", "y")])).is_some());
        assert_eq!(user_choice(&env_of(&[("GOPROXY", "")])), None);
    }

    #[test]
    fn era_c_serves_the_hosts_go_only_offline_and_when_it_has_that_version() {
        let root = scratch_tree("toolchain-plan", &Spec::era_c());
        let tree = Tree::open(&root).unwrap();
        let version = tree.go_version.clone().expect("the era-C fixture names a Go");
        // A GOROOT of exactly that version in ~/sdk, found by setup-go's search.
        let home = root.parent().unwrap().join("home");
        let goroot = home.join(format!("sdk/go{version}"));
        std::fs::create_dir_all(goroot.join("bin")).unwrap();
        std::fs::write(goroot.join("bin/go"), "").unwrap();
        std::fs::write(goroot.join("VERSION"), format!("go{version}\n")).unwrap();
        let cache = root.parent().unwrap().join("cache");
        let (h, c) = (home.to_string(), cache.to_string());
        let env = move |k: &str| match k {
            "HOME" => Some(h.clone()),
            "KUBE_KIT_CACHE" => Some(c.clone()),
            _ => None,
        };
        let offline = || None;
        match plan(&tree, &env, &offline).unwrap() {
            GoPlan::Serve { version: v, goroot: g, .. } => assert_eq!((v, g), (version.clone(), goroot.clone())),
            other => panic!("expected the host's Go to be served: {other:?}"),
        }
        let online = || Some("the Go proxy answers".to_string());
        assert!(matches!(plan(&tree, &env, &online).unwrap(), GoPlan::Upstream { .. }));
        // Another version wanted: offline and missing.
        let env2 = |k: &str| if k == "GO_VERSION" { Some("1.99.1".into()) } else { env(k) };
        assert!(matches!(plan(&tree, &env2, &offline).unwrap(), GoPlan::Missing { .. }));
        // The args mount the GOROOT and a launcher written into the tree.
        let p = plan(&tree, &env, &offline).unwrap();
        let args = p.container_args(&tree).unwrap();
        assert_eq!(args[1], format!("{goroot}:/usr/local/k8s-build-kit/go:ro"));
        assert_eq!(args[3], format!("{root}/_output/dockerized/kit-go/go{version}:/usr/local/bin/go{version}:ro"));
        let launcher = std::fs::read_to_string(root.join(format!("_output/dockerized/kit-go/go{version}"))).unwrap();
        assert!(launcher.contains("exec /usr/local/k8s-build-kit/go/bin/go \"$@\""), "{launcher}");
        // Era B: nothing.
        let b = scratch_tree("toolchain-plan-b", &Spec::era_b());
        assert_eq!(plan(&Tree::open(&b).unwrap(), &env, &offline).unwrap(), GoPlan::NotNeeded);
        for r in [root, b] {
            std::fs::remove_dir_all(r.parent().unwrap()).unwrap();
        }
    }

    #[test]
    fn a_path_with_a_colon_is_mounted_with_mount() {
        let args = bind_args(&Utf8PathBuf::from("/a:b/go"), "/x").unwrap();
        assert_eq!(args, ["--mount", "type=bind,source=/a:b/go,target=/x,readonly"]);
        assert!(bind_args(&Utf8PathBuf::from("/a:b,c/go"), "/x").is_err());
    }
}
