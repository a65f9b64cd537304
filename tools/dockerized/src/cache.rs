//! The Go build cache shared by every tree, branch and worktree on one engine (issue 21).
//!
//! Go's build cache is keyed by content (inputs, flags, toolchain, environment) and is safe for
//! concurrent use, and inside a container every tree sits at the same path, so one named volume
//! can serve them all without changing an output byte. It is mounted where the tree's own scripts
//! put the cache: `_output/dockerized/go/cache` is `GOCACHE` in era A, and the parent of `GOCACHE`
//! (`build/`) and `GOMODCACHE` (`mod/`) in eras B and C, so those share the module cache (where
//! `GOTOOLCHAIN` keeps a downloaded Go) too. `--cache private` / `KUBE_BUILD_CACHE=private` keeps
//! the old per-tree cache inside the tree (bind mode) or the data container (rsync mode).

use crate::engine::Engine;
use crate::labels::{LABEL_OWNER, OWNER};
use crate::layout::REMOTE_ROOT;
use kube_tree::{Era, Fail};
use std::collections::HashMap;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// The label naming what kind of kit object a volume is.
pub const LABEL_KIND: &str = "io.k8s-build-kit.kind";
/// [`LABEL_KIND`] of the shared Go cache.
pub const CACHE_KIND: &str = "go-cache";
/// The shared volume's name unless [`CACHE_VOLUME_VAR`] names another (a test run's own).
pub const CACHE_VOLUME: &str = "k8s-build-kit-go-cache";
pub const CACHE_VOLUME_VAR: &str = "KUBE_KIT_CACHE_VOLUME";
/// `shared` (the default) or `private`; `--cache` overrides it.
pub const CACHE_CHOICE_VAR: &str = "KUBE_BUILD_CACHE";
/// `1`: check every build cache entry against its name before each build (else hourly).
pub const CACHE_VERIFY_VAR: &str = "KUBE_KIT_CACHE_VERIFY";
/// The build cache's size cap in bytes (suffixes K, M, G accepted, binary units).
pub const CACHE_MAX_VAR: &str = "KUBE_KIT_CACHE_MAX";
/// A laptop's worth: Go trims its own cache by age only; a kubectl build's is about 1.5 GiB.
pub const DEFAULT_CACHE_MAX: u64 = 10 << 30;
/// Inside the tree: where the scripts put the Go caches of a containerized build.
pub const CACHE_SUBPATH: &str = "_output/dockerized/go/cache";

/// `--cache shared|private`: one cache volume per engine, or the tree's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheChoice {
    Shared,
    Private,
}

