//! setup-go against a real HTTP server on 127.0.0.1 that misbehaves on purpose: an endless
//! body, a dripping listing, more bytes than listed, archives that are not a Go, an interrupt
//! mid-download. Each refusal installs nothing and leaves no temp behind.

use camino::Utf8Path;
use kube_tree::proc::{Captured, Proc};
use testkit::gomirror::{self, Fault, GoArchive, GoMirror};

const BIN: &str = env!("CARGO_BIN_EXE_setup-go");

fn cmd(cache: &Utf8Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
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
    p
}

fn setup_go(cache: &Utf8Path, args: &[&str], env: &[(&str, &str)]) -> Captured {
    cmd(cache, args, env).output().unwrap()
}

/// A refusal: exit 2, one error line naming `what`, nothing on stdout, nothing in the cache.
fn refused(out: &Captured, what: &str, cache: &Utf8Path) {
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains(what), "wanted `{what}` in: {}", out.stderr);
    assert_eq!(out.stderr.lines().filter(|l| l.contains("error:")).count(), 1, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(!cache.exists(), "nothing installed, no temps, no directory made: {:?}", gomirror::entries(cache));
}

/// A small archive of go1.15.5 holding what `fill` makes.
fn small(dir: &Utf8Path, fill: impl FnOnce(&Utf8Path)) -> GoArchive {
    GoArchive::pack(dir, "1.15.5", |go| {
        std::fs::create_dir_all(go.join("bin")).unwrap();
        std::fs::write(go.join("VERSION"), "go1.15.5\n").unwrap();
        fill(go);
    })
    .unwrap()
}

