//! The version stamped into binaries, found the way hack/lib/version.sh finds it:
//! `KUBE_GIT_VERSION_FILE`; else the values `git archive` substituted into version.sh (trees such
//! as Debian's source package); else git; variables already set in the environment win.

use crate::fail::{Fail, Result};
use crate::proc::Proc;
use crate::read::Cap;
use crate::tree::Tree;

/// KUBE_GIT_* as the scripts define them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionVars {
    pub commit: Option<String>,
    pub tree_state: Option<String>,
    pub version: Option<String>,
    pub major: Option<String>,
    pub minor: Option<String>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Reads `KEY='value'` lines (the `.dockerized-kube-version-defs` format).
pub fn parse_defs(text: &str) -> VersionVars {
    let mut v = VersionVars::default();
    for l in text.lines() {
        let Some((k, val)) = l.trim().split_once('=') else { continue };
        let val = Some(val.trim().trim_matches('\'').trim_matches('"').to_string());
        match k.trim() {
            "KUBE_GIT_COMMIT" => v.commit = nonempty(val),
            "KUBE_GIT_TREE_STATE" => v.tree_state = nonempty(val),
            "KUBE_GIT_VERSION" => v.version = nonempty(val),
            "KUBE_GIT_MAJOR" => v.major = nonempty(val),
            "KUBE_GIT_MINOR" => v.minor = nonempty(val),
            _ => {}
        }
    }
    v
}

/// The commit and tag `git archive` wrote into version.sh, if it did.
pub fn archive_substitutions(version_sh: &str) -> Option<(String, Option<String>)> {
    let i = version_sh.find("KUBE_GIT_COMMIT='")?;
    let rest = &version_sh[i + "KUBE_GIT_COMMIT='".len()..];
    let commit = &rest[..rest.find('\'')?];
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None; // still `$Format:%H$`: not an archive
    }
    let tag = version_sh.find("'tag: v").map(|j| {
        let t = &version_sh[j + "'tag: ".len()..];
        t[..t.find([' ', ',', '\'']).unwrap_or(t.len())].to_string()
    });
    Some((commit.to_string(), tag))
}

/// `v1.1.0-alpha.0-6-g84c76d1142ea4d` -> `v1.1.0-alpha.0.6+84c76d1142ea4d`, `v1.1.0-1-g<h>` -> `v1.1.0-1+<h>`.
pub fn semverize(describe: &str) -> String {
    let dashes = describe.matches('-').count();
    let Some((head, hash)) = describe.rsplit_once("-g") else { return describe.to_string() };
    if hash.len() != 14 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return describe.to_string();
    }
    match dashes {
        3 => match head.rsplit_once('-') {
            Some((base, n)) if n.bytes().all(|b| b.is_ascii_digit()) => format!("{base}.{n}+{hash}"),
            _ => describe.to_string(),
        },
        2 => format!("{head}+{hash}"),
        _ => describe.to_string(),
    }
}

/// `^v(\d+)\.(\d+)(\.\d+)?(-...)?(\+...)?$`: major, minor (with `+` if there is a pre-release part).
pub fn major_minor(version: &str) -> Option<(String, String)> {
    let v = version.strip_prefix('v')?;
    let (core, _build) = v.split_once('+').map(|(a, b)| (a, Some(b))).unwrap_or((v, None));
    let (nums, pre) = core.split_once('-').map(|(a, b)| (a, Some(b))).unwrap_or((core, None));
    let parts: Vec<&str> = nums.split('.').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let minor = if pre.is_some() { format!("{}+", parts[1]) } else { parts[1].to_string() };
    Some((parts[0].to_string(), minor))
}

