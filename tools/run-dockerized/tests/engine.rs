//! The containerized build against the real engine (no mocks): the real Debian v1.20.2 tree in
//! rsync and bind mode, copy-output, make-clean, a "remote" engine over TCP, and faults.
//! Images are built locally (testkit::kube_cross_image) under a test-only name passed as
//! KUBE_CROSS_IMAGE, never the official kube-cross name: no registry is reachable. Every test
//! holds a guard that removes its containers, images, tags and child processes, also when an
//! assertion fails; `KUBE_TEST_FAIL_ON_PURPOSE=1` makes each test fail after its first real run,
//! to prove that (see `a_failed_engine_test_leaves_nothing_behind`).

mod common;

use camino::{Utf8Path, Utf8PathBuf};
use common::*;
use kube_tree::cli::invoke_str;
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};
use std::time::{Duration, Instant};

/// A second worktree (another path, its files written when it was checked out):
/// its new data container is seeded from the first tree's and labelled arrival-timed, its
/// sources synced by content, so make generates no code again (the seed's generated file keeps
/// its time there) and builds the worktree's own edit; a generated file the worktree holds with
/// other bytes is generated again; the generated files come out into the worktree, and the
/// rerun with nothing changed is skipped as on any data container.
fn second_worktree_seeded_by_content(first: &Utf8Path, first_data: &str, image: &str) {
    // `git worktree add` of the first tree's sources, committed as they are now: its generated
    // files are the ones its builds made (the tree's checked-in ones were made by Go 1.15, and
    // the stand-in kube-cross's Go 1.19 writes a `//go:build` line more into each: with those,
    // every package would differ and be generated again, as it should).
    let git = |dir: &Utf8Path, words: &[&str]| {
        Proc::new("git")
            .args(["-c", "user.name=kit", "-c", "user.email=kit@invalid"])
            .args(words)
            .dir(dir)
            .read()
            .unwrap()
    };
    git(first, &["add", "-A"]);
    git(first, &["commit", "-q", "--no-verify", "-m", "the first tree"]);
    let wt = testkit::scratch("dock-real-wt").join("kubernetes");
    git(first, &["worktree", "add", "-q", "-b", "kit-test-worktree", wt.as_str()]);
    let wt = Utf8PathBuf::from_path_buf(std::fs::canonicalize(&wt).unwrap()).unwrap();
    let _guard = testkit::EngineGuard::new(&wt);
    {
        use std::io::Write;
        let f = wt.join("cmd/linkcheck/links.go");
        let marker = "func init() {\n\tif len(os.Args) > 1 && os.Args[1] == \"--kit-worktree\" {\n\t\tprintln(\"built in the second worktree\")\n\t\tos.Exit(0)\n\t}\n}\n";
        write!(std::fs::OpenOptions::new().append(true).open(f).unwrap(), "{marker}").unwrap();
    }
    // A generated file the worktree has with other bytes (as a branch's committed one may):
    // the sync writes it after its inputs, and it must still be generated again. An openapi
    // file: its directory is not one of its inputs (a package's own generated files also have
    // their directory, which the sync's rename moves, to go on).
    let stale = "staging/src/k8s.io/kube-aggregator/pkg/generated/openapi/zz_generated.openapi.go";
    {
        use std::io::Write;
        writeln!(std::fs::OpenOptions::new().append(true).open(wt.join(stale)).unwrap(), "// kit: stale").unwrap();
    }
    let generated = "pkg/apis/core/v1/zz_generated.conversion.go";
    let out = rd(&wt, &["make", "WHAT=cmd/linkcheck"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("(another tree)"), "seeded from the first tree's: {}", out.stderr);
    let linkcheck = wt.join("_output/dockerized/bin/linux/amd64/linkcheck");
    let said = Proc::new(&linkcheck).arg("--kit-worktree").output().unwrap();
    assert!(said.stderr.contains("built in the second worktree"), "{said:?}");
    let wt_data =
        containers_of(&wt).into_iter().find(|c| c.starts_with("kube-build-data-")).expect("its data container");
    let times = docker(&["inspect", "-f", "{{index .Config.Labels \"io.k8s-build-kit.times\"}}", &wt_data]);
    assert_eq!(times.trim(), "arrival");
    let mtime = |data: &str| {
        let path = format!("/go/src/k8s.io/kubernetes/{generated}");
        docker(&["run", "--rm", "--volumes-from", data, image, "stat", "-c", "%Y", &path])
    };
    assert_eq!(mtime(&wt_data), mtime(first_data), "the worktree's build generated code again");
    let regenerated = std::fs::read_to_string(wt.join(stale)).unwrap();
    assert!(!regenerated.contains("kit: stale"), "a generated file the sync wrote was taken as fresh");
    assert!(std::fs::read(wt.join(stale)).unwrap() == std::fs::read(first.join(stale)).unwrap());
    assert!(
        std::fs::read(wt.join(generated)).unwrap() == std::fs::read(first.join(generated)).unwrap(),
        "the generated file came out into the worktree as the first tree has it"
    );
    // Out in the worktree, generated code is newer than its sources and than its generator,
    // so that make there (bind mode, a local build) does not generate it all again.
    let mtime_of = |f: &str| std::fs::metadata(wt.join(f)).unwrap().modified().unwrap();
    assert!(mtime_of(generated) > mtime_of("pkg/apis/core/v1/conversion.go"), "older than its sources");
    assert!(
        mtime_of(generated) > mtime_of("_output/dockerized/bin/linux/amd64/conversion-gen"),
        "older than its generator"
    );
    let again = rd(&wt, &["make", "WHAT=cmd/linkcheck"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", again.stderr);
    assert!(again.stderr.contains("not running it"), "the rerun was not skipped: {}", again.stderr);
}

#[test]
#[ignore = "full tier: needs docker and the real v1.20.2 tree"]
fn real_tree_rsync_and_bind_modes_copy_output_and_make_clean() {
    let test = "real_tree_rsync_and_bind_modes_copy_output_and_make_clean";
    let Some(real) = ready(test) else { return };
    let copy = testkit::scratch("dock-real").join("kubernetes");
    testkit::full_copy(&real, &copy).unwrap();
    let copy = Utf8PathBuf::from_path_buf(std::fs::canonicalize(&copy).unwrap()).unwrap();
    let mut guard = testkit::EngineGuard::new(&copy);
    let official = format!("k8s.gcr.io/build-image/kube-cross:{CROSS_TAG}");
    let official_before = docker_try(&["image", "inspect", "-f", "{{.Id}}", &official]).ok();

    // rsync mode, cold.
    let t = Instant::now();
    let out = rd(&copy, &["make", "WHAT=cmd/kubectl"], &[]);
    let cold = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    fail_on_purpose(test);
    assert_eq!(
        docker_try(&["image", "inspect", "-f", "{{.Id}}", &official]).ok(),
        official_before,
        "the suite never tags the official kube-cross name"
    );
    let kubectl = copy.join("_output/dockerized/bin/linux/amd64/kubectl");
    assert!(out.stdout.lines().any(|l| l == kubectl.as_str()), "{}", out.stdout);
    assert!(kubectl_version(&kubectl).contains(r#"GitVersion:"v1.20.2""#));
    // The data container stays, and so does the rsync daemon (for the next run), published on
    // 127.0.0.1 only.
    let kept = containers_of(&copy);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let (data, rsync) = (kept[0].clone(), kept[1].clone());
    assert!(data.starts_with("kube-build-data-") && data.ends_with("-5-v1.15.5-1"), "{data}");
    assert!(rsync.starts_with("kube-rsync-") && rsync.ends_with("-5-v1.15.5-1"), "{rsync}");
    let published = docker(&["port", &rsync, "8730"]);
    assert!(!published.is_empty() && published.lines().all(|l| l.starts_with("127.0.0.1:")), "{published}");
    let (data_id, rsync_id) = (id_of(&data), id_of(&rsync));

    // Nothing changed: nothing is started, the binaries are reported as they are (judged by the
    // engine's own event log, not by the tool's word).
    let started_during = |f: &mut dyn FnMut() -> Captured| -> (Captured, Vec<String>) {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let out = f();
        let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
        let events = docker(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--filter",
            "event=start",
            "--format",
            "{{.Actor.Attributes.name}}",
        ]);
        (out, events.lines().map(str::to_string).collect())
    };
    let skipped = "not running it";
    let t = Instant::now();
    let (out, started) = started_during(&mut || rd(&copy, &["make", "WHAT=cmd/kubectl"], &[]));
    let warm = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains(skipped), "{}", out.stderr);
    assert!(started.is_empty(), "a no-change run started {started:?}");
    assert!(out.stdout.lines().any(|l| l == kubectl.as_str()), "the binaries are reported: {}", out.stdout);
    assert_eq!(id_of(&data), data_id, "the data container was kept");
    assert_eq!(id_of(&rsync), rsync_id, "the rsync daemon was kept");
    // Timing is `cargo xtask bench dockerized`'s business; here it is only shown.
    eprintln!("rsync mode: cold {cold:?}, nothing changed {warm:?}");

    // Each thing the proof covers, changed: the run is real, and gives the right binary.
    let real_run = |args: &[&str], why: &str| {
        let (out, started) = started_during(&mut || rd(&copy, args, &[]));
        assert_eq!(out.status.code(), Some(0), "{why}: {}", out.stderr);
        assert!(!out.stderr.contains(skipped), "{why}: skipped: {}", out.stderr);
        assert!(started.iter().any(|n| n.starts_with("kube-build-") && !n.contains("-data-")), "{why}: {started:?}");
        assert!(kubectl_version(&kubectl).contains(r#"GitVersion:"v1.20.2""#), "{why}");
    };
    {
        use std::io::Write;
        let f = copy.join("staging/src/k8s.io/kubectl/pkg/cmd/version/version.go");
        writeln!(std::fs::OpenOptions::new().append(true).open(f).unwrap(), "// one line").unwrap();
    }
    real_run(&["make", "WHAT=cmd/kubectl"], "one source file changed");
    real_run(&["make", "kubectl"], "another command");
    let (out, started) = started_during(&mut || rd(&copy, &["make", "kubectl"], &[]));
    assert!(out.stderr.contains(skipped) && started.is_empty(), "the new command's record: {}", out.stderr);
    // Another image under the same name and context label (as a rebuild elsewhere would leave).
    let image = docker(&["inspect", "-f", "{{.Config.Image}}", &data]);
    let image = image.trim();
    let context = docker(&["image", "inspect", "-f", "{{index .Config.Labels \"io.k8s-build-kit.context\"}}", image]);
    let ctx_dir = testkit::scratch("dock-real-image");
    std::fs::write(ctx_dir.join("Dockerfile"), format!("FROM {image}\nLABEL io.k8s-build-kit.test-variant=1\n"))
        .unwrap();
    let built = Proc::new("docker")
        .args(["build", "-q", "-t", image, "--label"])
        .arg(format!("io.k8s-build-kit.context={}", context.trim()))
        .arg(&ctx_dir)
        .output()
        .unwrap();
    assert!(built.success(), "{}", built.stderr);
    real_run(&["make", "kubectl"], "the kube-build image changed");

    // A new branch: its own data container (the scripts' name hashes the branch), seeded from
    // this one, so make generates no code again; the branch's edit is built, and of the
    // sibling's binaries only the code generators came across.
    let generated = copy.join("pkg/apis/core/v1/zz_generated.conversion.go");
    let generated_mtime = std::fs::metadata(&generated).unwrap().modified().unwrap();
    Proc::new("git").args(["init", "-q", "-b", "kit-test-branch"]).dir(&copy).read().unwrap();
    {
        use std::io::Write;
        let f = copy.join("cmd/linkcheck/links.go");
        let marker = "func init() {\n\tif len(os.Args) > 1 && os.Args[1] == \"--kit-branch\" {\n\t\tprintln(\"built on the new branch\")\n\t\tos.Exit(0)\n\t}\n}\n";
        write!(std::fs::OpenOptions::new().append(true).open(f).unwrap(), "{marker}").unwrap();
    }
    let out = rd(&copy, &["make", "WHAT=cmd/linkcheck"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("from {data}")), "seeded from the first branch's: {}", out.stderr);
    let branch: Vec<String> = containers_of(&copy).into_iter().filter(|c| !kept.contains(c)).collect();
    let new_data = branch.iter().find(|c| c.starts_with("kube-build-data-")).expect("the branch's data container");
    let linkcheck = copy.join("_output/dockerized/bin/linux/amd64/linkcheck");
    let said = Proc::new(&linkcheck).arg("--kit-branch").output().unwrap();
    assert!(said.stderr.contains("built on the new branch"), "{said:?}");
    assert_eq!(
        std::fs::metadata(&generated).unwrap().modified().unwrap(),
        generated_mtime,
        "the seeded build generated code again"
    );
    let branch_image = docker(&["inspect", "-f", "{{.Config.Image}}", new_data]);
    // Its kube-build image came from the engine's layer cache: the branch shares the shared
    // cache's rsync password, so its image has the first branch's layers, not its own.
    let layers = |i: &str| docker(&["image", "inspect", "-f", "{{.RootFS.Layers}}", i]);
    assert_eq!(layers(branch_image.trim()), layers(image), "the branch's image was built anew");
    let binaries = docker(&[
        "run",
        "--rm",
        "--volumes-from",
        new_data,
        branch_image.trim(),
        "ls",
        "/go/src/k8s.io/kubernetes/_output/dockerized/bin/linux/amd64",
    ]);
    let binaries: Vec<&str> = binaries.lines().collect();
    assert!(binaries.contains(&"linkcheck") && binaries.contains(&"deepcopy-gen"), "{binaries:?}");
    assert!(!binaries.contains(&"kubectl"), "the sibling's kubectl came across: {binaries:?}");
    second_worktree_seeded_by_content(&copy, &data, image);
    // Back to the first branch's names; the branch's objects go.
    std::fs::remove_dir_all(copy.join(".git")).unwrap();
    for c in &branch {
        docker(&["rm", "-f", "-v", c]);
    }
    // The data container removed: a new one, and the run is real. A make run in a fresh data
    // container redoes the tree's whole code generation (minutes, proven above and in bind mode):
    // the build script alone builds a small command that needs none.
    let removed = id_of(&data);
    docker(&["rm", "-f", "-v", &data]);
    // Only now the branch's image: it is the first image of this tree, which the first branch's
    // data container was made from, and the first branch's name went to the variant above, so
    // the branch's name held it alone (docker keeps an image a container was made from).
    docker(&["rmi", branch_image.trim()]);
    let (out, started) = started_during(&mut || rd(&copy, &["hack/make-rules/build.sh", "cmd/linkcheck"], &[]));
    assert_eq!(out.status.code(), Some(0), "the data container was removed: {}", out.stderr);
    assert!(started.iter().any(|n| n == &data), "no new data container: {started:?}");
    assert_ne!(id_of(&data), removed, "the data container is a new one");
    assert!(out.stdout.lines().any(|l| l == linkcheck.as_str()), "{}", out.stdout);

    // copy-output after a --no-copy run brings the binary (the new data container's) back with
    // its mtime.
    let mtime = std::fs::metadata(&linkcheck).unwrap().modified().unwrap();
    std::fs::remove_file(&linkcheck).unwrap();
    let out = rd(&copy, &["--no-copy", "true"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(!linkcheck.exists(), "--no-copy copied");
    let (code, listed) = invoke_str(&copy_output::TOOL, &["--kube-root", copy.as_str()]);
    assert_eq!(code, 0);
    assert!(listed.contains(linkcheck.as_str()), "{listed}");
    assert_eq!(std::fs::metadata(&linkcheck).unwrap().modified().unwrap(), mtime, "mtime kept");

    // bind mode on the same tree: output straight into _output/dockerized.
    std::fs::remove_file(&kubectl).unwrap();
    let out = rd(&copy, &["--mode", "bind", "make", "WHAT=cmd/kubectl"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(kubectl_version(&kubectl).contains(r#"GitVersion:"v1.20.2""#));
    assert_eq!(containers_of(&copy), kept, "the bind-mode container was removed");

    // make-clean: this tree's containers, images and _output go; another tree's container and
    // an unrelated image stay.
    let other = format!("kube-build-{}0123-5-v1.15.5-1", std::process::id());
    let other = other.as_str();
    let unrelated = format!("k8s-build-kit-test-{}/unrelated:keep", std::process::id());
    guard.containers.push(other.to_string());
    guard.tags.push(unrelated.clone());
    let _ = docker_try(&["rm", "-f", other]);
    docker(&["create", "--name", other, testkit::BASE_IMAGE, "true"]);
    docker(&["tag", testkit::BASE_IMAGE, &unrelated]);
    let (code, plan) = invoke_str(&make_clean::TOOL, &["--kube-root", copy.as_str(), "--dry-run"]);
    assert_eq!(code, 0);
    assert!(
        plan.contains(&format!("container\t{data}"))
            && plan.contains(&format!("container\t{rsync}"))
            && plan.contains("image\tkube-build:build-")
            && plan.contains("dir\t"),
        "{plan}"
    );
    assert!(copy.join("_output").exists(), "--dry-run removed something");
    let (code, _) = invoke_str(&make_clean::TOOL, &["--kube-root", copy.as_str()]);
    assert_eq!(code, 0);
    assert!(containers_of(&copy).is_empty());
    let short = &data["kube-build-data-".len()..data.len() - "-5-v1.15.5-1".len()];
    assert!(
        !docker(&["images", "kube-build", "--format", "{{.Tag}}"]).contains(&format!("build-{short}")),
        "this tree's image is gone"
    );
    assert!(!copy.join("_output").exists());
    assert_eq!(
        docker(&["inspect", "-f", "{{.Name}}", other]).trim(),
        format!("/{other}"),
        "another tree's container survived"
    );
    assert!(!docker(&["image", "inspect", "-f", "{{.Id}}", &unrelated]).is_empty(), "the unrelated image survived");
    drop(guard);
    let _ = std::fs::remove_dir_all(copy.parent().unwrap());
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
#[ignore = "full tier: needs docker, socat and the real v1.20.2 tree"]
fn a_tcp_engine_is_remote_rsync_mode_and_no_bind_mounts() {
    let test = "a_tcp_engine_is_remote_rsync_mode_and_no_bind_mounts";
    let Some(real) = ready(test) else { return };
    if !testkit::require(test, "socat") {
        return;
    }
    let root = small_tree("dock-remote", &real);
    let mut guard = testkit::EngineGuard::new(&root);
    // socat listens on a port the kernel picked and released; another process may take it in
    // between, and then socat exits at once: it is tried again on another.
    let mut host = None;
    for _ in 0..5 {
        let port = free_port();
        let mut socat = std::process::Command::new("socat")
            .args([
                format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
                "UNIX-CONNECT:/var/run/docker.sock".to_string(),
            ])
            .spawn()
            .unwrap();
        let tcp = format!("tcp://127.0.0.1:{port}");
        // Ready when the engine answers through it (probed, not slept for).
        let t = Instant::now();
        let answers = loop {
            if socat.try_wait().unwrap().is_some() {
                break false;
            }
            if Proc::new("docker")
                .args(["-H", &tcp, "version", "--format", "{{.Server.Version}}"])
                .timeout(Duration::from_secs(10))
                .output()
                .is_ok_and(|o| o.success())
            {
                break true;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "socat never forwarded to the engine");
            std::thread::sleep(Duration::from_millis(20));
        };
        guard.children.push(socat);
        if answers {
            host = Some(tcp);
            break;
        }
    }
    let host = host.expect("socat could not listen on any of 5 free ports");
    let env = [("DOCKER_HOST", host.as_str())];
    let plan = rd(&root, &["--dry-run", "make"], &env);
    assert_eq!(plan.status.code(), Some(0), "{}", plan.stderr);
    assert!(plan.stderr.contains("rsync mode"), "{}", plan.stderr);
    assert!(
        plan.stdout.contains("--volumes-from") && !plan.stdout.contains(&format!("{root}:/go/src")),
        "{}",
        plan.stdout
    );
    let bind = rd(&root, &["--mode", "bind", "true"], &env);
    assert_eq!(bind.status.code(), Some(2));
    assert!(bind.stderr.contains("needs a local engine"), "{}", bind.stderr);
    // A real run through the TCP engine: image, data container, rsync in and out.
    let out = rd(
        &root,
        &[
            "sh",
            "-c",
            "mkdir -p _output/dockerized/bin/linux/amd64 && echo remote > _output/dockerized/bin/linux/amd64/marker",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(root.join("_output/dockerized/bin/linux/amd64/marker")).unwrap(), "remote\n");
    fail_on_purpose(test);
    let (code, _) = invoke_str(&make_clean::TOOL, &["--kube-root", root.as_str()]);
    assert_eq!(code, 0);
    assert!(containers_of(&root).is_empty());
}

#[test]
#[ignore = "full tier: needs docker and the real v1.20.2 tree"]
fn faults_fail_with_one_clear_line_or_recover() {
    let test = "faults_fail_with_one_clear_line_or_recover";
    let Some(real) = ready(test) else { return };
    let root = small_tree("dock-faults", &real);
    let mut guard = testkit::EngineGuard::new(&root);

    // Daemon unreachable.
    let out = rd(&root, &["true"], &[("DOCKER_HOST", "tcp://127.0.0.1:1")]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot reach the docker engine"), "{}", out.stderr);

    // Image missing.
    let out = rd(&root, &["true"], &[("KUBE_CROSS_IMAGE", "k8s-build-kit-test/no-such-kube-cross")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("no-such-kube-cross:v1.15.5-1 is missing"), "{}", out.stderr);
    // --cross-image wins over KUBE_CROSS_IMAGE.
    let out = rd(&root, &["--cross-image", "k8s-build-kit-test/also-missing", "true"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("also-missing:v1.15.5-1 is missing"), "{}", out.stderr);

    // A dry run prints the plan and creates nothing.
    let before = containers_of(&root);
    let out = rd(&root, &["--dry-run", "make", "WHAT=cmd/kubectl"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.lines().any(|l| l.starts_with("docker build -t kube-build:build-")), "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l.starts_with("rsync --archive")), "{}", out.stdout);
    assert_eq!(containers_of(&root), before);
    assert!(!root.join("_output").exists());
    // build-shell plans the same cycle with a shell as the command, and no copy back.
    let (code, plan) = invoke_str(&build_shell::TOOL, &["--kube-root", root.as_str(), "--dry-run"]);
    assert_eq!(code, 0);
    let run_line = plan.lines().rfind(|l| l.starts_with("docker run --name=kube-build-")).unwrap_or_default();
    assert!(run_line.ends_with(" bash"), "{plan}");
    assert!(
        !plan.lines().any(|l| l.starts_with("rsync") && l.contains("--prune-empty-dirs")),
        "a shell copies nothing back: {plan}"
    );

    // A first real run, then the data container removed between runs: recreated, and the rsync
    // daemon left running (it serves the removed container's volumes) is replaced, so the
    // sources land where the build container looks.
    assert_eq!(rd(&root, &["true"], &[]).status.code(), Some(0));
    fail_on_purpose(test);
    let kept = containers_of(&root);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let rsync = kept[1].clone();
    let rsync_id = id_of(&rsync);
    docker(&["rm", "-f", "-v", &kept[0]]);
    let out = rd(&root, &["sh", "-c", "test -f build/build-image/rsyncd.sh"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(containers_of(&root), kept);
    assert_ne!(id_of(&rsync), rsync_id, "the daemon of the removed data container was replaced");

    // A daemon left running that no longer serves (its secret changed under it): replaced, and
    // the run goes on; found at the copy-out when the sync record skips the sync-in, at the
    // sync-in otherwise.
    // (A command that changes nothing needs no copy-out, so this one touches a file.)
    let touch = ["sh", "-c", "touch build/build-image/VERSION"];
    for full in [false, true] {
        let args: Vec<&str> = if full { ["--full-sync"].into_iter().chain(touch).collect() } else { touch.to_vec() };
        let rsync_id = id_of(&rsync);
        docker(&["exec", &rsync, "sh", "-c", "echo k8s:wrong > /tmp/rsync.k8s/rsyncd.secrets"]);
        let out = rd(&root, &args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("did not serve"), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.contains("not syncing"), !full, "{args:?}: {}", out.stderr);
        assert_ne!(id_of(&rsync), rsync_id, "{args:?}");
    }

    // KUBE_RSYNC_KEEP=n: the daemon is stopped after the run, as the scripts do.
    assert_eq!(rd(&root, &["true"], &[("KUBE_RSYNC_KEEP", "n")]).status.code(), Some(0));
    let data = vec![kept[0].clone()];
    assert_eq!(containers_of(&root), data);

    // The rsync port taken.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = rd(&root, &["true"], &[("KUBE_RSYNC_PORT", &port)]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("rsync port 127.0.0.1:{port} is taken")), "{}", out.stderr);
    assert_eq!(containers_of(&root), data, "no rsync container left behind");
    drop(listener);

    // A failing build command: exit 1, containers cleaned up.
    let out = rd(&root, &["sh", "-c", "exit 3"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(containers_of(&root), data);

    // SIGINT, then SIGTERM, during the build: the build and rsync containers are stopped and
    // removed, and the exit is 130.
    let build = data[0].replace("kube-build-data-", "kube-build-");
    for signal in ["-INT", "-TERM"] {
        let child = std::process::Command::new(BIN)
            .args(["--kube-root", root.as_str(), "sleep", "300"])
            .env_remove("DOCKER_HOST")
            .env("KUBE_CROSS_IMAGE", testkit::cross_repo())
            .env("KUBE_KIT_CACHE_VOLUME", testkit::cache_volume())
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        guard.children.push(child);
        let t = Instant::now();
        while !docker(&["ps", "--format", "{{.Names}}"]).lines().any(|l| l == build) {
            assert!(t.elapsed() < Duration::from_secs(120), "the build container never started");
            std::thread::sleep(Duration::from_millis(200));
        }
        Proc::new("kill").args([signal, &pid]).read().unwrap();
        let child = guard.children.last_mut().unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "run-dockerized did not stop after {signal}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(status.code(), Some(130), "{signal}");
        assert_eq!(containers_of(&root), data, "{signal}: only the data container remains");
        assert!(
            docker(&["ps", "--filter", &format!("label=io.k8s-build-kit.tree={root}"), "--format", "{{.Names}}"])
                .is_empty(),
            "{signal}: nothing of this tree runs"
        );
    }

    let (code, _) = invoke_str(&make_clean::TOOL, &["--kube-root", root.as_str()]);
    assert_eq!(code, 0);
    assert!(containers_of(&root).is_empty());
}

#[test]
#[ignore = "full tier: needs docker and the real v1.20.2 tree"]
fn the_sync_record_skips_only_what_is_proven_unchanged() {
    let test = "the_sync_record_skips_only_what_is_proven_unchanged";
    let Some(real) = ready(test) else { return };
    let root = small_tree("dock-sync", &real);
    let _guard = testkit::EngineGuard::new(&root);
    let record = root.join("_output/dockerized/.kit-sync-record");
    let synced = |out: &Captured| out.stderr.contains("syncing sources into the data container");
    let skipped = |out: &Captured| out.stderr.contains("not syncing");
    let run = |args: &[&str]| {
        let out = rd(&root, args, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
        out
    };
    std::fs::create_dir_all(root.join("pkg/gen")).unwrap();
    std::fs::write(root.join("hack/marker.txt"), "host-1\n").unwrap();
    std::fs::write(root.join("pkg/gen/zz_generated.test.go"), "v1\n").unwrap();

    // The first run syncs in full and, having changed nothing, records it; the next one skips.
    assert!(synced(&run(&["true"])));
    fail_on_purpose(test);
    assert!(record.exists(), "a run that changed nothing leaves a record");
    let out = run(&["cat", "hack/marker.txt"]);
    assert!(skipped(&out) && !synced(&out) && out.stderr.contains("host-1"), "{}", out.stderr);

    // An edit on the host (same size) syncs.
    let f = root.join("hack/marker.txt");
    std::fs::write(&f, "host-2\n").unwrap();
    let out = run(&["cat", "hack/marker.txt"]);
    assert!(synced(&out) && out.stderr.contains("host-2"), "{}", out.stderr);

    // A command that changes a source the copy-out leaves in the container: no record, and the
    // next run syncs the host's version back in (as the scripts' full sync does).
    let out = run(&["sh", "-c", "echo container > hack/marker.txt"]);
    assert!(!record.exists(), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "host-2\n");
    let out = run(&["cat", "hack/marker.txt"]);
    assert!(synced(&out) && out.stderr.contains("host-2") && !out.stderr.contains("container\n"), "{}", out.stderr);

    // A file rewritten with the same bytes (the copy-out leaves it in the container), and a
    // temporary file that came and went: the two sides are still equal, the run records.
    run(&["true"]);
    let out = run(&[
        "sh",
        "-c",
        "cp hack/marker.txt /tmp/m && cp /tmp/m hack/marker.txt && touch pkg/gen/tmp && rm pkg/gen/tmp",
    ]);
    assert!(skipped(&out) && record.exists(), "{}", out.stderr);
    // ... but not different bytes.
    let out = run(&["sh", "-c", "echo host-3 > hack/marker.txt"]);
    assert!(
        !record.exists() && out.stderr.contains("hack/marker.txt changed and stays in the container"),
        "{}",
        out.stderr
    );

    // A generated file rewritten in the container comes back, and the run still records.
    run(&["true"]);
    let out = run(&["sh", "-c", "echo v2 > pkg/gen/zz_generated.test.go"]);
    assert!(skipped(&out), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(root.join("pkg/gen/zz_generated.test.go")).unwrap(), "v2\n");
    assert!(record.exists(), "{}", out.stderr);
    assert!(skipped(&run(&["true"])));

    // Another writer: the scripts replace the rsync daemon (same name). Then --full-sync.
    let rsync = containers_of(&root).into_iter().find(|n| n.starts_with("kube-rsync-")).expect("the daemon is kept");
    docker(&["rm", "-f", &rsync]);
    assert!(synced(&run(&["true"])));
    assert!(skipped(&run(&["true"])));
    assert!(synced(&run(&["--full-sync", "true"])));

    let (code, _) = invoke_str(&make_clean::TOOL, &["--kube-root", root.as_str()]);
    assert_eq!(code, 0);
    assert!(containers_of(&root).is_empty());
}

#[test]
fn usage_errors_exit_2() {
    let root = fixture::scratch_tree("dock-usage", &Spec::era_b());
    for args in [&[][..], &["--mode", "weird", "true"]] {
        let out = rd(&root, args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
    }
}

/// The guards hold when a test fails: this test binary is run again with one engine test made
/// to fail after its first real run; afterwards no container, image, tag or process of that run
/// is left (found by the child's process ID in the tree paths and tags, and by a tag in the
/// environment its children inherit).
#[test]
#[ignore = "full tier: needs docker, socat and the real v1.20.2 tree"]
fn a_failed_engine_test_leaves_nothing_behind() {
    let test = "a_failed_engine_test_leaves_nothing_behind";
    if std::env::var("KUBE_TEST_FAIL_ON_PURPOSE").is_ok() {
        return; // the child run itself
    }
    if ready(test).is_none() || !testkit::require(test, "socat") {
        return;
    }
    let tag = format!("k8s-build-kit-failed-run-{}", std::process::id());
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        // The child is a full-tier test too (ignored by default): --include-ignored runs it.
        .args(["--exact", "a_tcp_engine_is_remote_rsync_mode_and_no_bind_mounts", "--include-ignored"])
        .args(["--test-threads", "1"])
        .env("KUBE_TEST_FAIL_ON_PURPOSE", "1")
        .env("KUBE_TEST_RUN_TAG", &tag)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        !out.status.success() && said.contains("failing on purpose"),
        "the child run was to fail on purpose:\n{said}"
    );
    // It failed where it meant to: after its real run, with that run's containers on the engine.
    let made = testkit::engine::on_purpose_count(&said);
    assert!(made.is_some_and(|n| n > 0), "the child failed before its engine work: {made:?}\n{said}");
    let marker = format!("kube-fixture-{pid}-");
    let (containers, images) = testkit::engine_objects(&marker);
    assert!(containers.is_empty() && images.is_empty(), "left behind: containers {containers:?}, images {images:?}");
    // The listing that proves it finds a tree's objects while they exist, and the guard removes them.
    let own = small_tree("dock-meta-probe", &testkit::real_tree().unwrap());
    let guard = testkit::EngineGuard::new(&own);
    let probe = rd(&own, &["true"], &[]);
    assert_eq!(probe.status.code(), Some(0), "{}", probe.stderr);
    let (c, i) = testkit::engine_objects(own.as_str());
    assert!(!c.is_empty() && !i.is_empty(), "engine_objects finds a tree's containers and images: {c:?} {i:?}");
    drop(guard);
    let (c, i) = testkit::engine_objects(own.as_str());
    assert!(c.is_empty() && i.is_empty(), "the guard removed them: {c:?} {i:?}");
    let tags = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!tags.contains(&format!("k8s-build-kit-test-{pid}/")), "tags left: {tags}");
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("environ")).is_ok_and(|env| env.windows(tag.len()).any(|w| w == tag.as_bytes()))
        })
        .map(|e| std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default().replace('\0', " "))
        .collect();
    assert!(left.is_empty(), "processes of the failed run still running: {left:?}");
}