impl CacheChoice {
    /// `v` as given by `what` (the flag or [`CACHE_CHOICE_VAR`]).
    pub fn parse(what: &str, v: &str) -> Result<CacheChoice> {
        match v {
            "shared" => Ok(CacheChoice::Shared),
            "private" => Ok(CacheChoice::Private),
            v => Err(Fail::new(format!("{what} `{}`: shared or private", v.escape_debug()))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CacheChoice::Shared => "shared",
            CacheChoice::Private => "private",
        }
    }

    /// [`CACHE_CHOICE_VAR`] when set, else none.
    pub fn from_env() -> Result<Option<CacheChoice>> {
        match std::env::var(CACHE_CHOICE_VAR).ok().filter(|v| !v.is_empty()) {
            Some(v) => CacheChoice::parse(CACHE_CHOICE_VAR, &v).map(Some),
            None => Ok(None),
        }
    }
}

/// The choice, else [`CACHE_CHOICE_VAR`], else shared: the volume to mount, or None for the
/// per-tree cache.
pub fn choose(choice: Option<CacheChoice>) -> Result<Option<String>> {
    let choice = match choice {
        Some(c) => c,
        None => CacheChoice::from_env()?.unwrap_or(CacheChoice::Shared),
    };
    match choice {
        CacheChoice::Shared => volume_name().map(Some),
        CacheChoice::Private => Ok(None),
    }
}

/// The shared volume's name: [`CACHE_VOLUME_VAR`] (checked: an engine volume name, never an
/// option or a path) or [`CACHE_VOLUME`].
pub fn volume_name() -> Result<String> {
    match std::env::var(CACHE_VOLUME_VAR).ok().filter(|v| !v.is_empty()) {
        None => Ok(CACHE_VOLUME.to_string()),
        Some(v) if valid_volume_name(&v) => Ok(v),
        Some(v) => Err(Fail::new(format!(
            "{CACHE_VOLUME_VAR} `{}`: a volume name (letters, digits, `_.-`, not starting with one of those three, at most 64)",
            v.escape_debug()
        ))),
    }
}

/// An engine volume name: letters, digits, `_.-`, starting with a letter or digit, at most 64.
pub(crate) fn valid_volume_name(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Whether the shared volume holds the module cache too (see the module comment): eras B and C.
/// A go.work tree is era C here. Era A builds in GOPATH mode from vendor/ and has none.
pub fn shares_module_cache(era: Era) -> bool {
    era != Era::A
}

/// The build container's mount of the shared volume at the scripts' cache path (`--volume`: the
/// name is checked to hold no `:` and the target has none).
pub(crate) fn mount_args(volume: &str) -> Vec<String> {
    vec!["--volume".into(), format!("{volume}:{REMOTE_ROOT}/{CACHE_SUBPATH}")]
}

/// [`CACHE_MAX_VAR`] in bytes: `10G`, `512M`, `2048K` or a plain number.
pub fn cache_max() -> Result<u64> {
    let Some(v) = std::env::var(CACHE_MAX_VAR).ok().filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_CACHE_MAX);
    };
    parse_size(&v).ok_or_else(|| {
        Fail::new(format!("{CACHE_MAX_VAR} `{}`: a size in bytes, or with K, M or G (1024-based)", v.escape_debug()))
    })
}

pub(crate) fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, shift) = match v.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&v[..v.len() - 1], 10),
        b'M' => (&v[..v.len() - 1], 20),
        b'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// The volume's `owner` label: Some("") when it exists without ours, None when it does not exist.
pub(crate) fn volume_owner(engine: &Engine, volume: &str) -> Result<Option<String>> {
    let format = format!("{{{{index .Labels \"{LABEL_OWNER}\"}}}}");
    let answer = engine.query(&["volume", "inspect", "--format", format.as_str(), volume])?;
    Ok(answer.map(|a| if a == "<no value>" { String::new() } else { a }))
}

/// The cache's size in bytes as the engine counts it (`system df -v`), None when it has none.
pub fn cache_size(engine: &Engine, volume: &str) -> Option<u64> {
    volume_sizes(engine).get(volume).copied()
}