/// The version variables for `tree`. `env` reads the environment (injectable for tests).
pub fn get(tree: &Tree, env: &dyn Fn(&str) -> Option<String>) -> Result<VersionVars> {
    if let Some(f) = nonempty(env("KUBE_GIT_VERSION_FILE")) {
        return Ok(parse_defs(&fs_err::read_to_string(&f)?));
    }
    let mut v = VersionVars {
        commit: nonempty(env("KUBE_GIT_COMMIT")),
        tree_state: nonempty(env("KUBE_GIT_TREE_STATE")),
        version: nonempty(env("KUBE_GIT_VERSION")),
        major: nonempty(env("KUBE_GIT_MAJOR")),
        minor: nonempty(env("KUBE_GIT_MINOR")),
    };
    let version_sh = tree.read_text("hack/lib/version.sh", Cap::SCRIPT)?.unwrap_or_default();
    if let Some((commit, tag)) = archive_substitutions(&version_sh) {
        v.commit = Some(commit);
        v.tree_state = Some("archive".into());
        if tag.is_some() {
            v.version = tag;
        }
    }
    let git = |args: &[&str]| {
        Proc::new("git")
            .arg("--work-tree")
            .arg(&tree.root)
            .args(args)
            .dir(&tree.root)
            .timeout(crate::proc::PROBE)
            .read()
            .ok()
            .map(|s| s.trim().to_string())
    };
    let has_git = tree.path(".git").exists();
    if v.commit.is_none() && has_git {
        v.commit = git(&["rev-parse", "HEAD^{commit}"]);
    }
    let Some(commit) = v.commit.clone() else { return Ok(v) };
    if v.tree_state.is_none() {
        let clean = has_git && git(&["status", "--porcelain"]).is_some_and(|s| s.is_empty());
        v.tree_state = Some(if clean { "clean" } else { "dirty" }.into());
    }
    if v.version.is_none() && has_git {
        v.version = git(&["describe", "--tags", "--match=v*", "--abbrev=14", &format!("{commit}^{{commit}}")]);
    }
    if let Some(ver) = v.version.take() {
        let mut ver = semverize(&ver);
        if v.tree_state.as_deref() == Some("dirty") {
            ver.push_str("-dirty");
        }
        if let Some((maj, min)) = major_minor(&ver) {
            v.major = Some(maj);
            v.minor = Some(min);
        } else {
            return Err(Fail::new(format!(
                "KUBE_GIT_VERSION should be a valid Semantic Version. Current value: {ver}"
            )));
        }
        v.version = Some(ver);
    }
    Ok(v)
}

/// The `-X` flags for `pkgs` (from [`crate::scripts::version_ldflag_packages`]), in the order
/// version.sh adds them.
pub fn ldflags(v: &VersionVars, pkgs: &[String], build_date: &str) -> String {
    let mut keys: Vec<(&str, &str)> = vec![("buildDate", build_date)];
    if let (Some(c), Some(s)) = (&v.commit, &v.tree_state) {
        keys.push(("gitCommit", c));
        keys.push(("gitTreeState", s));
    }
    if let Some(ver) = &v.version {
        keys.push(("gitVersion", ver));
    }
    if let (Some(a), Some(b)) = (&v.major, &v.minor) {
        keys.push(("gitMajor", a));
        keys.push(("gitMinor", b));
    }
    let mut out = Vec::new();
    for (k, val) in keys {
        for p in pkgs {
            out.push(format!("-X '{p}.{k}={val}'"));
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_forms() {
        assert_eq!(semverize("v1.1.0-alpha.0-6-g84c76d1142ea4d"), "v1.1.0-alpha.0.6+84c76d1142ea4d");
        assert_eq!(semverize("v1.15.5-3-gabcdefabcdef12"), "v1.15.5-3+abcdefabcdef12");
        assert_eq!(semverize("v1.20.2"), "v1.20.2");
        assert_eq!(major_minor("v1.20.2"), Some(("1".into(), "20".into())));
        assert_eq!(major_minor("v1.21.0-beta.1.3+abc"), Some(("1".into(), "21+".into())));
        assert_eq!(major_minor("1.20"), None);
    }

    #[test]
    fn archive_values() {
        let sh = "if [[ '%' == \"%\" ]]; then\n    KUBE_GIT_COMMIT='faecb196815e248d3ecfb03c680a4507229c2a56'\n    if [[ 'tag: v1.20.2' =~ tag:\\ (v[^ ,]+) ]]; then";
        assert_eq!(
            archive_substitutions(sh),
            Some(("faecb196815e248d3ecfb03c680a4507229c2a56".into(), Some("v1.20.2".into())))
        );
        assert_eq!(archive_substitutions("KUBE_GIT_COMMIT='$Format:%H$'"), None);
        let d = parse_defs("KUBE_GIT_COMMIT='abc'\nKUBE_GIT_TREE_STATE='clean'\nKUBE_GIT_VERSION='v1.2.3'\n");
        assert_eq!(
            ldflags(&d, &["p".into()], "D"),
            "-X 'p.buildDate=D' -X 'p.gitCommit=abc' -X 'p.gitTreeState=clean' -X 'p.gitVersion=v1.2.3'"
        );
    }
}
