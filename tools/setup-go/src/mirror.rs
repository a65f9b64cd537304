//! A Go download site: the official one or a mirror of its layout (`go<ver>.<os>-<arch>.tar.gz`,
//! a `.sha256` file beside each archive, a JSON listing at `?mode=json&include=all`).

use camino::Utf8Path;
use kube_tree::gover::GoVersion;
use kube_tree::{log, Fail};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::time::Duration;

/// The official download site.
pub const OFFICIAL: &str = "https://go.dev/dl/";

/// One archive of a release, as the listing describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub version: GoVersion,
    pub filename: String,
    pub sha256: String,
    pub size: Option<u64>,
}

#[derive(Clone)]
pub struct Mirror {
    base: String,
    agent: ureq::Agent,
    limits: Limits,
}

/// Whole-request deadlines (from the first byte sent to the last byte of the body), so that a
/// site that drips its answer cannot hold a run past them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The listing and a `.sha256` file: small answers (`KUBE_GO_MIRROR_TIMEOUT`, seconds).
    pub small: Duration,
    /// An archive, ~100 MB (`KUBE_GO_DOWNLOAD_TIMEOUT`, seconds).
    pub archive: Duration,
}

impl Limits {
    pub const DEFAULT: Limits = Limits { small: Duration::from_secs(60), archive: Duration::from_secs(1800) };

    /// The defaults, or the seconds the environment names (a whole number from 1 to 86400).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Limits, Fail> {
        let secs = |k: &str, d: Duration| -> Result<Duration, Fail> {
            let Some(v) = env(k).filter(|v| !v.is_empty()) else { return Ok(d) };
            match v.parse::<u64>() {
                Ok(n) if (1..=86400).contains(&n) && !v.starts_with('0') => Ok(Duration::from_secs(n)),
                _ => Err(Fail::new(format!("{k}=`{}`: expected whole seconds from 1 to 86400", v.escape_debug()))),
            }
        };
        Ok(Limits {
            small: secs("KUBE_GO_MIRROR_TIMEOUT", Limits::DEFAULT.small)?,
            archive: secs("KUBE_GO_DOWNLOAD_TIMEOUT", Limits::DEFAULT.archive)?,
        })
    }
}

/// The largest archive taken when neither the listing nor the server says its size (a Go
/// archive is 60-150 MB).
pub const MAX_UNLISTED: u64 = 1 << 30;

/// `GOOS`/`GOARCH` of this machine, as the archive names spell them.
pub fn host_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        o => o,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "armv6l",
        "powerpc64" => "ppc64le",
        a => a,
    };
    (os, arch)
}

