//! End to end on a real Kubernetes tree: Debian's `kubernetes` source package (v1.20.2, era B
//! with vendor symlinks), fetched once through a private apt source list and cached
//! (see testkit). Without apt or the network they fail, naming what is missing.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::cli::invoke_str;
use kube_tree::proc::Proc;
use kube_tree::{Era, Tree, VendorLayout};
use std::os::unix::fs::symlink;

fn real_tree(test: &str) -> Option<Utf8PathBuf> {
    match testkit::real_tree() {
        Ok(t) => Some(t),
        Err(e) => {
            testkit::skip_if_missing(test, &e);
            None
        }
    }
}

fn have_go(test: &str) -> bool {
    testkit::require(test, "go")
}

/// (path, kind) of each stdout line of check-vendor.
fn kinds(out: &str) -> Vec<(String, String)> {
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect()
}

/// Replaces a file by unlinking it first: the copy is made of hard links into the cached tree.
fn rewrite(p: &Utf8Path, f: impl Fn(&str) -> String) {
    let t = std::fs::read_to_string(p).unwrap();
    std::fs::remove_file(p).unwrap();
    std::fs::write(p, f(&t)).unwrap();
}

#[test]
#[ignore = "full tier: needs the real v1.20.2 tree (apt-get source, network on first run)"]
fn pristine_real_tree_is_consistent() {
    let Some(tree) = real_tree("pristine_real_tree_is_consistent") else { return };
    let t = Tree::open(&tree).unwrap();
    assert_eq!((t.era, t.layout), (Era::B, VendorLayout::Symlinks), "{:?}", t.evidence);
    assert_eq!(t.staging_repos().unwrap().len(), 26);
    let (code, out) = invoke_str(&check_vendor::TOOL, &["--kube-root", tree.as_str()]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out) = invoke_str(&check_vendor::TOOL, &["--kube-root", tree.as_str(), "--explain-tree"]);
    assert_eq!(code, 0);
    assert!(out.contains("build/dependencies.yaml present") && out.contains("v1.15.5-1"), "{out}");
}

