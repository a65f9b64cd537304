//! Go release versions as Kubernetes trees and toolchains write them.

use std::cmp::Ordering;

/// A Go release: `1.15.8`, `1.22.0`, `1.24rc2`, `1.21beta1`, `1.15`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoVersion {
    pub text: String,
    pub major: u32,
    pub minor: u32,
    /// `rc2`, `beta1`: a pre-release.
    pub pre: Option<String>,
}

impl GoVersion {
    /// Accepts an optional `go` prefix; anything else than a Go release is an error.
    pub fn parse(s: &str) -> Result<GoVersion, String> {
        let t = s.strip_prefix("go").unwrap_or(s);
        let shown: String = s.chars().take(40).collect::<String>() + if s.chars().count() > 40 { "..." } else { "" };
        let bad = || {
            format!("`{}` is not a Go release (expected e.g. 1.15.8, go1.15.8, 1.24rc2, 1.22.0)", shown.escape_debug())
        };
        // Sane sizes: no Go release has a number of more than four digits.
        let numbers_fit = t.split(|c: char| !c.is_ascii_digit()).all(|n| n.len() <= 4);
        if t.len() > 16 || !numbers_fit {
            return Err(bad());
        }
        let (major, rest) = t.split_once('.').ok_or_else(bad)?;
        if major != "1" {
            return Err(bad());
        }
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (minor, tail) = rest.split_at(digits);
        // `1.015.8` would read as 1.15.8 but is no name Go ever used: canonical spellings only.
        if minor.len() > 1 && minor.starts_with('0') {
            return Err(bad());
        }
        let minor: u32 = minor.parse().map_err(|_| bad())?;
        let pre = if tail.is_empty() {
            None
        } else if let Some(p) = tail.strip_prefix('.') {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0')) {
                return Err(bad());
            }
            None
        } else {
            let ok = ["rc", "beta"]
                .iter()
                .any(|k| tail.strip_prefix(k).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
            if !ok {
                return Err(bad());
            }
            Some(tail.to_string())
        };
        Ok(GoVersion { text: t.to_string(), major: 1, minor, pre })
    }

    /// A name a Go release was published under, for a version the user asks to move to or
    /// install: `1.N` is only a release up to 1.20 (from 1.21 on it is the language version, and
    /// the first release is `1.N.0`); `1.N.0` was never a release name before 1.21.
    pub fn release(s: &str) -> Result<GoVersion, String> {
        let v = GoVersion::parse(s)?;
        match (v.patch(), v.pre.is_some()) {
            (None, false) if v.minor >= 21 => Err(format!(
                "`{}` is the Go 1.{} language version, not a release: name the release (e.g. 1.{}.0), as toolchain names need it",
                v.text, v.minor, v.minor
            )),
            (Some(0), _) if v.minor <= 20 => Err(format!("`{}` was never a Go release name: Go 1.{}'s first release is 1.{}", v.text, v.minor, v.minor)),
            _ => Ok(v),
        }
    }

    /// The patch number (`1.15.8` -> 8), None for `1.15` and pre-releases.
    pub fn patch(&self) -> Option<u32> {
        self.text.splitn(3, '.').nth(2).and_then(|p| p.parse().ok())
    }

    /// `1.N` (the language version).
    pub fn minor_line(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

/// Orders releases: 1.15 < 1.15.1 < 1.16rc1 < 1.16 = 1.16.0 < 1.16.1.
pub fn cmp(a: &GoVersion, b: &GoVersion) -> Ordering {
    let key = |v: &GoVersion| {
        let patch = v.patch().unwrap_or(0);
        // A pre-release sorts before the .0 release of its minor.
        (v.major, v.minor, v.pre.is_none(), patch, v.pre.clone().unwrap_or_default())
    };
    key(a).cmp(&key(b))
}

/// The version in `go version` output (`go version go1.19.8 linux/amd64` -> 1.19.8).
pub fn from_go_version_output(out: &str) -> Option<GoVersion> {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("go").filter(|r| r.starts_with("1.")).and_then(|r| GoVersion::parse(r).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_releases_and_rejects_the_rest() {
        for ok in ["1.15.8", "go1.15.8", "1.24rc2", "1.22.0", "1.21beta1", "1.15"] {
            assert!(GoVersion::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(GoVersion::parse("go1.24rc2").unwrap().pre.as_deref(), Some("rc2"));
        for bad in [
            "",
            "1",
            "2.0.0",
            "1.15.123456",
            "1.99999.1",
            "1.2.3\n",
            "1.15.1rc1",
            "1.x",
            "1.15.",
            "1.15.8.1",
            "v1.15.8",
            "1.24rc",
            "1.15-rc1",
            "1.15.08",
            "1.015.8",
            "01.15.8",
            "1.00",
            "latest",
        ] {
            assert!(GoVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn release_names_only() {
        for ok in ["1.15.8", "1.20", "1.21.0", "go1.24.11", "1.24rc2", "1.12.9"] {
            assert!(GoVersion::release(ok).is_ok(), "{ok}");
        }
        for bad in [
            "1.24",
            "1.21",
            "1.0.0",
            "1.15.0",
            "1.20.0",
            "1.015.8",
            "go1.015.5",
            &format!("1.15.{}", "9".repeat(10_000)),
        ] {
            assert!(GoVersion::release(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn orders_releases() {
        let v = |s: &str| GoVersion::parse(s).unwrap();
        assert_eq!(cmp(&v("1.15"), &v("1.15.0")), Ordering::Equal);
        assert_eq!(cmp(&v("1.16rc1"), &v("1.16.0")), Ordering::Less);
        assert_eq!(cmp(&v("1.15.9"), &v("1.16rc1")), Ordering::Less);
        assert_eq!(cmp(&v("1.19.8"), &v("1.15.0")), Ordering::Greater);
        assert_eq!(from_go_version_output("go version go1.19.8 linux/amd64\n"), Some(v("1.19.8")));
        assert_eq!(from_go_version_output("go version devel +abc"), None);
    }
}
