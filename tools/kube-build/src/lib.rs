//! kube-build (`cargo xtask build WHAT=cmd/kubectl`): what `make WHAT=...` does for the tree's
//! era, without make's wait: the GOPATH or module mode the tree needs, version ldflags, static vs
//! cgo per binary, cross platforms checked against the tree's own lists, the
//! `_output/local/bin/<os>/<arch>` layout with the `_output/bin` link, and code generation only
//! when its inputs changed.

pub mod codegen;
pub mod genscope;
pub mod localcache;
mod state;

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::cli::{Flag, Tool};
use kube_tree::goenv::{self, GoEnv, KUBE_IMPORT_PATH};
use kube_tree::proc::Proc;
use kube_tree::scripts::GolangSh;
use kube_tree::{fsx, log, Fail, Tree, VendorLayout};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod run;
use run::run;

pub const TOOL: Tool = Tool {
    name: "kube-build",
    aliases: &["build"],
    summary:
        "local build like `make WHAT=...` (KUBE_BUILD_PLATFORMS, GOFLAGS, GOGCFLAGS, DBG), codegen only when needed",
    usage: "\
kube-build: build Kubernetes binaries the way `make WHAT=...` does, without make's wait

Usage: kube-build [WHAT=cmd/kubectl] [KUBE_BUILD_PLATFORMS='linux/amd64 darwin/amd64']
                  [GOFLAGS=...] [GOGCFLAGS=...] [GOLDFLAGS=...] [DBG=1] [options]

Make-style words and the environment both work. Without WHAT, everything `make` builds.",
    flags: &[
        Flag::value("--what", "T", "build this target (repeatable; as WHAT)"),
        Flag::value("--platform", "P", "for this platform, e.g. linux/arm64 (repeatable; as KUBE_BUILD_PLATFORMS)"),
        Flag::switch("--debug", "unstripped, optimisations off (as DBG=1)"),
        Flag::switch("--force-codegen", "run the tree's generator step even if its inputs did not change"),
        setup_go::pick::GO_FLAG,
    ],
    notes: "\
Output: _output/local/bin/<os>/<arch>/<name>. An unchanged tree is not built again.
stderr: one line per binary (name, platform, size, time); --json on stdout lists what was built.",
    run,
    takes_command: false,
};

/// The GOPATH of a build, relative to the tree: everything go writes is beneath it.
pub const GOPATH: &str = "_output/local/go";

/// What to build, from words, flags and the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildRequest {
    pub targets: Vec<String>,
    pub platforms: Vec<String>,
    pub gogcflags: Option<String>,
    /// None: unset (the tree's default applies); Some(""): explicitly empty.
    pub goldflags: Option<String>,
    pub goflags: Option<String>,
    pub debug: bool,
    pub force_codegen: bool,
}

/// What the tool's own flags said: added to what the words and the environment say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFlags {
    /// `--what T`, in order.
    pub what: Vec<String>,
    /// `--platform P`, in order.
    pub platforms: Vec<String>,
    /// `--debug`.
    pub debug: bool,
    /// `--force-codegen`.
    pub force_codegen: bool,
}

/// Reads make-style `KEY=VALUE` words over the environment (words win, as on a make command line).
pub fn parse_request(
    words: &[String],
    flags: RequestFlags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BuildRequest, Fail> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(Fail::new(format!("unexpected argument `{w}`: use KEY=VALUE (WHAT, KUBE_BUILD_PLATFORMS, GOFLAGS, GOGCFLAGS, GOLDFLAGS, DBG) or flags")));
        };
        if !["WHAT", "KUBE_BUILD_PLATFORMS", "GOFLAGS", "GOGCFLAGS", "GOLDFLAGS", "DBG"].contains(&k) {
            return Err(Fail::new(format!(
                "unknown variable `{k}` (known: WHAT, KUBE_BUILD_PLATFORMS, GOFLAGS, GOGCFLAGS, GOLDFLAGS, DBG)"
            )));
        }
        vars.push((k.to_string(), v.to_string()));
    }
    let get = |k: &str| vars.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone()).or_else(|| env(k));
    let split =
        |s: Option<String>| s.map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>()).unwrap_or_default();
    let mut targets = split(get("WHAT"));
    targets.extend(flags.what);
    let mut platforms = split(get("KUBE_BUILD_PLATFORMS"));
    platforms.extend(flags.platforms);
    platforms.dedup();
    let targets: Vec<String> =
        targets.into_iter().map(|t| t.trim_start_matches("./").trim_end_matches('/').to_string()).collect();
    Ok(BuildRequest {
        targets,
        platforms,
        gogcflags: get("GOGCFLAGS"),
        goldflags: get("GOLDFLAGS"),
        goflags: get("GOFLAGS").filter(|g| !g.is_empty()),
        debug: flags.debug || get("DBG").as_deref() == Some("1"),
        force_codegen: flags.force_codegen,
    })
}

