//! setup-gopath, run as the real binary, on generated trees.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_setup-gopath");

fn sg(args: &[&str]) -> Captured {
    Proc::new(BIN)
        .args(args)
        .env_remove("KUBE_ROOT")
        .env("KUBE_VERBOSE", "1")
        .env("KUBE_KIT_CACHE", fixture::kit_cache())
        .output()
        .unwrap()
}

fn have(tool: &str) -> bool {
    testkit::require("setup-gopath synthetic", tool)
}

#[test]
fn links_idempotently_and_refuses_what_it_did_not_make() {
    let root = fixture::scratch_tree("sg-link", &Spec::era_b());
    let gp = fixture::scratch_dir("sg-link-gopath");
    let dest = gp.join("src/k8s.io/kubernetes");

    let dry = sg(&["--gopath", gp.as_str(), "--from", root.as_str(), "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", dry.stderr);
    assert!(dry.stderr.contains("would link"), "{}", dry.stderr);
    assert!(!gp.join("src").exists(), "--dry-run created something");

    let out = sg(&["--gopath", gp.as_str(), "--from", root.as_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, format!("{dest}\n"));
    assert_eq!(std::fs::read_link(&dest).unwrap().to_str().unwrap(), root.as_str());

    let again = sg(&["--gopath", gp.as_str(), "--from", root.as_str()]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(again.stdout, out.stdout);
    assert!(!again.stderr.contains("link "), "a rerun changes nothing: {}", again.stderr);

    // A symlink to another tree: refused, then repointed with --force.
    let other = fixture::scratch_tree("sg-link-other", &Spec::era_a());
    let refused = sg(&["--gopath", gp.as_str(), "--from", other.as_str()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(std::fs::read_link(&dest).unwrap().to_str().unwrap(), root.as_str());
    let forced = sg(&["--gopath", gp.as_str(), "--from", other.as_str(), "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", forced.stderr);
    assert_eq!(std::fs::read_link(&dest).unwrap().to_str().unwrap(), other.as_str());

    // A real directory that is not the tree is never replaced, even with --force.
    let gp2 = fixture::scratch_dir("sg-link-gopath2");
    let d2 = gp2.join("src/k8s.io/kubernetes");
    std::fs::create_dir_all(&d2).unwrap();
    std::fs::write(d2.join("mine.txt"), "keep").unwrap();
    for extra in [&[][..], &["--force"]] {
        let mut args = vec!["--gopath", gp2.as_str(), "--from", root.as_str()];
        args.extend_from_slice(extra);
        let out = sg(&args);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    }
    assert_eq!(std::fs::read_to_string(d2.join("mine.txt")).unwrap(), "keep");
    assert_eq!(std::fs::read_dir(&d2).unwrap().count(), 1);
}

#[test]
fn usage_errors_exit_2() {
    let root = fixture::scratch_tree("sg-usage", &Spec::era_b());
    let not = fixture::scratch_dir("sg-usage-not");
    for args in [
        vec!["--from", root.as_str(), "--clone", "x"],
        vec!["--ref", "v1"],
        vec!["--from", not.as_str()],
        vec!["--bogus"],
    ] {
        let out = sg(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(out.stdout, "");
    }
}

/// `eval "$(setup-gopath --print-env)"` gives go the env the era needs.
#[test]
fn print_env_evaluates_in_a_shell() {
    if !have("go") || !have("bash") {
        return;
    }
    for (name, spec, mode) in [("a", Spec::era_a(), "off"), ("c", Spec::era_c(), "")] {
        let root = fixture::scratch_tree(&format!("sg-env-{name}"), &spec);
        let gp = fixture::scratch_dir(&format!("sg-env-{name}-gopath"));
        let script =
            format!("eval \"$('{BIN}' --gopath {gp} --from {root} --print-env)\" && go env GOPATH GO111MODULE");
        let out = Proc::new("bash").args(["-c", &script]).env("GO111MODULE", "on").output().unwrap();
        assert!(out.success(), "{}", out.stderr);
        assert_eq!(out.stdout, format!("{gp}\n{mode}\n"), "era {name}");
    }
}

fn git(dir: &Utf8Path, args: &[&str]) {
    let out = Proc::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@e")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@e")
        .output()
        .unwrap();
    assert!(out.success(), "git {args:?}: {}", out.stderr);
}

#[test]
fn clones_a_ref_and_leaves_nothing_on_failure() {
    if !have("git") {
        return;
    }
    let repo = fixture::scratch_tree("sg-clone-src", &Spec::era_b());
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "v1"]);
    git(&repo, &["tag", "v1.20.2"]);
    std::fs::write(repo.join("NEWER"), "after the tag").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "v2"]);
    let url = format!("file://{repo}");

    let gp = fixture::scratch_dir("sg-clone-gopath");
    let dest = gp.join("src/k8s.io/kubernetes");
    let out = sg(&["--gopath", gp.as_str(), "--clone", &url, "--ref", "v1.20.2"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(dest.join("go.mod").is_file());
    assert!(!dest.join("NEWER").exists(), "--ref was not checked out");
    assert!(std::fs::symlink_metadata(dest.join("vendor/k8s.io/api")).unwrap().file_type().is_symlink());
    let again = sg(&["--gopath", gp.as_str(), "--clone", &url]);
    assert_eq!(again.status.code(), Some(0), "same origin: idempotent: {}", again.stderr);

    let gp2 = fixture::scratch_dir("sg-clone-bad");
    let out = sg(&["--gopath", gp2.as_str(), "--clone", &format!("file://{gp2}/nothing-here")]);
    assert_eq!(out.status.code(), Some(2));
    let left: Vec<_> = walk(&gp2);
    assert!(left.iter().all(|p| !p.as_str().contains("kubernetes")), "half clone left behind: {left:?}");
}

fn walk(d: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd {
            let p = Utf8PathBuf::from_path_buf(e.unwrap().path()).unwrap();
            v.push(p.clone());
            v.extend(walk(&p));
        }
    }
    v
}

#[test]
fn probe_builds_a_working_kube_proxy() {
    if !have("go") {
        return;
    }
    let root = fixture::scratch_tree("sg-probe", &Spec::era_a());
    let gp = fixture::scratch_dir("sg-probe-gopath");
    let out = sg(&["--gopath", gp.as_str(), "--from", root.as_str(), "--probe"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let bin = gp.join("bin/kube-proxy");
    assert_eq!(out.stdout, format!("{}\n{bin}\n", gp.join("src/k8s.io/kubernetes")));
    let ran = Proc::new(&bin).read().unwrap();
    assert_eq!(ran, "kube-proxy api 1.0.0 v0.0.0-master+$Format:%h$ 1970-01-01T00:00:00Z\n");
}
