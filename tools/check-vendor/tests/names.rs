//! check-vendor on names and files a hostile tree holds: a name that is not UTF-8 is reported
//! by its bytes and never "fixed" under another name; control characters never reach the TSV
//! or stderr raw; FIFOs and links to /dev/zero are refused or reported, never waited on.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};
use std::os::unix::ffi::OsStrExt;

const BIN: &str = env!("CARGO_BIN_EXE_check-vendor");

fn cv(root: &Utf8Path, args: &[&str]) -> Captured {
    Proc::new(BIN).arg("--kube-root").arg(root).args(args).output().unwrap()
}

struct Scratch(Utf8PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tree(name: &str) -> (Scratch, Utf8PathBuf) {
    let dir = testkit::scratch(name);
    let root = dir.join("kubernetes");
    fixture::write_tree(&root, &Spec::era_b());
    (Scratch(dir), root)
}

fn mkfifo(p: &Utf8Path) {
    assert!(Proc::new("mkfifo").arg(p).output().unwrap().success());
}

#[test]
fn a_non_utf8_name_is_reported_by_its_bytes_and_never_fixed() {
    let (_s, root) = tree("cv-names");
    let dir = root.join("vendor/k8s.io");
    let bad = dir.as_std_path().join(std::ffi::OsStr::from_bytes(b"bad\xff\xfename"));
    std::os::unix::fs::symlink("../../staging/src/k8s.io/bad", &bad).unwrap();
    // A UTF-8 orphan whose name holds ESC: fixable, and shown escaped.
    std::os::unix::fs::symlink("../../staging/src/k8s.io/gone", dir.join("esc\x1b[31mred")).unwrap();
    let out = cv(&root, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(!out.stdout.contains('\x1b') && !out.stderr.contains('\x1b'), "raw ESC: {out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.iter().all(|l| l.split('\t').count() == 3), "{}", out.stdout);
    assert!(out.stdout.contains("vendor/k8s.io/bad\\\\xff\\\\xfename\tnon-utf8-name\t"), "{}", out.stdout);
    assert!(out.stdout.contains("vendor/k8s.io/esc\\u{1b}[31mred\torphan-link"), "{}", out.stdout);

    let fixed = cv(&root, &["--fix"]);
    assert_eq!(fixed.status.code(), Some(1), "the bad name is left, so problems remain: {}", fixed.stderr);
    assert!(!fixed.stderr.contains('\x1b'), "{}", fixed.stderr);
    assert!(std::fs::symlink_metadata(&bad).is_ok(), "the non-UTF-8 entry is not touched");
    assert!(!dir.join("esc\x1b[31mred").as_std_path().exists(), "the ESC orphan is removed");
    let said_fixed = fixed.stderr.lines().filter(|l| l.contains("fixed: ")).count();
    assert_eq!(said_fixed, 1, "only what was done is said fixed: {}", fixed.stderr);
    assert!(!fixed.stderr.contains("fixed: remove vendor/k8s.io/bad"), "{}", fixed.stderr);
    assert!(fixed.stderr.contains("found 2, fixed 1"), "{}", fixed.stderr);
    assert_eq!(fixed.stdout.lines().count(), 1, "{}", fixed.stdout);
}

#[test]
fn special_files_are_refused_or_reported_without_waiting() {
    let (_s, root) = tree("cv-special");
    // vendor/modules.txt a FIFO, then a link to /dev/zero, then a link out: one line, exit 2.
    let mt = root.join("vendor/modules.txt");
    let keep = std::fs::read(&mt).unwrap();
    std::fs::remove_file(&mt).unwrap();
    mkfifo(&mt);
    let out = cv(&root, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("vendor/modules.txt") && out.stderr.contains("FIFO"), "{}", out.stderr);
    std::fs::remove_file(&mt).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &mt).unwrap();
    let out = cv(&root, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    std::fs::remove_file(&mt).unwrap();
    std::fs::write(&mt, keep).unwrap();
    assert_eq!(cv(&root, &[]).status.code(), Some(0));
    // A FIFO in place of a staging link: reported (never opened) and fixed.
    let api = root.join("vendor/k8s.io/api");
    std::fs::remove_file(&api).unwrap();
    mkfifo(&api);
    let out = cv(&root, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("vendor/k8s.io/api\tnot-a-link\ta FIFO in place of the link"), "{}", out.stdout);
    let fixed = cv(&root, &["--fix"]);
    assert_eq!(fixed.status.code(), Some(0), "{}", fixed.stderr);
    assert_eq!(std::fs::read_link(&api).unwrap().to_str(), Some("../../staging/src/k8s.io/api"));
}