#[test]
#[ignore = "full tier: needs the real v1.20.2 tree (network on first run), go, and a GOPATH build of kube-proxy"]
fn every_damage_is_found_fixed_and_the_build_works_again() {
    let test = "every_damage_is_found_fixed_and_the_build_works_again";
    let Some(tree) = real_tree(test) else { return };
    let scratch = testkit::scratch("real-damage");
    let copy = scratch.join("kubernetes");
    testkit::link_copy(&tree, &copy).unwrap();
    let v = copy.join("vendor/k8s.io");

    std::fs::remove_file(v.join("api")).unwrap();
    std::fs::remove_file(v.join("client-go")).unwrap();
    std::fs::write(v.join("client-go"), "../../staging/src/k8s.io/client-go").unwrap();
    std::fs::remove_file(v.join("kubectl")).unwrap();
    symlink(copy.join("staging/src/k8s.io/kubectl"), v.join("kubectl")).unwrap();
    std::fs::remove_file(v.join("metrics")).unwrap();
    symlink("../../staging/src/k8s.io/metricz", v.join("metrics")).unwrap();
    std::fs::remove_file(v.join("cri-api")).unwrap();
    std::fs::create_dir(v.join("cri-api")).unwrap();
    std::fs::remove_file(v.join("kubelet")).unwrap();
    let cp = Proc::new("cp")
        .args(["-r"])
        .arg(copy.join("staging/src/k8s.io/kubelet"))
        .arg(v.join("kubelet"))
        .output()
        .unwrap();
    assert!(cp.success());
    symlink("../../staging/src/k8s.io/retired", v.join("retired")).unwrap();
    rewrite(&copy.join("vendor/modules.txt"), |t| {
        t.replacen("# github.com/google/uuid v1.1.2 ", "# github.com/google/uuid v1.1.1 ", 1)
    });

    let root = copy.as_str();
    let (code, out) = invoke_str(&check_vendor::TOOL, &["--kube-root", root]);
    assert_eq!(code, 1);
    let k = kinds(&out);
    for (path, kind) in [
        ("vendor/k8s.io/api", "missing-link"),
        ("vendor/k8s.io/client-go", "windows-placeholder"),
        ("vendor/k8s.io/kubectl", "wrong-target"),
        ("vendor/k8s.io/metrics", "dangling-link"),
        ("vendor/k8s.io/cri-api", "dir-copy"),
        ("vendor/k8s.io/kubelet", "dir-copy"),
        ("vendor/k8s.io/retired", "orphan-link"),
    ] {
        assert!(k.contains(&(path.to_string(), kind.to_string())), "{path} {kind} not in {k:?}");
    }
    assert!(
        k.iter().any(|(p, kind)| p.starts_with("vendor/modules.txt:") && kind == "modules-version-mismatch"),
        "{k:?}"
    );

    // The lost links break the GOPATH build of cmd/kube-proxy (fast: it fails while loading).
    if have_go(test) {
        let (code, out) = invoke_str(&check_vendor::TOOL, &["--kube-root", root, "--probe"]);
        // The probe's GOPATH is kept in the temp directory for a rerun; this test's goes now.
        let gopath = check_vendor::probe_gopath_dir(Utf8Path::new(root)).unwrap();
        assert!(gopath.path().is_dir(), "the probe kept its GOPATH at {gopath}");
        gopath.remove_dir_all().unwrap();
        assert_eq!(code, 1);
        assert!(kinds(&out).contains(&("cmd/kube-proxy".into(), "probe-failed".into())), "{out}");
    }

    // --dry-run changes nothing; --fix without --force leaves the real directory copy.
    let (_, before) = invoke_str(&check_vendor::TOOL, &["--kube-root", root]);
    let (code, _) = invoke_str(&check_vendor::TOOL, &["--kube-root", root, "--fix", "--dry-run"]);
    assert_eq!(code, 1);
    assert_eq!(invoke_str(&check_vendor::TOOL, &["--kube-root", root]).1, before);
    let (code, out) = invoke_str(&check_vendor::TOOL, &["--kube-root", root, "--fix"]);
    assert_eq!(code, 1, "--fix without --force leaves the directory copy and the modules.txt edit: {out}");
    assert!(
        kinds(&out).contains(&("vendor/k8s.io/kubelet".into(), "dir-copy".into())),
        "--fix reports the directory it left: {out}"
    );
    assert!(
        std::fs::symlink_metadata(v.join("kubelet")).unwrap().is_dir(),
        "replaced a directory with files without --force"
    );
    let (code, out) = invoke_str(&check_vendor::TOOL, &["--kube-root", root, "--fix", "--force"]);
    assert_eq!(code, 1, "the modules.txt edit is not a link problem and stays: {out}");
    assert_eq!(kinds(&out).iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>(), ["modules-version-mismatch"]);
    rewrite(&copy.join("vendor/modules.txt"), |t| {
        t.replacen("# github.com/google/uuid v1.1.1 ", "# github.com/google/uuid v1.1.2 ", 1)
    });
    assert_eq!(invoke_str(&check_vendor::TOOL, &["--kube-root", root]), (0, String::new()));
    for r in ["api", "client-go", "kubectl", "metrics", "cri-api", "kubelet"] {
        assert_eq!(std::fs::read_link(v.join(r)).unwrap().to_str().unwrap(), format!("../../staging/src/k8s.io/{r}"));
    }
    assert!(std::fs::symlink_metadata(v.join("retired")).is_err());
    // The pristine cache was not touched through the hard links.
    assert_eq!(invoke_str(&check_vendor::TOOL, &["--kube-root", tree.as_str()]), (0, String::new()));

    // The seed's proof: the repaired tree builds cmd/kube-proxy from a GOPATH.
    if have_go(test) {
        let gp = scratch.join("gopath");
        let (code, out) = invoke_str(&setup_gopath::TOOL, &["--gopath", gp.as_str(), "--from", root, "--probe"]);
        assert_eq!(code, 0, "{out}");
        let bin = gp.join("bin/kube-proxy");
        assert_eq!(out, format!("{}\n{bin}\n", gp.join("src/k8s.io/kubernetes")));
        let v = Proc::new(&bin).arg("--version").output().unwrap();
        assert!(v.stdout.starts_with("Kubernetes v"), "{}{}", v.stdout, v.stderr);
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The real v1.20.2 tree needs GOPATH mode: module mode cannot even load cmd/kube-proxy, the env
/// setup-gopath prints can.
#[test]
#[ignore = "full tier: needs the real v1.20.2 tree (network on first run) and go"]
fn print_env_gives_the_mode_the_real_tree_needs() {
    let test = "print_env_gives_the_mode_the_real_tree_needs";
    let Some(tree) = real_tree(test) else { return };
    if !have_go(test) {
        return;
    }
    let gp = testkit::scratch("real-env").join("gopath");
    let (code, env) =
        invoke_str(&setup_gopath::TOOL, &["--gopath", gp.as_str(), "--from", tree.as_str(), "--print-env"]);
    assert_eq!(code, 0);
    assert!(env.contains("export GO111MODULE=off\n") && env.contains(&format!("export GOPATH={gp}\n")), "{env}");

    let modmode = Proc::new("go")
        .args(["list", "./cmd/kube-proxy"])
        .dir(&tree)
        .env("GO111MODULE", "on")
        .env("GOFLAGS", "-mod=vendor")
        .env("GOPROXY", "off")
        .output()
        .unwrap();
    assert!(!modmode.success(), "module mode unexpectedly loads the v1.20.2 tree");
    let script = format!("{env}\ncd {gp}/src/k8s.io/kubernetes && go list ./cmd/kube-proxy");
    let ours = Proc::new("bash").args(["-c", &script]).env("GO111MODULE", "on").output().unwrap();
    assert!(ours.success(), "{}", ours.stderr);
    assert_eq!(ours.stdout, "k8s.io/kubernetes/cmd/kube-proxy\n");
}

/// (file, line, old, new) of every line that differs between two trees (the files they share).
fn tree_line_diff(a: &Utf8Path, b: &Utf8Path) -> Vec<(String, usize, String, String)> {
    let out = Proc::new("diff").args(["-rq", "--no-dereference", a.as_str(), b.as_str()]).output().unwrap();
    let mut changes = Vec::new();
    for l in out.stdout.lines() {
        let rest = l.strip_prefix("Files ").unwrap_or_else(|| panic!("not a changed-file line: {l}"));
        let (fa, _) = rest.split_once(" and ").unwrap();
        let rel = fa.strip_prefix(a.as_str()).unwrap().trim_start_matches('/').to_string();
        let (ta, tb) = (std::fs::read_to_string(a.join(&rel)).unwrap(), std::fs::read_to_string(b.join(&rel)).unwrap());
        for (i, (x, y)) in ta.lines().zip(tb.lines()).enumerate() {
            if x != y {
                changes.push((rel.clone(), i + 1, x.to_string(), y.to_string()));
            }
        }
    }
    changes.sort();
    changes
}

#[test]
#[ignore = "full tier: needs the real v1.20.2 tree (network on first run) and git"]
fn bump_go_moves_exactly_the_real_carriers() {
    let Some(tree) = real_tree("bump_go_moves_exactly_the_real_carriers") else { return };
    let bump = |root: &Utf8Path, args: &[&str]| {
        let mut a = vec!["--kube-root", root.as_str()];
        a.extend_from_slice(args);
        invoke_str(&bump_go_version::TOOL, &a)
    };
    assert_eq!(bump(&tree, &["--check"]), (0, String::new()), "the pristine v1.20.2 tree is in sync");

    let scratch = testkit::scratch("real-bump");
    let (w, d) = (scratch.join("written"), scratch.join("diffed"));
    testkit::link_copy(&tree, &w).unwrap();
    testkit::link_copy(&tree, &d).unwrap();

    let (code, files) = bump(&w, &["1.15.8"]);
    assert_eq!(code, 0);
    assert_eq!(files, "build/build-image/cross/VERSION\nbuild/dependencies.yaml\nbuild/root/WORKSPACE\ncluster/addons/fluentd-elasticsearch/es-image/Dockerfile\nstaging/publishing/rules.yaml\ntest/images/Makefile\ntest/images/sample-apiserver/Makefile\n");
    let s = |x: &str| x.to_string();
    assert_eq!(
        tree_line_diff(&tree, &w),
        vec![
            (s("build/build-image/cross/VERSION"), 1, s("v1.15.5-1"), s("v1.15.8-1")),
            (s("build/dependencies.yaml"), 102, s("    version: 1.15.5"), s("    version: 1.15.8")),
            (s("build/dependencies.yaml"), 115, s("    version: v1.15.5-1"), s("    version: v1.15.8-1")),
            (s("build/root/WORKSPACE"), 26, s("    go_version = \"1.15.5\","), s("    go_version = \"1.15.8\",")),
            (
                s("cluster/addons/fluentd-elasticsearch/es-image/Dockerfile"),
                15,
                s("FROM golang:1.15.5 AS builder"),
                s("FROM golang:1.15.8 AS builder")
            ),
            (s("staging/publishing/rules.yaml"), 7, s("default-go-version: 1.15.5"), s("default-go-version: 1.15.8")),
            (s("test/images/Makefile"), 19, s("GOLANG_VERSION=1.15.5"), s("GOLANG_VERSION=1.15.8")),
            (
                s("test/images/sample-apiserver/Makefile"),
                27,
                s("\tdocker run --rm -it -v \"${TARGET}:${TARGET}:Z\" k8s.gcr.io/build-image/kube-cross:v1.15.5-1 \\"),
                s("\tdocker run --rm -it -v \"${TARGET}:${TARGET}:Z\" k8s.gcr.io/build-image/kube-cross:v1.15.8-1 \\")
            ),
        ],
        "exactly these lines, nothing else in the tree"
    );
    // The release branches' `go: 1.15.5` lines of rules.yaml are not carriers and stay.
    assert!(std::fs::read_to_string(w.join("staging/publishing/rules.yaml")).unwrap().contains("    go: 1.15.5\n"));
    assert_eq!(bump(&w, &["--check"]), (0, String::new()));

    // --diff, applied with git apply, gives the same tree as the real write.
    let (code, patch) = bump(&d, &["1.15.8", "--diff"]);
    assert_eq!(code, 0);
    assert!(tree_line_diff(&tree, &d).is_empty(), "--diff wrote something");
    let pf = scratch.join("bump.patch");
    std::fs::write(&pf, &patch).unwrap();
    let applied = Proc::new("git").args(["apply"]).arg(&pf).dir(&d).output().unwrap();
    assert!(applied.success(), "{}", applied.stderr);
    assert!(tree_line_diff(&w, &d).is_empty(), "git apply of --diff differs from the write");

    // A carrier edited by hand: --check fails naming it.
    rewrite(&w.join("test/images/Makefile"), |t| t.replace("GOLANG_VERSION=1.15.8", "GOLANG_VERSION=1.15.7"));
    let (code, out) = bump(&w, &["--check"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("test/images/Makefile:19\tdrift\t"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(bump(&tree, &["--check"]), (0, String::new()), "the cached tree was not touched");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
#[ignore = "full tier: needs the real v1.20.2 tree (network on first run), go, rsync, git and make"]
fn doctor_passes_on_the_real_tree_here() {
    let test = "doctor_passes_on_the_real_tree_here";
    let Some(tree) = real_tree(test) else { return };
    // What doctor requires of a machine for this tree, named before it is asked.
    for tool in ["go", "rsync", "git", "make", "tar", "bash"] {
        testkit::require(test, tool);
    }
    let (code, out) = invoke_str(&doctor::TOOL, &["--kube-root", tree.as_str(), "--json"]);
    let failed: Vec<&str> = out.split(r#"{"check":""#).skip(1).filter(|r| r.contains(r#""status":"fail""#)).collect();
    assert_eq!(code, 0, "doctor finds this machine lacking: {failed:?}");
    assert!(out.contains(r#"{"check":"go","status":"ok","found":"go1."#) && out.contains(">= go1.15.0"), "{out}");
}

/// What `make` with no WHAT builds in v1.20.2, read from its hack/lib/golang.sh (functions,
/// arrays and the OSTYPE-guarded e2e_node target), and the Go it was made for.
#[test]
#[ignore = "full tier: needs the real v1.20.2 tree (apt-get source, network on first run)"]
fn the_real_trees_full_target_list_and_go() {
    let Some(root) = real_tree("the_real_trees_full_target_list_and_go") else { return };
    let tree = Tree::open(&root).unwrap();
    let g = kube_tree::scripts::GolangSh::read(&tree).unwrap();
    let want = [
        "cmd/kube-proxy",
        "cmd/kube-apiserver",
        "cmd/kube-controller-manager",
        "cmd/kubelet",
        "cmd/kubeadm",
        "cmd/kube-scheduler",
        "vendor/k8s.io/kube-aggregator",
        "vendor/k8s.io/apiextensions-apiserver",
        "cluster/gce/gci/mounter",
        "cmd/kubectl",
        "cmd/gendocs",
        "cmd/genkubedocs",
        "cmd/genman",
        "cmd/genyaml",
        "cmd/genswaggertypedocs",
        "cmd/linkcheck",
        "vendor/github.com/onsi/ginkgo/ginkgo",
        "test/e2e/e2e.test",
        "cluster/images/conformance/go-runner",
        "cmd/kubemark",
        "test/e2e_node/e2e_node.test",
    ];
    assert_eq!(g.all_targets, want);
    assert_eq!(g.parallel_memory_gb, Some(40));
    let w = setup_go::want::of_tree(&tree).unwrap().unwrap();
    assert_eq!((w.version.text.as_str(), w.from.as_str()), ("1.15.5", "build/build-image/cross/VERSION (v1.15.5-1)"));
}
