//! Values that reach docker, podman or rsync from the command line or the environment, checked
//! before they are used: an image reference, a registry, a port, an engine program. A value that
//! could be read as an option (a leading `-`) or that holds a control character never passes.

use crate::fail::{Fail, Result};

fn refuse(what: &str, v: &str, why: &str) -> Fail {
    Fail::new(format!("{what} `{}`: {why}", v.escape_debug()))
}

/// Characters of a reference's name part: lowercase letters, digits, `.`, `_`, `-`, `/` and
/// the registry's `:port`; uppercase only in the registry host (docker's own rule).
fn name_ok(name: &str) -> bool {
    let (host, path) = match name.split_once('/') {
        Some((h, p)) if h.contains(['.', ':']) || h == "localhost" => (h, p),
        _ => ("", name),
    };
    let host_ok = host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    let path_ok = !path.is_empty()
        && path.split('/').all(|c| {
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    host_ok && path_ok
}

/// `[registry[:port]/]path[:tag][@sha256:hex]`, as docker parses image references.
pub fn image_ref(what: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > 255 || v.starts_with('-') || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refuse(what, v, "not an image reference (e.g. registry.k8s.io/build-image/kube-cross:v1.15.5-1)"));
    }
    let (rest, digest) = match v.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (v, None),
    };
    if let Some(d) = digest {
        let hex = d.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refuse(what, v, "a digest must be sha256:<64 hex digits>"));
        }
    }
    // A tag is after the last `:` that follows the last `/` (a registry port is before it).
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        tag_ok(what, v, t)?;
    }
    if !name_ok(name) {
        return Err(refuse(
            what,
            v,
            "not an image reference (lowercase name parts of [a-z0-9._-], an optional registry host[:port])",
        ));
    }
    Ok(())
}

fn tag_ok(what: &str, v: &str, t: &str) -> Result<()> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(refuse(what, v, "a tag is 1-128 of [A-Za-z0-9_.-], not starting with `.` or `-`"))
    }
}

/// An image tag alone (`KUBE_CROSS_VERSION`).
pub fn tag(what: &str, v: &str) -> Result<()> {
    tag_ok(what, v, v)
}

/// A registry or mirror: `host[:port][/path]` (no tag).
pub fn registry(what: &str, v: &str) -> Result<()> {
    let v2 = v.trim_end_matches('/');
    let first = v2.split('/').next().unwrap_or("");
    let host_ok = !first.is_empty()
        && !first.starts_with('-')
        && first.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        && first.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0));
    let path_ok = v2.split('/').skip(1).all(|c| {
        !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    });
    if host_ok && path_ok && v.len() <= 255 {
        Ok(())
    } else {
        Err(refuse(what, v, "not a registry (host[:port][/path], e.g. 127.0.0.1:5000/k8s)"))
    }
}

/// A TCP port, 1-65535.
pub fn port(what: &str, v: &str) -> Result<u16> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(refuse(what, v, "not a port (1-65535)")),
    }
}

/// A Go platform, `os/arch` (lowercase letters and digits on each side), as KUBE_BUILD_PLATFORMS
/// lists them.
pub fn platform(what: &str, v: &str) -> Result<()> {
    let part =
        |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    match v.split_once('/') {
        Some((os, arch)) if part(os) && part(arch) => Ok(()),
        _ => Err(refuse(what, v, "not a platform (os/arch, e.g. linux/arm64)")),
    }
}

/// The engine program: `docker`, `podman`, or a path whose file name is one of them.
pub fn engine(what: &str, v: &str) -> Result<()> {
    let name = v.rsplit('/').next().unwrap_or("");
    if ["docker", "podman"].contains(&name) && !v.starts_with('-') && !v.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(refuse(what, v, "the engine is docker or podman (or a path to one of them)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        for ok in ["linux/amd64", "windows/386", "linux/s390x", "darwin/arm64"] {
            assert!(platform("p", ok).is_ok(), "{ok}");
        }
        for bad in ["linux", "linux/", "/amd64", "Linux/amd64", "linux/amd64/v2", "linux/am d64", "../x", "linux/$(x)"]
        {
            assert!(platform("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_references() {
        for ok in [
            "k8s.gcr.io/build-image/kube-cross:v1.15.5-1",
            "registry.k8s.io/build-image/kube-cross:v1.33.0-go1.24.0-bullseye.0",
            "127.0.0.1:5000/k8s/kube-cross:v1",
            "localhost/kit-test-cross",
            "busybox",
        ] {
            assert!(image_ref("--cross-image", ok).is_ok(), "{ok}");
        }
        assert!(image_ref("--cross-image", &format!("busybox@sha256:{}", "a".repeat(64))).is_ok());
        for bad in ["", "--privileged", "a b", "Upper/Case", "x:", "x:-1", "x\n", "a//b", "x@sha256:12"] {
            assert!(image_ref("--cross-image", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn registries_ports_engines() {
        for ok in ["127.0.0.1:5000", "127.0.0.1:5000/k8s", "mirror.example.org/k8s/", "localhost:1"] {
            assert!(registry("--mirror", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "host:0", "host:99999", "host/UP", "a b"] {
            assert!(registry("--mirror", bad).is_err(), "{bad:?}");
        }
        assert_eq!(port("KUBE_RSYNC_PORT", "8730").unwrap(), 8730);
        for bad in ["abc", "0", "-1", "99999", "", "+5", " 80"] {
            assert!(port("KUBE_RSYNC_PORT", bad).is_err(), "{bad:?}");
        }
        for ok in ["docker", "podman", "/usr/bin/podman"] {
            assert!(engine("--engine", ok).is_ok(), "{ok}");
        }
        for bad in ["sh", "/bin/sh", "-docker", "dockerx", "/usr/bin/"] {
            assert!(engine("--engine", bad).is_err(), "{bad}");
        }
    }
}