/// The archive's name: `go1.15.5.linux-amd64.tar.gz` (`.zip` for Windows).
pub fn archive_name(v: &GoVersion, os: &str, arch: &str) -> String {
    let ext = if os == "windows" { "zip" } else { "tar.gz" };
    format!("go{}.{os}-{arch}.{ext}", v.text)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Mirror {
    /// `base` must be an http(s) URL with nothing a URL cannot hold; a `/` is added at its end.
    pub fn new(base: &str) -> Result<Mirror, Fail> {
        Mirror::with_limits(base, Limits::DEFAULT)
    }

    pub fn with_limits(base: &str, limits: Limits) -> Result<Mirror, Fail> {
        let ok_scheme = base.starts_with("https://") || base.starts_with("http://");
        let ok_chars = base.chars().all(|c| c.is_ascii_graphic() && !"\"'<>\\`{}|^".contains(c));
        if !ok_scheme || !ok_chars || base.len() > 2000 {
            return Err(Fail::new(format!(
                "`{}` is not a Go download mirror (expected an http:// or https:// URL, e.g. {OFFICIAL})",
                base.escape_debug()
            )));
        }
        let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_resolve(Some(Duration::from_secs(30)))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // A stalled download fails instead of hanging; a slow one may take its time.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Mirror { base, agent, limits })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn get(&self, what: &str, limit: Duration) -> Result<Option<ureq::http::Response<ureq::Body>>, Fail> {
        let url = format!("{}{what}", self.base);
        let resp = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(limit))
            .build()
            .call()
            .map_err(|e| Fail::new(format!("cannot reach {url}: {}", reason(&e, limit))))?;
        match resp.status().as_u16() {
            200 => Ok(Some(resp)),
            404 | 410 => Ok(None),
            s => Err(Fail::new(format!("{url}: HTTP {s}"))),
        }
    }

    /// The archives the listing offers for `os`/`arch`, newest first. None when the site has no
    /// listing (a plain file mirror); a listing it cannot read is an error.
    pub fn listing(&self, os: &str, arch: &str) -> Result<Option<Vec<Archive>>, Fail> {
        let what = "?mode=json&include=all";
        let Some(resp) = self.get(what, self.limits.small)? else { return Ok(None) };
        let url = format!("{}{what}", self.base);
        let text = resp
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| Fail::new(format!("{url}: {}", reason(&e, self.limits.small))))?;
        let bad = |why: &str| Fail::new(format!("{url}: not a Go release listing ({why})"));
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        let releases = json.as_array().ok_or_else(|| bad("not a JSON array"))?;
        let mut out = Vec::new();
        for r in releases {
            let files = r.get("files").and_then(|f| f.as_array()).ok_or_else(|| bad("a release without files"))?;
            for f in files {
                let s = |k: &str| f.get(k).and_then(|v| v.as_str()).unwrap_or("");
                if s("os") != os || s("arch") != arch || s("kind") != "archive" {
                    continue;
                }
                let Ok(version) = GoVersion::parse(s("version")) else {
                    return Err(bad(&format!("version `{}`", s("version").escape_debug())));
                };
                let (filename, sha256) = (s("filename").to_string(), s("sha256").to_ascii_lowercase());
                if filename != archive_name(&version, os, arch) || !is_hex64(&sha256) {
                    return Err(bad(&format!("entry `{}`", filename.escape_debug())));
                }
                out.push(Archive { version, filename, sha256, size: f.get("size").and_then(|v| v.as_u64()) });
            }
        }
        out.sort_by(|a, b| kube_tree::gover::cmp(&b.version, &a.version));
        out.dedup_by(|a, b| a.version == b.version);
        Ok(Some(out))
    }

    /// The archive of `v` from its `.sha256` file (for sites without a listing); None when the
    /// site does not have it.
    pub fn by_checksum_file(&self, v: &GoVersion, os: &str, arch: &str) -> Result<Option<Archive>, Fail> {
        let filename = archive_name(v, os, arch);
        let what = format!("{filename}.sha256");
        let Some(resp) = self.get(&what, self.limits.small)? else { return Ok(None) };
        let text = resp
            .into_body()
            .with_config()
            .limit(4096)
            .read_to_string()
            .map_err(|e| Fail::new(format!("{}{what}: {}", self.base, reason(&e, self.limits.small))))?;
        let sha256 = text.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        if !is_hex64(&sha256) {
            return Err(Fail::new(format!("{}{what}: not a SHA-256 checksum", self.base)));
        }
        Ok(Some(Archive { version: v.clone(), filename, sha256, size: None }))
    }

    /// Downloads `a` into `file` (new and empty; the caller removes it on failure), checking its
    /// size and SHA-256. The listed size caps what is written: a body that runs past it stops
    /// there. Returns the bytes written.
    pub fn download(&self, a: &Archive, file: &mut fs_err::File) -> Result<u64, Fail> {
        let url = format!("{}{}", self.base, a.filename);
        let limit = self.limits.archive;
        let resp = self.get(&a.filename, limit)?.ok_or_else(|| Fail::new(format!("{url}: not found (HTTP 404)")))?;
        let announced = resp.body().content_length();
        if let (Some(listed), Some(said)) = (a.size, announced.filter(|s| Some(*s) != a.size)) {
            return Err(Fail::new(format!(
                "{url}: the server announces {said} bytes, the listing {listed}; nothing installed"
            )));
        }
        let cap = a.size.or(announced).unwrap_or(MAX_UNLISTED).min(MAX_UNLISTED);
        let bar = progress(Some(cap), &a.filename);
        let mut reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let (mut hash, mut n, mut buf) = (Sha256::new(), 0u64, vec![0u8; 256 << 10]);
        loop {
            if kube_tree::proc::interrupted() {
                return Err(Fail::interrupted());
            }
            let k = reader
                .read(&mut buf)
                .map_err(|e| Fail::new(format!("{url}: download failed after {n} bytes: {}", io_reason(&e, limit))))?;
            if k == 0 {
                break;
            }
            if n + k as u64 > cap {
                return Err(Fail::new(format!(
                    "{url}: the server sends more than the {cap} bytes {}; stopped, nothing installed",
                    if a.size.is_some() { "the listing gives" } else { "it announced (or the cap)" }
                )));
            }
            hash.update(&buf[..k]);
            file.write_all(&buf[..k])?;
            n += k as u64;
            bar.set_position(n);
        }
        bar.finish_and_clear();
        file.sync_all()?;
        if let Some(want) = a.size.or(announced).filter(|l| *l != n) {
            return Err(Fail::new(format!("{url}: truncated download ({n} of {want} bytes); nothing installed")));
        }
        let got = hash.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>();
        if got != a.sha256 {
            return Err(Fail::new(format!(
                "{url}: SHA-256 mismatch (got {got}, the site lists {}); nothing installed",
                a.sha256
            )));
        }
        Ok(n)
    }
}

