//! Version text in carrier lines, and the tags derived from a Go version.

pub use kube_tree::gover::GoVersion;

/// Replaces `old` by `new` in `text` where `old` stands as a whole version (not inside a longer
/// number: `1.15.5` does not match in `1.15.50` or `11.15.5`). Returns None if it never does.
pub fn replace_version(text: &str, old: &str, new: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    let mut hit = false;
    while let Some(i) = rest.find(old) {
        let before = rest[..i].chars().last();
        let after = &rest[i + old.len()..];
        let bad_before = before.is_some_and(|c| c.is_ascii_digit() || c == '.');
        let mut ac = after.chars();
        let bad_after = match ac.next() {
            Some(c) if c.is_ascii_digit() => true,
            Some('.') => ac.next().is_some_and(|c| c.is_ascii_digit()),
            // `1.24` inside `1.24rc2` is another version.
            Some(_) => after.starts_with("rc") || after.starts_with("beta"),
            None => false,
        };
        out.push_str(&rest[..i]);
        if bad_before || bad_after {
            out.push_str(old);
        } else {
            out.push_str(new);
            hit = true;
        }
        rest = after;
    }
    out.push_str(rest);
    hit.then_some(out)
}

/// True if `old` stands in `text` as a whole version.
pub fn carries(text: &str, v: &str) -> bool {
    replace_version(text, v, "\u{0}").is_some()
}

/// The tag that follows a Go bump, for the two shapes Kubernetes used:
/// `v<go>-<rev>` (kube-cross until 2021: `v1.15.5-1`) takes the new Go and revision `rev` (default 1);
/// `v<x>-go<go>-<codename>.<rev>` (kube-cross `v1.33.0-go1.24rc2-bullseye.0`, go-runner
/// `v2.4.0-go1.24rc2-bookworm.0`) keeps `v<x>` and the codename, takes the new Go and revision
/// `rev` (default 0).
pub fn derive_tag(old_tag: &str, old_go: &str, new_go: &str, rev: Option<u32>) -> Option<String> {
    if let Some(r) = old_tag.strip_prefix('v').and_then(|t| t.strip_prefix(old_go)).and_then(|t| t.strip_prefix('-')) {
        if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!("v{new_go}-{}", rev.unwrap_or(1)));
        }
    }
    let marker = format!("-go{old_go}-");
    let i = old_tag.find(&marker)?;
    let tail = &old_tag[i + marker.len()..];
    let dot = tail.rfind('.')?;
    if !tail[dot + 1..].bytes().all(|b| b.is_ascii_digit()) || tail[dot + 1..].is_empty() {
        return None;
    }
    Some(format!("{}-go{new_go}-{}.{}", &old_tag[..i], &tail[..dot], rev.unwrap_or(0)))
}

/// The Go version a tag carries (`v1.15.5-1` -> 1.15.5, `v1.33.0-go1.24rc2-bullseye.0` -> 1.24rc2).
pub fn go_of_tag(tag: &str) -> Option<String> {
    if let Some(i) = tag.find("-go") {
        let rest = &tag[i + 3..];
        return Some(rest[..rest.find('-').unwrap_or(rest.len())].to_string());
    }
    let t = tag.strip_prefix('v')?;
    let (go, rev) = t.rsplit_once('-')?;
    (rev.bytes().all(|b| b.is_ascii_digit()) && GoVersion::parse(go).is_ok()).then(|| go.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_versions_only() {
        assert_eq!(
            replace_version("GOLANG_VERSION=1.15.5", "1.15.5", "1.15.8").as_deref(),
            Some("GOLANG_VERSION=1.15.8")
        );
        assert_eq!(replace_version("x 1.15.50 11.15.5 1.15.5.1", "1.15.5", "1.15.8"), None);
        assert_eq!(replace_version("go1.24rc2-", "1.24rc2", "1.24.0").as_deref(), Some("go1.24.0-"));
        assert_eq!(replace_version("1.24rc2 1.24", "1.24", "1.25"), Some("1.24rc2 1.25".into()));
        assert!(carries("FROM golang:1.15.5 AS builder", "1.15.5"));
    }

    #[test]
    fn derives_tags_in_both_shapes() {
        assert_eq!(derive_tag("v1.15.5-1", "1.15.5", "1.15.8", None).as_deref(), Some("v1.15.8-1"));
        assert_eq!(derive_tag("v1.16.4-2", "1.16.4", "1.16.5", None).as_deref(), Some("v1.16.5-1"));
        assert_eq!(derive_tag("v1.12.9-1", "1.12.9", "1.12.10", Some(3)).as_deref(), Some("v1.12.10-3"));
        assert_eq!(
            derive_tag("v1.33.0-go1.24rc2-bullseye.0", "1.24rc2", "1.24.0", None).as_deref(),
            Some("v1.33.0-go1.24.0-bullseye.0")
        );
        assert_eq!(
            derive_tag("v1.29.0-go1.21.7-bullseye.2", "1.21.7", "1.21.8", None).as_deref(),
            Some("v1.29.0-go1.21.8-bullseye.0")
        );
        assert_eq!(
            derive_tag("v2.4.0-go1.24rc2-bookworm.0", "1.24rc2", "1.24.0", None).as_deref(),
            Some("v2.4.0-go1.24.0-bookworm.0")
        );
        assert_eq!(derive_tag("buster-v2.2.2", "1.15.5", "1.15.8", None), None);
        assert_eq!(go_of_tag("v1.15.5-1").as_deref(), Some("1.15.5"));
        assert_eq!(go_of_tag("v1.33.0-go1.24rc2-bullseye.0").as_deref(), Some("1.24rc2"));
        assert_eq!(go_of_tag("buster-v2.2.2"), None);
    }
}
