//! The README's promises of the containerized tools, on the real engine: the kube-build image
//! rebuilt only when its context changes, the rsync password's mode, the caller's uid:gid,
//! build-shell on a terminal, and make-clean's --all-dangling, read-only caches, symlinked
//! _output and $HOME refusal.

//! It lives with the dispatcher: its binary reaches run-dockerized, build-shell and make-clean.

use camino::Utf8Path;
use kube_tree::cli::invoke_str;
use kube_tree::fixture;
use kube_tree::proc::{Captured, Proc};
use testkit::engine::*;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn rd(root: &Utf8Path, args: &[&str], envs: &[(&str, &str)]) -> Captured {
    tool(XTASK, &["run-dockerized"], root, args, envs)
}

/// What the README promises of the image, the rsync password, the user, build-shell's terminal
/// and make-clean: each checked on a small tree.
#[test]
#[ignore = "full tier: needs docker, script and the real v1.20.2 tree"]
fn image_password_user_shell_and_clean_promises() {
    let test = "image_password_user_shell_and_clean_promises";
    let Some(real) = ready(test) else { return };
    let root = small_tree("dock-promises", &real);
    let mut guard = testkit::EngineGuard::new(&root);
    let run = |args: &[&str]| {
        let out = rd(&root, args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
        out
    };
    // The kube-build image is built once, and again only when its context changes.
    assert!(run(&["true"]).stderr.contains("building kube-build:build-"));
    fail_on_purpose(test);
    assert!(!run(&["true"]).stderr.contains("building kube-build:"), "rebuilt with nothing changed");
    let dockerfile = root.join("build/build-image/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&dockerfile, format!("{text}\n# a change to the context\n")).unwrap();
    assert!(run(&["true"]).stderr.contains("building kube-build:build-"), "the context changed");

    // The rsync password: 0600, and never on a command line.
    let images = root.join("_output/images");
    let dir = std::fs::read_dir(&images).unwrap().flatten().next().expect("a build context").path();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join("rsyncd.password")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let secret = std::fs::read_to_string(dir.join("rsyncd.password")).unwrap();
    // The build container runs as the caller's uid:gid.
    let plan = rd(&root, &["--dry-run", "true"], &[]);
    let (uid, gid) = (Proc::new("id").arg("-u").read().unwrap(), Proc::new("id").arg("-g").read().unwrap());
    assert!(plan.stdout.contains(&format!("--user={}:{}", uid.trim(), gid.trim())), "{}", plan.stdout);
    assert!(!plan.stdout.contains(secret.trim()), "the password is on a command line");

    // build-shell with a terminal (a pty from `script`): the shell in the container has a tty.
    if testkit::require(test, "script") {
        let cmd = format!("{XTASK} build-shell --kube-root {root}");
        let mut child = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("KUBE_CROSS_IMAGE", testkit::cross_repo())
            .env("KUBE_KIT_CACHE_VOLUME", testkit::cache_volume())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"echo TTY=$(tty); exit\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("TTY=/dev/pts/"), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    }

    // make-clean: --all-dangling lists a dangling image (and only with the flag); read-only
    // caches go; a symlinked _output is removed as a link, its target kept; $HOME is refused.
    let repo = format!("k8s-build-kit-test-{}/dangling:1", std::process::id());
    let ctx = fixture::scratch_dir("dock-dangling");
    let mut ids = Vec::new();
    for n in 0..2 {
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM {}\nLABEL kit.dangling={n}-{}\n", testkit::BASE_IMAGE, std::process::id()),
        )
        .unwrap();
        Proc::new("docker").args(["build", "-q", "-t", &repo]).arg(&ctx).read().unwrap();
        ids.push(docker(&["image", "inspect", "-f", "{{.Id}}", &repo]).trim().to_string());
    }
    guard.tags.extend([repo.clone(), ids[0].clone()]);
    let short = ids[0].trim_start_matches("sha256:")[..12].to_string();
    let (code, plan) = invoke_str(&make_clean::TOOL, &["--kube-root", root.as_str(), "--dry-run", "--all-dangling"]);
    assert_eq!(code, 0);
    assert!(plan.lines().any(|l| l.starts_with("dangling\t") && l.contains(&short)), "{plan}");
    let (_, plan) = invoke_str(&make_clean::TOOL, &["--kube-root", root.as_str(), "--dry-run"]);
    assert!(!plan.contains("dangling\t"), "{plan}");
    let ro = root.join("_output/local/go/pkg/mod/example.com/x@v1");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("f.go"), "package x\n").unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let (code, _) = invoke_str(&make_clean::TOOL, &["--kube-root", root.as_str()]);
    assert_eq!(code, 0);
    assert!(!root.join("_output").exists() && containers_of(&root).is_empty());
    let outside = fixture::scratch_dir("dock-clean-outside");
    std::fs::write(outside.join("keep"), "keep\n").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("_output")).unwrap();
    let (code, _) = invoke_str(&make_clean::TOOL, &["--kube-root", root.as_str()]);
    assert_eq!(code, 0);
    assert!(
        std::fs::symlink_metadata(root.join("_output")).is_err() && outside.join("keep").exists(),
        "the link went, its target stayed"
    );
    let out = Proc::new(XTASK).args(["make-clean", "--kube-root", root.as_str()]).env("HOME", &root).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("refusing to clean"), "{}", out.stderr);
}