/// `GOOS/GOARCH` of the host, as `go env` would say it.
pub fn host_platform() -> String {
    let os = std::env::consts::OS;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        a => a,
    };
    format!("{os}/{arch}")
}

/// The go flags for one build, computed as the tree's golang.sh of its era does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    pub gcflags: String,
    pub asmflags: Option<String>,
    pub ldflags: String,
    pub tags: String,
    pub extra: Vec<String>,
    /// GOFLAGS for go's environment: `make GOFLAGS=...` exports it to go as well (minus -mod=,
    /// an error in GOPATH mode, as GoEnv drops it there too).
    pub goflags_env: Option<String>,
}

pub fn flags(tree: &Tree, g: &GolangSh, req: &BuildRequest, version_ldflags: &str) -> Flags {
    // The tag list: `selinux,notest,` + the -tags of GOFLAGS (the script's sed keeps GOFLAGS
    // whole when it has no -tags=, and so does this).
    let from_goflags = match req.goflags.as_deref() {
        Some(f) => match f.rfind("-tags=") {
            Some(i) => f[i + 6..].split('-').next().unwrap_or("").trim().to_string(),
            None => f.to_string(),
        },
        None => String::new(),
    };
    let tags = format!("selinux,notest,{from_goflags}");
    let gopath_mode = tree.layout != kube_tree::VendorLayout::Workspace;
    let goflags_env = req.goflags.as_ref().map(|f| {
        f.split_whitespace().filter(|w| !(gopath_mode && w.starts_with("-mod"))).collect::<Vec<_>>().join(" ")
    });
    if g.dbg {
        // Later eras: DBG=1 keeps symbols and disables optimisation; else -s -w and -trimpath.
        let mut gc = req.gogcflags.clone().unwrap_or_default();
        let mut ld = format!("all={version_ldflags} {}", req.goldflags.clone().unwrap_or_default());
        let mut extra = Vec::new();
        if req.debug {
            gc.push_str(" all=-N -l");
        } else {
            ld.push_str(" -s -w");
            extra.push("-trimpath".to_string());
        }
        Flags {
            gcflags: gc.trim().to_string(),
            asmflags: None,
            ldflags: ld.trim().to_string(),
            tags,
            extra,
            goflags_env,
        }
    } else {
        // Older eras: `${GOLDFLAGS=-s -w ...}` and -trimpath=KUBE_ROOT on gc and asm flags;
        // a debug build is what users did by hand: GOLDFLAGS='' GOGCFLAGS='all=-N -l'.
        let default_ld = g.default_goldflags.clone().unwrap_or_else(|| "-s -w".into());
        let ld_base = match (&req.goldflags, req.debug) {
            (Some(l), _) => l.clone(),
            (None, true) => String::new(),
            (None, false) => default_ld,
        };
        let mut gc_user = req.gogcflags.clone().unwrap_or_default();
        if req.debug && !gc_user.contains("-N") {
            gc_user = format!("{gc_user} all=-N -l").trim().to_string();
        }
        Flags {
            gcflags: format!("{gc_user} -trimpath={}", tree.root),
            asmflags: Some(format!("-trimpath={}", tree.root)),
            ldflags: format!("{ld_base} {version_ldflags}"),
            tags,
            extra: Vec::new(),
            goflags_env,
        }
    }
}

/// Environment of a build: the tree's GOPATH/module mode plus its private caches under _output.
pub fn build_env(tree: &Tree, gopath: &Utf8Path) -> Result<GoEnv, Fail> {
    let mut env = GoEnv::for_tree(tree, gopath, &|k| std::env::var(k).ok());
    match tree.layout {
        VendorLayout::Workspace => {
            env.vars.push(("GOCACHE".into(), Some(gopath.join("cache/build").to_string())));
            env.vars.push(("GOMODCACHE".into(), Some(gopath.join("cache/mod").to_string())));
            env.vars.push(("GOPROXY".into(), Some("off".into())));
        }
        _ => {
            goenv::ensure_gopath_link(&tree.confined(gopath)?, &tree.root)?;
            env.vars.push(("GOCACHE".into(), Some(gopath.join("cache").to_string())));
        }
    }
    env.vars.push(("GOBIN".into(), None));
    Ok(env)
}

