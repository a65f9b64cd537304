//! The Go installations already on the machine: read from their `VERSION` files (no process
//! is started, so looking is cheap and cannot hang).

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::gover::{self, GoVersion};
use kube_tree::log;

/// One Go installation: its GOROOT, its version, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub version: GoVersion,
    pub goroot: Utf8PathBuf,
    pub place: &'static str,
}

impl Installed {
    pub fn go(&self) -> Utf8PathBuf {
        self.goroot.join("bin/go")
    }
}

/// The version of the Go at `goroot`: `VERSION`'s first line (`go1.15.15`), with `bin/go` there.
pub fn version_at(goroot: &Utf8Path) -> Option<GoVersion> {
    if !goroot.join("bin/go").is_file() {
        return None;
    }
    let text = read_small(&goroot.join("VERSION"))?;
    GoVersion::parse(text.lines().next()?.trim()).ok()
}

/// The first 4 KiB of a regular file (a FIFO or a device named VERSION is not read: it could
/// block or never end), as text.
pub fn read_small(p: &Utf8Path) -> Option<String> {
    if !std::fs::metadata(p).ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(std::fs::File::open(p).ok()?, 4096), &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// The GOROOT of the `go` on PATH (through its links: Debian's /usr/bin/go is one).
pub fn host_goroot() -> Option<Utf8PathBuf> {
    let go = kube_tree::proc::which("go")?;
    let real = Utf8PathBuf::from_path_buf(std::fs::canonicalize(go).ok()?).ok()?;
    Some(real.parent()?.parent()?.to_owned())
}

/// The Go on PATH, when its version can be read without running it.
pub fn host() -> Option<Installed> {
    let goroot = host_goroot()?;
    Some(Installed { version: version_at(&goroot)?, goroot, place: "PATH" })
}

/// Every Go found: on PATH, at `$GOROOT`, `~/sdk/go*` (golang.org/dl), `/usr/lib/go-*`
/// (Debian), `/usr/local/go` (the official tarball's home), this kit's cache, and the Go that
/// `cargo xtask fetch-tree --go` unpacked (`<cache>/go-*/root/usr/lib/go-*`).
pub fn all(cache_go: &Utf8Path, env: &dyn Fn(&str) -> Option<String>) -> Vec<Installed> {
    let mut found: Vec<Installed> = Vec::new();
    let mut add = |goroot: Utf8PathBuf, place: &'static str| {
        if goroot.as_str().chars().any(char::is_control) {
            // Such a GOROOT cannot be put safely into shell lines, TSV or logs: not a candidate.
            log::status_v(2, format!("not considered: `{}` (control characters)", goroot.as_str().escape_debug()));
            return;
        }
        let Some(version) = version_at(&goroot) else { return };
        let real = std::fs::canonicalize(&goroot).ok();
        if found.iter().any(|f| std::fs::canonicalize(&f.goroot).ok() == real) {
            return;
        }
        found.push(Installed { version, goroot, place });
    };
    if let Some(r) = host_goroot() {
        add(r, "PATH");
    }
    if let Some(r) = env("GOROOT").filter(|r| !r.is_empty()) {
        add(r.into(), "GOROOT");
    }
    let children = |dir: Utf8PathBuf, prefix: &str| -> Vec<Utf8PathBuf> {
        let mut v: Vec<Utf8PathBuf> = dir
            .read_dir_utf8()
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().starts_with(prefix) && !e.file_name().starts_with('.'))
            .map(|e| e.into_path())
            .collect();
        v.sort();
        v
    };
    if let Some(home) = env("HOME") {
        for r in children(Utf8PathBuf::from(home).join("sdk"), "go") {
            add(r, "~/sdk");
        }
    }
    for r in children("/usr/lib".into(), "go-") {
        add(r, "/usr/lib");
    }
    add("/usr/local/go".into(), "/usr/local/go");
    for r in children(cache_go.to_owned(), "1.") {
        add(r, "cache");
    }
    // The Go `cargo xtask fetch-tree --go` unpacked (Debian's) beside the cache: the test cache
    // is the kit's cache by default. KUBE_TEST_CACHE is not read: a test knob steers no tool.
    for fetched in cache_go.parent().map(|c| children(c.to_owned(), "go-")).unwrap_or_default() {
        for r in children(fetched.join("root/usr/lib"), "go-") {
            add(r, "fetch-tree");
        }
    }
    found.sort_by(|a, b| gover::cmp(&b.version, &a.version));
    found
}

/// The installation of exactly `v`, else (unless `exact`) the newest of the same minor line.
pub fn best<'a>(all: &'a [Installed], v: &GoVersion, exact: bool) -> Option<&'a Installed> {
    all.iter().find(|i| i.version.text == v.text).or_else(|| {
        if exact {
            return None;
        }
        all.iter()
            .filter(|i| i.version.minor == v.minor && i.version.pre.is_none())
            .max_by(|a, b| gover::cmp(&a.version, &b.version))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(dir: &Utf8Path, version: &str) -> Utf8PathBuf {
        let r = dir.join(format!("go{version}"));
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::write(r.join("bin/go"), "").unwrap();
        std::fs::write(r.join("VERSION"), format!("go{version}\ntime 2021-08-04T00:00:00Z\n")).unwrap();
        r
    }

    use kube_tree::proc::Proc;

    #[test]
    fn versions_come_from_the_version_file() {
        let dir = kube_tree::fixture::scratch_dir("sg-local");
        let r = fake_root(&dir, "1.15.15");
        assert_eq!(version_at(&r).unwrap().text, "1.15.15");
        std::fs::write(r.join("VERSION"), "devel +abc\n").unwrap();
        assert_eq!(version_at(&r), None, "a version it cannot read is no match");
        std::fs::remove_file(r.join("VERSION")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", r.join("VERSION")).unwrap();
        assert_eq!(version_at(&r), None, "a device is not read");
        std::fs::remove_file(r.join("VERSION")).unwrap();
        let fifo = Proc::new("mkfifo").arg(r.join("VERSION")).output().unwrap();
        assert!(fifo.success(), "{}", fifo.stderr);
        assert_eq!(version_at(&r), None, "a FIFO is not opened");
        assert_eq!(version_at(&dir.join("none")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn exact_first_then_the_newest_patch_of_the_minor() {
        let dir = kube_tree::fixture::scratch_dir("sg-best");
        let sdk = dir.join("sdk");
        for v in ["1.15.2", "1.15.15", "1.16.3"] {
            fake_root(&sdk, v);
        }
        let env = |k: &str| (k == "HOME").then(|| dir.to_string());
        let all = all(&dir.join("cache/go"), &env);
        let want = GoVersion::parse("1.15.5").unwrap();
        assert_eq!(best(&all, &want, false).unwrap().version.text, "1.15.15");
        assert_eq!(best(&all, &want, true), None);
        assert_eq!(best(&all, &GoVersion::parse("1.15.2").unwrap(), true).unwrap().place, "~/sdk");
        assert_eq!(best(&all, &GoVersion::parse("1.12.9").unwrap(), false), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
