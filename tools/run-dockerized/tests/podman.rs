//! The containerized build on podman, for real: the real v1.20.2 tree in rsync mode
//! (`--engine podman`) and bind mode (`KUBE_CONTAINER_ENGINE=podman`) gives the binary docker
//! gives, byte for byte with SOURCE_DATE_EPOCH fixed (linkcheck: a small command proves the
//! same, and podman's caches start cold; docker's kubectl is engine.rs's); make-clean works
//! there; and a rootless user's podman builds in bind mode with the user's own uid
//! (`--userns=keep-id`), where the machine allows one (.ci/run makes the user).

mod common;

use camino::{Utf8Path, Utf8PathBuf};
use common::*;
use kube_tree::cli::invoke_str;
use kube_tree::proc::Captured;
use testkit::{podman, Cli};

const EPOCH: (&str, &str) = ("SOURCE_DATE_EPOCH", "1600000000");

/// Runs the tool with root podman's environment (its containers.conf, when this host needs one).
fn rd_podman(root: &Utf8Path, args: &[&str], extra: &[(&str, &str)]) -> Captured {
    let conf = podman::conf_env();
    let mut envs: Vec<(&str, &str)> = conf.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    envs.extend_from_slice(extra);
    rd(root, args, &envs)
}

/// The command these tests build.
const WHAT: &str = "WHAT=cmd/linkcheck";

fn built_of(root: &Utf8Path) -> Utf8PathBuf {
    root.join("_output/dockerized/bin/linux/amd64/linkcheck")
}

/// An ELF executable, as the build makes it.
fn is_elf(p: &Utf8Path) -> bool {
    std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x7fELF"))
}

/// docker's binary of the real tree (bind mode, SOURCE_DATE_EPOCH fixed), built once for the
/// tests of this file.
fn docker_built(real: &Utf8Path) -> Vec<u8> {
    static BUILT: std::sync::Mutex<Option<Vec<u8>>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = &*built {
        return b.clone();
    }
    let tree = testkit::scratch("pod-docker-ref").join("kubernetes");
    testkit::generated_copy(Utf8Path::new(BIN), real, &tree).unwrap();
    let _guard = testkit::EngineGuard::new(&tree);
    let out = rd(&tree, &["--mode", "bind", "make", WHAT], &[EPOCH]);
    assert_eq!(out.status.code(), Some(0), "docker's reference build: {}", out.stderr);
    let bytes = std::fs::read(built_of(&tree)).unwrap();
    let _ = std::fs::remove_dir_all(tree.parent().unwrap());
    *built = Some(bytes.clone());
    bytes
}

