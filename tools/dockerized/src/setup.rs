//! The per-run setup: the mode, the scripts' container names, the caller's uid:gid, the
//! kube-cross image and the values checked before anything runs.

use crate::cache;
use crate::engine::{check_proxy_env, Engine};
use crate::labels::{LABEL_HASH, LABEL_OWNER, LABEL_TREE, OWNER};
use crate::layout::REMOTE_ROOT;
use crate::md5;
use crate::state::{state_file, StateTag};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::Proc;
use kube_tree::{values, version, Cap, Era, Fail, Tree};

type Result<T, E = Fail> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Rsync,
    Bind,
}

impl Mode {
    /// `--mode rsync|bind`.
    pub fn parse(what: &str, v: &str) -> Result<Mode> {
        match v {
            "rsync" => Ok(Mode::Rsync),
            "bind" => Ok(Mode::Bind),
            m => Err(Fail::new(format!("{what} {}: rsync or bind", m.escape_debug()))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Rsync => "rsync",
            Mode::Bind => "bind",
        }
    }
}

/// Container and image names, as build/common.sh makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// First 10 hex of md5("HOSTNAME:KUBE_ROOT:branch").
    pub hash: String,
    /// `5-v1.15.5-1` (build-image VERSION and cross tag), `6` in era C.
    pub version: String,
    pub image: String,
    pub build: String,
    pub rsync: String,
    pub data: String,
}

impl Names {
    pub(crate) fn new(hostname: &str, root: &Utf8Path, branch: &str, version: &str) -> Names {
        let hash = md5::hex(format!("{hostname}:{root}:{branch}").as_bytes())[..10].to_string();
        Names {
            image: format!("kube-build:build-{hash}-{version}"),
            build: format!("kube-build-{hash}-{version}"),
            rsync: format!("kube-rsync-{hash}-{version}"),
            data: format!("kube-build-data-{hash}-{version}"),
            version: version.to_string(),
            hash,
        }
    }
    /// Name prefixes of everything of this tree, whatever its version.
    pub(crate) fn prefixes(&self) -> [String; 3] {
        [
            format!("kube-build-{}", self.hash),
            format!("kube-rsync-{}", self.hash),
            format!("kube-build-data-{}", self.hash),
        ]
    }
}

/// `$HOSTNAME` as bash sets it (our environment may not have it).
pub(crate) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()))
        .or_else(|| Proc::new("hostname").timeout(kube_tree::proc::PROBE).read().ok().map(|s| s.trim().to_string()))
        .unwrap_or_default()
}

/// The effective `uid:gid` (as `id -u`/`id -g` print them): from /proc, with no process to
/// spawn, else from `id` (macOS).
pub(crate) fn uid_gid() -> Result<String> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        // "Uid:\treal\teffective\tsaved\tfs"
        let effective = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        };
        if let (Some(u), Some(g)) = (effective("Uid:"), effective("Gid:")) {
            return Ok(format!("{u}:{g}"));
        }
    }
    let id = |f: &str| Proc::new("id").arg(f).timeout(kube_tree::proc::PROBE).read().map(|s| s.trim().to_string());
    Ok(format!("{}:{}", id("-u")?, id("-g")?))
}

/// The registry host an image reference names and whether it speaks plain HTTP (docker's rule:
/// a first part with a dot, a port or `localhost` is a registry, else Docker Hub; registries
/// on the loopback are plain HTTP).
pub fn registry_of(image: &str) -> (String, bool) {
    let first = image.split('/').next().unwrap_or("");
    if !image.contains('/') || !(first.contains('.') || first.contains(':') || first == "localhost") {
        return ("registry-1.docker.io".into(), false);
    }
    let host = first.rsplit_once(':').map_or(first, |(h, _)| h).trim_matches(['[', ']']);
    let plain = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (first.to_string(), plain)
}