#[test]
fn a_body_past_its_listed_size_or_a_dripping_listing_is_cut_off() {
    let dir = testkit::scratch("sg-bounded");
    let cache = dir.join("cache");
    let a = small(&dir, |go| std::fs::write(go.join("bin/go"), "#!/bin/sh\n").unwrap());
    let m = GoMirror::start(std::slice::from_ref(&a));
    let args = ["--version", "1.15.5", "--mirror", &m.url];

    m.set_fault(Fault::Endless);
    let out = setup_go(&cache, &args, &[]);
    refused(&out, &format!("sends more than the {} bytes the listing gives", a.size), &cache);

    m.set_fault(Fault::Oversize);
    let out = setup_go(&cache, &args, &[]);
    refused(&out, &format!("announces {} bytes, the listing {}", a.size + 4096, a.size), &cache);

    // A whole-request deadline: the drip never stalls a read, yet the listing is given up.
    m.set_fault(Fault::DripListing);
    let out = setup_go(&cache, &args, &[("KUBE_GO_MIRROR_TIMEOUT", "3")]);
    refused(&out, "no complete answer within 3", &cache);

    let out = setup_go(&cache, &args, &[("KUBE_GO_MIRROR_TIMEOUT", "0x10")]);
    refused(&out, "KUBE_GO_MIRROR_TIMEOUT=`0x10`", &cache);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn archives_that_are_not_a_go_are_refused() {
    let dir = testkit::scratch("sg-notgo");
    let cache = dir.join("cache");
    let text = small(&dir.join("text"), |go| std::fs::write(go.join("bin/go"), "echo go version go1.15.5\n").unwrap());
    let root = small(&dir.join("root"), |go| {
        std::fs::write(go.join("bin/go"), "").unwrap();
        std::os::unix::fs::symlink("/", go.join("src")).unwrap();
    });
    let out_link = small(&dir.join("out"), |go| {
        std::fs::write(go.join("bin/go"), "").unwrap();
        std::os::unix::fs::symlink("../outside", go.join("pkg")).unwrap();
    });
    for (a, what) in [
        (&text, "not a program for this machine"),
        (&root, "a link out of go/: go/src -> /"),
        (&out_link, "a link out of go/: go/pkg -> ../outside"),
    ] {
        let m = GoMirror::start(std::slice::from_ref(a));
        let out = setup_go(&cache, &["--version", "1.15.5", "--mirror", &m.url], &[]);
        refused(&out, what, &cache);
        assert!(out.stderr.contains("nothing installed"), "{}", out.stderr);
    }

    // A real go binary (the machine's, any release but 1.15.5) behind `bin/go -> go1.19`,
    // VERSION saying go1.15.5: it reports its own release, and is refused for it.
    let Some(host_go) = kube_tree::proc::which("go") else {
        return testkit::skip("archives_that_are_not_a_go_are_refused (a real go)", "no `go` in PATH");
    };
    let host_go = std::fs::canonicalize(host_go).unwrap();
    let other = small(&dir.join("other"), |root| {
        std::fs::copy(&host_go, root.join("bin/go1.19")).unwrap();
        std::os::unix::fs::symlink("go1.19", root.join("bin/go")).unwrap();
    });
    let m = GoMirror::start(std::slice::from_ref(&other));
    let out = setup_go(&cache, &["--version", "1.15.5", "--mirror", &m.url], &[]);
    refused(&out, ", not go1.15.5", &cache);
    assert!(out.stderr.contains("go/bin/go reports go1."), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn versions_that_are_not_release_names_reach_no_site() {
    let dir = testkit::scratch("sg-names");
    let cache = dir.join("cache");
    let m = GoMirror::start(&[]);
    for v in ["1.015.5", "1.21", "1.15.0", "01.15.5"] {
        let out = setup_go(&cache, &["--version", v, "--mirror", &m.url], &[]);
        refused(&out, &format!("--version: `{v}`"), &cache);
        let out = setup_go(&cache, &["--mirror", &m.url], &[("GO_VERSION", v)]);
        refused(&out, "GO_VERSION: `", &cache);
    }
    assert!(m.requests.lock().unwrap().is_empty(), "{:?}", m.requests.lock().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn control_characters_in_a_goroot_or_the_cache_never_reach_the_output() {
    let dir = testkit::scratch("sg-ctl");
    let home = dir.join("home");
    let sneaky = home.join("sdk/go1.15.5\necho PWNED");
    std::fs::create_dir_all(sneaky.join("bin")).unwrap();
    std::fs::write(sneaky.join("bin/go"), "").unwrap();
    std::fs::write(sneaky.join("VERSION"), "go1.15.5\n").unwrap();
    let cache = dir.join("cache");
    let down = [("HOME", home.as_str()), ("KUBE_GO_MIRROR", "http://127.0.0.1:9/")];
    let out = setup_go(&cache, &["--version", "1.15.5", "--print-env"], &down);
    assert_eq!(out.status.code(), Some(2), "the ~/sdk Go with a newline is no candidate: {}", out.stderr);
    assert!(out.stdout.is_empty() && !out.stderr.contains("PWNED"), "{}{}", out.stdout, out.stderr);
    let out = setup_go(&cache, &["--version", "1.15.5", "--list"], &down);
    assert!(!out.stdout.contains("PWNED") && !out.stderr.contains("PWNED"), "{}{}", out.stdout, out.stderr);

    let bad_cache = dir.join("c\u{1b}[2Jx");
    let out = setup_go(&bad_cache, &["--version", "1.15.5", "--print-env"], &down);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("holds control characters") && !out.stderr.contains('\u{1b}'), "{}", out.stderr);
    assert!(!bad_cache.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_interrupt_mid_download_removes_the_temps_and_exits_130() {
    let dir = testkit::scratch("sg-sigterm");
    let cache = dir.join("cache");
    // Bigger than the 64 KiB the slow site sends at once, so the download is still running.
    let a = small(&dir, |go| {
        // xorshift64: bytes gzip cannot shrink.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..400_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(go.join("bin/go"), noise).unwrap();
    });
    let m = GoMirror::start(std::slice::from_ref(&a));
    m.set_fault(Fault::SlowArchive);
    let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log = said.clone();
    let mut run = cmd(&cache, &["--version", "1.15.5", "--mirror", &m.url], &[])
        .start_lines(move |_, l| log.lock().unwrap().push_str(&format!("{l}\n")))
        .unwrap();
    let temps = || gomirror::entries(&cache.join("go"));
    // The order is proven by what is on disk: the temp exists, then the signal is sent.
    let mut waited = 0;
    while !temps().iter().any(|t| t.starts_with(".download-")) {
        assert!(run.try_wait().unwrap().is_none(), "setup-go ended before its download: {}", said.lock().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
        assert!(waited < 2400, "no .download-* temp appeared");
    }
    run.terminate();
    let status = loop {
        if let Some(st) = run.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{}", said.lock().unwrap());
    assert!(said.lock().unwrap().contains("setup-go: error: interrupted"), "{}", said.lock().unwrap());
    assert_eq!(temps(), Vec::<String>::new(), "temps removed");
    assert!(!cache.exists(), "the cache it made is gone too");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn offline_it_names_its_way_out_and_finds_the_go_fetch_tree_unpacked() {
    let dir = testkit::scratch("sg-offline");
    let (home, cache) = (dir.join("home"), dir.join("cache"));
    let fake = |goroot: &Utf8Path, v: &str| {
        std::fs::create_dir_all(goroot.join("bin")).unwrap();
        std::fs::write(goroot.join("bin/go"), "").unwrap();
        std::fs::write(goroot.join("VERSION"), format!("go{v}\n")).unwrap();
    };
    fake(&home.join("sdk/go1.19.2"), "1.19.2");
    let env = [("HOME", home.as_str()), ("KUBE_GO_MIRROR", "http://127.0.0.1:9/")];
    let out = setup_go(&cache, &["--version", "1.15.5"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    for said in [
        "cannot reach",
        "wanted go1.15.5 (--version)",
        "go1.19.2 (~/sdk)",
        "none of the go1.15 line",
        "--mirror URL or KUBE_GO_MIRROR",
        "FORCE_HOST_GO=y",
        "~/sdk/go1.15.5",
    ] {
        assert!(out.stderr.contains(said), "`{said}` in: {}", out.stderr);
    }
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);

    // What `cargo xtask fetch-tree --go` unpacked beside the cache is found without a network.
    let fetched = cache.join("go-1.15-bullseye/root/usr/lib/go-1.15");
    fake(&fetched, "1.15.15");
    let out = setup_go(&cache, &["--version", "1.15.5"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, format!("{fetched}\n"));
    let out = setup_go(&cache, &["--version", "1.15.5", "--exact"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("go1.15.15 (fetch-tree)") && out.stderr.contains("--exact"), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}