/// One built binary.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub platform: String,
    pub path: Utf8PathBuf,
    pub size: u64,
    pub static_: bool,
    pub elapsed: Duration,
}

/// A test binary target (`test/e2e/e2e.test`): built with `go test -c` from its directory.
fn is_test_target(t: &str) -> bool {
    t.ends_with(".test")
}

/// The binary a target builds: its last path element (`cmd/kubectl` -> `kubectl`).
fn bin_name(target: &str) -> &str {
    target.rsplit('/').next().unwrap_or(target)
}

/// The file go install writes for binary `name` on `platform` (`.exe` on Windows).
fn bin_file(name: &str, platform: &str) -> String {
    if platform.starts_with("windows/") {
        format!("{name}.exe")
    } else {
        name.to_string()
    }
}

/// Cross C compilers the scripts set when cgo is on for another Linux architecture.
fn cross_cc(platform: &str) -> Option<&'static str> {
    match platform {
        "linux/arm" => Some("arm-linux-gnueabihf-gcc"),
        "linux/arm64" => Some("aarch64-linux-gnu-gcc"),
        "linux/ppc64le" => Some("powerpc64le-linux-gnu-gcc"),
        "linux/s390x" => Some("s390x-linux-gnu-gcc"),
        _ => None,
    }
}

/// One go command of a platform's build and the targets it makes.
struct InstallCmd {
    proc: Proc,
    targets: Vec<String>,
    static_: bool,
}

/// Targets built by one go command: static or not, `go test -c` or `go install`.
struct Group<'a> {
    targets: Vec<&'a String>,
    static_: bool,
    test: bool,
}

/// What a platform's build made, per target.
struct Made {
    name: String,
    static_: bool,
    elapsed: Duration,
}

/// The `go install` commands for one platform (statics with CGO_ENABLED=0, as the scripts do).
fn install_cmds(
    env: &GoEnv,
    g: &GolangSh,
    f: &Flags,
    targets: &[String],
    platform: &str,
    host: &str,
) -> Vec<InstallCmd> {
    let (os, arch) = platform.split_once('/').expect("validated platform");
    let pkg = |t: &str| if env.gopath_mode { format!("{KUBE_IMPORT_PATH}/{t}") } else { format!("./{t}") };
    let (tests, mains): (Vec<&String>, Vec<&String>) = targets.iter().partition(|t| is_test_target(t));
    let (statics, dynamics): (Vec<&String>, Vec<&String>) = mains.into_iter().partition(|t| g.is_static(t));
    let mut groups = vec![
        Group { targets: statics, static_: true, test: false },
        Group { targets: dynamics, static_: false, test: false },
    ];
    // `go test -c` makes one binary per call, as the scripts do it.
    groups.extend(tests.into_iter().map(|t| Group { targets: vec![t], static_: g.is_static(t), test: true }));
    let out_dir = if platform == host { env.bin_dir() } else { env.bin_dir().join(platform.replace('/', "_")) };
    let mut out = Vec::new();
    for Group { targets: group, static_: is_static, test } in groups {
        if group.is_empty() {
            continue;
        }
        let mut p = Proc::new(&env.go);
        p = if test {
            let name = bin_file(bin_name(group[0]), platform);
            p.args(["test", "-c", "-o"]).arg(out_dir.join(name))
        } else {
            p.arg("install")
        };
        if is_static {
            p = p.args(if g.dbg { vec!["-installsuffix=static"] } else { vec!["-installsuffix", "static"] });
        }
        p = p.args(&f.extra).arg("-gcflags").arg(&f.gcflags);
        if let Some(a) = &f.asmflags {
            p = p.arg("-asmflags").arg(a);
        }
        let pkgs = group
            .iter()
            .map(|t| pkg(t.strip_suffix(".test").and_then(|t| t.rsplit_once('/')).map(|x| x.0).unwrap_or(t)));
        p = p.arg("-ldflags").arg(&f.ldflags).arg("-tags").arg(&f.tags).args(pkgs);
        p = env.apply(p).env("GOOS", os).env("GOARCH", arch);
        if let Some(g) = &f.goflags_env {
            p = p.env("GOFLAGS", g);
        }
        if is_static {
            p = p.env("CGO_ENABLED", "0");
        } else if platform != host && host == "linux/amd64" {
            if let Some(cc) = cross_cc(platform) {
                p = p.env("CGO_ENABLED", "1").env("CC", cc);
            }
        }
        out.push(InstallCmd { proc: p, targets: group.into_iter().cloned().collect(), static_: is_static });
    }
    out
}

