//! The shared Go build cache (issue 21): one volume serves every tree on the engine, in both
//! modes and at once, and changes no output byte.

mod common;

use camino::Utf8PathBuf;
use common::{docker, kubectl_version, rd, ready};
use std::time::Instant;

/// The fixed build date that makes two builds of one source byte-comparable.
const EPOCH: &str = "1600000000";

#[test]
#[ignore = "full tier: needs docker and the real v1.20.2 tree"]
fn two_trees_share_one_cache_at_once_with_identical_binaries() {
    let test = "two_trees_share_one_cache_at_once_with_identical_binaries";
    let Some(real) = ready(test) else { return };
    let base = testkit::scratch("dock-cache");
    let tree = |name: &str| {
        let t = base.join(name).join("kubernetes");
        testkit::full_copy(&real, &t).unwrap();
        Utf8PathBuf::from_path_buf(std::fs::canonicalize(&t).unwrap()).unwrap()
    };
    let (a, b) = (tree("a"), tree("b"));
    let (mut guard_a, _guard_b) = (testkit::EngineGuard::new(&a), testkit::EngineGuard::new(&b));
    // A cold cache of this test's own: the first build proves a truly cold bind-mode run.
    let volume = format!("{}pair", testkit::cache_volume_prefix());
    guard_a.volumes.push(volume.clone());
    let envs = [("KUBE_KIT_CACHE_VOLUME", volume.as_str()), ("SOURCE_DATE_EPOCH", EPOCH)];
    let kubectl = |root: &Utf8PathBuf| root.join("_output/dockerized/bin/linux/amd64/kubectl");

    let t = Instant::now();
    let out = rd(&a, &["--mode", "bind", "make", "WHAT=cmd/kubectl"], &envs);
    let cold = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(kubectl_version(&kubectl(&a)).contains(r#"GitVersion:"v1.20.2""#));
    let reference = std::fs::read(kubectl(&a)).unwrap();
    // The volume is the kit's, and the cache went there, not into the tree (whose mount point is
    // the caller's directory, not one the engine made as root).
    let labels = docker(&[
        "volume",
        "inspect",
        "-f",
        "{{index .Labels \"io.k8s-build-kit.owner\"}} {{index .Labels \"io.k8s-build-kit.kind\"}}",
        &volume,
    ]);
    assert_eq!(labels.trim(), "k8s-build-kit go-cache");
    let mount_point = a.join("_output/dockerized/go/cache");
    assert_eq!(std::fs::read_dir(&mount_point).unwrap().count(), 0, "the cache landed in the tree");
    {
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::metadata(&base).unwrap().uid();
        assert_eq!(std::fs::metadata(&mount_point).unwrap().uid(), ours, "the mount point is the caller's");
    }

    // Tree a with an edit, in rsync mode, and tree b (another path: a second worktree) in bind
    // mode, at once on the one cache.
    {
        use std::io::Write;
        let f = a.join("staging/src/k8s.io/kubectl/pkg/cmd/version/version.go");
        writeln!(std::fs::OpenOptions::new().append(true).open(f).unwrap(), "// one line").unwrap();
    }
    let t = Instant::now();
    let (out_a, out_b) = std::thread::scope(|s| {
        let rsync = s.spawn(|| rd(&a, &["--mode", "rsync", "make", "WHAT=cmd/kubectl"], &envs));
        let bind = s.spawn(|| rd(&b, &["--mode", "bind", "make", "WHAT=cmd/kubectl"], &envs));
        (rsync.join().unwrap(), bind.join().unwrap())
    });
    let both = t.elapsed();
    assert_eq!(out_a.status.code(), Some(0), "tree a, rsync mode: {}", out_a.stderr);
    assert_eq!(out_b.status.code(), Some(0), "tree b, bind mode: {}", out_b.stderr);
    // A comment changes no object: both binaries are byte for byte the cold build's.
    assert!(std::fs::read(kubectl(&b)).unwrap() == reference, "tree b's kubectl differs from the cold build's");
    assert!(std::fs::read(kubectl(&a)).unwrap() == reference, "tree a's kubectl differs from the cold build's");
    assert_eq!(std::fs::read_dir(b.join("_output/dockerized/go/cache")).unwrap().count(), 0);
    // Timing is the bench's business; shown here only.
    eprintln!("shared cache: cold bind-mode kubectl {cold:?}; then two trees at once {both:?}");
    drop(guard_a);
    let _ = std::fs::remove_dir_all(&base);
}