/// Why a request failed, in words: a deadline is named with its knob.
fn reason(e: &ureq::Error, limit: Duration) -> String {
    match e {
        ureq::Error::Timeout(_) => deadline(limit),
        ureq::Error::Io(io) => io_reason(io, limit),
        e => e.to_string(),
    }
}

fn io_reason(e: &std::io::Error, limit: Duration) -> String {
    let timed_out = e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|i| i.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
    if timed_out {
        deadline(limit)
    } else {
        e.to_string()
    }
}

fn deadline(limit: Duration) -> String {
    format!(
        "no complete answer within {} (KUBE_GO_MIRROR_TIMEOUT for listings, KUBE_GO_DOWNLOAD_TIMEOUT for archives)",
        log::human(limit)
    )
}

/// A progress bar on stderr (hidden when stderr is not a terminal or with -q).
/// The HTTP status `url` answers with within `limit` (any status: the server is there), or why
/// it does not answer. Proxies from the environment apply, as for downloads.
pub fn answers(url: &str, limit: Duration) -> Result<u16, String> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(limit)).build().into();
    agent.get(url).call().map(|r| r.status().as_u16()).map_err(|e| e.to_string())
}

fn progress(len: Option<u64>, name: &str) -> indicatif::ProgressBar {
    if log::level() < 1 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(l) => indicatif::ProgressBar::new(l),
        None => indicatif::ProgressBar::no_length(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} ({elapsed})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(name.to_string());
    bar
}

/// A path's file name, for messages.
pub fn file_name(p: &Utf8Path) -> &str {
    p.file_name().unwrap_or(p.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_bases() {
        let v = GoVersion::parse("1.15.5").unwrap();
        assert_eq!(archive_name(&v, "linux", "amd64"), "go1.15.5.linux-amd64.tar.gz");
        assert_eq!(archive_name(&v, "windows", "amd64"), "go1.15.5.windows-amd64.zip");
        assert_eq!(
            Mirror::new("https://mirrors.example.com/golang").unwrap().base(),
            "https://mirrors.example.com/golang/"
        );
        for bad in ["ftp://x/", "https://x/ y", "file:///etc", "https://x/$(id)`", "https://x/\n", "-o/tmp/x"] {
            assert!(Mirror::new(bad).is_err(), "{bad:?}");
        }
    }
}