/// Runs the commands of [`install_cmds`]; returns what they made.
fn run_installs(cmds: Vec<InstallCmd>, platform: &str) -> Result<Vec<Made>, Fail> {
    let mut out = Vec::new();
    for cmd in cmds {
        let verb = if cmd.targets.iter().any(|t| is_test_target(t)) { "go test -c" } else { "go install" };
        let label = format!("{verb} ({platform}{})", if cmd.static_ { ", static" } else { "" });
        let res = cmd.proc.output_with_progress(&label, Duration::from_secs(15))?;
        if !res.success() {
            return Err(Fail::new(format!("{label} failed: {}", res.first_lines(6).replace('\n', " | "))));
        }
        for t in &cmd.targets {
            out.push(Made { name: bin_name(t).to_string(), static_: cmd.static_, elapsed: res.elapsed });
        }
    }
    Ok(out)
}

/// What the last build of these commands made, as the record proves it (no time spent).
fn made_by(cmds: &[InstallCmd]) -> Vec<Made> {
    let mut made = Vec::new();
    for c in cmds {
        made.extend(c.targets.iter().map(|t| Made {
            name: bin_name(t).to_string(),
            static_: c.static_,
            elapsed: Duration::ZERO,
        }));
    }
    made
}

/// Everything besides the tree's files that decides what go builds: the commands (flags but the
/// date, env, packages), the go binary, and the user environment go reads.
fn build_key(cmds: &[InstallCmd], go: &Utf8Path, date: &str) -> u64 {
    let mut text: String = cmds.iter().map(|c| c.proc.display().replace(date, "DATE") + "\n").collect();
    let go = if go.as_str() == "go" { kube_tree::proc::which("go") } else { Some(go.to_owned()) };
    if let Some(go) = go {
        let md = std::fs::canonicalize(&go).and_then(std::fs::metadata);
        text += &format!("{go} {:?}\n", md.map(|m| (m.len(), m.modified().ok())).ok());
    }
    for k in [
        "GOFLAGS",
        "GOROOT",
        "GOTOOLCHAIN",
        "GOEXPERIMENT",
        "GOAMD64",
        "GOARM",
        "CGO_ENABLED",
        "CGO_CFLAGS",
        "CGO_LDFLAGS",
        "CC",
        "CXX",
        "KUBE_CGO_OVERRIDES",
        "KUBE_STATIC_OVERRIDES",
    ] {
        text += &format!("{k}={:?}\n", std::env::var(k).ok());
    }
    kube_tree::fnv::hash(text.as_bytes())
}

/// The stamps (type, mode, size, mtime, ctime, inode; links not followed) of what a build of
/// `names` on `platform` reports: go's binaries and their copies in `_output/local/bin`.
/// `None` when one is missing.
fn outputs_stamp(tree: &Tree, gopath: &Utf8Path, platform: &str, host: &str, names: &[String]) -> Option<u64> {
    let mut h = kube_tree::fnv::Fnv::default();
    let mut names = names.to_vec();
    names.sort();
    for name in &names {
        let file = bin_file(name, platform);
        for p in
            [go_bin_dir(gopath, platform, host).join(&file), tree.path("_output/local/bin").join(platform).join(&file)]
        {
            let md = std::fs::symlink_metadata(&p).ok()?;
            h.feed(&kube_tree::walk::stat_bytes(&p, &md));
        }
    }
    Some(h.0)
}

/// Where go install puts a platform's binaries.
fn go_bin_dir(gopath: &Utf8Path, platform: &str, host: &str) -> Utf8PathBuf {
    if platform == host {
        gopath.join("bin")
    } else {
        gopath.join("bin").join(platform.replace('/', "_"))
    }
}

