//! doctor: every prerequisite for building the tree at hand, each with the fix.

use dockerized::{Engine, Facts, Kind, Mode, Setup};
use kube_tree::cli::{Ctx, Flag, Tool};
use kube_tree::gover::{self, GoVersion};
use kube_tree::json::Json;
use kube_tree::proc::{which, Proc};
use kube_tree::scripts::GolangSh;
use kube_tree::{log, Fail, Status, Tree, VendorLayout};
use setup_go::Choice;
use std::time::Duration;

pub const TOOL: Tool = Tool {
    name: "doctor",
    aliases: &[],
    summary: "check Go (per the tree's rules), rsync, git, GNU tar/coreutils, bash, make, the engine, kube-cross, disk",
    usage: "\
doctor: check the prerequisites for building the Kubernetes tree at hand

Usage: doctor [--docker] [--engine docker|podman] [--go auto|host|PATH] [--json]",
    flags: &[
        Flag::switch(
            "--docker",
            "the engine is required (containerized builds): unreachable, under 4.5 GB, or no way to the \
             tree's kube-cross is a failure (without it, warnings); under 8 GB is always a warning",
        ),
        Flag::value(
            "--engine",
            "docker|podman",
            "the engine to check (default docker): its memory, rootless or SELinux, its registry mirrors, \
             and whether the tree's kube-cross is on it or its registry answers (nothing is pulled)",
        )
        .env("KUBE_CONTAINER_ENGINE"),
        Flag {
            help: "report the Go a build would use with kube-build's --go X (default auto)",
            ..setup_go::pick::GO_FLAG
        },
        Flag::value(
            "--only",
            "CHECK,...",
            "report only these rows (go, rsync, docker, ...); the exit status is theirs",
        ),
    ],
    notes: "\
A table on stderr (check, status, found, fix); --json on stdout. Exit 1 when something needed
is missing. Works without a tree too (the tree's Go rules are then skipped).",
    run,
    takes_command: false,
};

/// Engine memory below which a containerized build fails (the scripts' own check, PR #62219).
pub const DOCKER_MIN_BYTES: u64 = 4_500_000_000;
/// Engine memory the build README recommends; below it doctor warns (out-of-memory links:
/// kubernetes#11852, #74876).
pub const DOCKER_WARN_BYTES: u64 = 8_000_000_000;
/// Free disk below which a build is refused, and below which doctor warns.
pub const DISK_FAIL_GB: u64 = 5;
pub const DISK_WARN_GB: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub found: String,
    pub fix: String,
}

fn check(name: &'static str, level: Level, found: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, level, found: found.into(), fix: fix.into() }
}

