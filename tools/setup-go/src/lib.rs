//! setup-go: the Go a Kubernetes tree was made for, found on the machine or downloaded from the
//! official site or a mirror (checksummed, installed atomically into the kit's cache).
//!
//! [`pick`] is what kube-build, doctor and the `--probe` builds share (`--go auto|host|PATH`).

pub mod install;
pub mod local;
pub mod mirror;
pub mod notice;
pub mod pick;
pub mod verify;
pub mod want;

pub use pick::{pick, Choice, Resolved};

use kube_tree::cli::{Ctx, Flag, Tool};
use kube_tree::json::Json;
use kube_tree::proc::quote;
use kube_tree::{log, Fail, Status};

pub const TOOL: Tool = Tool {
    name: "setup-go",
    aliases: &[],
    summary: "the Go the tree was made for: found on the machine or downloaded (mirrors, checksums)",
    usage: "\
setup-go: find or install the Go the tree was made for

Usage: setup-go [--version V] [--mirror URL] [--exact] [--print-env | --list]",
    flags: &[
        Flag::value("--version", "V", "this Go instead of the tree's; no tree is needed then").env("GO_VERSION"),
        Flag::value("--mirror", "URL", "download from this site of the official layout (default https://go.dev/dl/)")
            .env("KUBE_GO_MIRROR"),
        Flag::switch("--exact", "refuse another patch of the same minor line when the exact one is not published"),
        Flag::switch("--print-env", "print GOROOT, PATH and GOTOOLCHAIN=local for: eval \"$(setup-go --print-env)\""),
        Flag::switch("--list", "list the installed Go versions and those the site offers (for the tree's line)"),
    ],
    notes: "\
The tree's Go: .go-version, else the kube-cross tag (v1.15.5-1 -> 1.15.5). FORCE_HOST_GO=y means
the go on PATH. Looked for first on the machine (PATH, $GOROOT, ~/sdk, /usr/lib/go-*, the cache
~/.cache/k8s-build-kit/go, the Go that `cargo xtask fetch-tree` unpacked); a download is checked
against the site's SHA-256 and installed whole or not at all. stdout: the GOROOT.",
    run,
    takes_command: false,
};

/// The command line, parsed.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub version: Option<String>,
    pub mirror: Option<String>,
    pub exact: bool,
    pub print_env: bool,
    pub list: bool,
}

impl Args {
    pub fn parse(ctx: &mut Ctx) -> Result<Args, Fail> {
        let a = Args {
            version: ctx.opt_string("--version")?,
            mirror: ctx.opt_string("--mirror")?,
            exact: ctx.flag("--exact"),
            print_env: ctx.flag("--print-env"),
            list: ctx.flag("--list"),
        };
        ctx.finish()?;
        if a.print_env && (a.list || ctx.json) {
            return Err(Fail::new("--print-env prints shell lines: not with --list or --json"));
        }
        Ok(a)
    }
}

pub fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let a = Args::parse(ctx)?;
    let env = |k: &str| std::env::var(k).ok();
    let explicit = a.version.is_some() || env("GO_VERSION").is_some_and(|v| !v.is_empty());
    let tree = if explicit { None } else { Some(ctx.tree()?) };
    let wanted = want::resolve(tree.as_ref(), a.version.as_deref(), &env)?;
    let opts = pick::Options::from_env(a.mirror.clone(), a.exact, &env)?;
    opts.site()?;
    if a.list {
        return list(ctx, wanted.as_ref(), &opts, &env);
    }
    let (installed, why) = match (want::host_forced(&env).filter(|_| !explicit), &wanted) {
        (Some(forced), _) => {
            let h = local::host().ok_or_else(|| {
                Fail::new(format!("{forced} asks for the go on PATH, and there is none with a readable GOROOT"))
            })?;
            (h, format!("{forced} asks for the go on PATH"))
        }
        (None, Some(w)) => pick::obtain(w, &opts, &env).map_err(|e| pick::ways_on(e, w, &opts, &env))?,
        (None, None) => {
            return Err(Fail::new("the tree names no Go version (no .go-version, no kube-cross tag): pass --version"))
        }
    };
    let root = &installed.goroot;
    if root.as_str().chars().any(char::is_control) {
        // --print-env is eval'ed and the TSV is split by lines: no such path may reach them.
        return Err(Fail::new(format!("the GOROOT `{}` holds control characters", root.as_str().escape_debug())));
    }
    log::status(format!("go{} at {}: {why}", installed.version.text, installed.goroot));
    if a.print_env {
        ctx.say(format!("export GOROOT={}", quote(root.as_str())));
        ctx.say(format!("export PATH={}:\"$PATH\"", quote(root.join("bin").as_str())));
        ctx.say("export GOTOOLCHAIN=local");
    } else if ctx.json {
        let j = Json::obj([
            ("version", Json::str(&installed.version.text)),
            ("goroot", Json::str(root.as_str())),
            ("go", Json::str(installed.go().as_str())),
            ("found", Json::str(installed.place)),
            ("wanted", Json::opt_str(wanted.as_ref().map(|w| w.version.text.clone()))),
            ("why", Json::str(why)),
        ]);
        ctx.say(j.render());
    } else {
        ctx.say(root.as_str());
    }
    Ok(Status::Ok)
}

/// `--list`: installed versions, then what the site offers (for the wanted line, when known).
fn list(
    ctx: &mut Ctx,
    wanted: Option<&want::Wanted>,
    o: &pick::Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Status, Fail> {
    let m = o.site()?;
    let cache = install::Cache::open(&o.cache);
    let installed = local::all(cache.dir(), env);
    let (os, arch) = mirror::host_platform();
    let available: Vec<String> = match m.listing(os, arch) {
        Ok(Some(l)) => l
            .into_iter()
            .filter(|a| wanted.is_none_or(|w| a.version.minor == w.version.minor))
            .map(|a| a.version.text)
            .collect(),
        Ok(None) => {
            log::warn(format!("{} serves no release listing", m.base()));
            Vec::new()
        }
        Err(e) => {
            log::warn(format!("{}; listing only what is installed", e.msg));
            Vec::new()
        }
    };
    if ctx.json {
        let inst = installed.iter().map(|i| {
            Json::obj([
                ("version", Json::str(&i.version.text)),
                ("goroot", Json::str(i.goroot.as_str())),
                ("found", Json::str(i.place)),
            ])
        });
        let j = Json::obj([
            ("wanted", Json::opt_str(wanted.map(|w| w.version.text.clone()))),
            ("installed", Json::Arr(inst.collect())),
            ("available", Json::Arr(available.iter().map(Json::str).collect())),
        ]);
        ctx.say(j.render());
        return Ok(Status::Ok);
    }
    for i in &installed {
        ctx.say(format!("installed\t{}\t{}\t{}", i.version.text, i.goroot, i.place));
    }
    for v in &available {
        ctx.say(format!("available\t{v}"));
    }
    Ok(Status::Ok)
}
