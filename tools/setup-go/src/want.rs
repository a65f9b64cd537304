//! Which Go a tree was made for, and whether the user asked for another.

use kube_tree::gover::GoVersion;
use kube_tree::{Cap, Fail, Tree};

/// A Go version and where it came from (shown to the user as the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub version: GoVersion,
    pub from: String,
}

/// The Go the tree names: `.go-version` (era B on), else the kube-cross tag of
/// `build/build-image/cross/VERSION` (`v1.15.5-1`, or `v1.33.0-go1.24.0-bullseye.0`), else the
/// cross Dockerfile's `FROM golang:`. None when the tree names none.
pub fn of_tree(tree: &Tree) -> Result<Option<Wanted>, Fail> {
    let bad = |file: &str, e: String| Fail::new(format!("{}: {e}", tree.path(file)));
    if let Some(v) = &tree.go_version {
        let version = GoVersion::parse(v).map_err(|e| bad(".go-version", e))?;
        return Ok(Some(Wanted { version, from: ".go-version".into() }));
    }
    if let Some(tag) = &tree.cross_tag {
        let file = "build/build-image/cross/VERSION";
        let v =
            cross_tag_go(tag).ok_or_else(|| bad(file, format!("`{}` is not a kube-cross tag", tag.escape_debug())))?;
        let version = GoVersion::parse(&v).map_err(|e| bad(file, e))?;
        return Ok(Some(Wanted { version, from: format!("{file} ({tag})") }));
    }
    let file = "build/build-image/cross/Dockerfile";
    if let Some(text) = tree.read_text(file, Cap::SCRIPT)? {
        for l in text.lines() {
            if let Some(v) = l.trim().strip_prefix("FROM golang:") {
                let v = v.split(|c: char| c == '-' || c.is_whitespace()).next().unwrap_or("");
                let version = GoVersion::parse(v).map_err(|e| bad(file, e))?;
                return Ok(Some(Wanted { version, from: file.into() }));
            }
        }
    }
    Ok(None)
}

/// The Go of a kube-cross tag: `v1.15.5-1` -> 1.15.5 (the tag is the Go version plus a build
/// number), `v1.33.0-go1.24.0-bullseye.0` -> 1.24.0 (later tags name Go explicitly).
pub fn cross_tag_go(tag: &str) -> Option<String> {
    if let Some(i) = tag.find("-go1.") {
        return tag[i + 3..].split('-').next().map(str::to_string);
    }
    let t = tag.strip_prefix('v')?;
    let (v, build) = t.split_once('-')?;
    build.bytes().all(|b| b.is_ascii_digit()).then(|| v.to_string())
}

/// What the user chose with `--version`/`GO_VERSION` (a release name: `1.21` or `1.15.0` is
/// refused, not sent to a site), else what the tree names.
pub fn resolve(
    tree: Option<&Tree>,
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Wanted>, Fail> {
    if let Some(v) = flag {
        return Ok(Some(Wanted {
            version: GoVersion::release(v).map_err(|e| Fail::new(format!("--version: {e}")))?,
            from: "--version".into(),
        }));
    }
    if let Some(v) = env("GO_VERSION").filter(|v| !v.is_empty()) {
        return Ok(Some(Wanted {
            version: GoVersion::release(&v).map_err(|e| Fail::new(format!("GO_VERSION: {e}")))?,
            from: "GO_VERSION".into(),
        }));
    }
    match tree {
        Some(t) => of_tree(t),
        None => Ok(None),
    }
}

/// Why the Go on PATH must be used, as upstream's hack/lib/golang.sh decides: `GOTOOLCHAIN` set
/// to anything but `auto`, or `FORCE_HOST_GO` non-empty.
pub fn host_forced(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(t) = env("GOTOOLCHAIN").filter(|t| !t.is_empty() && t != "auto") {
        return Some(format!("GOTOOLCHAIN={t}"));
    }
    env("FORCE_HOST_GO").filter(|f| !f.is_empty()).map(|f| format!("FORCE_HOST_GO={f}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_tree::fixture::{self, Spec};

    #[test]
    fn cross_tags_of_every_era() {
        assert_eq!(cross_tag_go("v1.12.9-1").as_deref(), Some("1.12.9"));
        assert_eq!(cross_tag_go("v1.15.5-1").as_deref(), Some("1.15.5"));
        assert_eq!(cross_tag_go("v1.33.0-go1.24.0-bullseye.0").as_deref(), Some("1.24.0"));
        assert_eq!(cross_tag_go("latest"), None);
        assert_eq!(cross_tag_go("v1.15.5-x"), None);
    }

    #[test]
    fn the_flag_then_go_version_then_the_tree() {
        let root = fixture::scratch_tree("sg-want", &Spec::era_b());
        let tree = Tree::open(&root).unwrap();
        let none = |_: &str| None;
        let from_tree = resolve(Some(&tree), None, &none).unwrap().unwrap();
        assert_eq!(Some(from_tree.version.text.clone()), cross_tag_go(tree.cross_tag.as_deref().unwrap()));
        let env = |k: &str| (k == "GO_VERSION").then(|| "1.16.3".to_string());
        assert_eq!(resolve(Some(&tree), None, &env).unwrap().unwrap().version.text, "1.16.3");
        assert_eq!(resolve(Some(&tree), Some("1.17.2"), &env).unwrap().unwrap().from, "--version");
        assert!(resolve(None, Some("1.x"), &none).unwrap_err().msg.contains("--version"));
        for not_a_release in ["1.015.5", "1.21", "1.15.0"] {
            let e = resolve(None, Some(not_a_release), &none).unwrap_err();
            assert!(e.msg.starts_with("--version: `"), "{not_a_release}: {}", e.msg);
        }
        let bad = |k: &str| (k == "GO_VERSION").then(|| "$(rm -rf /)".to_string());
        assert!(resolve(None, None, &bad).unwrap_err().msg.starts_with("GO_VERSION:"));
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
    }

    #[test]
    fn host_is_forced_as_upstream_decides() {
        let e = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(host_forced(&e(&[])), None);
        assert_eq!(host_forced(&e(&[("GOTOOLCHAIN", "auto")])), None);
        assert_eq!(host_forced(&e(&[("FORCE_HOST_GO", "")])), None);
        assert!(host_forced(&e(&[("GOTOOLCHAIN", "local")])).is_some());
        assert!(host_forced(&e(&[("FORCE_HOST_GO", "y")])).is_some());
    }
}