/// How long one probe may take (`KUBE_DOCTOR_TIMEOUT` seconds, default 10): a hung `docker`
/// or `go` is reported, never waited for.
pub fn probe_limit() -> Duration {
    let secs: f64 = std::env::var("KUBE_DOCTOR_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s: &f64| *s > 0.0 && *s < 3600.0)
        .unwrap_or(10.0);
    Duration::from_secs_f64(secs)
}

/// A probe's answer: Ok(None) when the program is missing or fails, Err when it hung.
type Answer = Result<Option<String>, String>;

fn ask(p: Proc) -> Result<Option<kube_tree::proc::Captured>, String> {
    match p.timeout(probe_limit()).output() {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.msg.contains("did not answer") => Err(e.msg),
        Err(_) => Ok(None),
    }
}

fn first_line(p: Proc) -> Answer {
    Ok(ask(p)?.filter(|o| o.success()).map(|o| o.stdout.lines().next().unwrap_or("").trim().to_string()))
}

fn macos() -> bool {
    first_line(Proc::new("uname").arg("-s")) == Ok(Some("Darwin".into()))
}

/// Go present and new enough: the tree's `minimum_go_version`; for go.work trees also whether
/// the local Go is the one `.go-version` names (else make tries to download it).
pub fn check_go(tree: Option<&Tree>) -> Check {
    let out = match first_line(Proc::new("go").arg("version").env("GOTOOLCHAIN", "local")) {
        Ok(Some(out)) => out,
        Ok(None) => {
            return check(
                "go",
                Level::Fail,
                "not found",
                "install Go (Debian: apt-get install golang-go; macOS: brew install go)",
            )
        }
        Err(hung) => {
            return check("go", Level::Fail, hung, "the go on PATH hangs: check it (and GOTOOLCHAIN, GOFLAGS) by hand")
        }
    };
    let Some(have) = gover::from_go_version_output(&out) else {
        return check("go", Level::Warn, out, "a devel Go: the scripts accept it, but versions cannot be compared");
    };
    let Some(tree) = tree else {
        return check("go", Level::Ok, format!("go{} (no tree: no minimum known)", have.text), "");
    };
    let min = match GolangSh::read(tree) {
        Ok(g) => g.minimum_go,
        Err(e) => return check("go", Level::Fail, e.msg, "hack/lib/golang.sh must be a regular file of the tree"),
    };
    if let Some(min) = min.as_deref().and_then(|m| GoVersion::parse(m).ok()) {
        if gover::cmp(&have, &min) == std::cmp::Ordering::Less {
            return check(
                "go",
                Level::Fail,
                format!("go{} < go{} (hack/lib/golang.sh minimum_go_version)", have.text, min.text),
                format!("install Go {} or newer", min.text),
            );
        }
    }
    if tree.layout == VendorLayout::Workspace {
        if let Some(want) = &tree.go_version {
            if *want != have.text {
                return check(
                    "go",
                    Level::Warn,
                    format!("go{}; .go-version asks go{want}", have.text),
                    "make will fetch that toolchain (GOTOOLCHAIN); offline, set FORCE_HOST_GO=1 or install it",
                );
            }
        }
    }
    let minimum = min.map(|m| format!(" >= go{m}")).unwrap_or_default();
    check("go", Level::Ok, format!("go{}{minimum}", have.text), "")
}

fn check_present(name: &'static str, fix: &str) -> Check {
    match which(name) {
        Some(p) => check(name, Level::Ok, p.to_string(), ""),
        None => check(name, Level::Fail, "not found", fix),
    }
}

/// GNU tar under the names build/common.sh tries: $TAR, gtar, gnutar, tar.
pub fn check_tar() -> Check {
    let mut names: Vec<String> = std::env::var("TAR").ok().into_iter().collect();
    names.extend(["gtar", "gnutar", "tar"].map(String::from));
    for n in &names {
        match first_line(Proc::new(n).arg("--version")) {
            Ok(Some(v)) if v.contains("GNU") => return check("gnu-tar", Level::Ok, format!("{n}: {v}"), ""),
            Err(hung) => {
                return check("gnu-tar", Level::Fail, hung, "a tar that hangs on --version: check $TAR and PATH")
            }
            _ => {}
        }
    }
    check(
        "gnu-tar",
        Level::Fail,
        "no GNU tar (tried $TAR, gtar, gnutar, tar)",
        "macOS: brew install gnu-tar; Linux: apt-get install tar",
    )
}

/// bash >= 4 (kube::util::ensure-bash-version).
pub fn check_bash() -> Check {
    let v = match first_line(Proc::new("bash").arg("--version")) {
        Ok(Some(v)) => v,
        Ok(None) => return check("bash", Level::Fail, "not found", "install bash >= 4 (macOS: brew install bash)"),
        Err(hung) => return check("bash", Level::Fail, hung, "a bash that hangs on --version: check PATH"),
    };
    let major: u32 =
        v.split("version ").nth(1).and_then(|r| r.split('.').next()).and_then(|m| m.parse().ok()).unwrap_or(0);
    if major >= 4 {
        check("bash", Level::Ok, v, "")
    } else {
        check("bash", Level::Fail, v, "bash >= 4 is required: brew install bash")
    }
}

/// GNU coreutils (`date --date`, `dirname -z` in the scripts): only a question on macOS.
pub fn check_coreutils(is_mac: bool) -> Check {
    if !is_mac {
        return check("gnu-coreutils", Level::Ok, "not macOS: the system tools are GNU", "");
    }
    match first_line(Proc::new("date").arg("--version")) {
        Ok(Some(v)) if v.contains("GNU") => check("gnu-coreutils", Level::Ok, v, ""),
        Err(hung) => check("gnu-coreutils", Level::Fail, hung, "a date that hangs on --version: check PATH"),
        _ => check(
            "gnu-coreutils",
            Level::Fail,
            "BSD date/dirname first in PATH",
            "brew install coreutils and put its gnubin directory first in PATH",
        ),
    }
}

/// The container engine (`--engine`, else KUBE_CONTAINER_ENGINE, else docker) reachable with
/// enough memory for the containerized build; also what it adapts to (rootless, SELinux) and
/// the registry mirrors it is configured with.
pub fn check_engine(engine: &Engine, required: bool) -> Check {
    let name = engine.kind().name();
    let miss = if required { Level::Fail } else { Level::Warn };
    if which(&engine.program).is_none() {
        return check(
            name,
            miss,
            format!("no {} CLI", engine.program),
            "install Docker or podman (needed for containerized builds only)",
        );
    }
    let place = match engine.kind() {
        Kind::Docker => "DOCKER_HOST / docker context",
        Kind::Podman => "CONTAINER_HOST / podman connection",
    };
    match ask(engine.command(&engine.info_cmd())) {
        Ok(Some(o)) if o.success() => {
            let said = o.stdout.trim().split('\t').next().unwrap_or("");
            let Ok(bytes) = said.parse::<u64>() else {
                let said = if said.is_empty() { "nothing".to_string() } else { format!("`{}`", said.escape_debug()) };
                return check(
                    name,
                    miss,
                    format!("`{} info` answered {said} instead of the engine's memory", engine.program),
                    format!("check the {} CLI and {place} by hand ({} info)", engine.program, engine.program),
                );
            };
            let facts = engine.read_info(&o).unwrap_or_default();
            let gb = bytes as f64 / 1e9;
            let mut found = format!("reachable, {gb:.1} GB memory{}", describe(&facts));
            if bytes >= DOCKER_WARN_BYTES {
                check(name, Level::Ok, found, "")
            } else if bytes >= DOCKER_MIN_BYTES {
                found = found.replacen("memory", "memory (the build README asks for 8 GB)", 1);
                check(
                    name,
                    Level::Warn,
                    found,
                    "give the engine 8 GB: large links (kube-apiserver, e2e.test) can run out below that",
                )
            } else {
                check(
                    name,
                    miss,
                    format!("reachable, only {gb:.1} GB memory{}", describe(&facts)),
                    "give the engine at least 4.5 GB of memory (Docker Desktop: Settings > Resources; podman machine set --memory)",
                )
            }
        }
        Ok(Some(o)) => check(
            name,
            miss,
            format!("daemon unreachable: {}", o.first_lines(1)),
            format!("start the engine, or check {place}"),
        ),
        Ok(None) => {
            check(name, miss, format!("the {} CLI could not be run", engine.program), "install Docker or podman")
        }
        Err(hung) => check(
            name,
            miss,
            format!("hung: {hung}"),
            format!("the engine does not answer: restart it, or check {place}"),
        ),
    }
}

/// What the engine adapts to, for the report: `, rootless, SELinux, registry mirrors: ...`.
fn describe(f: &Facts) -> String {
    let mut s = String::new();
    if f.rootless {
        s.push_str(", rootless");
    }
    if f.selinux {
        s.push_str(", SELinux");
    }
    if let Some((path, listening)) = &f.api_socket {
        let state = if *listening { "listening" } else { "not started: podman system service" };
        s.push_str(&format!(", docker API at unix://{path} ({state})"));
    }
    if f.mirrors.is_empty() {
        s.push_str(", no registry mirrors");
    } else {
        s.push_str(&format!(", registry mirrors: {}", f.mirrors.join(" ")));
    }
    s
}

/// The tree's kube-cross (as a run would name it: KUBE_CROSS_IMAGE, KUBE_CROSS_VERSION,
/// KUBE_BASE_IMAGE_REGISTRY honoured) present on the engine, or else whether its registry
/// answers. Nothing is pulled.
pub fn check_kube_cross(engine: &Engine, tree: &Tree, required: bool) -> Check {
    let miss = if required { Level::Fail } else { Level::Warn };
    let setup = match Setup::new(tree.clone(), engine, Some(Mode::Rsync), None) {
        Ok(s) => s,
        Err(e) => {
            return check(
                "kube-cross",
                Level::Fail,
                e.msg,
                "fix KUBE_CROSS_IMAGE / KUBE_CROSS_VERSION or build/build-image/cross/VERSION",
            )
        }
    };
    let image = setup.cross_image;
    match ask(engine.command(&["image", "inspect", "--format", "{{.Id}}", image.as_str()])) {
        Ok(Some(o)) if o.success() => {
            let id = o.stdout.trim();
            check("kube-cross", Level::Ok, format!("{image} present ({})", &id[..id.len().min(19)]), "")
        }
        Ok(_) => {
            let (host, plain) = dockerized::registry_of(&image);
            let url = format!("{}://{host}/v2/", if plain { "http" } else { "https" });
            match setup_go::mirror::answers(&url, probe_limit()) {
                Ok(status) => check(
                    "kube-cross",
                    Level::Warn,
                    format!("{image} not on the engine; {host} answers (HTTP {status})"),
                    format!("{} pull {image} (run-dockerized pulls nothing by itself), or --mirror REGISTRY", engine.program),
                ),
                Err(e) => check(
                    "kube-cross",
                    miss,
                    format!("{image} not on the engine, and {host} does not answer ({e})"),
                    "load it (docker load -i), pull it through a mirror (run-dockerized --mirror REGISTRY), or point KUBE_CROSS_IMAGE at one you have",
                ),
            }
        }
        Err(hung) => check("kube-cross", miss, format!("hung: {hung}"), "the engine does not answer: restart it"),
    }
}

/// Free space where the build writes (`_output` of the tree, else the current directory).
pub fn check_disk(dir: &str) -> Check {
    let avail_kb: Option<u64> = Proc::new("df")
        .args(["-Pk", "--", dir])
        .timeout(probe_limit())
        .read()
        .ok()
        .and_then(|o| o.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)).and_then(|v| v.parse().ok()));
    let Some(kb) = avail_kb else { return check("disk", Level::Warn, format!("cannot read free space of {dir}"), "") };
    let gb = kb / 1_000_000;
    let found = format!("{gb} GB free at {dir}");
    if gb < DISK_FAIL_GB {
        check(
            "disk",
            Level::Fail,
            found,
            format!("free space: a build needs at least {DISK_FAIL_GB} GB (a full cross build far more)"),
        )
    } else if gb < DISK_WARN_GB {
        check(
            "disk",
            Level::Warn,
            found,
            format!("under {DISK_WARN_GB} GB: enough for WHAT= builds, not for make release"),
        )
    } else {
        check("disk", Level::Ok, found, "")
    }
}

