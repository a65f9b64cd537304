//! Which `GOCACHE` a local build uses (issue 21): one under the kit's cache directory, shared by
//! every checkout, when the tree's flags keep the tree's path out of Go's cache keys; else the
//! tree's own `_output/local/go/cache`, as `make` has it.
//!
//! Go keys an entry by content: inputs, flags, toolchain, environment. The later eras build with
//! Go's `-trimpath`, which also leaves the package directory out of the keys, so a second
//! checkout of the same sources finds every package compiled. The older eras pass
//! `-gcflags -trimpath=$KUBE_ROOT` (v1.20) and build through `_output/local/go/src/...` in
//! GOPATH mode: the root is in every key of the tree's own packages and vendor/, and a shared
//! cache would only serve the standard library, at the price of one cache growing per checkout.

use camino::Utf8PathBuf;
use kube_tree::scripts::GolangSh;

/// Where a local build's `GOCACHE` is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalCache {
    /// The kit's shared cache directory.
    Shared(Utf8PathBuf),
    /// The tree's own cache (the reason, for the log).
    Tree(&'static str),
}

/// The choice for this tree and request: `KUBE_BUILD_CACHE=private` keeps the tree's own cache.
pub fn choose(g: &GolangSh, debug: bool, env: &dyn Fn(&str) -> Option<String>) -> LocalCache {
    if env("KUBE_BUILD_CACHE").as_deref() == Some("private") {
        return LocalCache::Tree("KUBE_BUILD_CACHE=private");
    }
    if !g.dbg {
        return LocalCache::Tree(
            "this tree's flags (-gcflags -trimpath=$KUBE_ROOT, GOPATH mode) put its path into every cache key: a shared cache would hold a copy per checkout",
        );
    }
    if debug {
        return LocalCache::Tree("a debug build has no -trimpath: its cache keys hold the tree's path");
    }
    let dir = setup_go::pick::cache_dir(env).join("go-build");
    if !dir.is_absolute() || dir.as_str().chars().any(char::is_control) {
        return LocalCache::Tree("the kit's cache directory is not an absolute, printable path");
    }
    LocalCache::Shared(dir)
}

impl LocalCache {
    /// The line that says which cache the build uses and why (shown at -v).
    pub fn explain(&self, own: &camino::Utf8Path) -> String {
        match self {
            LocalCache::Shared(dir) => format!(
                "GOCACHE {dir}: shared by every checkout (-trimpath keeps the tree's path out of Go's cache keys; KUBE_BUILD_CACHE=private for the tree's own)"
            ),
            LocalCache::Tree(why) => format!("GOCACHE {own}: the tree's own ({why})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{choose, LocalCache};
    use kube_tree::scripts::GolangSh;

    #[test]
    fn only_path_free_flags_share_the_cache() {
        let env = |k: &str| (k == "KUBE_KIT_CACHE").then(|| "/kitcache".to_string());
        let later = GolangSh { dbg: true, ..GolangSh::default() };
        let older = GolangSh { dbg: false, ..GolangSh::default() };
        assert_eq!(choose(&later, false, &env), LocalCache::Shared("/kitcache/go-build".into()));
        assert!(matches!(choose(&later, true, &env), LocalCache::Tree(w) if w.contains("debug")));
        assert!(matches!(choose(&older, false, &env), LocalCache::Tree(w) if w.contains("-trimpath=$KUBE_ROOT")));
        let private = |k: &str| (k == "KUBE_BUILD_CACHE").then(|| "private".to_string());
        assert_eq!(choose(&later, false, &private), LocalCache::Tree("KUBE_BUILD_CACHE=private"));
        let relative = |k: &str| (k == "KUBE_KIT_CACHE").then(|| "kitcache".to_string());
        assert!(matches!(choose(&later, false, &relative), LocalCache::Tree(w) if w.contains("absolute")));
    }
}
