//! The hostile corpus: `tests/hostile/corpus.txt`, one case a line, run against every tool as a
//! hostile user would, each on a fresh sandbox: a generated tree of an era (or a copy of the real
//! v1.20.2 tree), a directory OUTSIDE beside it, a GOPATH, a directory of fake programs.
//!
//! A case line is `SETUP | EXIT | FRAGMENT | COMMAND [| CHECK ...]`:
//! * SETUP: a base (`a`, `b`, `bw`, `c`, `real`) and `+mutation`s (see [`mutate`]);
//! * EXIT: the expected exit code; FRAGMENT: text the output (stdout + stderr) must contain;
//! * COMMAND: `[VAR=value | PATH+=dir]... tool args...` split by shell rules, with `{TREE}`,
//!   `{OUT}`, `{GP}`, `{BIN}`, `{REPO}`, `{LONG}` (10,000 digits) and `{MIRROR}` (a Go download
//!   site a `mirror-*` setup word started, else a closed port) filled in;
//! * CHECKs: `changes=tree,gopath` (what may change; by default nothing may), `eval-safe` (stdout
//!   is eval'ed by sh, which must change nothing), `islink:REL`, `contains:REL:TEXT`, `tsv3`
//!   (every stdout line has three fields), `lacks:TEXT` (the output never shows TEXT),
//!   `printable` (no raw control character but newline and tab in stdout or stderr).
//!
//! For every case, whatever else is said: nothing outside the tree and the GOPATH changes (type,
//! mode, size, mtime, inode, content or link target), a refusal (exit 2) changes nothing, and no
//! output shows the content of OUTSIDE/canary (nothing is read from outside the tree).

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fixture::{self, Spec};
use kube_tree::proc::Proc;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_xtask");
const CORPUS: &str = include_str!("hostile/corpus.txt");

#[derive(Debug, Clone)]
struct Case {
    line: usize,
    setup: String,
    exit: i32,
    fragment: String,
    command: String,
    checks: Vec<String>,
}

fn parse_corpus() -> Vec<Case> {
    let mut out = Vec::new();
    for (i, l) in CORPUS.lines().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = t.split(" | ").map(str::trim).collect();
        assert!(f.len() >= 4, "corpus line {}: needs SETUP | EXIT | FRAGMENT | COMMAND", i + 1);
        out.push(Case {
            line: i + 1,
            setup: f[0].into(),
            exit: f[1].parse().unwrap_or_else(|_| panic!("corpus line {}: bad exit code", i + 1)),
            fragment: f[2].into(),
            command: f[3].into(),
            checks: f[4..].iter().flat_map(|c| c.split_whitespace()).map(String::from).collect(),
        });
    }
    out
}

/// One case's directories.
struct Sandbox {
    dir: Utf8PathBuf,
    tree: Utf8PathBuf,
    out: Utf8PathBuf,
    gp: Utf8PathBuf,
    bin: Utf8PathBuf,
    repo: Utf8PathBuf,
    immutable: Vec<Utf8PathBuf>,
    /// A Go download site on 127.0.0.1 for `{MIRROR}` (the `mirror-*` setup words); stopped on drop.
    mirror: Option<testkit::gomirror::GoMirror>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for f in &self.immutable {
            let _ = Proc::new("chattr").arg("-i").arg(f).output();
        }
        if std::env::var("KUBE_KEEP_HOSTILE").is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes a file as a new inode: a copy of the real tree is made of hard links to the cache,
/// which a write in place would change for every later test.
fn put_bytes(p: &Utf8Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    std::fs::write(p, bytes).unwrap();
}

fn put(p: &Utf8Path, text: &str) {
    put_bytes(p, text.as_bytes());
}

/// Gives a (hard-linked) file its own inode, so that a chmod or chattr stays in this sandbox.
fn own(p: &Utf8Path) {
    let bytes = std::fs::read(p).unwrap();
    let mode = std::fs::metadata(p).unwrap().mode();
    put_bytes(p, &bytes);
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

fn link(target: impl AsRef<std::path::Path>, at: &Utf8Path) {
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(at);
    let _ = std::fs::remove_dir_all(at);
    std::os::unix::fs::symlink(target, at).unwrap();
}

fn sh(dir: &Utf8Path, script: &str) {
    let out = Proc::new("sh").args(["-c", script]).dir(dir).output().unwrap();
    assert!(out.success(), "setup `{script}` failed: {}", out.stderr);
}

/// Inserts `add` after the first line (at or after the line equal to `after`) that is `refPaths:`.
fn add_ref_path(deps: &Utf8Path, add: &str) {
    let text = std::fs::read_to_string(deps).unwrap();
    let start = text.find("name: \"golang: upstream version\"").expect("a golang entry");
    let at = start + text[start..].find("refPaths:\n").expect("refPaths") + "refPaths:\n".len();
    put(deps, &format!("{}{add}{}", &text[..at], &text[at..]));
}

fn fake(sb: &Sandbox, name: &str, body: &str) {
    let p = sb.bin.join(name);
    put(&p, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// Section 17: an engine holding a kit-like name in upper case (not the scripts' md5sum hash),
/// one of the scripts' names, and one with no version part, as `ps` and `images` list them.
const DOCKER_KIT_NAMES: &str = r#"case "$1" in
info) printf '9000000000\t[]\tnull\n' ;;
ps) printf 'c1\tkube-build-DEADBEEF00-5-v1\t""\t""\texited\tExited (0) 1 hour ago\t\t""\t""\n'
    printf 'c2\tkube-build-deadbeef00-5-v1\t""\t""\texited\tExited (0) 1 hour ago\t\t""\t""\n'
    printf 'c3\tkube-rsync-0123456789-x\t""\t""\texited\tExited (0) 1 hour ago\t\t""\t""\n' ;;
images) [ "$2" = -a ] || printf 'kube-build:build-DEADBEEF00-5-v1\nkube-build:build-0123456789-6\n' ;;
*) exit 1 ;;
esac"#;

