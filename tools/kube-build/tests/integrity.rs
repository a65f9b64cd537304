//! kube-build's records are proven, not believed, and go writes nothing outside the tree: run as
//! the real binary with the real Go, on generated trees in scratch directories it removes.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};
use std::os::unix::fs::MetadataExt;

const BIN: &str = env!("CARGO_BIN_EXE_kube-build");

/// A tree of era B and a directory OUT beside it; removed when dropped.
struct Sandbox {
    dir: Utf8PathBuf,
    root: Utf8PathBuf,
    out: Utf8PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let dir = testkit::scratch(name);
        let (root, out) = (dir.join("kubernetes"), dir.join("out"));
        fixture::write_tree(&root, &Spec::era_b());
        std::fs::create_dir_all(&out).unwrap();
        Sandbox { dir, root, out }
    }
    fn kb(&self, args: &[&str]) -> Captured {
        Proc::new(BIN)
            .arg("--kube-root")
            .arg(&self.root)
            .args(args)
            .env("KUBE_KIT_CACHE", fixture::kit_cache())
            .env_remove("GOFLAGS")
            .env_remove("KUBE_BUILD_PLATFORMS")
            .env_remove("WHAT")
            .output()
            .unwrap()
    }
    fn out_is_empty(&self) -> bool {
        std::fs::read_dir(&self.out).unwrap().next().is_none()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mkfifo(p: &Utf8Path) {
    let _ = std::fs::remove_file(p);
    assert!(Proc::new("mkfifo").arg(p).output().unwrap().success());
}

fn up_to_date(out: &Captured) -> bool {
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    out.stdout.contains(r#""up_to_date":true"#)
}

#[test]
fn a_changed_binary_is_rebuilt_never_reported_or_copied() {
    if !testkit::require("a_changed_binary_is_rebuilt_never_reported_or_copied", "go") {
        return;
    }
    let sb = Sandbox::new("kb-outputs");
    let args = ["WHAT=cmd/kubectl", "--json"];
    assert!(!up_to_date(&sb.kb(&args)));
    assert!(up_to_date(&sb.kb(&args)), "nothing changed: a no-op");
    let go_bin = sb.root.join("_output/local/go/bin/kubectl");
    let placed = sb.root.join("_output/local/bin/linux/amd64/kubectl");
    let built = std::fs::read(&go_bin).unwrap();

    // go's binary replaced by another program: rebuilt, and the copy is go's, not that one.
    std::fs::remove_file(&go_bin).unwrap();
    std::fs::copy("/bin/true", &go_bin).unwrap();
    let out = sb.kb(&args);
    assert!(!up_to_date(&out), "{}", out.stdout);
    assert_ne!(std::fs::read(&placed).unwrap(), std::fs::read("/bin/true").unwrap(), "/bin/true copied");
    assert!(Proc::new(&placed).read().unwrap().starts_with("kubectl "), "the placed binary is kubectl");
    assert!(up_to_date(&sb.kb(&args)));

    // The copy edited in place with its size and mtime put back (only its ctime moves).
    let md = std::fs::metadata(&placed).unwrap();
    let mut bytes = std::fs::read(&placed).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&placed, &bytes).unwrap();
    filetime::set_file_mtime(&placed, filetime::FileTime::from_last_modification_time(&md)).unwrap();
    assert_eq!(std::fs::metadata(&placed).unwrap().len(), md.len());
    let out = sb.kb(&args);
    assert!(!up_to_date(&out), "a same-size, same-mtime edit is seen: {}", out.stdout);
    assert_eq!(std::fs::read(&placed).unwrap(), std::fs::read(&go_bin).unwrap(), "the edit is replaced");
    assert!(Proc::new(&placed).read().unwrap().starts_with("kubectl "));
    assert_eq!(std::fs::read(&go_bin).unwrap().len(), built.len());
}

#[test]
fn go_never_writes_outside_the_tree() {
    let sb = Sandbox::new("kb-writes");
    for (at, target) in [("_output/local/go/cache", sb.out.clone()), ("_output/local/go/bin", sb.out.join("bin"))] {
        let p = sb.root.join(at);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let out = sb.kb(&["WHAT=cmd/kubectl"]);
        assert_eq!(out.status.code(), Some(2), "{at}: {}", out.stderr);
        assert!(out.stderr.contains(at) && out.stderr.trim().lines().count() == 1, "{at}: {}", out.stderr);
        assert!(sb.out_is_empty(), "{at}: something was written outside");
        std::fs::remove_file(&p).unwrap();
    }
    // The GOPATH itself a link out.
    let gp = sb.root.join("_output/local/go");
    std::fs::remove_dir_all(&gp).unwrap();
    std::os::unix::fs::symlink(&sb.out, &gp).unwrap();
    let out = sb.kb(&["WHAT=cmd/kubectl"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("_output/local/go"), "{}", out.stderr);
    assert!(sb.out_is_empty());
}

#[test]
fn special_files_are_refused_or_thrown_away_never_waited_on() {
    let sb = Sandbox::new("kb-special");
    // A Go source of the target that is a FIFO (go would hang on it too): refused by name.
    mkfifo(&sb.root.join("cmd/kubectl/zz_fifo.go"));
    let out = sb.kb(&["WHAT=cmd/kubectl"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("cmd/kubectl/zz_fifo.go") && out.stderr.contains("FIFO"), "{}", out.stderr);
    std::fs::remove_file(sb.root.join("cmd/kubectl/zz_fifo.go")).unwrap();
    // A source that is a link to /dev/zero: refused, not read until memory runs out.
    std::os::unix::fs::symlink("/dev/zero", sb.root.join("cmd/kubectl/zero.go")).unwrap();
    let out = sb.kb(&["WHAT=cmd/kubectl"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("zero.go"), "{}", out.stderr);
    std::fs::remove_file(sb.root.join("cmd/kubectl/zero.go")).unwrap();
    // The Makefile the generator step is read from, a FIFO: refused.
    let make = sb.root.join("build/root/Makefile");
    let had_make = make.exists();
    mkfifo(&make);
    let out = sb.kb(&["WHAT=cmd/kubectl"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("build/root/Makefile"), "{}", out.stderr);
    std::fs::remove_file(&make).unwrap();
    if had_make {
        std::fs::write(&make, "all:\n").unwrap();
    }
    if !testkit::require("special_files_are_refused_or_thrown_away_never_waited_on", "go") {
        return;
    }
    // The kit's own record a FIFO, or a link to /dev/zero: thrown away (said), rebuilt, replaced.
    let state = sb.root.join("_output/local/.kit-build-state");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    mkfifo(&state);
    let out = sb.kb(&["WHAT=cmd/kubectl"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("thrown away"), "{}", out.stderr);
    assert!(std::fs::symlink_metadata(&state).unwrap().is_file(), "the FIFO is replaced by a record");
    let ino = std::fs::metadata(&state).unwrap().ino();
    std::fs::remove_file(&state).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &state).unwrap();
    let out = sb.kb(&["WHAT=cmd/kubectl"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("thrown away"), "{}", out.stderr);
    assert!(std::fs::symlink_metadata(&state).unwrap().is_file() && ino != 0);
}
