//! The hostile corpus: `tests/hostile/corpus.txt`, one case a line, run against every tool as a
//! hostile user would, each on a fresh sandbox: a generated tree of an era (or a copy of the real
//! v1.20.2 tree), a directory OUTSIDE beside it, a GOPATH, a directory of fake programs.
//!
//! A case line is `SETUP | EXIT | FRAGMENT | COMMAND [| CHECK ...]`:
//! * SETUP: a base (`a`, `b`, `bw`, `c`, `real`) and `+mutation`s (see [`mutate`]);
//! * EXIT: the expected exit code; FRAGMENT: text the output (stdout + stderr) must contain;
//! * COMMAND: `[VAR=value | PATH+=dir]... tool args...` split by shell rules, with `{TREE}`,
//!   `{OUT}`, `{GP}`, `{BIN}`, `{REPO}` and `{LONG}` (10,000 digits) filled in;
//! * CHECKs: `changes=tree,gopath` (what may change; by default nothing may), `eval-safe` (stdout
//!   is eval'ed by sh, which must change nothing), `islink:REL`, `contains:REL:TEXT`, `tsv3`
//!   (every stdout line has three fields), `printable` (no raw control character but newline
//!   and tab in stdout or stderr).
//!
//! For every case, whatever else is said: nothing outside the tree and the GOPATH changes (type,
//! mode, size, mtime, inode, content or link target), and a refusal (exit 2) changes nothing.

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
    real: bool,
    immutable: Vec<Utf8PathBuf>,
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

const JOURNAL: &str = ".bump-go-version.journal";
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
            put(&t.join("_output/dockerized/.kit-fanout-durations"), r#"{"default": {"linux/amd64": -5}}"#)
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
        // Section 16 (integrity): go's write directories, special files at the tree files
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
        real: base == "real",
        immutable: Vec::new(),
    };
    for d in [&sb.out, &sb.gp, &sb.bin, &sb.repo] {
        std::fs::create_dir_all(d).unwrap();
    }
    put(&sb.out.join("precious.txt"), "precious\n");
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
    what: u64,
}

fn snapshot(root: &Utf8Path, contents: bool) -> BTreeMap<String, Stat> {
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
            } else {
                // Only a regular file is read: a FIFO (section 16) would hang the harness.
                if contents && ft.is_file() && md.len() < 1 << 20 {
                    std::fs::read(&p).map(|b| b.hash(&mut h)).ok();
                }
                "file"
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
}

/// A command word: placeholders filled, then `\n` and `\t` made real control characters.
fn fill(s: &str, sb: &Sandbox) -> String {
    placeholders(s, sb).replace("\\n", "\n").replace("\\t", "\t")
}

/// Runs one case; Err says what was wrong.
fn run_case(case: &Case, n: usize, real: Option<&Utf8Path>) -> Result<(), String> {
    let mut sb = sandbox(case, n, real);
    let words = shell_words::split(&case.command).map_err(|e| format!("bad command: {e}"))?;
    let words: Vec<String> = words.iter().map(|w| fill(w, &sb)).collect();
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
    let contents = !sb.real;
    let before = snapshot(&sb.dir, contents);
    let out = p.args(args).output().map_err(|e| e.msg)?;
    let said = format!("{}{}", out.stdout, out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(case.exit) {
        problems.push(format!("exit {:?}, expected {}", out.status.code(), case.exit));
    }
    if !said.contains(&placeholders(&case.fragment, &sb)) {
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
    let after = snapshot(&sb.dir, contents);
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

#[test]
fn hostile_corpus() {
    let cases = parse_corpus();
    assert!(cases.len() >= 150, "the corpus holds {} cases; at least 150 are promised", cases.len());
    let real = match testkit::real_tree() {
        Ok(t) => Some(t),
        Err(e) => {
            testkit::skip_if_missing("hostile_corpus (the real-tree cases)", &e);
            None
        }
    };
    let needs_git = cases.iter().any(|c| c.setup.contains("gitrepo"));
    let git = !needs_git || testkit::require("hostile_corpus (the clone cases)", "git");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let ran = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                if (case.setup.starts_with("real") && real.is_none()) || (case.setup.contains("gitrepo") && !git) {
                    continue;
                }
                let t = std::time::Instant::now();
                let res = std::panic::catch_unwind(|| run_case(case, i, real.as_deref())).unwrap_or_else(|p| {
                    Err(p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default())
                });
                ran.fetch_add(1, Ordering::SeqCst);
                if t.elapsed() > Duration::from_secs(5) {
                    eprintln!("slow case: corpus line {} took {:.1}s", case.line, t.elapsed().as_secs_f64());
                }
                if let Err(e) = res {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("corpus line {} [{}] `{}`:\n      {e}", case.line, case.setup, case.command));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!("hostile corpus: {} cases run, {} failed", ran.load(Ordering::SeqCst), failures.len());
    assert!(failures.is_empty(), "{} hostile case(s) failed:\n{}", failures.len(), failures.join("\n"));
}