/// Section 17: a container of somebody else's whose tree label, read unquoted, would make a row
/// of its own (a data container of this kit); and a listing in no shape docker prints.
const DOCKER_FORGED_LABEL: &str = r#"case "$1" in
info) printf '9000000000\t[]\tnull\n' ;;
ps) printf 'c1\ttheirs\t"x\\nc9\\tkube-build-data-0123456789-5-v1\\t/src\\t"\t""\texited\tExited (0) 1 hour ago\t\t""\t""\n' ;;
images) [ "$2" = -a ] || printf 'kube-build:build-0123456789-6\n' ;;
*) exit 1 ;;
esac"#;
const DOCKER_PS_GARBAGE: &str = r#"case "$1" in
info) printf '9000000000\t[]\tnull\n' ;;
ps) printf 'c1\tkube-build-data-0123456789-5-v1\t/src\n' ;;
*) exit 1 ;;
esac"#;

/// Section 17: a generated tree at `root` (a path the sandbox's own tree cannot have).
fn tree_at(root: &Utf8Path, spec: &Spec) {
    std::fs::create_dir_all(root).unwrap();
    fixture::write_tree(root, spec);
}

const JOURNAL: &str = ".bump-go-version.journal";
/// The content of OUTSIDE/canary: no case may print it (nothing is read from outside the tree).
const CANARY: &str = "KIT-CANARY-OUTSIDE";
const HEADER: &str = "# k8s-build-kit rename journal v2";