/// `make-clean --all-trees`, on a private second daemon (what it does is engine-wide, so never
/// on the machine's own): the kit's objects of every tree go, by label and by the scripts'
/// naming, with sizes in --dry-run; a bystander container, a look-alike name and an unrelated
/// image stay; without a terminal it asks for --yes and removes nothing.
#[test]
#[ignore = "full tier: needs root (a second dockerd), docker and the real v1.20.2 tree"]
fn make_clean_all_trees_removes_the_kits_objects_of_every_tree_only() {
    let test = "make_clean_all_trees_removes_the_kits_objects_of_every_tree_only";
    if !testkit::docker_ok() {
        return testkit::skip(test, "no reachable docker daemon");
    }
    let d = match testkit::daemon::SecondDaemon::start("clean") {
        Ok(d) => d,
        Err(e) => return testkit::skip_if_missing(test, &e),
    };
    let dk = |args: &[&str]| d.docker().args(args).read().unwrap_or_else(|e| panic!("docker {args:?}: {}", e.msg));
    d.empty_image("k8s-build-kit-empty:1").unwrap();
    for t in ["kube-build:build-0123456789-5-v1.15.5-1", "kube-build:build-abcdefabcd-5-v1.20.0-1", "example/keep:1"] {
        dk(&["tag", "k8s-build-kit-empty:1", t]);
    }
    let ours = ["kube-build-data-0123456789-5-v1.15.5-1", "kube-rsync-abcdefabcd-5-v1.20.0-1", "labelled-by-the-kit"];
    for c in ours {
        dk(&[
            "create",
            "--name",
            c,
            "--label",
            if c.starts_with("labelled") { "io.k8s-build-kit.tree=/some/tree" } else { "x=y" },
            "k8s-build-kit-empty:1",
            "/none",
        ]);
    }
    for c in ["bystander", "kube-build-notahash"] {
        dk(&["create", "--name", c, "k8s-build-kit-empty:1", "/none"]);
    }
    let clean = |args: &[&str]| {
        Proc::new(XTASK)
            .arg("make-clean")
            .args(args)
            .env("DOCKER_HOST", &d.host)
            .env_remove("DOCKER_CONTEXT")
            .output()
            .unwrap()
    };
    let names = || dk(&["ps", "-a", "--format", "{{.Names}}"]);
    let before = names();

    let plan = clean(&["--all-trees", "--dry-run"]);
    assert_eq!(plan.status.code(), Some(0), "{}", plan.stderr);
    for c in ours {
        assert!(plan.stdout.lines().any(|l| l.starts_with(&format!("container\t{c}\t"))), "{c}: {}", plan.stdout);
    }
    for i in ["kube-build:build-0123456789-5-v1.15.5-1", "kube-build:build-abcdefabcd-5-v1.20.0-1"] {
        assert!(plan.stdout.lines().any(|l| l.starts_with(&format!("image\t{i}\t"))), "{i}: {}", plan.stdout);
    }
    assert!(
        plan.stdout.lines().all(|l| l.split('\t').nth(2).is_some_and(|b| b == "?" || b.parse::<u64>().is_ok())),
        "sizes: {}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("bystander")
            && !plan.stdout.contains("notahash")
            && !plan.stdout.contains("example/keep"),
        "{}",
        plan.stdout
    );
    assert!(plan.stderr.contains("would remove 5 item(s)"), "{}", plan.stderr);
    assert_eq!(names(), before, "--dry-run removed something");

    let refused = clean(&["--all-trees"]);
    assert_eq!(refused.status.code(), Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);
    assert_eq!(names(), before, "a refusal removed something");

    let done = clean(&["--all-trees", "--yes"]);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    let left = names();
    let mut left: Vec<&str> = left.lines().collect();
    left.sort();
    assert_eq!(left, ["bystander", "kube-build-notahash"]);
    let images = dk(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!images.contains("kube-build:"), "{images}");
    assert!(images.contains("example/keep:1") && images.contains("k8s-build-kit-empty:1"), "{images}");
}
