//! Values that reach docker, podman or rsync from the command line or the environment, checked
//! before they are used: an image reference, a registry, a port, an engine program or endpoint.
//! A value that could be read as an option (a leading `-`) or that holds a control character
//! never passes. Refusals quote the value with any password in it masked ([`masked`]).

use crate::fail::{Fail, Result};

fn refuse(what: &str, v: &str, why: &str) -> Fail {
    Fail::new(format!("{what} `{}`: {why}", masked(v).escape_debug()))
}

/// One path component of an image name, in the reference grammar docker uses:
/// `[a-z0-9]+` runs joined by one `.`, one or two `_`, or any number of `-` (so never empty,
/// `.`, `..`, nor starting or ending with a separator).
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !alnum_lower(b[0]) || !alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let run = b[i..].iter().take_while(|x| !alnum_lower(**x)).count();
        let sep = &c[i..i + run];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
        i += run;
    }
    true
}

fn alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A registry host as docker reads one: DNS labels (letters, digits, inner `-`) joined by `.`,
/// or `[IPv6]`, then an optional `:port` of 1-65535 with no leading zero.
fn host_ok(h: &str) -> bool {
    let (host, port) = match h.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if addr.parse::<std::net::Ipv6Addr>().is_ok() => {
                (None, if rest.is_empty() { None } else { Some(rest.strip_prefix(':').unwrap_or("x")) })
            }
            _ => return false,
        },
        None => match h.split_once(':') {
            Some((name, p)) => (Some(name), Some(p)),
            None => (Some(h), None),
        },
    };
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    };
    host.is_none_or(|n| n.len() <= 253 && n.split('.').all(label_ok)) && port.is_none_or(|p| port_number(p).is_some())
}

/// A port number 1-65535 written plainly: digits, no sign, no leading zero.
fn port_number(v: &str) -> Option<u16> {
    let plain = !v.is_empty() && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit());
    plain.then(|| v.parse::<u16>().ok()).flatten()
}

/// Splits an image name into its registry host (when the first part is one: it holds a `.` or
/// a `:`, or is `localhost`) and its path.
fn split_host(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((h, p)) if h.contains(['.', ':', '[']) || h == "localhost" => (h, p),
        _ => ("", name),
    }
}