/// The damage or trap a setup word names.
fn mutate(sb: &mut Sandbox, m: &str) {
    let (t, o) = (sb.tree.clone(), sb.out.clone());
    let deps = t.join("build/dependencies.yaml");
    match m {
        "journal-abs" => put(&t.join(JOURNAL), &format!("{o}/payload.txt\t{o}/precious.txt\n")),
        "journal-escape" => put(&t.join(JOURNAL), &format!("{HEADER}\n../outside/precious.txt\t.precious.txt.new-1\t.precious.txt.old-1\n")),
        "journal-abs-v2" => put(&t.join(JOURNAL), &format!("{HEADER}\n{o}/precious.txt\t.precious.txt.new-1\t.precious.txt.old-1\n")),
        "journal-foreign-temp" => put(&t.join(JOURNAL), &format!("{HEADER}\nbuild/build-image/cross/VERSION\tpayload\t.VERSION.old-1\n")),
        "journal-temp-path" => put(&t.join(JOURNAL), &format!("{HEADER}\nbuild/build-image/cross/VERSION\t../../../../outside/payload.txt\t.VERSION.old-1\n")),
        "journal-swapped-tags" => put(&t.join(JOURNAL), &format!("{HEADER}\nbuild/build-image/cross/VERSION\t.VERSION.old-1\t.VERSION.new-1\n")),
        "journal-garbage" => put_bytes(&t.join(JOURNAL), b"\xff\xfe\x00garbage"),
        "journal-two-fields" => put(&t.join(JOURNAL), &format!("{HEADER}\nbuild/build-image/cross/VERSION\t.VERSION.new-1\n")),
        "journal-link-out" => link(o.join("precious.txt"), &t.join(JOURNAL)),
        "journal-via-linkdir" => {
            link(&o, &t.join("hack/out"));
            put(&t.join(JOURNAL), &format!("{HEADER}\nhack/out/precious.txt\t.precious.txt.new-1\t.precious.txt.old-1\n"));
        }
        "journal-pending" => {
            // A bump to 1.15.8 killed after its commit: one temp renamed, one still waiting.
            let v = t.join("build/build-image/cross/VERSION");
            put(&v.parent().unwrap().join(".VERSION.new-999999999"), "v1.15.8-1\n");
            put(&t.join(JOURNAL), &format!("{HEADER}\nbuild/build-image/cross/VERSION\t.VERSION.new-999999999\t.VERSION.old-999999999\n"));
        }
        "stale-temp" => put(&t.join("build/build-image/cross/.VERSION.new-999999999"), "v1.15.8-1\n"),
        "refpath-parent" => add_ref_path(&deps, "    - path: ../outside/victim.txt\n      match: GOLANG\n"),
        "refpath-dotdot-inside" => add_ref_path(&deps, "    - path: build/../../outside/victim.txt\n      match: GOLANG\n"),
        "refpath-abs" => add_ref_path(&deps, &format!("    - path: {o}/victim.txt\n      match: GOLANG\n")),
        "refpath-linkdir" => {
            link(&o, &t.join("hack/out"));
            add_ref_path(&deps, "    - path: hack/out/victim.txt\n      match: GOLANG\n");
        }
        "refpath-linkfile" => {
            link(o.join("victim.txt"), &t.join("hack/victim.txt"));
            add_ref_path(&deps, "    - path: hack/victim.txt\n      match: GOLANG\n");
        }
        "test-images-out" => {
            sh(&t, &format!("cp -a test/images {o}/images && rm -rf test/images"));
            link(o.join("images"), &t.join("test/images"));
        }
        "carrier-link-in" => {
            let v = t.join("build/build-image/cross/VERSION");
            std::fs::rename(&v, t.join("build/VERSION.real")).unwrap();
            link("../../VERSION.real", &v);
        }
        "carrier-link-out" => {
            let v = t.join("build/build-image/cross/VERSION");
            std::fs::copy(&v, o.join("VERSION")).unwrap();
            link(o.join("VERSION"), &v);
        }
        "carrier-dangling" => link("nowhere", &t.join("build/build-image/cross/VERSION")),
        "carrier-readonly" => {
            own(&t.join("build/build-image/cross/VERSION"));
            sh(&t, "chmod 444 build/build-image/cross/VERSION");
        }
        "carrier-dir" => sh(&t, "rm build/build-image/cross/VERSION && mkdir build/build-image/cross/VERSION"),
        "carrier-binary" => put_bytes(&t.join("build/build-image/cross/VERSION"), b"v1.15.5-1\n\xff\xfe\n"),
        "carrier-immutable" => {
            let f = t.join("test/images/Makefile");
            own(&f);
            sh(&t, &format!("chattr +i '{f}'"));
            sb.immutable.push(f);
        }
        "deps-empty" => put(&deps, ""),
        "deps-comment-only" => put(&deps, "# nothing here\n"),
        "deps-42" => put(&deps, "dependencies: 42\n"),
        "deps-nokey" => put(&deps, "other:\n  - name: x\n    version: 1\n"),
        "deps-malformed" => put(&deps, "dependencies:\n  - name: [unclosed\n    version: 1.15.5\n"),
        "deps-no-golang" => {
            let text = std::fs::read_to_string(&deps).unwrap().replace("golang: upstream version", "golang: something else");
            put(&deps, &text);
        }
        "deps-flow" => put(&deps, "dependencies:\n  - {name: \"golang: upstream version\", version: 1.15.5}\n"),
        "deps-two-docs" => {
            let text = std::fs::read_to_string(&deps).unwrap();
            put(&deps, &format!("{text}---\nmore: 1\n"));
        }
        "deps-refpaths-scalar" => put(&deps, "dependencies:\n  - name: \"golang: upstream version\"\n    version: 1.15.5\n    refPaths: build/build-image/cross/VERSION\n"),
        "deps-no-version" => put(&deps, "dependencies:\n  - name: \"golang: upstream version\"\n    refPaths:\n    - path: build/build-image/cross/VERSION\n"),
        "deps-binary" => put_bytes(&deps, b"dependencies:\n\xff\xfe\n"),
        "vendor-k8s-out" => {
            sh(&t, &format!("cp -a vendor/k8s.io {o}/k8s.io && rm -rf vendor/k8s.io && rm {o}/k8s.io/api"));
            link(o.join("k8s.io"), &t.join("vendor/k8s.io"));
        }
        "vendor-out" => {
            sh(&t, &format!("cp -a vendor {o}/vendor && rm -rf vendor && rm {o}/vendor/k8s.io/api"));
            link(o.join("vendor"), &t.join("vendor"));
        }
        "vendor-k8s-in" => {
            sh(&t, "rm -rf vendor/k8s.io && mkdir -p hack/elsewhere");
            link("../hack/elsewhere", &t.join("vendor/k8s.io"));
        }
        "vendor-broken-link" => sh(&t, "rm vendor/k8s.io/api"),
        "vendor-newline-name" => link("../../staging/src/k8s.io/nope\tx", &t.join("vendor/k8s.io/bad\nname")),
        "output-out" => link(&o, &t.join("_output")),
        "output-local-out" => link(&o, &t.join("_output/local")),
        "cmd-link-out" => link(o.join("cmd/evil"), &t.join("cmd/evil")),
        "gomod-empty" => put(&t.join("go.mod"), ""),
        "fanout-durations-garbage" => put(&t.join("_output/dockerized/.kit-fanout-durations"), "{\"default\": [1, 2"),
        "fanout-durations-negative" => {
            let record = r#"{"record":"fanout-durations","version":1,"data":{"default":{"linux/amd64":-5}}}"#;
            put(&t.join("_output/dockerized/.kit-fanout-durations"), record)
        }
        "gomod-unclosed" => {
            let text = std::fs::read_to_string(t.join("go.mod")).unwrap();
            put(&t.join("go.mod"), &format!("{text}\nrequire (\n\tgithub.com/x/y v1.0.0\n"));
        }
        "gomod-unknown" => {
            let text = std::fs::read_to_string(t.join("go.mod")).unwrap();
            put(&t.join("go.mod"), &format!("{text}\nfrobnicate everything\n"));
        }
        "gomod-other-module" => {
            let text = std::fs::read_to_string(t.join("go.mod")).unwrap().replacen("module k8s.io/kubernetes", "module example.com/other", 1);
            put(&t.join("go.mod"), &text);
        }
        "gowork-unclosed" => {
            let text = std::fs::read_to_string(t.join("go.work")).unwrap();
            put(&t.join("go.work"), &format!("{text}\nuse (\n\t./x\n"));
        }
        "docker-hang" => fake(sb, "docker", "exec sleep 600"),
        "docker-silent" => fake(sb, "docker", "exit 0"),
        "docker-garbage" => fake(sb, "docker", "echo 'not a number'"),
        "docker-down" => fake(sb, "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1"),
        "go-hang" => fake(sb, "go", "exec sleep 600"),
        "gitrepo" => {
            let r = sb.repo.clone();
            fixture::write_tree(&r, &Spec::era_b());
            sh(&r, "git init -q . && git add -A && git -c user.email=t@t -c user.name=t commit -qm init");
        }
        "gitrepo-notkube" => {
            let r = sb.repo.clone();
            put(&r.join("README"), "not kubernetes\n");
            sh(&r, "git init -q . && git add -A && git -c user.email=t@t -c user.name=t commit -qm init");
        }
        // Section 17 (values that reach docker, --json, the scripts' names).
        "docker-records" => {
            let o = sb.out.clone();
            fake(sb, "docker", &format!("echo \"$@\" >> '{o}/docker-was-called'; exit 1"));
        }
        "docker-kit-names" => fake(sb, "docker", DOCKER_KIT_NAMES),
        "docker-forged-label" => fake(sb, "docker", DOCKER_FORGED_LABEL),
        "docker-ps-garbage" => fake(sb, "docker", DOCKER_PS_GARBAGE),
        "tree-colon" => tree_at(&sb.repo.join("k:8s"), &Spec::era_c()),
        "tree-colon-comma" => tree_at(&sb.repo.join("k:8s,x"), &Spec::era_c()),
        "tree-tab" => tree_at(&sb.repo.join("k\t8s"), &Spec::era_b()),
        // Reads are confined: a link out to the canary, a FIFO or a link to /dev/zero at a path.
        m if m.starts_with("canary=") => link(o.join("canary"), &t.join(&m["canary=".len()..])),
        m if m.starts_with("zero=") => link("/dev/zero", &t.join(&m["zero=".len()..])),
        // A Go outside the tree whose VERSION says go1.15.5 and whose bin/go is a text file.
        "text-go-out" => {
            put(&o.join("textgo/VERSION"), "go1.15.5\n");
            put(&o.join("textgo/bin/go"), "#!/bin/sh\necho go version go1.15.5 linux/amd64\n");
            std::fs::set_permissions(o.join("textgo/bin/go"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        m if m.starts_with("big=") => put(&t.join(&m["big=".len()..]), &"# padding\n".repeat(300_000)),
        m if m.starts_with("fifo=") => {
            let at = t.join(&m["fifo=".len()..]);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            let _ = std::fs::remove_file(&at);
            sh(&t, &format!("mkfifo '{at}'"));
        }
        // Section 18 (setup-go downloads): a Go planted in the tree, a GOROOT with a newline,
        // and a site that misbehaves (see download_site).
        "tree-go" => {
            put(&t.join("mygo/VERSION"), "go1.15.5\n");
            let go = t.join("mygo/bin/go");
            put(&go, &format!("#!/bin/sh\necho PLANTED > '{o}/pwned'\necho go version go1.15.5 linux/amd64\n"));
            std::fs::set_permissions(&go, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        "sdk-newline" => {
            let r = o.join("home/sdk/go1.15.5\necho PWNED");
            put(&r.join("VERSION"), "go1.15.5\n");
            put(&r.join("bin/go"), "");
        }
        w if w.starts_with("mirror-") => download_site(sb, w),
        // Section 20 (integrity): go's write directories, special files at the tree files
        // kube-build, bump-go and check-vendor read, the bump lock, names that are not UTF-8.
        "gocache-out" => link(&o, &t.join("_output/local/go/cache")),
        "gobin-out" => link(o.join("bin"), &t.join("_output/local/go/bin")),
        "gopath-out" => link(&o, &t.join("_output/local/go")),
        "fifo-modules-txt" => sh(&t, "rm -f vendor/modules.txt && mkfifo vendor/modules.txt"),
        "zero-modules-txt" => link("/dev/zero", &t.join("vendor/modules.txt")),
        "fifo-deps" => sh(&t, "rm -f build/dependencies.yaml && mkfifo build/dependencies.yaml"),
        "zero-deps" => link("/dev/zero", &t.join("build/dependencies.yaml")),
        "fifo-journal" => sh(&t, &format!("mkfifo {JOURNAL}")),
        "zero-journal" => link("/dev/zero", &t.join(JOURNAL)),
        "fifo-makefile" => sh(&t, "rm -f build/root/Makefile && mkfifo build/root/Makefile"),
        "fifo-cmd-source" => sh(&t, "mkfifo cmd/kube-proxy/zz_fifo.go"),
        "zero-cmd-source" => link("/dev/zero", &t.join("cmd/kube-proxy/zero.go")),
        "lock-stale" => put(&t.join(".bump-go-version.lock"), "999999999"),
        "lock-link-out" => link(o.join("precious.txt"), &t.join(".bump-go-version.lock")),
        "lock-fifo" => sh(&t, "mkfifo .bump-go-version.lock"),
        "vendor-nonutf8-name" => {
            use std::os::unix::ffi::OsStrExt;
            let at = t.join("vendor/k8s.io").into_std_path_buf().join(std::ffi::OsStr::from_bytes(b"bad\xff\xfename"));
            std::os::unix::fs::symlink("../../staging/src/k8s.io/bad", at).unwrap();
        }
        "vendor-esc-name" => link("../../staging/src/k8s.io/gone", &t.join("vendor/k8s.io/esc\x1b[2Jx")),
        other => panic!("unknown setup word `{other}`"),
    }
}

/// Section 18: a Go download site for `{MIRROR}`, serving go1.15.5 (a small archive, in the
/// sandbox) with the fault or the trap the word names.
fn download_site(sb: &mut Sandbox, word: &str) {
    use testkit::gomirror::{Fault, GoArchive, GoMirror};
    let symlink = |target: &str, at: &Utf8Path| std::os::unix::fs::symlink(target, at).unwrap();
    let (fault, fill): (Fault, &dyn Fn(&Utf8Path)) = match word {
        "mirror-endless" => (Fault::Endless, &|_| {}),
        "mirror-drip" => (Fault::DripListing, &|_| {}),
        "mirror-oversize" => (Fault::Oversize, &|_| {}),
        "mirror-wrongsum" => (Fault::WrongSum, &|_| {}),
        "mirror-textgo" => (Fault::None, &|_| {}),
        "mirror-rootlink" => (Fault::None, &|go| symlink("/", &go.join("src"))),
        "mirror-outlink" => (Fault::None, &|go| symlink("../outside", &go.join("pkg"))),
        "mirror-gobinlink" => (Fault::None, &|go| symlink("/bin/true", &go.join("bin/gofmt"))),
        other => panic!("unknown setup word `{other}`"),
    };
    let a = GoArchive::pack(&sb.dir.join("site"), "1.15.5", |go| {
        put(&go.join("VERSION"), "go1.15.5\n");
        put(&go.join("bin/go"), "#!/bin/sh\necho go version go1.15.5 linux/amd64\n");
        fill(go);
    })
    .unwrap();
    let m = GoMirror::start(&[a]);
    m.set_fault(fault);
    sb.mirror = Some(m);
}

fn sandbox(case: &Case, n: usize, real: Option<&Utf8Path>) -> Sandbox {
    let dir = testkit::scratch(&format!("hostile-{n}"));
    let mut words = case.setup.split('+');
    let base = words.next().unwrap();
    let mut sb = Sandbox {
        tree: dir.join("kubernetes"),
        out: dir.join("outside"),
        gp: dir.join("gopath"),
        bin: dir.join("bin"),
        repo: dir.join("repo"),
        dir,
        immutable: Vec::new(),
        mirror: None,
    };
    for d in [&sb.out, &sb.gp, &sb.bin, &sb.repo] {
        std::fs::create_dir_all(d).unwrap();
    }
    put(&sb.out.join("precious.txt"), "precious\n");
    put(&sb.out.join("canary"), &format!("{CANARY}\n"));
    put(&sb.out.join("payload.txt"), "payload\n");
    put(&sb.out.join("victim.txt"), "GOLANG 1.15.5\n");
    put(&sb.out.join("cmd/evil/main.go"), "package main\n\nfunc main() {}\n");
    let spec = match base {
        "a" => Some(Spec::era_a()),
        "b" => Some(Spec::era_b()),
        "bw" => Some(Spec::era_b_workspace()),
        "c" => Some(Spec::era_c()),
        "real" => None,
        other => panic!("corpus line {}: unknown base `{other}`", case.line),
    };
    match spec {
        Some(s) => {
            std::fs::create_dir_all(&sb.tree).unwrap();
            fixture::write_tree(&sb.tree, &s);
        }
        None => testkit::link_copy(real.expect("real tree"), &sb.tree).unwrap(),
    }
    for m in words {
        mutate(&mut sb, m);
    }
    sb
}

/// What a path is, precisely enough to see any change the tools could make.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    kind: &'static str,
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ino: u64,
    /// The link's target or the regular file's content, hashed (every file, of any size).
    what: u64,
}

/// The stat of a file that its content hash is remembered under. ctime is in it: the kernel
/// moves it on every write (a write that puts the mtime back included), so a file whose key is
/// unchanged has the content it was hashed with, and only files whose stat changed are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileKey {
    fn of(md: &std::fs::Metadata) -> FileKey {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileKey {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime_ns: ns(md.mtime(), md.mtime_nsec()),
            ctime_ns: ns(md.ctime(), md.ctime_nsec()),
        }
    }
}

/// Content hashes by [`FileKey`], shared by every case of the process: the real-tree cases are
/// hard-linked copies of one cache, so its 277 MB are read once, not twice per case.
static HASHES: Mutex<BTreeMap<FileKey, u64>> = Mutex::new(BTreeMap::new());

/// The hash of a regular file's content (streamed: any size), or of the error reading it.
fn content_hash(p: &Utf8Path, md: &std::fs::Metadata) -> u64 {
    use std::io::Read;
    let key = FileKey::of(md);
    if let Some(h) = HASHES.lock().unwrap().get(&key) {
        return *h;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match std::fs::File::open(p) {
        Ok(mut f) => {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => h.write(&buf[..n]),
                    Err(e) => {
                        e.kind().hash(&mut h);
                        break;
                    }
                }
            }
        }
        Err(e) => e.kind().hash(&mut h),
    }
    let sum = h.finish();
    // Only when the file did not change while it was read: else the next look reads it again.
    if std::fs::symlink_metadata(p).is_ok_and(|now| FileKey::of(&now) == key) {
        HASHES.lock().unwrap().insert(key, sum);
    }
    sum
}

fn snapshot(root: &Utf8Path) -> BTreeMap<String, Stat> {
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = Utf8PathBuf::from_path_buf(e.path())
                .unwrap_or_else(|p| Utf8PathBuf::from(p.to_string_lossy().into_owned()));
            let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
            let ft = md.file_type();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            let kind = if ft.is_symlink() {
                std::fs::read_link(&p).map(|t| t.hash(&mut h)).ok();
                "link"
            } else if ft.is_dir() {
                stack.push(p.clone());
                "dir"
            } else if ft.is_file() {
                // Only regular files: a read of a FIFO or a device would wait or never end.
                content_hash(&p, &md).hash(&mut h);
                "file"
            } else {
                "special"
            };
            let rel = p.strip_prefix(root).unwrap().to_string();
            m.insert(
                rel,
                Stat {
                    kind,
                    mode: md.mode(),
                    size: if ft.is_dir() { 0 } else { md.len() },
                    mtime: (md.mtime(), md.mtime_nsec()),
                    ino: md.ino(),
                    what: h.finish(),
                },
            );
        }
    }
    m
}

