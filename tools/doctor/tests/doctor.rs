//! doctor, run as the real binary: on this machine, and with PATH stripped of go or rsync.

use camino::Utf8Path;
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{which, Captured, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_doctor");

fn doctor(root: &Utf8Path, path: Option<&Utf8Path>, args: &[&str]) -> Captured {
    let mut p = Proc::new(BIN).arg("--kube-root").arg(root).args(args);
    if let Some(path) = path {
        p = p.env("PATH", path);
    }
    p.output().unwrap()
}

/// A PATH directory holding links to everything doctor looks for, except `without`.
fn path_without(name: &str, without: &str) -> camino::Utf8PathBuf {
    let dir = fixture::scratch_dir(name);
    for tool in ["go", "rsync", "git", "make", "tar", "bash", "uname", "df", "date", "docker"] {
        if tool == without {
            continue;
        }
        if let Some(p) = which(tool) {
            std::os::unix::fs::symlink(p, dir.join(tool)).unwrap();
        }
    }
    dir
}

fn row<'a>(stderr: &'a str, check: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.split_whitespace().next() == Some(check))
        .unwrap_or_else(|| panic!("no {check} row in:\n{stderr}"))
}

/// The rows doctor writes to its JSON, by check name.
fn checks(json: &str) -> Vec<String> {
    json.split(r#"{"check":""#).skip(1).filter_map(|r| r.split('"').next()).map(String::from).collect()
}

/// This machine's tools (the fast tier needs go, rsync, git and make), with the engine out of
/// reach on purpose (a socket that does not exist): the rows are what doctor can say without
/// one, whatever this machine runs.
#[test]
fn this_machine_has_what_the_tree_needs() {
    for tool in ["go", "rsync", "git", "make"] {
        testkit::require("this_machine_has_what_the_tree_needs", tool);
    }
    let root = fixture::scratch_tree("doc-ok", &Spec::era_b());
    let run = |args: &[&str]| {
        Proc::new(BIN)
            .arg("--kube-root")
            .arg(&root)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{root}/no-engine.sock"))
            .env_remove("KUBE_CONTAINER_ENGINE")
            .output()
            .unwrap()
    };
    let out = run(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(row(&out.stderr, "go").contains(" ok "), "{}", out.stderr);
    assert!(row(&out.stderr, "go").contains(">= go1.15.0"), "the tree's minimum is read: {}", out.stderr);
    assert!(out.stdout.starts_with(r#"[{"check":"go","status":"ok","found":"go1."#), "{}", out.stdout);
    // The engine does not answer: its row says so, and kube-cross is not asked about.
    let names = checks(&out.stdout);
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(names.iter().any(|n| n == "docker") && !names.iter().any(|n| n == "kube-cross"), "{names:?}");
    assert!(row(&out.stderr, "docker").contains("unreachable"), "{}", out.stderr);
    // Which Go a build of this tree would use, and why (nothing is downloaded by doctor).
    let tree_go = row(&out.stderr, "tree-go");
    assert!(tree_go.contains("go1.15") || tree_go.contains("the go on PATH"), "{tree_go}");
    let forced = run(&["--go", "host"]);
    assert!(row(&forced.stderr, "tree-go").contains("--go host"), "{}", forced.stderr);
    // --only: those rows, in doctor's order; a name it has no row for is a usage error.
    let only = run(&["--only", "git,go", "--json"]);
    assert_eq!((only.status.code(), checks(&only.stdout)), (Some(0), vec!["go".to_string(), "git".to_string()]));
    let bad = run(&["--only", "gcc"]);
    assert_eq!(bad.status.code(), Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("no check `gcc`") && bad.stderr.contains("rsync"), "{}", bad.stderr);
}

/// With the machine's engine answering, two more rows: where the tree's kube-cross is, and the
/// shared Go cache.
#[test]
#[ignore = "full tier: needs docker (a reachable daemon), go, rsync, git and make"]
fn with_the_engine_up_kube_cross_is_reported() {
    let test = "with_the_engine_up_kube_cross_is_reported";
    for tool in ["go", "rsync", "git", "make", "docker"] {
        testkit::require(test, tool);
    }
    if !testkit::docker_ok() {
        testkit::missing(test, "no reachable docker daemon");
    }
    let root = fixture::scratch_tree("doc-engine-up", &Spec::era_b());
    let out = doctor(&root, None, &["--json"]);
    let names = checks(&out.stdout);
    assert_eq!(names.len(), 12, "{names:?}");
    assert!(row(&out.stderr, "docker").contains("reachable"), "{}", out.stderr);
    // The shared Go cache: its volume, its size once made, and its cap.
    let cache = row(&out.stderr, "go-cache");
    let volume = std::env::var("KUBE_KIT_CACHE_VOLUME").unwrap_or_else(|_| "k8s-build-kit-go-cache".into());
    assert!(cache.contains(&format!("volume {volume}")) && cache.contains(" GiB (KUBE_KIT_CACHE_MAX)"), "{cache}");
    let cross = row(&out.stderr, "kube-cross");
    assert!(
        cross.contains("present (sha256:") || cross.contains("answers") || cross.contains("does not answer"),
        "{cross}"
    );
}

#[test]
fn missing_go_or_rsync_fails_and_names_the_fix() {
    let root = fixture::scratch_tree("doc-missing", &Spec::era_b());
    for (tool, fix) in [("go", "install Go"), ("rsync", "apt-get install rsync")] {
        let path = path_without(&format!("doc-path-no-{tool}"), tool);
        let out = doctor(&root, Some(&path), &[]);
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        let r = row(&out.stderr, tool);
        assert!(r.contains("FAIL") && r.contains("not found") && r.contains(fix), "{r}");
    }
}

/// A PATH of links to this machine's tools, with some replaced by scripts that answer as the
/// case needs: the checks are judged against a known machine, not against whatever this one has.
fn fake_path(name: &str, fakes: &[(&str, &str)]) -> camino::Utf8PathBuf {
    let dir = path_without(name, "");
    for (prog, script) in fakes {
        let p = dir.join(prog);
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    dir
}

const GO_119: (&str, &str) = ("go", "echo 'go version go1.19.8 linux/amd64'");
const DOCKER_16G: (&str, &str) = ("docker", "echo 16000000000");

#[test]
fn a_tree_that_needs_a_newer_go_fails_the_go_check() {
    let root = fixture::scratch_tree("doc-newer", &Spec::era_c());
    let path = fake_path("doc-newer-path", &[GO_119, DOCKER_16G]);
    let out = doctor(&root, Some(&path), &[]);
    assert_eq!(out.status.code(), Some(1));
    let r = row(&out.stderr, "go");
    assert!(r.contains("go1.19.8 < go1.25") && r.contains("install Go 1.25 or newer"), "{r}");
}

#[test]
fn go_version_file_is_compared_on_go_work_trees() {
    let root = fixture::scratch_tree("doc-gover", &Spec::era_c());
    let path = fake_path("doc-gover-path", &[("go", "echo 'go version go1.25.0 linux/amd64'"), DOCKER_16G]);
    let out = doctor(&root, Some(&path), &[]);
    let r = row(&out.stderr, "go");
    assert!(r.contains("warn") && r.contains(".go-version asks go1.25.6") && r.contains("FORCE_HOST_GO"), "{r}");
}

#[test]
fn docker_memory_and_the_docker_flag() {
    testkit::require("docker_memory_and_the_docker_flag", "rsync");
    let root = fixture::scratch_tree("doc-docker", &Spec::era_b());
    let ok = fake_path("doc-docker-ok", &[GO_119, DOCKER_16G]);
    let out = doctor(&root, Some(&ok), &["--docker"]);
    assert!(row(&out.stderr, "docker").contains("reachable, 16.0 GB memory"), "{}", out.stderr);
    let small = fake_path("doc-docker-small", &[GO_119, ("docker", "echo 2000000000")]);
    let out = doctor(&root, Some(&small), &[]);
    let r = row(&out.stderr, "docker");
    assert!(r.contains("warn") && r.contains("only 2.0 GB") && r.contains("4.5 GB"), "{r}");
    let out = doctor(&root, Some(&small), &["--docker"]);
    assert_eq!(out.status.code(), Some(1), "--docker makes the engine required: {}", out.stderr);
    assert!(row(&out.stderr, "docker").contains("FAIL"), "{}", out.stderr);
    // Between 4.5 and 8 GB: a warning even with --docker (the build runs, large links may not).
    let mid = fake_path("doc-docker-mid", &[GO_119, ("docker", "echo 6000000000")]);
    let out = doctor(&root, Some(&mid), &["--docker"]);
    let r = row(&out.stderr, "docker");
    assert!(r.contains("warn") && r.contains("6.0 GB") && r.contains("8 GB"), "{r}");
    assert_ne!(out.stderr.lines().find(|l| l.starts_with("docker")).map(|l| l.contains("FAIL")), Some(true));
    let none =
        fake_path("doc-docker-none", &[GO_119, ("docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")]);
    let out = doctor(&root, Some(&none), &["--docker"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(row(&out.stderr, "docker").contains("daemon unreachable"), "{}", out.stderr);
}

#[test]
fn bash_tar_coreutils_and_disk() {
    let root = fixture::scratch_tree("doc-tools", &Spec::era_b());
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 5] = [
        (
            "bash",
            &[("bash", "echo 'GNU bash, version 3.2.57(1)-release (arm64-apple-darwin22)'")],
            "FAIL",
            "bash >= 4 is required",
        ),
        (
            "gnu-tar",
            &[("tar", "echo 'bsdtar 3.5.3 - libarchive 3.5.3'"), ("gtar", "exit 127"), ("gnutar", "exit 127")],
            "FAIL",
            "no GNU tar",
        ),
        (
            "gnu-coreutils",
            &[("uname", "echo Darwin"), ("date", "echo 'usage: date [-jnRu]' >&2; exit 1")],
            "FAIL",
            "brew install coreutils",
        ),
        (
            "gnu-coreutils",
            &[("uname", "echo Darwin"), ("date", "echo 'date (GNU coreutils) 9.1'")],
            "ok",
            "GNU coreutils",
        ),
        (
            "disk",
            &[(
                "df",
                "echo 'Filesystem 1024-blocks Used Available Capacity Mounted on'; echo '/dev/x 100 50 1000 50% /'",
            )],
            "FAIL",
            "0 GB free",
        ),
    ];
    for (i, (check, fakes, level, text)) in cases.iter().enumerate() {
        let mut all: Vec<(&str, &str)> = vec![GO_119, DOCKER_16G];
        all.extend(fakes.iter().copied());
        let path = fake_path(&format!("doc-tools-{i}"), &all);
        let out = doctor(&root, Some(&path), &[]);
        let r = row(&out.stderr, check);
        assert!(r.contains(level) && r.contains(text), "{check}: {r}");
        if *level == "FAIL" {
            assert_eq!(out.status.code(), Some(1), "{check}: {}", out.stderr);
        }
    }
}

/// The engine row names the registry mirrors the engine is configured with, and the kube-cross
/// row says whether the image is there, or whether its registry answers: judged against a
/// private second dockerd with a mirror configured and a real registry on 127.0.0.1.
#[test]
#[ignore = "full tier: needs root (a second dockerd), docker-registry and rsync"]
fn the_engine_report_names_mirrors_and_where_kube_cross_is() {
    let test = "the_engine_report_names_mirrors_and_where_kube_cross_is";
    if !testkit::require(test, "rsync") {
        return;
    }
    let second =
        match testkit::daemon::SecondDaemon::start_with("doc", r#""registry-mirrors": ["http://127.0.0.1:5999/"]"#) {
            Ok(d) => d,
            Err(e) => return testkit::skip_if_missing(test, &e),
        };
    let reg = match testkit::registry::Registry::start("doctor") {
        Ok(r) => r,
        Err(e) => return testkit::skip_if_missing(test, &e),
    };
    let root = fixture::scratch_tree("doc-engine", &Spec::era_b());
    let tag = std::fs::read_to_string(root.join("build/build-image/cross/VERSION")).unwrap();
    let repo = format!("{}/k8s/kube-cross", reg.addr);
    let run = |image: &str, args: &[&str]| {
        Proc::new(BIN)
            .arg("--kube-root")
            .arg(&root)
            .args(args)
            .env("DOCKER_HOST", &second.host)
            .env("KUBE_CROSS_IMAGE", image)
            .env_remove("KUBE_CONTAINER_ENGINE")
            .output()
            .unwrap()
    };

    // Not on the engine; its registry answers: a warning naming the pull.
    let out = run(&repo, &[]);
    let engine = row(&out.stderr, "docker");
    assert!(engine.contains("reachable") && engine.contains("registry mirrors: http://127.0.0.1:5999/"), "{engine}");
    let cross = row(&out.stderr, "kube-cross");
    assert!(cross.contains("warn") && cross.contains(&format!("{} answers (HTTP 200)", reg.addr)), "{cross}");
    assert!(cross.contains(&format!("docker pull {repo}:{}", tag.trim())), "{cross}");

    // On the engine: ok, with its ID.
    second.empty_image(&format!("{repo}:{}", tag.trim())).unwrap();
    let out = run(&repo, &[]);
    let cross = row(&out.stderr, "kube-cross");
    assert!(cross.contains(" ok ") && cross.contains("present (sha256:"), "{cross}");

    // Neither there nor reachable: a failure when the engine is required.
    let out = run("127.0.0.1:9/k8s/kube-cross", &["--docker"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let cross = row(&out.stderr, "kube-cross");
    assert!(
        cross.contains("FAIL") && cross.contains("127.0.0.1:9 does not answer") && cross.contains("--mirror"),
        "{cross}"
    );

    // podman is asked in its own words.
    if testkit::require(test, "podman") {
        let out = Proc::new(BIN).arg("--kube-root").arg(&root).args(["--engine", "podman"]).output().unwrap();
        let engine = row(&out.stderr, "podman");
        assert!(engine.contains(" ok ") && engine.contains("reachable") && engine.contains("GB memory"), "{engine}");
    }
}

/// An era-C tree: the container switches to `.go-version`'s Go; offline (a proxy that refuses,
/// so the Go proxy never answers) it can only have it from the host, and doctor says which.
#[test]
fn era_c_says_which_go_the_container_uses_and_whether_it_needs_network() {
    let root = fixture::scratch_tree("doc-era-c", &Spec::era_c());
    let version = std::fs::read_to_string(root.join(".go-version")).unwrap().trim().to_string();
    let home = root.parent().unwrap().join("home");
    let run = |home: &Utf8Path| {
        Proc::new(BIN)
            .arg("--kube-root")
            .arg(&root)
            .env("DOCKER_HOST", format!("unix://{root}/no-engine.sock"))
            .env("HOME", home)
            .env("KUBE_KIT_CACHE", home.join("cache"))
            .env("HTTPS_PROXY", "http://127.0.0.1:1")
            .env_remove("GOROOT")
            .env_remove("GOTOOLCHAIN")
            .env_remove("GOPROXY")
            .env_remove("GO_VERSION")
            .env_remove("FORCE_HOST_GO")
            .output()
            .unwrap()
    };
    let out = run(&home);
    let row_of = |said: &str| row(said, "container-go").to_string();
    let missing = row_of(&out.stderr);
    assert!(missing.contains(" warn ") && missing.contains(&format!("go{version} is not on this host")), "{missing}");
    assert!(missing.contains(&format!("setup-go --go {version}")), "{missing}");
    // The same Go in ~/sdk (as golang.org/dl installs it): served, no network needed.
    let goroot = home.join(format!("sdk/go{version}"));
    std::fs::create_dir_all(goroot.join("bin")).unwrap();
    std::fs::write(goroot.join("bin/go"), "").unwrap();
    std::fs::write(goroot.join("VERSION"), format!("go{version}\n")).unwrap();
    let out = run(&home);
    let served = row_of(&out.stderr);
    assert!(served.contains(" ok ") && served.contains(&format!("go{version} from the host ({goroot}")), "{served}");
    assert!(served.contains("no network needed"), "{served}");
    // Era B has no such row.
    let b = fixture::scratch_tree("doc-era-b-no-row", &Spec::era_b());
    let out =
        Proc::new(BIN).arg("--kube-root").arg(&b).env("DOCKER_HOST", format!("unix://{b}/x.sock")).output().unwrap();
    assert!(!out.stderr.contains("container-go"), "{}", out.stderr);
    for r in [root, b] {
        std::fs::remove_dir_all(r.parent().unwrap()).unwrap();
    }
}
