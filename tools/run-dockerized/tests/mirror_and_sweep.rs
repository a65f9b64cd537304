//! Engine tests of what surrounds a run: a registry mirror on 127.0.0.1 supplying kube-cross,
//! and the test suite's own sweep of orphaned layers.

mod common;

use common::*;
use kube_tree::proc::Proc;

/// The last sweep removes kube-build layers that lost their labels and their ancestry (made
/// when tests race on shared build cache) and nothing else: an orphan (no parent) with a step of
/// the kube-build Dockerfile goes; an orphan of another kind, and a dangling kube-build layer
/// that still has its parent (it may be a build's step in progress), stay.
#[test]
#[ignore = "full tier: needs docker and the real v1.20.2 tree"]
fn orphaned_kube_build_layers_are_swept_and_nothing_else() {
    let test = "orphaned_kube_build_layers_are_swept_and_nothing_else";
    if !testkit::docker_ok() {
        return testkit::skip(test, "no reachable docker daemon");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let since = kube_tree::log::utc_iso(now);
    let dir = testkit::scratch("orphan-layers");
    let pid = std::process::id();
    let tiny = format!("k8s-build-kit-orphan-{pid}:base");
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    Proc::new("tar").arg("-C").arg(dir.join("empty")).arg("-cf").arg(dir.join("empty.tar")).arg(".").read().unwrap();
    // The base of this run's layers carries its run label, as the stand-in kube-cross does; a
    // second base stands for another run's (a made-up run ID no process has).
    let tiny_other = format!("k8s-build-kit-orphan-{pid}:other-run");
    for (tag, run) in [(&tiny, testkit::run_id()), (&tiny_other, "4000000000".to_string())] {
        let label = format!("LABEL {}={run}", testkit::RUN_LABEL);
        docker(&["import", "--change", &label, dir.join("empty.tar").as_str(), tag]);
    }
    let build_on = |base: &str, tag: &str, step: &str| -> String {
        std::fs::write(dir.join("Dockerfile"), format!("FROM {base}\nLABEL {step}\n")).unwrap();
        let out = Proc::new("docker").args(["build", "-q", "-t", tag]).arg(&dir).output().unwrap();
        assert!(out.success(), "{}", out.stderr);
        out.stdout.trim().to_string()
    };
    let build = |tag: &str, step: &str| build_on(&tiny, tag, step);
    // save + load drops the parent: an orphan, then left dangling by a rebuild under its tag.
    let orphan_on = |base: &str, tag: &str, step: &str| -> String {
        let id = build_on(base, tag, step);
        let tar = dir.join("saved.tar");
        docker(&["save", "-o", tar.as_str(), tag]);
        docker(&["rmi", tag]);
        docker(&["load", "-i", tar.as_str()]);
        build_on(base, tag, &format!("{step} kit.rebuilt=1"));
        id
    };
    let orphan = |tag: &str, step: &str| orphan_on(&tiny, tag, step);
    let (a, b, c) = (
        format!("k8s-build-kit-orphan-{pid}:a"),
        format!("k8s-build-kit-orphan-{pid}:b"),
        format!("k8s-build-kit-orphan-{pid}:c"),
    );
    let kube_orphan = orphan(&a, &format!("kit.step=\"touch /kube-build-image\" kit.n={pid}1"));
    let other_orphan = orphan(&b, &format!("kit.n={pid}2"));
    let d = format!("k8s-build-kit-orphan-{pid}:d");
    let others_orphan = orphan_on(&tiny_other, &d, &format!("kit.step=\"touch /kube-build-image\" kit.n={pid}5"));
    let with_parent = build(&c, &format!("kit.step=\"touch /kube-build-image\" kit.n={pid}3"));
    build(&c, &format!("kit.step=\"touch /kube-build-image\" kit.n={pid}4"));
    let parent_of = |id: &str| docker(&["image", "inspect", "-f", "{{.Parent}}", id]).trim().to_string();
    assert!(
        parent_of(&kube_orphan).is_empty()
            && parent_of(&other_orphan).is_empty()
            && parent_of(&others_orphan).is_empty(),
        "orphans made"
    );
    assert!(!parent_of(&with_parent).is_empty());
    let exists = |id: &str| Proc::new("docker").args(["image", "inspect", id]).output().unwrap().success();
    testkit::sweep_orphan_layers(&since, true);
    let (gone, kept_other, kept_parented) = (!exists(&kube_orphan), exists(&other_orphan), exists(&with_parent));
    let kept_other_run = exists(&others_orphan);
    let _ = Proc::new("docker")
        .args([
            "rmi",
            "-f",
            &a,
            &b,
            &c,
            &d,
            &other_orphan,
            &others_orphan,
            &with_parent,
            &kube_orphan,
            &tiny,
            &tiny_other,
        ])
        .output();
    assert!(gone, "the orphaned kube-build layer made since the start is swept");
    assert!(kept_other, "an orphan of another kind is not");
    assert!(kept_parented, "a dangling layer with its parent (maybe a build in progress) is not");
    assert!(kept_other_run, "nor an orphaned kube-build layer of another run");
}

/// `--mirror` against a real registry on 127.0.0.1: kube-cross, absent under the name the run
/// wants, is pulled from the mirror (its repository path kept, else the short form, or the short
/// form with --mirror-short) and tagged with that name; the run then works. A mirror without the
/// image and an unreachable one are each one line, exit 2, telling the two apart.
#[test]
#[ignore = "full tier: needs docker, docker-registry and the real v1.20.2 tree"]
fn a_registry_mirror_supplies_kube_cross() {
    let test = "a_registry_mirror_supplies_kube_cross";
    let Some(real) = ready(test) else { return };
    mirror_case(test, &real, testkit::Cli::docker(), &[], &[]);
}

/// The same with podman, which needs `--tls-verify=false` for a plain-HTTP registry on the
/// loopback (docker assumes it): the image it pulls is docker's, by ID.
#[test]
#[ignore = "full tier: needs podman, docker, docker-registry and the real v1.20.2 tree"]
fn a_registry_mirror_supplies_kube_cross_to_podman() {
    let test = "a_registry_mirror_supplies_kube_cross_to_podman";
    let Some(real) = testkit::podman::ready(test) else { return };
    let conf = testkit::podman::conf_env();
    let envs: Vec<(&str, &str)> = conf.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    mirror_case(test, &real, testkit::Cli::podman(), &["--engine", "podman"], &envs);
}

fn mirror_case(test: &str, real: &camino::Utf8Path, cli: testkit::Cli, flags: &[&str], envs: &[(&str, &str)]) {
    let reg = match testkit::registry::Registry::start("mirror") {
        Ok(r) => r,
        Err(e) => return testkit::skip_if_missing(test, &e),
    };
    let root = small_tree(if cli.is_podman() { "pod-mirror" } else { "dock-mirror" }, real);
    let mut guard = testkit::EngineGuard::on(cli.clone(), &root);
    let pid = std::process::id();
    let stand_in = format!("{}:{CROSS_TAG}", testkit::cross_repo());
    // The registry is fed by docker; the engine under test pulls from it.
    let pushed = format!("{}/k8s-{pid}/kube-cross:{CROSS_TAG}", reg.addr);
    let wanted_repo = format!("k8s-build-kit-test-{pid}-mirror/kube-cross");
    let wanted = format!("{wanted_repo}:{CROSS_TAG}");
    guard.tags.extend([wanted.clone(), format!("{}/k8s-{pid}/kube-cross:{CROSS_TAG}", reg.addr)]);
    docker(&["tag", &stand_in, &pushed]);
    let push = Proc::new("docker").args(["push", &pushed]).output().unwrap();
    docker(&["rmi", &pushed]);
    assert!(push.success(), "push to the test registry: {}", push.stderr);
    // podman prints an image ID without docker's `sha256:`.
    let id = |image: &str| {
        let id = cli.read(&["image", "inspect", "-f", "{{.Id}}", image]);
        id.trim().trim_start_matches("sha256:").to_string()
    };
    assert!(cli.try_read(&["image", "inspect", "-f", "{{.Id}}", &wanted]).is_err(), "absent before the run");

    let mirror = format!("{}/k8s-{pid}", reg.addr);
    let mut env = vec![("KUBE_CROSS_IMAGE", wanted_repo.as_str())];
    env.extend_from_slice(envs);
    let args = |m: &str, short: bool| -> Vec<String> {
        let short = short.then(|| "--mirror-short".to_string());
        flags
            .iter()
            .map(|f| f.to_string())
            .chain(["--mirror".into(), m.into()])
            .chain(short)
            .chain(["true".into()])
            .collect()
    };
    let run = |m: &str, short: bool| {
        let a = args(m, short);
        rd(&root, &a.iter().map(String::as_str).collect::<Vec<_>>(), &env)
    };
    // The mirror has only the short form: the path-keeping name is tried first, found missing,
    // and the short one pulled, which the run says.
    let out = run(&mirror, false);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let long = format!("{mirror}/{wanted_repo}:{CROSS_TAG}");
    let short = format!("{mirror}/kube-cross:{CROSS_TAG}");
    assert!(out.stderr.contains(&format!("{long} is not in the mirror; trying {short}")), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("kube-cross pulled from {short}")), "{}", out.stderr);
    let docker_id = docker(&["image", "inspect", "-f", "{{.Id}}", &stand_in]);
    assert_eq!(
        id(&wanted),
        docker_id.trim().trim_start_matches("sha256:"),
        "the mirror's image, under the name the run wants"
    );

    // With the repository path there too, that is what is pulled; --mirror-short asks for the
    // short one only.
    guard.tags.push(long.clone());
    docker(&["tag", &stand_in, &long]);
    let push = Proc::new("docker").args(["push", &long]).output().unwrap();
    docker(&["rmi", &long]);
    assert!(push.success(), "push to the test registry: {}", push.stderr);
    for (short_only, pulled) in [(false, &long), (true, &short)] {
        // There or not (the last removal may have taken it): the run's words below prove a pull.
        let _ = cli.try_read(&["rmi", &wanted]);
        let out = run(&mirror, short_only);
        assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("kube-cross pulled from {pulled}")), "{}", out.stderr);
        assert!(!out.stderr.contains("trying"), "{}", out.stderr);
        // The pulled name goes too: podman takes a local image whose name ends with a short
        // name's path for it (this test's kube-cross name is short; the scripts' are not).
        let _ = cli.try_read(&["rmi", pulled]);
    }

    // A registry that answers "no such image" is told from one that does not answer.
    let _ = cli.try_read(&["rmi", &wanted]);
    let out = run(&format!("{}/nothing-{pid}", reg.addr), false);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("the registry {} answered: no", reg.addr)), "{}", out.stderr);

    let out = run("127.0.0.1:9/nowhere", false);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one line: {}", out.stderr);
    assert!(errors[0].contains("127.0.0.1:9/nowhere") && errors[0].contains("did not answer"), "{}", out.stderr);
}