#[test]
#[ignore = "full tier: needs root podman, docker and the real v1.20.2 tree"]
fn podman_rsync_and_bind_modes_build_dockers_binary() {
    let test = "podman_rsync_and_bind_modes_build_dockers_binary";
    let Some(real) = podman::ready(test) else { return };
    let tree = testkit::scratch("pod-real").join("kubernetes");
    // Code generated already for the bind-mode run (the rsync-mode one generates its own).
    testkit::generated_copy(Utf8Path::new(BIN), &real, &tree).unwrap();
    let tree = Utf8PathBuf::from_path_buf(std::fs::canonicalize(&tree).unwrap()).unwrap();
    let pod = Cli::podman();
    let guard = testkit::EngineGuard::on(pod.clone(), &tree);
    let built = built_of(&tree);

    // rsync mode with --engine podman: the data container and the rsync daemon stay, on
    // podman, published on 127.0.0.1 only.
    let out = rd_podman(&tree, &["--engine", "podman", "make", WHAT], &[EPOCH]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    fail_on_purpose(test);
    assert!(out.stdout.lines().any(|l| l == built.as_str()), "{}", out.stdout);
    assert!(is_elf(&built), "{built}");
    let ours =
        pod.read(&["ps", "-a", "--filter", &format!("label=io.k8s-build-kit.tree={tree}"), "--format", "{{.Names}}"]);
    let mut kept: Vec<&str> = ours.lines().collect();
    kept.sort();
    assert!(
        kept.len() == 2 && kept[0].starts_with("kube-build-data-") && kept[1].starts_with("kube-rsync-"),
        "{kept:?}"
    );
    let published = pod.read(&["port", kept[1], "8730"]);
    assert!(!published.is_empty() && published.lines().all(|l| l.starts_with("127.0.0.1:")), "{published}");
    assert!(docker(&["ps", "-a", "--filter", &format!("label=io.k8s-build-kit.tree={tree}"), "-q"]).is_empty());
    let rsync_bytes = std::fs::read(&built).unwrap();

    // Nothing changed: skipped on podman too, the containers kept.
    let data_id = pod.read(&["inspect", "-f", "{{.Id}}", kept[0]]);
    let out = rd_podman(&tree, &["--engine", "podman", "make", WHAT], &[EPOCH]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("not running it"), "{}", out.stderr);
    assert_eq!(pod.read(&["inspect", "-f", "{{.Id}}", kept[0]]), data_id);

    // bind mode, the engine chosen by KUBE_CONTAINER_ENGINE.
    std::fs::remove_file(&built).unwrap();
    let out = rd_podman(&tree, &["--mode", "bind", "make", WHAT], &[EPOCH, ("KUBE_CONTAINER_ENGINE", "podman")]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("bind mode"), "{}", out.stderr);
    let bind_bytes = std::fs::read(&built).unwrap();

    let docker_bytes = docker_built(&real);
    assert!(rsync_bytes == docker_bytes, "podman's rsync-mode binary differs from docker's");
    assert!(bind_bytes == docker_bytes, "podman's bind-mode binary differs from docker's");

    // make-clean on podman: sizes in the dry run, then this tree's objects go.
    let (code, plan) =
        invoke_str(&make_clean::TOOL, &["--kube-root", tree.as_str(), "--engine", "podman", "--dry-run"]);
    assert_eq!(code, 0, "{plan}");
    for want in
        [format!("container\t{}\t", kept[0]), format!("container\t{}\t", kept[1]), "image\tkube-build:build-".into()]
    {
        assert!(plan.contains(&want), "{want} in {plan}");
    }
    let data_size: u64 = plan
        .lines()
        .find(|l| l.starts_with(&format!("container\t{}\t", kept[0])))
        .and_then(|l| l.rsplit('\t').next()?.parse().ok())
        .unwrap();
    assert!(data_size > 100_000_000, "the data container's volumes hold the tree and the caches: {plan}");
    let (code, _) = invoke_str(&make_clean::TOOL, &["--kube-root", tree.as_str(), "--engine", "podman"]);
    assert_eq!(code, 0);
    assert!(podman_objects(&pod, &tree) == (vec![], vec![]), "make-clean left {:?}", podman_objects(&pod, &tree));
    drop(guard);
    let _ = std::fs::remove_dir_all(tree.parent().unwrap());
}

fn podman_objects(cli: &Cli, tree: &Utf8Path) -> (Vec<String>, Vec<String>) {
    testkit::objects_on(cli, tree.as_str()).unwrap_or_else(|e| panic!("{}", e.msg))
}

#[test]
#[ignore = "full tier: needs rootless podman (KUBE_TEST_ROOTLESS_USER), docker and the real v1.20.2 tree"]
fn rootless_podman_builds_in_bind_mode_as_the_caller() {
    let test = "rootless_podman_builds_in_bind_mode_as_the_caller";
    let Some((real, user)) = podman::rootless(test) else { return };
    let tree = podman::tree_for(&user, "rootless", &real).unwrap();
    let cli = Cli::podman_as(&user);
    let guard = testkit::EngineGuard::on(cli.clone(), &tree);
    let bin = podman::shared_copy(Utf8Path::new(BIN)).unwrap();
    let home = podman::home_of(&user).unwrap();
    let as_user = |args: &[&str]| {
        // runuser keeps the caller's environment: not its TMPDIR (one the user may not write).
        let home_var = format!("HOME={home}");
        tool("runuser", &["-u", &user, "--", "env", "-u", "TMPDIR", &home_var, bin.as_str()], &tree, args, &[EPOCH])
    };
    let uid = podman::uid_of(&user).unwrap();

    // The build runs as the caller's own uid inside (keep-id), not as root.
    let out = as_user(&["--engine", "podman", "--mode", "bind", "id", "-u"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.lines().chain(out.stdout.lines()).any(|l| l.trim() == uid.to_string()), "{}", out.stderr);

    let out = as_user(&["--engine", "podman", "--mode", "bind", "make", WHAT]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let built = built_of(&tree);
    assert!(is_elf(&built), "{built}");
    // Everything the build wrote is the caller's (no subordinate uid the user cannot remove).
    let mut foreign = Vec::new();
    kube_tree::walk::entries(&tree.join("_output"), &[], |p, md| {
        use std::os::unix::fs::MetadataExt;
        if md.uid() != uid {
            foreign.push(format!("{p} ({})", md.uid()));
        }
    })
    .unwrap();
    assert!(foreign.is_empty(), "not the caller's: {:?}", &foreign[..foreign.len().min(5)]);
    assert!(std::fs::read(&built).unwrap() == docker_built(&real), "rootless podman's binary differs from docker's");
    drop(guard);
    let _ = std::fs::remove_dir_all(tree);
}
