//! Checks that a downloaded archive is a Go before it is installed: its entries and links stay
//! under `go/`, and the unpacked `bin/go` is a program that reports the wanted version.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::gover::{self, GoVersion};
use kube_tree::proc::Proc;
use std::path::{Component, Path};
use std::time::Duration;

/// How long the unpacked `go version` may take (it reads nothing from the network with
/// GOTOOLCHAIN=local).
pub const GO_VERSION_LIMIT: Duration = Duration::from_secs(60);

/// `path` lexically, when every part of it is a plain name; None for `..`, `/` or a prefix.
fn plain(path: &Path) -> Option<Vec<&std::ffi::OsStr>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Why an archive entry may not be unpacked, if it may not: it must lie under `go/`, and a
/// link must lead to a place under `go/` (a symbolic link's target read from its directory,
/// a hard link's from the top of the archive).
pub fn entry_refusal(path: &Path, link: Option<(&Path, bool)>) -> Option<String> {
    let parts = plain(path).filter(|p| p.first().is_some_and(|f| *f == "go"));
    let Some(parts) = parts else {
        return Some(format!("an entry outside go/: {}", path.display()));
    };
    let (target, symbolic) = link?;
    let out = || Some(format!("a link out of go/: {} -> {}", path.display(), target.display()));
    if target.is_absolute() {
        return out();
    }
    // A symbolic link's `..` is resolved lexically from its directory; a `..` that passes
    // through another link is caught after unpacking (see [`links_stay_inside`]).
    let mut at: Vec<&std::ffi::OsStr> = if symbolic { parts[..parts.len() - 1].to_vec() } else { Vec::new() };
    for c in target.components() {
        match c {
            Component::Normal(n) => at.push(n),
            Component::CurDir => {}
            Component::ParentDir if at.len() > 1 => {
                at.pop();
            }
            _ => return out(),
        }
    }
    if at.first().is_none_or(|f| *f != "go") {
        return out();
    }
    None
}

/// After unpacking into `goroot`: every symbolic link under it resolves inside it (through
/// other links too), or, dangling, has no `..` that could lead out once something appears.
pub fn links_stay_inside(goroot: &Utf8Path) -> Result<(), String> {
    let root = std::fs::canonicalize(goroot).map_err(|e| format!("{goroot}: {e}"))?;
    let mut stack: Vec<Utf8PathBuf> = vec![goroot.to_owned()];
    while let Some(dir) = stack.pop() {
        let rd = dir.read_dir_utf8().map_err(|e| format!("{dir}: {e}"))?;
        for e in rd {
            let e = e.map_err(|e| format!("{dir}: {e}"))?;
            let ft = e.file_type().map_err(|err| format!("{}: {err}", e.path()))?;
            let p = e.path().to_owned();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&p).unwrap_or_default();
                let inside = match std::fs::canonicalize(&p) {
                    Ok(real) => real.starts_with(&root),
                    Err(_) => plain(&target).is_some(),
                };
                if !inside {
                    let rel = p.strip_prefix(goroot.parent().unwrap_or(goroot)).unwrap_or(&p);
                    return Err(format!("a link out of go/: {rel} -> {}", target.display()));
                }
            }
        }
    }
    Ok(())
}

/// Runs the unpacked `bin/go version` (a deadline, GOROOT set, no toolchain switch) and
/// checks that it is a program for this machine reporting `want`.
pub fn reports(goroot: &Utf8Path, want: &GoVersion) -> Result<(), String> {
    let go = goroot.join("bin/go");
    let md = std::fs::metadata(&go).map_err(|_| "no go/bin/go in it".to_string())?;
    if !md.is_file() {
        return Err("go/bin/go is not a file".into());
    }
    if cfg!(target_os = "linux") {
        let mut magic = [0u8; 4];
        let ok = std::fs::File::open(&go)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok_and(|_| magic == *b"\x7fELF");
        if !ok {
            return Err("go/bin/go is not a program for this machine (no ELF executable)".into());
        }
    }
    let out = Proc::new(&go)
        .arg("version")
        .env("GOROOT", goroot)
        .env("GOTOOLCHAIN", "local")
        .env_remove("GOFLAGS")
        .dir(goroot)
        .timeout(GO_VERSION_LIMIT)
        .output()
        .map_err(|e| format!("go/bin/go version: {}", e.msg))?;
    if !out.success() {
        return Err(format!("go/bin/go version failed: {}", out.error_lines(1).escape_debug()));
    }
    match gover::from_go_version_output(&out.stdout) {
        Some(v) if v == *want => Ok(()),
        Some(v) => Err(format!("go/bin/go reports go{}, not go{}", v.text, want.text)),
        None => Err(format!("go/bin/go version says nothing of a Go release: {}", out.first_lines(1).escape_debug())),
    }
}

#[cfg(test)]
mod tests {
    use super::{entry_refusal, links_stay_inside};
    use std::path::Path;

    #[test]
    fn entries_and_links_stay_under_go() {
        let p = Path::new;
        assert_eq!(entry_refusal(p("go/bin/go"), None), None);
        assert_eq!(entry_refusal(p("./go/src/x.go"), None), None);
        assert_eq!(entry_refusal(p("go/bin/go"), Some((p("go1.19"), true))), None);
        assert_eq!(entry_refusal(p("go/misc/a"), Some((p("../src/b"), true))), None);
        assert_eq!(entry_refusal(p("go/bin/gofmt"), Some((p("go/bin/go"), false))), None);
        for (path, link) in [
            ("other/x", None),
            ("/go/x", None),
            ("go/../x", None),
            ("gopher/x", None),
            ("go/src", Some(("/", true))),
            ("go/pkg", Some(("../outside", true))),
            ("go/pkg", Some(("..", true))),
            ("go/a/b", Some(("../../..", true))),
            ("go/bin/go", Some(("/bin/sh", false))),
            ("go/bin/go", Some(("../etc/passwd", false))),
            ("go/bin/go", Some(("bin/sh", false))),
        ] {
            let got = entry_refusal(p(path), link.map(|(t, s)| (p(t), s)));
            assert!(got.is_some(), "{path} {link:?}");
        }
    }

    #[test]
    fn a_link_chain_out_is_found_after_unpacking() {
        let dir = kube_tree::fixture::scratch_dir("sg-verify-links");
        let go = dir.join("go");
        std::fs::create_dir_all(go.join("src")).unwrap();
        std::os::unix::fs::symlink(".", go.join("x")).unwrap();
        std::os::unix::fs::symlink("src", go.join("ok")).unwrap();
        assert_eq!(links_stay_inside(&go), Ok(()));
        // Lexically go/x/x/../.. is go/, yet x is go/ itself: the link leads two levels up.
        std::os::unix::fs::symlink("x/x/../..", go.join("up")).unwrap();
        assert!(links_stay_inside(&go).unwrap_err().contains("go/up"));
        std::fs::remove_file(go.join("up")).unwrap();
        std::os::unix::fs::symlink("../../gone", go.join("src/dangling")).unwrap();
        assert!(links_stay_inside(&go).is_err(), "a dangling link with .. may later lead out");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
