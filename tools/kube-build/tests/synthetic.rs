//! kube-build, run as the real binary with the real Go, on generated trees.

use camino::Utf8Path;
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_kube-build");

fn kb(root: &Utf8Path, args: &[&str]) -> Captured {
    Proc::new(BIN)
        .arg("--kube-root")
        .arg(root)
        .args(args)
        .env("KUBE_VERBOSE", "1")
        .env("KUBE_KIT_CACHE", fixture::kit_cache())
        .env_remove("GOFLAGS")
        .env_remove("KUBE_BUILD_PLATFORMS")
        .env_remove("WHAT")
        .output()
        .unwrap()
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
    // Every go call is recorded by a `go` first in PATH, so the no-op is judged from outside.
    let rec = fixture::scratch_dir("kb-go-recorder");
    let calls = rec.join("calls");
    let real_go = kube_tree::proc::which("go").unwrap();
    std::fs::write(rec.join("go"), format!("#!/bin/sh\necho \"$*\" >> '{calls}'\nexec '{real_go}' \"$@\"\n")).unwrap();
    std::fs::set_permissions(rec.join("go"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{rec}:{}", std::env::var("PATH").unwrap_or_default());
    let build = |args: &[&str]| {
        Proc::new(BIN)
            .arg("--kube-root")
            .arg(&root)
            .args(args)
            .env("KUBE_GIT_VERSION_FILE", &defs)
            .env("PATH", &path)
            .env_remove("GOFLAGS")
            .output()
            .unwrap()
    };
    let out = build(&["WHAT=cmd/kube-proxy cmd/kubectl"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(std::fs::read_to_string(&calls).unwrap().contains("install"), "the recorder sees the build");
    std::fs::remove_file(&calls).unwrap();
    let bin = root.join("_output/local/bin/linux/amd64");
    assert_eq!(out.stdout, format!("{}\n{}\n", bin.join("kube-proxy"), bin.join("kubectl")));
    assert_eq!(std::fs::read_link(root.join("_output/bin")).unwrap().to_str().unwrap(), bin.as_str());
    let ran = Proc::new(root.join("_output/bin/kubectl")).read().unwrap();
    assert!(ran.starts_with("kubectl api 1.0.0 v1.20.9 "), "version stamped from KUBE_GIT_VERSION_FILE: {ran}");
    assert!(out.stderr.contains("kubectl linux/amd64"), "{}", out.stderr);

    let stat = |p: &camino::Utf8Path| {
        let md = std::fs::metadata(p).unwrap();
        (std::os::unix::fs::MetadataExt::ino(&md), md.modified().unwrap())
    };
    let before = stat(&bin.join("kubectl"));
    let again = build(&["WHAT=cmd/kube-proxy cmd/kubectl"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(again.stderr.contains("up to date: 2 binaries"), "{}", again.stderr);
    assert!(!calls.exists(), "a no-op ran go: {}", std::fs::read_to_string(&calls).unwrap_or_default());
    assert_eq!(stat(&bin.join("kubectl")), before, "a no-op left the binary alone (inode, mtime)");
    assert_eq!(Proc::new(root.join("_output/bin/kubectl")).read().unwrap(), ran, "the no-op kept the binary");

    // A source change is seen, through the staging link.
    std::fs::write(root.join("staging/src/k8s.io/api/util/util.go"), "package util\n\nconst Repo = \"api-changed\"\n")
        .unwrap();
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
    assert!(
        out.stdout.contains(r#""platform":"darwin/amd64""#) && out.stdout.contains(r#""static":true"#),
        "{}",
        out.stdout
    );
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
    for args in [
        &["WHAT=cmd/kubectl/kubectl.test"][..],
        &["WHAT=cmd/kubectl", "KUBE_BUILD_PLATFORMS=plan9/amd64"],
        &["WHAT=cmd/nope"],
        &["FOO=1", "WHAT=cmd/kubectl"],
        &["cmd/kubectl"],
    ] {
        let out = kb(&root, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr.trim().lines().count(), 1, "{args:?}: {}", out.stderr);
    }
    assert!(!root.join("_output").exists(), "a refused request built nothing");
}

/// GOFLAGS, GOGCFLAGS, GOLDFLAGS, DBG=1 and --platform reach go as make passes them, and the
/// version comes from git when the tree is a checkout: seen by a `go` that records its calls.
#[test]
fn flags_platforms_and_the_git_version_reach_go() {
    if !go("flags_platforms_and_the_git_version_reach_go")
        || !testkit::require("flags_platforms_and_the_git_version_reach_go", "git")
    {
        return;
    }
    let root = fixture::scratch_tree("kb-flags", &Spec::era_b());
    let git = |args: &[&str]| {
        Proc::new("git").args(["-c", "user.email=t@t", "-c", "user.name=t"]).args(args).dir(&root).read().unwrap()
    };
    git(&["init", "-q", "."]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "v1.20.9"]);
    git(&["tag", "-a", "v1.20.9", "-m", "v1.20.9"]);
    let rec = fixture::scratch_dir("kb-flags-recorder");
    let calls = rec.join("calls");
    let real_go = kube_tree::proc::which("go").unwrap();
    std::fs::write(
        rec.join("go"),
        format!(
            "#!/bin/sh\necho \"GOOS=$GOOS GOARCH=$GOARCH GOFLAGS=$GOFLAGS $*\" >> '{calls}'\nexec '{real_go}' \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(rec.join("go"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{rec}:{}", std::env::var("PATH").unwrap_or_default());
    let build = |args: &[&str]| -> String {
        let _ = std::fs::remove_file(&calls);
        let out = Proc::new(BIN)
            .arg("--kube-root")
            .arg(&root)
            .args(args)
            .env("PATH", &path)
            .env_remove("GOFLAGS")
            .env_remove("KUBE_GIT_VERSION_FILE")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
        std::fs::read_to_string(&calls)
            .unwrap()
            .lines()
            .filter(|l| l.contains(" install "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let call = build(&["WHAT=cmd/kube-proxy", "GOFLAGS=-p=1", "GOGCFLAGS=-B", "GOLDFLAGS=-X main.kit=1"]);
    assert!(call.contains("GOFLAGS=-p=1 "), "{call}");
    assert!(call.contains("-tags selinux,notest,-p=1 "), "the tags as the v1.20 script's sed makes them: {call}");
    assert!(call.contains("-gcflags -B -trimpath="), "{call}");
    assert!(call.contains("-X main.kit=1") && !call.contains("-s -w"), "GOLDFLAGS replaces the tree's default: {call}");
    let ran = Proc::new(root.join("_output/local/bin/linux/amd64/kube-proxy")).read().unwrap();
    assert!(ran.contains("v1.20.9"), "the version from git describe: {ran}");
    let call = build(&["WHAT=cmd/kube-proxy", "DBG=1"]);
    assert!(call.contains("all=-N -l") && !call.contains("-s -w"), "{call}");
    let call = build(&["WHAT=cmd/kubectl", "--platform", "linux/arm64"]);
    assert!(call.contains("GOOS=linux GOARCH=arm64"), "{call}");
    assert!(root.join("_output/local/bin/linux/arm64/kubectl").is_file());
}

/// Without WHAT, what `make` builds: the tree's KUBE_ALL_TARGETS, test targets with `go test
/// -c`; several platforms at once when KUBE_PARALLEL_BUILD_MEMORY allows it.
#[test]
fn no_what_builds_every_target_of_the_tree() {
    if !go("no_what_builds_every_target_of_the_tree") {
        return;
    }
    let root = fixture::scratch_tree("kb-all", &Spec::era_b());
    let defs = root.parent().unwrap().join("version-defs");
    std::fs::write(&defs, "KUBE_GIT_COMMIT='0123456789abcdef0123456789abcdef01234567'\nKUBE_GIT_TREE_STATE='clean'\nKUBE_GIT_VERSION='v1.20.9'\nKUBE_GIT_MAJOR='1'\nKUBE_GIT_MINOR='20'\n").unwrap();
    let build = |args: &[&str], env: &[(&str, &str)]| {
        let mut p = Proc::new(BIN)
            .args(["--go", "host", "--kube-root", root.as_str()])
            .args(args)
            .env("KUBE_GIT_VERSION_FILE", &defs)
            .env_remove("GOFLAGS")
            .env_remove("WHAT")
            .env_remove("KUBE_BUILD_PLATFORMS")
            .env_remove("KUBE_PARALLEL_BUILD_MEMORY");
        for (k, v) in env {
            p = p.env(k, v);
        }
        p.output().unwrap()
    };
    let out = build(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("no WHAT: all 3 targets of the tree"), "{}", out.stderr);
    let bin = root.join("_output/local/bin/linux/amd64");
    assert_eq!(
        out.stdout,
        format!("{}\n{}\n{}\n", bin.join("kube-proxy"), bin.join("kubectl"), bin.join("version.test"))
    );
    let t = Proc::new(bin.join("version.test")).args(["-test.run", "TestString", "-test.v"]).output().unwrap();
    assert!(t.success() && t.stdout.contains("--- PASS: TestString"), "a working test binary: {}", t.stdout);

    // Two platforms, in parallel when the memory threshold allows (0 here), else in turn.
    let two = ["KUBE_BUILD_PLATFORMS=linux/amd64 linux/arm64", "WHAT=cmd/kubectl"];
    let out = build(&two, &[("KUBE_PARALLEL_BUILD_MEMORY", "0")]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("2 platforms to build, in parallel"), "{}", out.stderr);
    let arm = root.join("_output/local/bin/linux/arm64/kubectl");
    assert_eq!(out.stdout, format!("{}\n{arm}\n", bin.join("kubectl")));
    let elf = std::fs::read(&arm).unwrap();
    assert_eq!(elf[18], 0xb7, "an arm64 ELF (e_machine EM_AARCH64)");
    std::fs::remove_dir_all(root.join("_output/local/bin/linux/arm64")).unwrap();
    let out = build(&two, &[("KUBE_PARALLEL_BUILD_MEMORY", "100000")]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("1 platforms to build") || !out.stderr.contains("in parallel"), "{}", out.stderr);
    assert!(arm.is_file());
}