/// Everything a containerized build of this tree needs to know.
pub struct Setup {
    pub tree: Tree,
    pub mode: Mode,
    pub names: Names,
    /// `repo:tag` of kube-cross.
    pub cross_image: String,
    pub hostname: String,
    pub user: String,
    /// The shared Go cache volume the build mounts (see [`crate::cache`]); None: the tree's own.
    pub cache: Option<String>,
    /// A fan-out share's tag ([`crate::options::ShareOf`]): its own state files.
    pub state_tag: Option<StateTag>,
    /// `KUBE_BUILD_PLATFORMS` in the build container: a fan-out share's; None: ours, if set.
    pub platforms: Option<String>,
    /// Where the rsync daemon publishes on 127.0.0.1: `KUBE_RSYNC_PORT`, or a fan-out share's;
    /// None: a port the engine picks.
    pub rsync_port: Option<u16>,
}

/// The `kube-cross` repository the tree's Dockerfile (or common.sh) names, without the tag.
pub(crate) fn tree_cross_repo(tree: &Tree) -> Result<String> {
    let df = tree.read_text("build/build-image/Dockerfile", Cap::SCRIPT)?.unwrap_or_default();
    if let Some(from) = df.lines().find_map(|l| l.trim().strip_prefix("FROM ")) {
        if let Some(repo) = from.trim().strip_suffix(":KUBE_BUILD_IMAGE_CROSS_TAG") {
            return Ok(repo.to_string());
        }
    }
    let common = tree.read_text("build/common.sh", Cap::SCRIPT)?.unwrap_or_default();
    // The knob exists only in trees whose common.sh reads it (later era B and C).
    if common.contains("KUBE_BASE_IMAGE_REGISTRY") {
        if let Some(r) = std::env::var("KUBE_BASE_IMAGE_REGISTRY").ok().filter(|r| !r.is_empty()) {
            return Ok(format!("{}/kube-cross", r.trim_end_matches('/')));
        }
    }
    let registry = common
        .find("KUBE_BASE_IMAGE_REGISTRY:-")
        .map(|i| {
            let r = &common[i + "KUBE_BASE_IMAGE_REGISTRY:-".len()..];
            r[..r.find('}').unwrap_or(0)].trim_matches('"').to_string()
        })
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "registry.k8s.io/build-image".into());
    Ok(format!("{registry}/kube-cross"))
}