/// Every check, in report order.
pub fn diagnose(tree: Option<&Tree>, docker_required: bool, go: &Choice, engine: &Engine) -> Vec<Check> {
    let is_mac = macos();
    let mut checks = vec![check_go(tree)];
    checks.extend(tree.map(|t| check_tree_go(t, go)));
    checks.extend(tree.and_then(check_container_go));
    checks.extend([
        check_present("rsync", "apt-get install rsync (macOS: brew install rsync)"),
        check_present("git", "apt-get install git"),
        check_present("make", "apt-get install make (macOS: xcode-select --install)"),
        check_tar(),
        check_bash(),
        check_coreutils(is_mac),
        check_engine(engine, docker_required),
        check_disk(tree.map(|t| t.root.as_str()).unwrap_or(".")),
    ]);
    // Only worth asking of an engine that answered.
    let reachable = checks.iter().any(|c| c.name == engine.kind().name() && c.found.starts_with("reachable"));
    if let (Some(t), true) = (tree, reachable) {
        checks.push(check_kube_cross(engine, t, docker_required));
    }
    if reachable {
        checks.push(check_go_cache(engine));
    }
    checks
}

/// The shared Go build cache of the containerized builds: its volume, size and cap.
pub fn check_go_cache(engine: &Engine) -> Check {
    use dockerized::cache;
    let (volume, max) = match (cache::volume_name(), cache::cache_max()) {
        (Ok(v), Ok(m)) => (v, m),
        (Err(e), _) | (_, Err(e)) => return check("go-cache", Level::Fail, e.msg, "fix the variable it names"),
    };
    let cap = format!("cap {:.1} GiB ({})", max as f64 / (1u64 << 30) as f64, cache::CACHE_MAX_VAR);
    match cache::cache_exists(engine, &volume) {
        Ok(true) => {
            let size = cache::cache_size(engine, &volume)
                .map_or_else(|| "size unknown".to_string(), |n| format!("{:.2} GB", n as f64 / 1e9));
            check("go-cache", Level::Ok, format!("volume {volume}: {size}, {cap}"), "")
        }
        Ok(false) => {
            check("go-cache", Level::Ok, format!("volume {volume} not made yet (the first build makes it), {cap}"), "")
        }
        Err(e) => check("go-cache", Level::Warn, e.msg, "the engine does not answer: restart it"),
    }
}