fn region(rel: &str) -> &'static str {
    match rel.split('/').next() {
        Some("kubernetes") => "tree",
        Some("gopath") => "gopath",
        _ => "outside",
    }
}

fn placeholders(s: &str, sb: &Sandbox) -> String {
    s.replace("{TREE}", sb.tree.as_str())
        .replace("{OUT}", sb.out.as_str())
        .replace("{GP}", sb.gp.as_str())
        .replace("{BIN}", sb.bin.as_str())
        .replace("{REPO}", sb.repo.as_str())
        .replace("{LONG}", &format!("1.15.{}", "9".repeat(10_000)))
        .replace("{MIRROR}", sb.mirror.as_ref().map_or("http://127.0.0.1:9/", |m| m.url.as_str()))
}

/// A command word: placeholders filled, then `\n` and `\t` made real control characters.
fn fill(s: &str, sb: &Sandbox) -> String {
    placeholders(s, sb).replace("\\n", "\n").replace("\\t", "\t")
}

/// Runs one case in its sandbox; Err says what was wrong.
fn run_case(case: &Case, sb: &mut Sandbox) -> Result<(), String> {
    let words = shell_words::split(&case.command).map_err(|e| format!("bad command: {e}"))?;
    let words: Vec<String> = words.iter().map(|w| fill(w, sb)).collect();
    let mut p = Proc::new(BIN)
        .dir(&sb.tree)
        .env("KUBE_VERBOSE", "1")
        .env("GOPATH", &sb.gp)
        .env("KUBE_DOCTOR_TIMEOUT", "1")
        .env_remove("KUBE_ROOT")
        .env_remove("GOFLAGS")
        .env_remove("GOTOOLCHAIN")
        .env_remove("FORCE_HOST_GO")
        .env_remove("GO_VERSION")
        // --go auto may look for the tree's Go: never on the network from the corpus (a closed
        // local port answers at once), never in the user's own cache.
        .env("KUBE_GO_MIRROR", "http://127.0.0.1:9/")
        .env("KUBE_KIT_CACHE", sb.dir.join("kit-cache"))
        .env_remove("WHAT")
        .env_remove("KUBE_BUILD_PLATFORMS")
        .timeout(Duration::from_secs(120));
    let mut args = words.as_slice();
    while let Some(w) = args.first() {
        if let Some(dir) = w.strip_prefix("PATH+=") {
            p = p.env("PATH", format!("{dir}:{}", std::env::var("PATH").unwrap_or_default()));
        } else if let Some((k, v)) =
            w.split_once('=').filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        {
            p = p.env(k, v);
        } else {
            break;
        }
        args = &args[1..];
    }
    let before = snapshot(&sb.dir);
    let out = p.args(args).output().map_err(|e| e.msg)?;
    let said = format!("{}{}", out.stdout, out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(case.exit) {
        problems.push(format!("exit {:?}, expected {}", out.status.code(), case.exit));
    }
    if said.contains(CANARY) {
        problems.push("the output shows the content of a file outside the tree (the canary)".into());
    }
    if !said.contains(&placeholders(&case.fragment, sb)) {
        problems.push(format!("output lacks `{}`", case.fragment));
    }
    let mut may: Vec<&str> = Vec::new();
    for c in &case.checks {
        if let Some(r) = c.strip_prefix("changes=") {
            may.extend(r.split(','));
        } else if c == "eval-safe" {
            let ev = Proc::new("sh")
                .args(["-c", "eval \"$1\"", "sh", &out.stdout])
                .dir(&sb.dir)
                .output()
                .map_err(|e| e.msg)?;
            if !ev.success() {
                problems.push(format!("eval of stdout failed: {}", ev.stderr));
            }
        } else if let Some(rel) = c.strip_prefix("islink:") {
            if !std::fs::symlink_metadata(sb.tree.join(rel)).is_ok_and(|m| m.file_type().is_symlink()) {
                problems.push(format!("{rel} is no longer a symlink"));
            }
        } else if let Some(rest) = c.strip_prefix("contains:") {
            let (rel, text) = rest.split_once(':').unwrap();
            let got = std::fs::read_to_string(sb.tree.join(rel)).unwrap_or_default();
            if !got.contains(text) {
                problems.push(format!("{rel} lacks `{text}`: {got:?}"));
            }
        } else if let Some(text) = c.strip_prefix("lacks:") {
            // A secret or a refused name that must appear nowhere in the output.
            if said.contains(text) {
                problems.push(format!("the output shows `{text}`"));
            }
        } else if c == "printable" {
            // No raw control character but newline and tab reaches the terminal.
            if let Some(l) = said.lines().find(|l| l.chars().any(|c| c.is_control() && c != '\t')) {
                problems.push(format!("a raw control character in the output: {l:?}"));
            }
        } else if c == "tsv3" {
            if let Some(l) = out.stdout.lines().find(|l| l.split('\t').count() != 3) {
                problems.push(format!("stdout line without exactly three fields: {l:?}"));
            }
        } else {
            return Err(format!("unknown check `{c}`"));
        }
    }
    if case.exit == 2 && !may.is_empty() {
        return Err("a refusal (exit 2) may change nothing; drop changes=".into());
    }
    let after = snapshot(&sb.dir);
    let mut changed: Vec<String> = Vec::new();
    for k in before.keys().chain(after.keys().filter(|k| !before.contains_key(*k))) {
        if before.get(k) != after.get(k) && !may.contains(&region(k)) {
            changed.push(k.clone());
        }
    }
    if !changed.is_empty() {
        changed.truncate(8);
        problems.push(format!("changed where it must not: {changed:?}"));
    }
    sb.immutable.retain(|f| f.exists());
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n      stdout: {}\n      stderr: {}",
            problems.join("; "),
            out.stdout.trim_end(),
            out.stderr.trim_end()
        ))
    }
}