/// Every volume's size from `system df -v` (the engine computes them; "1.2GB" style).
pub(crate) fn volume_sizes(e: &Engine) -> HashMap<String, u64> {
    let text = e.query(&["system", "df", "-v"]).ok().flatten().unwrap_or_default();
    let mut out = HashMap::new();
    let mut in_volumes = false;
    for l in text.lines() {
        if l.starts_with("Local Volumes space usage") {
            in_volumes = true;
            continue;
        }
        if in_volumes && l.trim().is_empty() && !out.is_empty() {
            break;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if in_volumes && f.len() >= 3 && f[0] != "VOLUME" {
            if let Some(n) = human_bytes(f[f.len() - 1]) {
                out.insert(f[0].to_string(), n);
            }
        }
    }
    out
}

/// `1.2GB`, `512kB`, `0B` as the engine prints sizes (decimal units).
pub(crate) fn human_bytes(s: &str) -> Option<u64> {
    let i = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(i);
    let n: f64 = n.parse().ok()?;
    let m = match unit.to_ascii_uppercase().as_str() {
        "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some((n * m) as u64)
}

/// Whether the kit's cache volume exists on the engine (labelled as ours: another tool's volume of
/// the same name is never reported or removed).
pub fn cache_exists(engine: &Engine, volume: &str) -> Result<bool> {
    Ok(volume_owner(engine, volume)?.is_some_and(|o| o == OWNER))
}

/// Removes the kit's cache volume (make-clean --cache); false when there was none of ours.
pub fn remove_cache(engine: &Engine, volume: &str) -> Result<bool> {
    if !cache_exists(engine, volume)? {
        return Ok(false);
    }
    engine.run(&["volume", "rm", volume]).map_err(|e| {
        Fail::new(format!("cannot remove the Go cache volume {volume} (a build using it still runs?): {}", e.msg))
    })?;
    Ok(true)
}

/// What the tool says when a build on the shared cache fails: how to rule the cache out.
pub(crate) fn failure_hint(volume: &str, program: &str) -> String {
    format!(
        "the build used the shared Go cache volume {volume}; if you suspect it (Go verifies entries and rebuilds a bad one, but cannot tell every damaged file), run again with --cache private, or remove it: make-clean --cache (or {program} volume rm {volume})"
    )
}

#[cfg(test)]
mod tests {
    use super::{human_bytes, mount_args, parse_size, shares_module_cache, valid_volume_name, CACHE_VOLUME};
    use crate::engine::{Engine, EngineChoice, Kind};
    use crate::job::Job;
    use crate::setup::{Mode, Setup};
    use kube_tree::fixture::{scratch_tree, Spec};
    use kube_tree::{Era, Tree};

    #[test]
    fn every_mode_mounts_the_shared_cache_and_private_mounts_none() {
        let engine = Engine::new(Some(EngineChoice::of(Kind::Docker)), true).unwrap();
        let root = scratch_tree("cache-args", &Spec::era_c());
        let mount = format!("{CACHE_VOLUME}:/go/src/k8s.io/kubernetes/_output/dockerized/go/cache");
        for mode in [Mode::Rsync, Mode::Bind] {
            let mut setup = Setup::new(Tree::open(&root).unwrap(), &engine, Some(mode), None).unwrap();
            setup.cache = Some(CACHE_VOLUME.into());
            let job = Job { engine: &engine, setup: &setup };
            let args = job.build_container_args(&["make".into()], &[], false);
            let at = args.iter().position(|a| *a == mount).unwrap_or_else(|| panic!("{mode:?}: {args:?}"));
            assert_eq!(args[at - 1], "--volume");
            // Before the image: an option of the engine's, never a word of the command.
            assert!(at < args.iter().position(|a| a == "make").unwrap());
            setup.cache = None;
            let job = Job { engine: &engine, setup: &setup };
            let args = job.build_container_args(&["make".into()], &[], false);
            assert!(!args.iter().any(|a| a.contains("dockerized/go/cache")), "{mode:?} private: {args:?}");
        }
        std::fs::remove_dir_all(root.parent().unwrap()).unwrap();
    }

    #[test]
    fn the_volume_is_mounted_where_the_scripts_put_the_go_caches() {
        assert_eq!(mount_args("v1"), ["--volume", "v1:/go/src/k8s.io/kubernetes/_output/dockerized/go/cache"]);
        assert!(!shares_module_cache(Era::A));
        assert!(shares_module_cache(Era::B) && shares_module_cache(Era::C));
    }

    #[test]
    fn names_and_sizes_from_the_environment_are_checked() {
        for ok in ["k8s-build-kit-go-cache", "kit.test_1", "a"] {
            assert!(valid_volume_name(ok), "{ok}");
        }
        for bad in ["", "-rm", ".x", "a/b", "a b", "a,b", "a=b", &"x".repeat(65)] {
            assert!(!valid_volume_name(bad), "{bad}");
        }
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("2048"), Some(2048));
        for bad in ["", "G", "1.5G", "-1", "10T", "99999999999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn engine_sizes_are_read_in_decimal_units() {
        assert_eq!(human_bytes("1.5GB"), Some(1_500_000_000));
        assert_eq!(human_bytes("512kB"), Some(512_000));
        assert_eq!(human_bytes("0B"), Some(0));
        assert_eq!(human_bytes("N/A"), None);
    }
}