/// Which Go a build of this tree will use and why (as kube-build's `--go` decides; nothing is
/// downloaded here).
pub fn check_tree_go(tree: &Tree, go: &Choice) -> Check {
    match setup_go::pick::preview(tree, go, &|k| std::env::var(k).ok()) {
        Ok((true, found)) => check("tree-go", Level::Ok, found, ""),
        Ok((false, found)) => check(
            "tree-go",
            Level::Warn,
            found,
            "run `setup-go` (or set KUBE_GO_MIRROR) now, or FORCE_HOST_GO=y to build with the go on PATH",
        ),
        Err(e) => check("tree-go", Level::Fail, e.msg, "fix the tree's Go version file, or pass --go"),
    }
}

/// Era C: which Go the build container will use (the image only bootstraps; the tree's
/// `.go-version` is switched to) and whether it can get it without network. None for other eras.
pub fn check_container_go(tree: &Tree) -> Option<Check> {
    use dockerized::toolchain::{plan, proxy_answers, GoPlan};
    let name = "container-go";
    let p = match plan(tree, &|k| std::env::var(k).ok(), &proxy_answers) {
        Ok(GoPlan::NotNeeded) => return None,
        Ok(p) => p,
        Err(e) => return Some(check(name, Level::Fail, e.msg, "fix the tree's .go-version (or GO_VERSION)")),
    };
    Some(match &p {
        GoPlan::Missing { version } => check(
            name,
            Level::Warn,
            p.describe(),
            format!("`setup-go --go {version}` (from a mirror: KUBE_GO_MIRROR), or a GOPROXY that serves golang.org/toolchain"),
        ),
        _ => check(name, Level::Ok, p.describe(), ""),
    })
}

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let docker = ctx.flag("--docker");
    let go = setup_go::pick::choice_flag(ctx)?;
    let engine = Engine::new(dockerized::engine_flag(ctx)?, false)?;
    let only = ctx.opt_string("--only")?;
    ctx.finish()?;
    let tree = match ctx.tree() {
        Ok(t) => Some(t),
        // No tree found is fine (the machine is checked alone); a tree found but refused is not.
        Err(e) if ctx.kube_root.is_none() && kube_tree::root::discover_here(None).is_err() => {
            log::warn(format!("no tree ({e}); the tree's rules are skipped"));
            None
        }
        Err(e) => return Err(e),
    };
    let mut checks = diagnose(tree.as_ref(), docker, &go, &engine);
    if let Some(only) = only {
        let known: Vec<&str> = checks.iter().map(|c| c.name).collect();
        if let Some(bad) = only.split(',').find(|n| !known.contains(n)) {
            return Err(Fail::new(format!("--only: no check `{bad}` here (checks: {})", known.join(", "))));
        }
        checks.retain(|c| only.split(',').any(|n| n == c.name));
    }
    let fails = checks.iter().filter(|c| c.level == Level::Fail).count();
    if ctx.json {
        ctx.say(
            Json::Arr(
                checks
                    .iter()
                    .map(|c| {
                        Json::obj([
                            ("check", Json::str(c.name)),
                            ("status", Json::str(c.level.name().to_lowercase())),
                            ("found", Json::str(&c.found)),
                            ("fix", Json::str(&c.fix)),
                        ])
                    })
                    .collect(),
            )
            .render(),
        );
    }
    if let Some(t) = &tree {
        log::line(format_args!("tree {} (era {}, {})", t.root, t.era.name(), t.layout.name()));
    }
    for c in &checks {
        let fix = if c.fix.is_empty() { String::new() } else { format!("  -> {}", c.fix) };
        log::line(format_args!("{:<14} {:<5} {}{fix}", c.name, c.level.name(), log::printable(&c.found)));
    }
    Ok(Status::from_count(fails))
}