/// A panic's message, for the failure list.
fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// A case's sandbox, or what broke while making it.
fn prepare(case: &Case, n: usize, real: Option<&Utf8Path>) -> Result<Sandbox, String> {
    std::panic::catch_unwind(|| sandbox(case, n, real)).map_err(|p| format!("setup: {}", panic_text(p)))
}

/// Runs `cases` (index in the corpus, case) on three threads; returns how many ran and the
/// failures. The real-tree sandboxes are all made before the first case and removed after the
/// last: making or removing a hard-linked copy moves the ctime of every file of the cache, and
/// a moved ctime makes the content hash read the file again.
fn run_cases(cases: &[(usize, &Case)], real: Option<&Utf8Path>) -> (usize, Vec<String>) {
    let made: Vec<Mutex<Option<Result<Sandbox, String>>>> =
        cases.iter().map(|(n, c)| Mutex::new(real.map(|_| prepare(c, *n, real)))).collect();
    let kept = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((n, case)) = cases.get(i) else { break };
                let sb = made[i].lock().unwrap().take().unwrap_or_else(|| prepare(case, *n, real));
                let res = sb.and_then(|mut sb| {
                    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(case, &mut sb)))
                        .unwrap_or_else(|p| Err(panic_text(p)));
                    if real.is_some() {
                        kept.lock().unwrap().push(sb);
                    }
                    res
                });
                if let Err(e) = res {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("corpus line {} [{}] `{}`:\n      {e}", case.line, case.setup, case.command));
                }
            });
        }
    });
    drop(kept);
    (cases.len(), failures.into_inner().unwrap())
}

