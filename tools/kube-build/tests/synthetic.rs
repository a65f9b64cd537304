//! kube-build, run as the real binary with the real Go, on generated trees.

use camino::Utf8Path;
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_kube-build");

fn kb(root: &Utf8Path, args: &[&str]) -> Captured {
    Proc::new(BIN).arg("--kube-root").arg(root).args(args).env("KUBE_VERBOSE", "1").env_remove("GOFLAGS").env_remove("KUBE_BUILD_PLATFORMS").env_remove("WHAT").output().unwrap()
}

fn go(test: &str) -> bool {
    testkit::require(test, "go")
}

#[test]
fn builds_in_gopath_mode_places_bins_and_skips_a_noop() {
    if !go("builds_in_gopath_mode_places_bins_and_skips_a_noop") {
        return;
    }
    let root = fixture::scratch_tree("kb-b", &Spec::era_b());
    let defs = root.parent().unwrap().join("version-defs");
    std::fs::write(&defs, "KUBE_GIT_COMMIT='0123456789abcdef0123456789abcdef01234567'\nKUBE_GIT_TREE_STATE='clean'\nKUBE_GIT_VERSION='v1.20.9'\nKUBE_GIT_MAJOR='1'\nKUBE_GIT_MINOR='20'\n").unwrap();
    let build = |args: &[&str]| {
        Proc::new(BIN).arg("--kube-root").arg(&root).args(args).env("KUBE_GIT_VERSION_FILE", &defs).env_remove("GOFLAGS").output().unwrap()
    };
    let out = build(&["WHAT=cmd/kube-proxy cmd/kubectl"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let bin = root.join("_output/local/bin/linux/amd64");
    assert_eq!(out.stdout, format!("{}\n{}\n", bin.join("kube-proxy"), bin.join("kubectl")));
    assert_eq!(std::fs::read_link(root.join("_output/bin")).unwrap().to_str().unwrap(), bin.as_str());
    let ran = Proc::new(root.join("_output/bin/kubectl")).read().unwrap();
    assert!(ran.starts_with("kubectl api 1.0.0 v1.20.9 "), "version stamped from KUBE_GIT_VERSION_FILE: {ran}");
    assert!(out.stderr.contains("kubectl linux/amd64"), "{}", out.stderr);

    let again = build(&["WHAT=cmd/kube-proxy cmd/kubectl"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(again.stderr.contains("up to date: 2 binaries"), "{}", again.stderr);
    assert_eq!(Proc::new(root.join("_output/bin/kubectl")).read().unwrap(), ran, "the no-op kept the binary");

    // A source change is seen, through the staging link.
    std::fs::write(root.join("staging/src/k8s.io/api/util/util.go"), "package util\n\nconst Repo = \"api-changed\"\n").unwrap();
    let changed = build(&["WHAT=cmd/kube-proxy cmd/kubectl"]);
    assert!(changed.stderr.contains("built 2 binaries"), "{}", changed.stderr);
    assert!(Proc::new(root.join("_output/bin/kubectl")).read().unwrap().starts_with("kubectl api-changed "));
}

#[test]
fn cross_platforms_and_flags() {
    if !go("cross_platforms_and_flags") {
        return;
    }
    let root = fixture::scratch_tree("kb-cross", &Spec::era_a());
    let out = kb(&root, &["WHAT=cmd/kubectl", "KUBE_BUILD_PLATFORMS=darwin/amd64 windows/amd64", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let mach = std::fs::read(root.join("_output/local/bin/darwin/amd64/kubectl")).unwrap();
    assert_eq!(&mach[..4], &[0xcf, 0xfa, 0xed, 0xfe], "Mach-O 64");
    let pe = std::fs::read(root.join("_output/local/bin/windows/amd64/kubectl.exe")).unwrap();
    assert_eq!(&pe[..2], b"MZ");
    assert!(!root.join("_output/bin").exists(), "no host build, no _output/bin link");
    assert!(out.stdout.contains(r#""platform":"darwin/amd64""#) && out.stdout.contains(r#""static":true"#), "{}", out.stdout);
    assert!(out.stdout.contains(r#""ldflags":"-s -w -buildid= "#), "the tree's default GOLDFLAGS: {}", out.stdout);

    // --debug: unstripped and unoptimised (visible in the binary's build settings).
    let out = kb(&root, &["--what", "cmd/kube-proxy", "--debug"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let bin = root.join("_output/local/bin/linux/amd64/kube-proxy");
    let info = Proc::new("go").args(["version", "-m"]).arg(&bin).read().unwrap();
    assert!(info.contains("-gcflags=\"all=-N -l -trimpath="), "{info}");
    assert!(!info.contains("-s -w"), "{info}");
    let nm = Proc::new("go").args(["tool", "nm"]).arg(&bin).output().unwrap();
    assert!(nm.success() && nm.stdout.contains("main.main"), "symbols kept: {}", nm.stderr);
}

#[test]
fn bad_requests_exit_2() {
    let root = fixture::scratch_tree("kb-bad", &Spec::era_b());
    for args in [&[][..], &["WHAT=cmd/kubectl", "KUBE_BUILD_PLATFORMS=plan9/amd64"], &["WHAT=cmd/nope"], &["FOO=1", "WHAT=cmd/kubectl"], &["cmd/kubectl"]] {
        let out = kb(&root, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr.trim().lines().count(), 1, "{args:?}: {}", out.stderr);
    }
    assert!(!root.join("_output").exists(), "a refused request built nothing");
}
