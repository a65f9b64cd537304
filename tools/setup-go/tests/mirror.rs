//! setup-go against a real HTTP server on 127.0.0.1 in the official download site's layout,
//! serving Debian's golang-1.15 repacked as the official archive (see testkit::gomirror).

use camino::Utf8Path;
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};
use testkit::gomirror::{self, Fault, GoMirror};

const BIN: &str = env!("CARGO_BIN_EXE_setup-go");

/// setup-go with a clean Go environment (no GOTOOLCHAIN, FORCE_HOST_GO, GO_VERSION from CI)
/// and `cache` as its cache.
fn setup_go(cache: &Utf8Path, args: &[&str], env: &[(&str, &str)]) -> Captured {
    let mut p = Proc::new(BIN)
        .args(args)
        .env("KUBE_KIT_CACHE", cache)
        .env_remove("GOTOOLCHAIN")
        .env_remove("FORCE_HOST_GO")
        .env_remove("GO_VERSION")
        .env_remove("KUBE_GO_MIRROR")
        .env_remove("GOROOT");
    for (k, v) in env {
        p = p.env(k, v);
    }
    p.output().unwrap()
}

/// The Go versions (and temps) in the cache.
fn installed(cache: &Utf8Path) -> Vec<String> {
    gomirror::entries(&cache.join("go"))
}

fn archive(test: &str) -> Option<gomirror::GoArchive> {
    match gomirror::go115_archive() {
        Ok(a) => Some(a),
        Err(e) => {
            testkit::skip_if_missing(test, &e);
            None
        }
    }
}

#[test]
#[ignore = "full tier: needs Debian bullseye's Go 1.15 (fetched from the network on first use)"]
fn installs_the_newest_patch_of_the_line_and_then_needs_no_network() {
    let test = "installs_the_newest_patch_of_the_line_and_then_needs_no_network";
    let Some(a) = archive(test) else { return };
    let mut m = GoMirror::start(std::slice::from_ref(&a));
    let cache = gomirror::scratch_cache("sg-install");

    // The tree (v1.20.2's kube-cross tag) wants 1.15.5; the site only has 1.15.15.
    let out = setup_go(&cache, &["--version", "1.15.5", "--mirror", &m.url, "--exact"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("has no go1.15.5") && out.stderr.contains("--exact"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(installed(&cache), Vec::<String>::new(), "--exact installs nothing");

    let out = setup_go(&cache, &["--version", "1.15.5", "--mirror", &m.url], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let goroot = cache.join("go/1.15.15");
    assert_eq!(out.stdout, format!("{goroot}\n"));
    assert!(out.stderr.contains("installing go1.15.15, the newest patch of go1.15"), "{}", out.stderr);
    let v = Proc::new(goroot.join("bin/go")).arg("version").env("GOROOT", &goroot).read().unwrap();
    assert!(v.starts_with("go version go1.15.15 linux/amd64"), "{v}");
    assert_eq!(installed(&cache), [".fallback-1.15.5", "1.15.15"], "no temps left");

    // --list: what is installed (the cache's 1.15.15 among them) and what the site offers.
    let out = setup_go(&cache, &["--version", "1.15.5", "--mirror", &m.url, "--list"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains(&format!("installed\t1.15.15\t{goroot}\tcache\n")), "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l == "available\t1.15.15"), "{}", out.stdout);

    // The site goes away: the same request is answered from the cache.
    let asked = m.requests.lock().unwrap().len();
    m.stop();
    let out = setup_go(&cache, &["--version", "1.15.5", "--mirror", &m.url, "--print-env"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("export GOROOT={goroot}\nexport PATH={}:\"$PATH\"\nexport GOTOOLCHAIN=local\n", goroot.join("bin"))
    );
    let out = setup_go(&cache, &["--version", "1.15.15", "--json"], &[("KUBE_GO_MIRROR", "http://127.0.0.1:9/")]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(r#""version":"1.15.15""#) && out.stdout.contains(r#""found":"cache""#),
        "{}",
        out.stdout
    );
    assert_eq!(m.requests.lock().unwrap().len(), asked, "no request after the install");

    // The tree's choice, and FORCE_HOST_GO overriding it as the tree's scripts do.
    let root = fixture::scratch_tree("sg-tree", &Spec::era_b());
    let tree_go =
        setup_go(&cache, &["--kube-root", root.as_str(), "--json"], &[("KUBE_GO_MIRROR", "http://127.0.0.1:9/")]);
    let host = setup_go(&cache, &["--kube-root", root.as_str()], &[("FORCE_HOST_GO", "y")]);
    if let Some(h) = setup_go::local::host() {
        assert_eq!(host.status.code(), Some(0), "{}", host.stderr);
        assert_eq!(host.stdout, format!("{}\n", h.goroot), "FORCE_HOST_GO: the go on PATH");
    }
    assert!(tree_go.stderr.contains("build/build-image/cross/VERSION"), "{}", tree_go.stderr);
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_dir_all(root.parent().unwrap());
}

#[test]
#[ignore = "full tier: needs Debian bullseye's Go 1.15 (fetched from the network on first use)"]
fn a_bad_download_installs_nothing() {
    let test = "a_bad_download_installs_nothing";
    let Some(a) = archive(test) else { return };
    let mut m = GoMirror::start(std::slice::from_ref(&a));
    let cache = gomirror::scratch_cache("sg-bad");
    let run = |url: &str| setup_go(&cache, &["--version", "1.15.15", "--mirror", url], &[]);

    m.set_fault(Fault::WrongSum);
    let out = run(&m.url);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("SHA-256 mismatch") && out.stderr.contains("nothing installed"), "{}", out.stderr);
    assert!(installed(&cache).is_empty(), "{:?}", installed(&cache));

    m.set_fault(Fault::Truncate);
    let out = run(&m.url);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("download failed") || out.stderr.contains("truncated"), "{}", out.stderr);
    assert!(installed(&cache).is_empty(), "{:?}", installed(&cache));

    // A plain file mirror: no listing, the .sha256 beside the archive; another patch cannot be
    // found there.
    m.set_fault(Fault::NoListing);
    let out = setup_go(&cache, &["--version", "1.15.5", "--mirror", &m.url], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("serves no release listing"), "{}", out.stderr);
    let out = run(&m.url);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(installed(&cache), ["1.15.15"]);

    // Down: one line, exit 2.
    m.stop();
    let out = setup_go(&cache, &["--version", "1.16.15", "--mirror", &m.url], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("cannot reach") && out.stderr.trim().lines().count() == 1, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn bad_input_is_refused_before_any_request() {
    let cache = testkit::scratch("sg-input");
    for (args, what) in [
        (&["--version", "1.x"][..], "--version"),
        (&["--version", "1.15.5", "--mirror", "ftp://example.com/"], "not a Go download mirror"),
        (&["--version", "1.15.5", "--mirror", "https://x/`id`"], "not a Go download mirror"),
        (&["--version", "1.15.5", "--print-env", "--list"], "--print-env"),
        (&["--go"], "unexpected"),
    ] {
        let out = setup_go(&cache, args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(what), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    let _ = std::fs::remove_dir_all(&cache);
}