fn report(what: &str, ran: usize, failures: &[String]) {
    eprintln!("hostile corpus ({what}): {ran} cases run, {} failed", failures.len());
    assert!(failures.is_empty(), "{} hostile case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Every case on a generated tree (fast tier: no network, no engine; needs git for the clone
/// cases).
#[test]
fn hostile_corpus_on_generated_trees() {
    let test = "hostile_corpus_on_generated_trees";
    let all = parse_corpus();
    assert!(all.len() >= 150, "the corpus holds {} cases; at least 150 are promised", all.len());
    let cases: Vec<(usize, &Case)> = all.iter().enumerate().filter(|(_, c)| !c.setup.starts_with("real")).collect();
    if cases.iter().any(|(_, c)| c.setup.contains("gitrepo")) {
        testkit::require(test, "git");
    }
    let (ran, failures) = run_cases(&cases, None);
    report("generated trees", ran, &failures);
}

/// Every case on a copy of the real tree, with the same checks (content included).
#[test]
#[ignore = "full tier: needs the real v1.20.2 tree (apt-get source, network on first run)"]
fn hostile_corpus_on_the_real_tree() {
    let test = "hostile_corpus_on_the_real_tree";
    let all = parse_corpus();
    let cases: Vec<(usize, &Case)> = all.iter().enumerate().filter(|(_, c)| c.setup.starts_with("real")).collect();
    assert!(!cases.is_empty(), "the corpus has real-tree cases");
    let real = testkit::real_tree().unwrap_or_else(|e| testkit::fail(test, &e));
    let (ran, failures) = run_cases(&cases, Some(&real));
    report("the real tree", ran, &failures);
}