/// A WHAT entry must name a directory inside the tree (no `..` out, no link out, not absolute)
/// that holds a Go main package.
fn check_target(tree: &Tree, t: &str) -> Result<(), Fail> {
    let shown = t.escape_debug();
    if t.is_empty() || t.chars().any(|c| c.is_control() || c.is_whitespace()) || t.starts_with('-') {
        return Err(Fail::new(format!("WHAT={shown}: not a package directory")));
    }
    if t.starts_with('/') {
        return Err(Fail::new(format!(
            "WHAT={shown}: an absolute path; name a directory of the tree (e.g. cmd/kubectl)"
        )));
    }
    let test = is_test_target(t);
    let pkg_dir = if test { t.rsplit_once('/').map(|x| x.0).unwrap_or("") } else { t };
    let dir =
        tree.confined(pkg_dir).and_then(|c| c.follow()).map_err(|e| Fail::new(format!("WHAT={shown}: {}", e.msg)))?;
    if !dir.path().is_dir() {
        return Err(Fail::new(format!("WHAT={shown}: no such directory in {}", tree.root)));
    }
    if test {
        let has_tests =
            fs_err::read_dir(dir.path())?.flatten().any(|e| e.file_name().to_string_lossy().ends_with("_test.go"));
        if !has_tests {
            return Err(Fail::new(format!("WHAT={shown}: a test target, but {pkg_dir} has no _test.go file")));
        }
        return Ok(());
    }
    let mut is_main = false;
    for e in fs_err::read_dir(dir.path())?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".go") || name.ends_with("_test.go") {
            continue;
        }
        // Every one, confined and capped: a source that is a FIFO (go would hang on it), a
        // link out or /dev/zero is refused by name.
        let src = dir.join(&name)?.read_bytes(kube_tree::Cap::SOURCE)?.unwrap_or_default();
        is_main |= String::from_utf8_lossy(&src).lines().any(|l| l.trim() == "package main");
    }
    if !is_main {
        return Err(Fail::new(format!("WHAT={shown}: no main package there (no .go file says `package main`)")));
    }
    Ok(())
}

/// Copies what go install left for `platform` into `_output/local/bin/<os>/<arch>` (content and
/// mode; unchanged files are left alone) and, for the host, points `_output/bin` at it.
fn place_bins(
    tree: &Tree,
    gopath: &Utf8Path,
    platform: &str,
    host: &str,
    names: &[Made],
    proven: bool,
) -> Result<Vec<Built>, Fail> {
    let src_dir = go_bin_dir(gopath, platform, host);
    let dest_dir = tree.path("_output/local/bin").join(platform);
    tree.confined(&dest_dir)?.create_dir_all()?;
    let mut built = Vec::new();
    for made in names {
        let file = bin_file(&made.name, platform);
        let src = src_dir.join(&file);
        let dest = dest_dir.join(&file);
        let smd = fs_err::symlink_metadata(&src)?;
        let looks_same = std::fs::symlink_metadata(&dest).is_ok_and(|d| {
            d.is_file()
                && d.len() == smd.len()
                && filetime::FileTime::from_last_modification_time(&d)
                    == filetime::FileTime::from_last_modification_time(&smd)
        });
        // Size and mtime are proven by the record when the platform was up to date; after a
        // build they may have been put back by hand, so the content decides.
        let same = looks_same && (proven || read_bin(tree, &dest)? == read_bin(tree, &src)?);
        if !same {
            let out = tree.confined(&dest)?;
            out.write_atomic(&read_bin(tree, &src)?)?;
            out.set_mode(std::os::unix::fs::PermissionsExt::mode(&smd.permissions()))?;
            filetime::set_symlink_file_times(
                out.path(),
                filetime::FileTime::now(),
                filetime::FileTime::from_last_modification_time(&smd),
            )?;
        }
        built.push(Built {
            name: made.name.clone(),
            platform: platform.into(),
            path: dest,
            size: smd.len(),
            static_: made.static_,
            elapsed: made.elapsed,
        });
    }
    if platform == host {
        let link = tree.confined("_output/bin")?;
        if std::fs::read_link(link.path()).ok().as_deref() != Some(dest_dir.as_std_path()) {
            if std::fs::symlink_metadata(link.path()).is_ok_and(|m| m.is_dir()) {
                link.remove_dir_all()?;
            }
            fsx::swap_in_symlink(&link, dest_dir.as_str())?;
        }
    }
    Ok(built)
}

/// A built binary, read confined (go's output must be a regular file of the tree).
fn read_bin(tree: &Tree, p: &Utf8Path) -> Result<Vec<u8>, Fail> {
    const BIN: kube_tree::Cap = kube_tree::Cap { bytes: 2 << 30, what: "built binary" };
    tree.confined(p)?.read_bytes(BIN)?.ok_or_else(|| Fail::new(format!("{p}: go left no binary there")))
}

fn build_date(env: &dyn Fn(&str) -> Option<String>) -> String {
    let secs = env("SOURCE_DATE_EPOCH")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    log::utc_iso(secs)
}