/// An image name (no tag): `[host[:port]/]component[/component...]`.
fn name_ok(name: &str) -> bool {
    let (host, path) = split_host(name);
    (host.is_empty() || host_ok(host)) && !path.is_empty() && path.split('/').all(component_ok)
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
            "not an image reference (name parts of [a-z0-9] joined by `.`, `_`, `__` or `-`, no empty, `.` or `..` part; an optional registry host[:port 1-65535])",
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

/// A registry or mirror: `host[:port][/path]` (no scheme, no tag, no credentials: docker pulls
/// by reference, and logs in with `docker login`).
pub fn registry(what: &str, v: &str) -> Result<()> {
    let v2 = v.strip_suffix('/').unwrap_or(v);
    let (host, path) = v2.split_once('/').unwrap_or((v2, ""));
    let ok = v.len() <= 255
        && host_ok(host)
        && !host.starts_with('-')
        && (path.is_empty() || path.split('/').all(component_ok));
    if ok {
        Ok(())
    } else {
        let hint = if v.contains("://") || v.contains('@') { " without scheme or credentials" } else { "" };
        Err(refuse(
            what,
            v,
            &format!(
                "not a registry (host[:port][/path]{hint}, e.g. 127.0.0.1:5000/k8s; no empty, `.` or `..` path part)"
            ),
        ))
    }
}

/// A TCP port, 1-65535, written plainly (`08730` is refused: it is not the number the user
/// reads, and docker would see a different text than the one we record).
pub fn port(what: &str, v: &str) -> Result<u16> {
    port_number(v).ok_or_else(|| refuse(what, v, "not a port (1-65535): digits only, no sign or leading zero"))
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

/// An engine endpoint (DOCKER_HOST, CONTAINER_HOST, a fan-out entry): no control character or
/// space; `ssh://[USER@]HOST[:PORT][/PATH]` with a user and host that cannot be read as options
/// by ssh (`ssh://-oProxyCommand=...` runs a program); `tcp://HOST:PORT` with a real host and
/// port. Other schemes (`unix://`, `npipe://`, `fd://`) reach no program of ours.
pub fn endpoint(what: &str, v: &str) -> Result<()> {
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refuse(what, v, "an engine endpoint holds no space or control character"));
    }
    if let Some(rest) = v.strip_prefix("ssh://") {
        let authority = rest.split('/').next().unwrap_or("");
        let (user, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let user_ok = user.is_none_or(|u| {
            let b = u.as_bytes();
            !b.is_empty() && b[0] != b'-' && b.iter().all(|x| x.is_ascii_alphanumeric() || b"._-".contains(x))
        });
        if !user_ok || !host_ok(host) {
            return Err(refuse(
                what,
                v,
                "ssh://[USER@]HOST[:PORT]: the user is [A-Za-z0-9._-] and the host a DNS name or [IPv6], neither starting with `-`",
            ));
        }
    } else if let Some(rest) = v.strip_prefix("tcp://") {
        let authority = rest.split('/').next().unwrap_or("");
        if !host_ok(authority) {
            return Err(refuse(what, v, "tcp://HOST[:PORT]: a DNS name, IPv4 or [IPv6] host, port 1-65535"));
        }
    }
    Ok(())
}

/// `s` with the password of every URL-style credential masked: `http://user:secret@host` and
/// `user:secret@host` become `user:***@host` (a user alone, `rsync://k8s@host`, stays). Image digests (`name@sha256:...`) are left alone: nothing before their `@` is a
/// credential. For every log line and refusal that quotes a value a user gave.
pub fn masked(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    // Each word (split where a URL cannot continue) is judged on its own.
    while let Some(start) = rest.find(|c: char| !word_end(c)) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let len = rest.find(word_end).unwrap_or(rest.len());
        out.push_str(&mask_word(&rest[..len]));
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

fn word_end(c: char) -> bool {
    c.is_whitespace() || c.is_control() || "'\"`<>(){}|".contains(c)
}

/// One word: its authority (after `scheme://` or `KEY=`, else from its start, up to the first
/// `/`) up to the last `@` is a credential when it holds a `:`.
fn mask_word(w: &str) -> String {
    let (prefix, after) = match w.find("://") {
        Some(i) => (&w[..i + 3], &w[i + 3..]),
        None => match w.find('=') {
            // `https_proxy=http://...` is handled by the scheme; `KEY=user:pw@host` here.
            Some(i) => (&w[..i + 1], &w[i + 1..]),
            None => ("", w),
        },
    };
    let authority = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
    let Some(at) = authority.rfind('@') else { return w.to_string() };
    let userinfo = &authority[..at];
    // A user alone (`rsync://k8s@host`) is a name, not a secret.
    let Some((user, _)) = userinfo.split_once(':') else { return w.to_string() };
    format!("{prefix}{user}:***{}", &after[at..])
}

#[cfg(test)]
mod tests {
    use super::{endpoint, engine, image_ref, masked, platform, port, registry};

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
            "localhost:5000/a__b/c--d/e.f",
            "[::1]:5000/k8s/kube-cross:v1",
            "Mirror.Example.org/x",
            "busybox",
        ] {
            assert!(image_ref("--cross-image", ok).is_ok(), "{ok}");
        }
        assert!(image_ref("--cross-image", &format!("busybox@sha256:{}", "a".repeat(64))).is_ok());
        for bad in [
            "",
            "--privileged",
            "a b",
            "Upper/Case",
            "x:",
            "x:-1",
            "x\n",
            "a//b",
            "x@sha256:12",
            "a/../b:v1",
            "a/./b",
            "../b",
            "localhost:5000/../evil",
            "127.0.0.1:99999/k8s/kube-cross:v1",
            "127.0.0.1:0/x",
            "127.0.0.1:05000/x",
            "host:/x",
            "-host.io/x",
            "a_-b",
            "a___b",
            ".a",
            "a.",
            "[zz]:5000/x",
        ] {
            assert!(image_ref("--cross-image", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn registries_and_ports() {
        for ok in ["127.0.0.1:5000", "127.0.0.1:5000/k8s", "mirror.example.org/k8s/", "localhost:1", "[::1]:5000/k8s"] {
            assert!(registry("--mirror", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "host:0",
            "host:99999",
            "host:080",
            "host/UP",
            "a b",
            "localhost:5000/../evil",
            "localhost:5000/./x",
            "localhost:5000//x",
            "http://127.0.0.1:5000",
            "user:secret@127.0.0.1:5000",
        ] {
            assert!(registry("--mirror", bad).is_err(), "{bad:?}");
        }
        let e = registry("--mirror", "http://user:secret@host/k8s").unwrap_err();
        assert!(!e.msg.contains("secret") && e.msg.contains("user:***@host"), "{}", e.msg);
        assert!(e.msg.contains("without scheme or credentials"), "{}", e.msg);
        assert_eq!(port("KUBE_RSYNC_PORT", "8730").unwrap(), 8730);
        assert_eq!(port("KUBE_RSYNC_PORT", "65535").unwrap(), 65535);
        for bad in ["abc", "0", "-1", "99999", "65536", "", "+5", " 80", "08730", "00", "8730 "] {
            assert!(port("KUBE_RSYNC_PORT", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn engines_and_endpoints() {
        for ok in ["docker", "podman", "/usr/bin/podman"] {
            assert!(engine("--engine", ok).is_ok(), "{ok}");
        }
        for bad in ["sh", "/bin/sh", "-docker", "dockerx", "/usr/bin/"] {
            assert!(engine("--engine", bad).is_err(), "{bad}");
        }
        for ok in [
            "ssh://builder@host.example.org",
            "ssh://host:2222",
            "ssh://u@[::1]:22",
            "tcp://10.0.0.2:2376",
            "tcp://docker:2375/",
            "unix:///run/docker.sock",
            "npipe:////./pipe/docker_engine",
        ] {
            assert!(endpoint("DOCKER_HOST", ok).is_ok(), "{ok}");
        }
        for bad in [
            "ssh://-oProxyCommand=touch${IFS}/tmp/x",
            "ssh://-oProxyCommand=x@host",
            "ssh://u@-host",
            "ssh://",
            "ssh://u@",
            "ssh://h:0",
            "ssh://h:99999",
            "tcp://-h:2375",
            "tcp://h:x",
            "ssh://h\n",
            "tcp://a b:1",
        ] {
            assert!(endpoint("DOCKER_HOST", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_masked() {
        for (raw, want) in [
            ("http://user:secret@host:5000/x", "http://user:***@host:5000/x"),
            ("pulling user:secret@host/k8s now", "pulling user:***@host/k8s now"),
            ("--env https_proxy=http://u:p@ss@proxy:3128", "--env https_proxy=http://u:***@proxy:3128"),
            ("`KEY=u:pw@h`", "`KEY=u:***@h`"),
            ("'http://a:b@c' and 'http://d:e@f/g'", "'http://a:***@c' and 'http://d:***@f/g'"),
        ] {
            assert_eq!(masked(raw), want, "{raw}");
        }
        // Nothing that only looks alike changes: digests, a user alone, e-mail, ports.
        for same in [
            "busybox@sha256:0123",
            "127.0.0.1:5000/k8s/kube-cross@sha256:ab",
            "rsync://k8s@127.0.0.1:8730/k8s/",
            "GIT_AUTHOR_EMAIL=nobody@k8s.io",
            "-p 127.0.0.1:8730:8730",
            "",
        ] {
            assert_eq!(masked(same), same);
        }
        // Every command shown (plans, `-v` logs, errors) goes through Proc::display.
        let shown = crate::proc::Proc::new("docker")
            .env("https_proxy", "http://u:secret@p:3128")
            .args(["pull", "--env", "http_proxy=http://u:secret@p:3128"])
            .display();
        assert!(!shown.contains("secret") && shown.matches("u:***@p:3128").count() == 2, "{shown}");
    }
}