impl Setup {
    pub fn new(tree: Tree, engine: &Engine, mode: Option<Mode>, cross_image: Option<String>) -> Result<Setup> {
        let mode = match mode {
            Some(m) => m,
            None if tree.era == Era::C && !engine.is_remote() => Mode::Bind,
            None => Mode::Rsync,
        };
        if mode == Mode::Bind && engine.is_remote() {
            return Err(Fail::new(
                "--mode bind needs a local engine: this one is remote (DOCKER_HOST/context), use the rsync mode",
            ));
        }
        if mode == Mode::Bind {
            check_bind_path(&tree.root)?;
        }
        let tag = match std::env::var("KUBE_CROSS_VERSION").ok().filter(|s| !s.is_empty()) {
            Some(t) => {
                values::tag("KUBE_CROSS_VERSION", &t)?;
                t
            }
            None => {
                let t = tree.cross_tag.clone().ok_or_else(|| {
                    Fail::new("no build/build-image/cross/VERSION in the tree and no KUBE_CROSS_VERSION")
                })?;
                values::tag("build/build-image/cross/VERSION", &t)?;
                t
            }
        };
        let given = match cross_image {
            Some(i) => Some(("--cross-image", i)),
            None => std::env::var("KUBE_CROSS_IMAGE").ok().filter(|s| !s.is_empty()).map(|i| ("KUBE_CROSS_IMAGE", i)),
        };
        let cross_image = match given {
            Some((what, img)) => {
                values::image_ref(what, &img)?;
                if img.rsplit('/').next().is_some_and(|last| last.contains(':')) {
                    img
                } else {
                    format!("{img}:{tag}")
                }
            }
            None => format!("{}:{tag}", tree_cross_repo(&tree)?),
        };
        values::image_ref("kube-cross image", &cross_image)?;
        let rsync_port = check_run_env()?;
        let version = if tree.era == Era::C {
            "6".to_string()
        } else {
            let base = tree.read_line("build/build-image/VERSION")?.unwrap_or_else(|| "5".into());
            format!("{base}-{tag}")
        };
        let branch = if tree.path(".git").exists() {
            Proc::new("git")
                .args(["symbolic-ref", "--short", "-q", "HEAD"])
                .dir(&tree.root)
                .timeout(kube_tree::proc::PROBE)
                .read()
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let hostname = hostname();
        let names = Names::new(&hostname, &tree.root, &branch, &version);
        let cache = cache::choose(None)?;
        if cache.is_some() {
            // The cap is read after the build: a bad one is refused before anything runs.
            cache::cache_max()?;
        }
        let user = uid_gid()?;
        Ok(Setup {
            tree,
            mode,
            names,
            cross_image,
            hostname,
            user,
            cache,
            state_tag: None,
            platforms: None,
            rsync_port,
        })
    }

    /// How bind mode mounts the tree at [`REMOTE_ROOT`]: `--volume ROOT:...` as the scripts do,
    /// or, when the path holds a `:` (which `--volume` would read as its separator),
    /// `--mount type=bind,source=ROOT,...` (a path that cannot be written there either is
    /// refused by [`check_bind_path`] when the setup is made).
    pub(crate) fn tree_mount(&self) -> Vec<String> {
        let root = &self.tree.root;
        if root.as_str().contains(':') {
            vec!["--mount".into(), format!("type=bind,source={root},target={REMOTE_ROOT}")]
        } else {
            vec!["--volume".into(), format!("{root}:{REMOTE_ROOT}")]
        }
    }

    /// The kit's labels on this tree's containers, as `--label` flags (its image's are in the
    /// image's Dockerfile: see `image`).
    pub(crate) fn labels(&self) -> Vec<String> {
        vec![
            "--label".into(),
            format!("{LABEL_OWNER}={OWNER}"),
            "--label".into(),
            format!("{LABEL_TREE}={}", self.tree.root),
            "--label".into(),
            format!("{LABEL_HASH}={}", self.names.hash),
        ]
    }

    /// The build context directory the scripts use: `_output/images/<image>`.
    pub(crate) fn context_dir(&self) -> Utf8PathBuf {
        self.tree.path("_output/images").join(&self.names.image)
    }

    /// This run's state file `name` (see [`crate::state`]), relative to the tree.
    pub(crate) fn state_file(&self, name: &str) -> String {
        state_file(name, self.state_tag.as_ref())
    }

    pub(crate) fn password_file(&self) -> Utf8PathBuf {
        self.context_dir().join("rsyncd.password")
    }
}

/// The environment values a run hands to the engine, checked before anything runs: proxies,
/// the cgroup parent, the rsync port (returned).
fn check_run_env() -> Result<Option<u16>> {
    check_proxy_env()?;
    if let Ok(cg) = std::env::var("DOCKER_CGROUP_PARENT") {
        // Passed as `--cgroup-parent VALUE`: a path, never an option or a line break.
        if cg.starts_with('-') || cg.chars().any(char::is_control) {
            return Err(Fail::new(format!("DOCKER_CGROUP_PARENT `{}`: not a cgroup path", cg.escape_debug())));
        }
    }
    match std::env::var("KUBE_RSYNC_PORT").ok().filter(|p| !p.is_empty()) {
        Some(p) => Ok(Some(values::port("KUBE_RSYNC_PORT", &p)?)),
        None => Ok(None),
    }
}

/// A tree path that bind mode can hand to the engine: with a `:`, it goes in a `--mount`
/// field, where a `,` would start the next field (podman splits on it; docker's CSV reader
/// would need quotes podman does not read) and a `"` is a CSV quote. A control character
/// would reach the engine's own logs and the container's mount table.
pub(crate) fn check_bind_path(root: &Utf8Path) -> Result<()> {
    let r = root.as_str();
    let bad = if r.chars().any(char::is_control) {
        Some("a control character")
    } else if r.contains(':') && r.contains([',', '"']) {
        Some("a `:` with a `,` or `\"` (no --volume or --mount can name it)")
    } else {
        None
    };
    match bad {
        Some(why) => Err(Fail::new(format!(
            "bind mode cannot mount the tree `{}`: its path holds {why}; use --mode rsync, or move the tree",
            r.escape_debug()
        ))),
        None => Ok(()),
    }
}

/// The file of the version the build container loads (and a fanned-out release packages with).
pub(crate) const VERSION_DEFS: &str = ".dockerized-kube-version-defs";

/// Writes [`VERSION_DEFS`] (the five lines the build container loads).
pub(crate) fn save_version_defs(tree: &Tree) -> Result<()> {
    let v = version::get(tree, &|k| std::env::var(k).ok())?;
    let q = |o: &Option<String>| o.clone().unwrap_or_default();
    let text = format!(
        "KUBE_GIT_COMMIT='{}'\nKUBE_GIT_TREE_STATE='{}'\nKUBE_GIT_VERSION='{}'\nKUBE_GIT_MAJOR='{}'\nKUBE_GIT_MINOR='{}'\n",
        q(&v.commit), q(&v.tree_state), q(&v.version), q(&v.major), q(&v.minor)
    );
    if tree.read_record(VERSION_DEFS).as_deref() != Some(text.as_str()) {
        tree.write_file(VERSION_DEFS, text.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_bind_path, Mode, Names, Setup};
    use crate::engine::{Engine, EngineChoice, Kind};
    use camino::Utf8Path;
    use kube_tree::fixture::{scratch_tree, Spec};
    use kube_tree::Tree;

    /// Bind mode in a dry run (nothing is asked of the engine) for a tree at `root`.
    fn bind_setup(root: &Utf8Path) -> Result<Setup, kube_tree::Fail> {
        let engine = Engine::new(Some(EngineChoice::of(Kind::Docker)), true)?;
        Setup::new(Tree::open(root)?, &engine, Some(Mode::Bind), None)
    }

    #[test]
    fn a_tree_path_with_a_colon_is_mounted_with_mount_never_volume() {
        let plain = scratch_tree("bind-plain", &Spec::era_c());
        let colon = scratch_tree("bind-a:b", &Spec::era_c());
        let comma = scratch_tree("bind-a:b,c", &Spec::era_c());
        let s = bind_setup(&plain).unwrap();
        assert_eq!(s.mode, Mode::Bind);
        assert_eq!(s.tree_mount(), ["--volume".to_string(), format!("{plain}:/go/src/k8s.io/kubernetes")]);
        let s = bind_setup(&colon).unwrap();
        assert_eq!(
            s.tree_mount(),
            ["--mount".to_string(), format!("type=bind,source={colon},target=/go/src/k8s.io/kubernetes")]
        );
        let e = bind_setup(&comma).err().expect("a `:` and a `,` cannot be mounted");
        assert!(e.msg.contains("bind mode cannot mount the tree") && e.msg.contains("--mode rsync"), "{}", e.msg);
        // A `,` alone is fine for --volume; a control character never is.
        assert!(check_bind_path(Utf8Path::new("/src/a,b/kubernetes")).is_ok());
        assert!(check_bind_path(Utf8Path::new("/src/a\nb/kubernetes")).is_err());
        assert!(check_bind_path(Utf8Path::new("/src/a:\"b/kubernetes")).is_err());
        for root in [plain, colon, comma] {
            std::fs::remove_dir_all(root.parent().unwrap()).unwrap();
        }
    }

    #[test]
    fn names_follow_build_common_sh() {
        // `printf 'host:/src/kubernetes:master' | md5sum` = 20178bb46259346c90c5606e86a56f0c
        let n = Names::new("host", Utf8Path::new("/src/kubernetes"), "master", "5-v1.15.5-1");
        assert_eq!(n.hash, "20178bb462");
        assert_eq!(n.image, format!("kube-build:build-{}-5-v1.15.5-1", n.hash));
        assert_eq!(n.data, format!("kube-build-data-{}-5-v1.15.5-1", n.hash));
        assert_eq!(n.prefixes()[1], format!("kube-rsync-{}", n.hash));
    }
}
