//! The containerized build of a Kubernetes tree, as build/run.sh and friends do it, for every era:
//!
//! * rsync mode (eras A and B, and any engine that is not local): a `kube-build` image built from
//!   the tree's build/build-image, a data container holding the sources and caches, an rsync
//!   daemon container on 127.0.0.1 to sync in and out, a throw-away build container;
//! * bind mode (era C, or `--mode bind` on a local engine): kube-cross run directly with the tree
//!   mounted at /go/src/k8s.io/kubernetes.
//!
//! Names follow build/common.sh (so trees built by the scripts are recognised); everything made
//! here also carries labels naming this kit and the tree.

pub mod md5;
pub mod sync;

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::{Captured, Proc};
use kube_tree::{log, values, version, Era, Fail, Tree};
use std::cell::RefCell;
use std::process::ExitStatus;
use std::time::Duration;

pub const LABEL_OWNER: &str = "io.k8s-build-kit.owner";
pub const LABEL_TREE: &str = "io.k8s-build-kit.tree";
pub const LABEL_HASH: &str = "io.k8s-build-kit.hash";
/// On the rsync daemon: what it was started from, so a later run knows whether it may reuse it.
pub const LABEL_KEY: &str = "io.k8s-build-kit.key";
pub const OWNER: &str = "k8s-build-kit";
/// Where the tree lives inside every container.
pub const REMOTE_ROOT: &str = "/go/src/k8s.io/kubernetes";
/// Engine memory below which builds get killed (build/README.md, PR #62219).
pub const MIN_MEMORY: u64 = 4_500_000_000;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// How long an engine may take to answer a question (info, inspect, ps, context): a hung
/// daemon is named and the run stops, instead of waiting forever. Builds have no limit.
pub const QUERY_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The container engine CLI (`docker` or `podman`), with `DOCKER_OPTS`, in dry-run or for real.
pub struct Engine {
    pub program: String,
    opts: Vec<String>,
    pub dry_run: bool,
    /// Commands a dry run would have run, in order.
    pub plan: RefCell<Vec<String>>,
    remote: std::cell::OnceCell<bool>,
    rootless: std::cell::OnceCell<bool>,
}

impl Engine {
    /// `--engine` > `KUBE_CONTAINER_ENGINE` > docker.
    pub fn new(flag: Option<String>, dry_run: bool) -> Result<Engine> {
        let (what, program) = match flag {
            Some(f) => ("--engine", f),
            None => match std::env::var("KUBE_CONTAINER_ENGINE").ok().filter(|s| !s.is_empty()) {
                Some(e) => ("KUBE_CONTAINER_ENGINE", e),
                None => ("engine", "docker".to_string()),
            },
        };
        values::engine(what, &program)?;
        // Split as a shell would, so quoted options keep their spaces.
        let raw = std::env::var("DOCKER_OPTS").unwrap_or_default();
        let opts =
            shell_words::split(&raw).map_err(|e| Fail::new(format!("DOCKER_OPTS `{}`: {e}", raw.escape_debug())))?;
        if let Some(bad) = opts.iter().find(|o| o.chars().any(char::is_control)) {
            return Err(Fail::new(format!("DOCKER_OPTS: `{}` holds a control character", bad.escape_debug())));
        }
        Ok(Engine {
            program,
            opts,
            dry_run,
            plan: RefCell::new(Vec::new()),
            remote: std::cell::OnceCell::new(),
            rootless: std::cell::OnceCell::new(),
        })
    }

    pub fn cmd<S: AsRef<str>>(&self, args: &[S]) -> Proc {
        Proc::new(&self.program).args(&self.opts).args(args.iter().map(|a| a.as_ref()))
    }

    /// In a dry run, records the command and says so.
    fn planned(&self, p: &Proc) -> bool {
        if self.dry_run {
            self.plan.borrow_mut().push(p.display());
        }
        self.dry_run
    }

    /// Runs a command that changes something; it must succeed.
    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Result<Captured> {
        let p = self.cmd(args);
        if self.planned(&p) {
            return Ok(fake_ok());
        }
        let out = p.output()?;
        if !out.success() {
            return Err(Fail::new(format!(
                "`{}` failed: {}",
                short(&p.display()),
                out.error_lines(2).replace('\n', " | ")
            )));
        }
        Ok(out)
    }

    /// Asks the engine something; None if it says no (or in a dry run, where nothing is asked).
    pub fn query<S: AsRef<str>>(&self, args: &[S]) -> Result<Option<String>> {
        let p = self.cmd(args).timeout(QUERY_LIMIT);
        if self.planned(&p) {
            return Ok(None);
        }
        let out = p.output()?;
        Ok(out.success().then(|| out.stdout.trim().to_string()))
    }

    /// Runs a long command with its output streamed to our stderr.
    pub fn stream<S: AsRef<str>>(&self, args: &[S], label: &str) -> Result<Option<ExitStatus>> {
        let p = self.cmd(args);
        if self.planned(&p) {
            return Ok(None);
        }
        p.run_streaming(label).map(Some)
    }

    pub fn interactive<S: AsRef<str>>(&self, args: &[S]) -> Result<Option<ExitStatus>> {
        let p = self.cmd(args);
        if self.planned(&p) {
            return Ok(None);
        }
        p.run_interactive().map(Some)
    }

    /// kill + rm -f -v (the scripts' destroy_container), quietly, even after an interrupt.
    pub fn destroy(&self, name: &str) {
        let rm = self.cmd(&["rm", "-f", "-v", name]).uninterruptible();
        if !self.planned(&rm) {
            let _ = rm.output();
        }
    }

    /// A local daemon can bind-mount the tree; one reached over TCP/SSH (or a context pointing
    /// there) cannot, and gets the rsync mode.
    pub fn is_remote(&self) -> bool {
        *self.remote.get_or_init(|| self.find_remote())
    }

    fn find_remote(&self) -> bool {
        let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()).or_else(|| {
            let cmd = self.context_cmd()?;
            self.cmd(&cmd).timeout(QUERY_LIMIT).read().ok().map(|s| s.trim().to_string())
        });
        host.is_some_and(|h| remote_host(&h))
    }

    /// The docker context question, when the engine's place is still unknown and DOCKER_HOST
    /// does not say it (so it can join a batch of questions).
    pub fn context_cmd(&self) -> Option<Vec<String>> {
        let asked = self.remote.get().is_some() || std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty());
        (!asked && self.program == "docker" && !self.dry_run)
            .then(|| ["context", "inspect", "--format", "{{.Endpoints.docker.Host}}"].map(String::from).to_vec())
    }

    /// Takes the answer to [`Engine::context_cmd`].
    pub fn take_context(&self, answer: Option<&Captured>) {
        if let Some(a) = answer {
            let host = if a.success() { a.stdout.trim() } else { "" };
            let _ = self.remote.set(remote_host(host));
        }
    }

    /// Asks several independent questions at once: each CLI call costs tens of milliseconds,
    /// mostly the CLI starting up, so a run's opening questions are asked side by side. Answers
    /// come in order; None in a dry run (where the commands are only recorded).
    pub fn query_all(&self, cmds: &[Vec<String>]) -> Result<Vec<Option<Captured>>> {
        let procs: Vec<Proc> = cmds.iter().map(|c| self.cmd(c).timeout(QUERY_LIMIT)).collect();
        if self.dry_run {
            for p in &procs {
                self.planned(p);
            }
            return Ok(procs.iter().map(|_| None).collect());
        }
        std::thread::scope(|s| {
            let running: Vec<_> = procs.iter().map(|p| s.spawn(move || p.output())).collect();
            running.into_iter().map(|h| h.join().expect("a query thread panicked").map(Some)).collect()
        })
    }

    /// The `docker info` question [`Engine::take_info`] judges.
    pub fn info_cmd() -> Vec<String> {
        ["info", "--format", "{{.MemTotal}}\t{{json .SecurityOptions}}"].map(String::from).to_vec()
    }

    /// Judges `docker info`'s answer: unreachable is an environment error, too little memory a
    /// warning; remembers whether the engine is rootless (bind mode then runs as root inside).
    pub fn take_info(&self, out: Option<&Captured>) -> Result<()> {
        let Some(out) = out else { return Ok(()) };
        if !out.success() {
            return Err(Fail::new(format!(
                "cannot reach the {} engine: {} (start the daemon, or check DOCKER_HOST / the context)",
                self.program,
                out.first_lines(1)
            )));
        }
        let (mem, security) = out.stdout.trim().split_once('\t').unwrap_or((out.stdout.trim(), ""));
        let mem: u64 = mem.parse().unwrap_or(u64::MAX);
        if mem < MIN_MEMORY {
            log::warn(format!("the engine has {:.1} GB of memory; builds need at least 4.5 GB (linker kills otherwise): raise it (Docker Desktop: Settings > Resources)", mem as f64 / 1e9));
        }
        let _ = self.rootless.set(security.contains("name=rootless"));
        Ok(())
    }

    /// `docker info`: reachable, with how much memory.
    pub fn check(&self) -> Result<()> {
        let out = self.query_all(&[Engine::info_cmd()])?;
        self.take_info(out[0].as_ref())
    }

    /// A rootless engine maps root inside to the user outside (known after [`Engine::check`]).
    pub fn is_rootless(&self) -> bool {
        self.rootless.get().copied().unwrap_or(false)
    }
}

/// An engine endpoint that cannot see our files (so no bind mounts): TCP, SSH, HTTP.
fn remote_host(h: &str) -> bool {
    h.starts_with("tcp://") || h.starts_with("ssh://") || h.starts_with("http")
}

fn fake_ok() -> Captured {
    use std::os::unix::process::ExitStatusExt;
    Captured { status: ExitStatus::from_raw(0), stdout: String::new(), stderr: String::new(), elapsed: Duration::ZERO }
}

const PROXIES: [(&str, &str); 3] = [
    ("KUBERNETES_HTTPS_PROXY", "https_proxy"),
    ("KUBERNETES_HTTP_PROXY", "http_proxy"),
    ("KUBERNETES_NO_PROXY", "no_proxy"),
];

/// The proxies the scripts pass into the image and the build container: `KUBERNETES_*_PROXY`
/// as `https_proxy`, `http_proxy`, `no_proxy` (checked by [`check_proxy_env`] first).
fn proxy_env() -> Vec<(&'static str, String)> {
    PROXIES.iter().filter_map(|(var, env)| std::env::var(var).ok().map(|v| (*env, v))).collect()
}

/// A proxy value goes into a Dockerfile line: one with a control character (a newline would
/// start a new instruction) is refused before anything runs.
fn check_proxy_env() -> Result<()> {
    for (var, _) in PROXIES {
        if let Ok(v) = std::env::var(var) {
            if v.chars().any(char::is_control) {
                return Err(Fail::new(format!("{var} `{}`: a control character in a proxy value", v.escape_debug())));
            }
        }
    }
    Ok(())
}

/// At most 160 characters (never cut inside a UTF-8 character).
fn short(s: &str) -> String {
    if s.chars().count() > 160 {
        format!("{}...", s.chars().take(157).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Removes containers when dropped (also after an error or an interrupt).
pub struct Cleanup<'a> {
    engine: &'a Engine,
    pub names: Vec<String>,
}

impl<'a> Cleanup<'a> {
    pub fn new(engine: &'a Engine) -> Cleanup<'a> {
        Cleanup { engine, names: Vec::new() }
    }

    /// Takes `name` off the list: it stays (or is already gone).
    pub fn keep(&mut self, name: &str) {
        self.names.retain(|n| n != name);
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in self.names.drain(..) {
            self.engine.destroy(&n);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Rsync,
    Bind,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Rsync => "rsync",
            Mode::Bind => "bind",
        }
    }
}

/// Container and image names, as build/common.sh makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// First 10 hex of md5("HOSTNAME:KUBE_ROOT:branch").
    pub hash: String,
    /// `5-v1.15.5-1` (build-image VERSION and cross tag), `6` in era C.
    pub version: String,
    pub image: String,
    pub build: String,
    pub rsync: String,
    pub data: String,
}

impl Names {
    pub fn new(hostname: &str, root: &Utf8Path, branch: &str, version: &str) -> Names {
        let hash = md5::hex(format!("{hostname}:{root}:{branch}").as_bytes())[..10].to_string();
        Names {
            image: format!("kube-build:build-{hash}-{version}"),
            build: format!("kube-build-{hash}-{version}"),
            rsync: format!("kube-rsync-{hash}-{version}"),
            data: format!("kube-build-data-{hash}-{version}"),
            version: version.to_string(),
            hash,
        }
    }
    /// Name prefixes of everything of this tree, whatever its version.
    pub fn prefixes(&self) -> [String; 3] {
        [
            format!("kube-build-{}", self.hash),
            format!("kube-rsync-{}", self.hash),
            format!("kube-build-data-{}", self.hash),
        ]
    }
}

/// `$HOSTNAME` as bash sets it (our environment may not have it).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()))
        .or_else(|| Proc::new("hostname").timeout(kube_tree::proc::PROBE).read().ok().map(|s| s.trim().to_string()))
        .unwrap_or_default()
}

/// The effective `uid:gid` (as `id -u`/`id -g` print them): from /proc, with no process to
/// spawn, else from `id` (macOS).
fn uid_gid() -> Result<String> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        // "Uid:\treal\teffective\tsaved\tfs"
        let effective = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        };
        if let (Some(u), Some(g)) = (effective("Uid:"), effective("Gid:")) {
            return Ok(format!("{u}:{g}"));
        }
    }
    let id = |f: &str| Proc::new("id").arg(f).timeout(kube_tree::proc::PROBE).read().map(|s| s.trim().to_string());
    Ok(format!("{}:{}", id("-u")?, id("-g")?))
}

/// Everything a containerized build of this tree needs to know.
pub struct Setup {
    pub tree: Tree,
    pub mode: Mode,
    pub names: Names,
    /// `repo:tag` of kube-cross.
    pub cross_image: String,
    pub hostname: String,
    pub user: String,
}

/// The `kube-cross` repository the tree's Dockerfile (or common.sh) names, without the tag.
fn tree_cross_repo(tree: &Tree) -> String {
    let df = std::fs::read_to_string(tree.path("build/build-image/Dockerfile")).unwrap_or_default();
    if let Some(from) = df.lines().find_map(|l| l.trim().strip_prefix("FROM ")) {
        if let Some(repo) = from.trim().strip_suffix(":KUBE_BUILD_IMAGE_CROSS_TAG") {
            return repo.to_string();
        }
    }
    let common = std::fs::read_to_string(tree.path("build/common.sh")).unwrap_or_default();
    let registry = common
        .find("KUBE_BASE_IMAGE_REGISTRY:-")
        .map(|i| {
            let r = &common[i + "KUBE_BASE_IMAGE_REGISTRY:-".len()..];
            r[..r.find('}').unwrap_or(0)].trim_matches('"').to_string()
        })
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "registry.k8s.io/build-image".into());
    format!("{registry}/kube-cross")
}

impl Setup {
    pub fn new(tree: Tree, engine: &Engine, mode: Option<&str>, cross_image: Option<String>) -> Result<Setup> {
        let mode = match mode {
            Some("rsync") => Mode::Rsync,
            Some("bind") => Mode::Bind,
            Some(m) => return Err(Fail::new(format!("--mode {m}: rsync or bind"))),
            None if tree.era == Era::C && !engine.is_remote() => Mode::Bind,
            None => Mode::Rsync,
        };
        if mode == Mode::Bind && engine.is_remote() {
            return Err(Fail::new(
                "--mode bind needs a local engine: this one is remote (DOCKER_HOST/context), use the rsync mode",
            ));
        }
        let tag = match std::env::var("KUBE_CROSS_VERSION").ok().filter(|s| !s.is_empty()) {
            Some(t) => {
                values::tag("KUBE_CROSS_VERSION", &t)?;
                t
            }
            None => {
                let t = tree.cross_tag.clone().ok_or_else(|| {
                    Fail::new("no build/build-image/cross/VERSION in the tree and no KUBE_CROSS_VERSION")
                })?;
                values::tag("build/build-image/cross/VERSION", &t)?;
                t
            }
        };
        let given = match cross_image {
            Some(i) => Some(("--cross-image", i)),
            None => std::env::var("KUBE_CROSS_IMAGE").ok().filter(|s| !s.is_empty()).map(|i| ("KUBE_CROSS_IMAGE", i)),
        };
        let cross_image = match given {
            Some((what, img)) => {
                values::image_ref(what, &img)?;
                if img.rsplit('/').next().is_some_and(|last| last.contains(':')) {
                    img
                } else {
                    format!("{img}:{tag}")
                }
            }
            None => format!("{}:{tag}", tree_cross_repo(&tree)),
        };
        values::image_ref("kube-cross image", &cross_image)?;
        check_proxy_env()?;
        if let Ok(p) = std::env::var("KUBE_RSYNC_PORT") {
            if !p.is_empty() {
                values::port("KUBE_RSYNC_PORT", &p)?;
            }
        }
        let version = if tree.era == Era::C {
            "6".to_string()
        } else {
            let base = std::fs::read_to_string(tree.path("build/build-image/VERSION"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "5".into());
            format!("{base}-{tag}")
        };
        let branch = if tree.path(".git").exists() {
            Proc::new("git")
                .args(["symbolic-ref", "--short", "-q", "HEAD"])
                .dir(&tree.root)
                .timeout(kube_tree::proc::PROBE)
                .read()
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let hostname = hostname();
        let names = Names::new(&hostname, &tree.root, &branch, &version);
        Ok(Setup { tree, mode, names, cross_image, hostname, user: uid_gid()? })
    }

    pub fn labels(&self) -> Vec<String> {
        vec![
            "--label".into(),
            format!("{LABEL_OWNER}={OWNER}"),
            "--label".into(),
            format!("{LABEL_TREE}={}", self.tree.root),
            "--label".into(),
            format!("{LABEL_HASH}={}", self.names.hash),
        ]
    }

    /// The build context directory the scripts use: `_output/images/<image>`.
    pub fn context_dir(&self) -> Utf8PathBuf {
        self.tree.path("_output/images").join(&self.names.image)
    }

    pub fn password_file(&self) -> Utf8PathBuf {
        self.context_dir().join("rsyncd.password")
    }
}

/// Writes `.dockerized-kube-version-defs` (the five lines the build container loads).
pub fn save_version_defs(setup: &Setup) -> Result<()> {
    let v = version::get(&setup.tree, &|k| std::env::var(k).ok())?;
    let q = |o: &Option<String>| o.clone().unwrap_or_default();
    let text = format!(
        "KUBE_GIT_COMMIT='{}'\nKUBE_GIT_TREE_STATE='{}'\nKUBE_GIT_VERSION='{}'\nKUBE_GIT_MAJOR='{}'\nKUBE_GIT_MINOR='{}'\n",
        q(&v.commit), q(&v.tree_state), q(&v.version), q(&v.major), q(&v.minor)
    );
    let rel = ".dockerized-kube-version-defs";
    if std::fs::read_to_string(setup.tree.path(rel)).ok().as_deref() != Some(text.as_str()) {
        setup.tree.write_file(rel, text.as_bytes())?;
    }
    Ok(())
}

/// What the engine knows of the two images a run needs, asked in one call.
#[derive(Debug, Default, Clone)]
pub struct ImageFacts {
    /// kube-cross's image ID.
    pub cross_id: Option<String>,
    /// The tree's kube-build image: its ID and its context label (rsync mode only).
    pub image_id: Option<String>,
    pub context: Option<String>,
}

impl ImageFacts {
    const FORMAT: &'static str = "{{.Id}}\t{{json .Config.Labels}}";

    /// One `image inspect` of kube-cross and (rsync mode) the kube-build image.
    pub fn cmd(setup: &Setup) -> Vec<String> {
        let mut c: Vec<String> =
            ["image", "inspect", "--format", Self::FORMAT, &setup.cross_image].map(String::from).to_vec();
        if setup.mode == Mode::Rsync {
            c.push(setup.names.image.clone());
        }
        c
    }

    /// Reads the answer to [`ImageFacts::cmd`]. The engine answers a batch only when every
    /// image exists, so a failed batch (a first run, a missing image) is asked one by one.
    pub fn read(engine: &Engine, setup: &Setup, answer: Option<&Captured>) -> Result<ImageFacts> {
        let Some(answer) = answer else { return Ok(ImageFacts::default()) };
        // `{{.Id}}\t{{json .Config.Labels}}` -> (ID, labels)
        let fact = |l: &str| {
            let (id, labels) = l.split_once('\t').unwrap_or((l, ""));
            (id.to_string(), labels.to_string())
        };
        let lines: Vec<(String, String)> =
            if answer.success() { answer.stdout.lines().map(fact).collect() } else { Vec::new() };
        let wanted = if setup.mode == Mode::Rsync { 2 } else { 1 };
        let lines = if lines.len() == wanted {
            lines.into_iter().map(Some).collect()
        } else {
            let one = |name: &str| -> Result<Option<(String, String)>> {
                Ok(engine.query(&["image", "inspect", "--format", Self::FORMAT, name])?.as_deref().map(fact))
            };
            let mut v = vec![one(&setup.cross_image)?];
            if wanted == 2 {
                v.push(one(&setup.names.image)?);
            }
            v
        };
        let mut it = lines.into_iter();
        let cross = it.next().flatten();
        let image = it.next().flatten();
        Ok(ImageFacts {
            cross_id: cross.map(|c| c.0),
            context: image.as_ref().map(|i| label_of(&i.1, "io.k8s-build-kit.context")),
            image_id: image.map(|i| i.0),
        })
    }
}

/// A label's value out of `{{json .Config.Labels}}` (our values are plain hex or paths).
fn label_of(labels_json: &str, key: &str) -> String {
    let pat = format!("\"{key}\":\"");
    labels_json
        .find(&pat)
        .map(|i| &labels_json[i + pat.len()..])
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}

/// kube-cross must be there (no registry is assumed reachable); `--mirror` pulls it from a mirror
/// and tags it with the name the tree expects. Returns its image ID (empty in a dry run).
pub fn ensure_cross_image(
    engine: &Engine,
    setup: &Setup,
    mirror: Option<&str>,
    known: Option<String>,
) -> Result<String> {
    if let Some(id) = known {
        return Ok(id);
    }
    let inspect = || engine.query(&["image", "inspect", "--format", "{{.Id}}", &setup.cross_image]);
    if let Some(id) = inspect()? {
        return Ok(id);
    }
    if let Some(m) = mirror {
        values::registry("--mirror", m)?;
        let name = setup.cross_image.rsplit('/').next().unwrap_or(&setup.cross_image);
        let from = format!("{}/{name}", m.trim_end_matches('/'));
        let step = log::Step::start(format!("pulling {from}"));
        engine.run(&["pull", &from])?;
        engine.run(&["tag", &from, &setup.cross_image])?;
        step.done();
        return Ok(inspect()?.unwrap_or_default());
    }
    if engine.dry_run {
        return Ok(String::new());
    }
    Err(Fail::new(format!(
        "image {} is missing: pull or load it, pass --mirror REGISTRY, or point KUBE_CROSS_IMAGE/--cross-image at one you have",
        setup.cross_image
    )))
}

/// A random password of 32 alphanumerics, as build_image makes one (kept while it exists, so the
/// image need not be rebuilt on every run).
fn ensure_password(tree: &Tree, path: &Utf8Path) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    let mut raw = vec![0u8; 512];
    use std::io::Read;
    fs_err::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    let pw: String = raw.iter().map(|b| *b as char).filter(|c| c.is_ascii_alphanumeric()).take(32).collect();
    // Made 0600 from the start: the secret is never readable by others, not even briefly.
    let file = tree.confined(path)?;
    let tmp = file.temp("new");
    tmp.write_new(pw.as_bytes(), Some(0o600))?;
    tmp.rename_to(&file).inspect_err(|_| {
        let _ = tmp.remove_file();
    })
}

/// Builds `kube-build:build-<hash>-<version>` from the tree's build/build-image, unless the
/// image there (`facts`) was built from the same context and the same kube-cross. Returns its
/// ID and whether it was built now (empty and true in a dry run).
pub fn build_image(engine: &Engine, setup: &Setup, cross_id: &str, facts: &ImageFacts) -> Result<(String, bool)> {
    let ctx = setup.context_dir();
    if engine.dry_run {
        let mut args: Vec<String> = vec!["build".into(), "-t".into(), setup.names.image.clone(), "--pull=false".into()];
        args.extend(setup.labels());
        args.push(ctx.to_string());
        engine.run(&args)?;
        return Ok((String::new(), true));
    }
    setup.tree.confined(&ctx)?.create_dir_all()?;
    let src = setup.tree.path("build/build-image");
    let mut dockerfile = fs_err::read_to_string(src.join("Dockerfile"))?;
    let tag = setup.cross_image.rsplit_once(':').map(|x| x.1).unwrap_or("");
    let placeholder = dockerfile.contains("KUBE_BUILD_IMAGE_CROSS_TAG");
    if placeholder {
        // Era A style: the FROM line carries a placeholder the scripts sed; the whole image name
        // is written, so a --cross-image or mirror choice is honoured too.
        dockerfile = dockerfile
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("FROM ") && l.contains("KUBE_BUILD_IMAGE_CROSS_TAG") {
                    format!("FROM {}", setup.cross_image)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
    }
    for (env, v) in proxy_env() {
        dockerfile += &format!("ENV {env} {v}\n");
    }
    setup.tree.write_file(ctx.join("Dockerfile"), dockerfile.as_bytes())?;
    setup.tree.write_file(ctx.join("rsyncd.sh"), &fs_err::read(src.join("rsyncd.sh"))?)?;
    let localtime = std::fs::read("/etc/localtime").unwrap_or_default();
    setup.tree.write_file(ctx.join("localtime"), &localtime)?;
    ensure_password(&setup.tree, &setup.password_file())?;

    let mut key = Vec::new();
    for f in ["Dockerfile", "rsyncd.sh", "localtime", "rsyncd.password"] {
        key.extend(fs_err::read(ctx.join(f))?);
    }
    key.extend(cross_id.as_bytes());
    let context_hash = md5::hex(&key);
    if let (Some(id), Some(have)) = (&facts.image_id, &facts.context) {
        if *have == context_hash {
            log::status_v(2, format!("{} is up to date", setup.names.image));
            return Ok((id.clone(), false));
        }
    }
    let step = log::Step::start(format!("building {}", setup.names.image));
    let mut args: Vec<String> = vec!["build".into(), "-t".into(), setup.names.image.clone(), "--pull=false".into()];
    args.extend(setup.labels());
    args.extend(["--label".into(), format!("io.k8s-build-kit.context={context_hash}")]);
    if !placeholder {
        let (repo, tag) = setup.cross_image.rsplit_once(':').unwrap_or((&setup.cross_image, tag));
        args.extend([
            "--build-arg".into(),
            format!("KUBE_CROSS_IMAGE={repo}"),
            "--build-arg".into(),
            format!("KUBE_CROSS_VERSION={tag}"),
        ]);
    }
    args.push(ctx.to_string());
    // The legacy builder fails when another build's image is removed meanwhile and takes a
    // cached layer the two share with it (two trees, or the tests, at once): once more.
    if let Err(e) = engine.run(&args) {
        if kube_tree::proc::interrupted() {
            return Err(e);
        }
        log::warn(format!("{e}: building once more"));
        engine.run(&args)?;
    }
    step.done();
    let id = engine.query(&["image", "inspect", "--format", "{{.Id}}", &setup.names.image])?.unwrap_or_default();
    Ok((id, true))
}

/// Removes this tree's containers and images of other versions (the scripts' garbage
/// collection). Images are listed only when this run built one: an image of another version
/// can only appear with a version change, which makes a new image.
pub fn remove_old_versions(engine: &Engine, setup: &Setup, containers: &Containers, built: bool) -> Result<()> {
    if engine.dry_run {
        return Ok(());
    }
    let current = [&setup.names.build, &setup.names.rsync, &setup.names.data];
    for name in containers.of_tree(setup) {
        if !current.contains(&&name) {
            log::status(format!("removing {name} (an older version of this tree's build)"));
            engine.destroy(&name);
        }
    }
    if built {
        for img in images_of(engine, setup)? {
            if img != setup.names.image {
                let _ = engine.run(&["rmi", &img]);
            }
        }
    }
    Ok(())
}

/// One container as `docker ps -a` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub name: String,
    /// Our tree label (empty on containers the scripts made).
    pub tree: String,
    /// Our reuse-key label (the rsync daemon's).
    pub key: String,
    /// `running`, `exited`, `created`, ...
    pub state: String,
    /// `Exited (0) 3 minutes ago`, `Up 2 minutes`, ...
    pub status: String,
    /// `127.0.0.1:49153->8730/tcp`, ...
    pub ports: String,
}

impl Listed {
    /// The exit code of an exited container.
    pub fn exit_code(&self) -> Option<i32> {
        let rest = self.status.strip_prefix("Exited (")?;
        rest[..rest.find(')')?].parse().ok()
    }

    /// The host port published for `container_port` on 127.0.0.1.
    pub fn host_port(&self, container_port: u16) -> Option<u16> {
        let suffix = format!("->{container_port}/tcp");
        self.ports.split(", ").find_map(|p| p.strip_suffix(&suffix)?.strip_prefix("127.0.0.1:")?.parse().ok())
    }
}

/// Every container of the engine from one `docker ps -a`: the reuse and garbage-collection
/// questions of a run are answered from it instead of an inspect each.
#[derive(Debug, Default)]
pub struct Containers(pub Vec<Listed>);

impl Containers {
    pub fn cmd() -> Vec<String> {
        let format = format!("{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.Label \"{LABEL_TREE}\"}}}}\t{{{{.Label \"{LABEL_KEY}\"}}}}\t{{{{.State}}}}\t{{{{.Status}}}}\t{{{{.Ports}}}}");
        vec!["ps".into(), "-a".into(), "--no-trunc".into(), "--format".into(), format]
    }

    pub fn parse(text: &str) -> Containers {
        Containers(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let mut f = l.split('\t').map(str::to_string);
                    let mut next = || f.next().unwrap_or_default();
                    Listed {
                        id: next(),
                        name: next(),
                        tree: next(),
                        key: next(),
                        state: next(),
                        status: next(),
                        ports: next(),
                    }
                })
                .collect(),
        )
    }

    /// Reads the answer to [`Containers::cmd`] (nothing in a dry run).
    pub fn read(answer: Option<&Captured>) -> Result<Containers> {
        match answer {
            None => Ok(Containers::default()),
            Some(a) if a.success() => Ok(Containers::parse(&a.stdout)),
            Some(a) => Err(Fail::new(format!("cannot list the engine's containers: {}", a.first_lines(1)))),
        }
    }

    pub fn list(engine: &Engine) -> Result<Containers> {
        let answer = engine.query_all(&[Containers::cmd()])?;
        Containers::read(answer[0].as_ref())
    }

    pub fn get(&self, name: &str) -> Option<&Listed> {
        self.0.iter().find(|c| c.name == name)
    }

    /// This tree's containers: by name prefix (the scripts' scheme) or by our tree label.
    pub fn of_tree(&self, setup: &Setup) -> Vec<String> {
        let prefixes = setup.names.prefixes();
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|c| {
                prefixes.iter().any(|p| c.name.starts_with(&format!("{p}-")) || c.name == *p)
                    || c.tree == setup.tree.root.as_str()
            })
            .map(|c| c.name.clone())
            .collect();
        out.sort();
        out
    }
}

/// This tree's containers (see [`Containers::of_tree`]).
pub fn containers_of(engine: &Engine, setup: &Setup) -> Result<Vec<String>> {
    Ok(Containers::list(engine)?.of_tree(setup))
}

/// This tree's kube-build images (`kube-build:build-<hash>*`).
pub fn images_of(engine: &Engine, setup: &Setup) -> Result<Vec<String>> {
    let listing = engine.query(&["images", "kube-build", "--format", "{{.Repository}}:{{.Tag}}"])?.unwrap_or_default();
    let prefix = format!("kube-build:build-{}", setup.names.hash);
    Ok(listing.lines().filter(|l| l.starts_with(&prefix)).map(str::to_string).collect())
}

/// The data container: sources, caches and outputs live in its volumes between builds. One that
/// did not exit 0 is recreated (a stale data container was the cause of #20904). Returns its ID
/// (empty in a dry run).
pub fn ensure_data_container(engine: &Engine, setup: &Setup, containers: &Containers) -> Result<String> {
    let data = &setup.names.data;
    if let Some(c) = containers.get(data) {
        if c.exit_code() == Some(0) {
            return Ok(c.id.clone());
        }
        log::warn(format!("{data} is `{}`, not exited with 0: recreating it", c.status));
        engine.destroy(data);
    }
    let step = log::Step::start(format!("creating the data container {data}"));
    let mut args: Vec<String> =
        vec!["run".into(), "--name".into(), data.clone(), "--hostname".into(), setup.hostname.clone()];
    args.extend(setup.labels());
    args.extend(["--volume".into(), REMOTE_ROOT.into()]);
    for p in [
        "linux_386",
        "linux_amd64",
        "linux_arm",
        "linux_arm64",
        "linux_ppc64le",
        "darwin_amd64",
        "darwin_386",
        "windows_amd64",
        "windows_386",
    ] {
        args.extend(["--volume".into(), format!("/usr/local/go/pkg/{p}_cgo")]);
    }
    args.push(setup.names.image.clone());
    args.extend(["chown".into(), "-R".into(), setup.user.clone(), REMOTE_ROOT.into(), "/usr/local/go/pkg/".into()]);
    engine.run(&args)?;
    step.done();
    Ok(engine.query(&["inspect", "--format", "{{.Id}}", data])?.unwrap_or_default())
}

/// A running rsync daemon container and where to reach it.
pub struct Rsyncd {
    pub addr: String,
    /// The container's ID (empty in a dry run).
    pub id: String,
    /// Left running by an earlier run and taken over (not started now).
    pub reused: bool,
}

impl Rsyncd {
    /// The tree's module on the daemon, as rsync's source or destination.
    pub fn module(&self) -> String {
        format!("rsync://k8s@{}/k8s/", self.addr)
    }
}

/// What an rsync daemon must have been started from to be reused: the kube-build image (whose
/// password it holds), the data container (whose volumes it serves), the user and the requested
/// port. A daemon serving a data container that was since replaced would sync into orphaned
/// volumes; the key rules that out.
pub fn rsyncd_key(image_id: &str, data_id: &str, user: &str) -> String {
    let port = std::env::var("KUBE_RSYNC_PORT").unwrap_or_default();
    md5::hex(format!("{image_id}\n{data_id}\n{user}\n{port}").as_bytes())[..16].to_string()
}

/// Whether a daemon is left running for the next run (`KUBE_RSYNC_KEEP`, default yes): starting
/// one and waiting for it to answer is most of a no-op run's cost.
pub fn keep_rsyncd() -> bool {
    !std::env::var("KUBE_RSYNC_KEEP")
        .is_ok_and(|v| v.eq_ignore_ascii_case("n") || v == "0" || v.eq_ignore_ascii_case("no"))
}

fn port_taken(port: &str) -> Fail {
    Fail::new(format!(
        "rsync port 127.0.0.1:{port} is taken: unset KUBE_RSYNC_PORT for an ephemeral port, or choose another"
    ))
}

/// Reuses the tree's rsync daemon when `listed` shows it running with `key`; otherwise starts
/// one, published on 127.0.0.1 only (`KUBE_RSYNC_PORT` or an ephemeral port), and waits until
/// it answers. It is on `cleanup` either way: the caller takes it off to keep it.
pub fn start_rsyncd(
    engine: &Engine,
    setup: &Setup,
    key: &str,
    listed: Option<&Containers>,
    cleanup: &mut Cleanup,
) -> Result<Rsyncd> {
    let name = &setup.names.rsync;
    cleanup.names.push(name.clone());
    let current = listed.map(|l| l.get(name));
    if let Some(Some(c)) = current {
        if c.state == "running" && !key.is_empty() && c.key == key {
            if let Some(p) = c.host_port(8730) {
                log::status_v(2, format!("reusing the rsync daemon {name} on 127.0.0.1:{p}"));
                return Ok(Rsyncd { addr: format!("127.0.0.1:{p}"), id: c.id.clone(), reused: true });
            }
        }
    }
    if current != Some(None) {
        engine.destroy(name);
    }
    let port = std::env::var("KUBE_RSYNC_PORT").unwrap_or_default();
    // A pinned port that something else holds: say so before docker does (or, where the engine
    // publishes through iptables instead of a proxy, silently does not).
    if let Ok(p) = port.parse::<u16>() {
        if !engine.dry_run && !engine.is_remote() && std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
            return Err(port_taken(&port));
        }
    }
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "--user".into(),
        setup.user.clone(),
        "--hostname".into(),
        setup.hostname.clone(),
    ];
    args.extend(["--volumes-from".into(), setup.names.data.clone()]);
    args.extend(setup.labels());
    args.extend(["--label".into(), format!("{LABEL_KEY}={key}")]);
    args.extend(["-p".into(), format!("127.0.0.1:{port}:8730"), setup.names.image.clone(), "/rsyncd.sh".into()]);
    let id = match engine.run(&args) {
        Ok(out) => out.stdout.trim().to_string(),
        Err(e) if e.msg.contains("already allocated") || e.msg.contains("address already in use") => {
            return Err(port_taken(&port));
        }
        Err(e) => return Err(e),
    };
    if engine.dry_run {
        return Ok(Rsyncd {
            addr: format!("127.0.0.1:{}", if port.is_empty() { "PORT" } else { &port }),
            id,
            reused: false,
        });
    }
    let mapped = engine
        .query(&["port", name, "8730"])?
        .ok_or_else(|| Fail::new("could not get the effective rsync port (the rsync container did not come up)"))?;
    let port = mapped.lines().next().and_then(|l| l.rsplit(':').next()).unwrap_or("").to_string();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        let probe = Proc::new("rsync")
            .arg(format!("rsync://k8s@{addr}/"))
            .arg(format!("--password-file={}", setup.password_file()))
            .timeout(kube_tree::proc::PROBE)
            .output()?;
        if probe.success() {
            return Ok(Rsyncd { addr, id, reused: false });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = engine.query(&["logs", "--tail", "3", name])?.unwrap_or_default();
    Err(Fail::new(format!("could not connect to the rsync container at {addr}: {}", logs.replace('\n', " | "))))
}

/// The filters the tree's own common.sh passes in `function` (so each era syncs what it always did).
pub fn tree_filters(tree: &Tree, function: &str) -> Vec<String> {
    let common = std::fs::read_to_string(tree.path("build/common.sh")).unwrap_or_default();
    let Some(start) = common.find(&format!("function {function}()")) else { return Vec::new() };
    let body = &common[start..];
    let body = &body[..body.find("\n}").unwrap_or(body.len())];
    body.split("--filter='").skip(1).filter_map(|f| f.split_once('\'').map(|x| x.0.to_string())).collect()
}

/// Sources in: everything but outputs. Unlike the era-A scripts, generated files are not hidden
/// (Era B stopped doing that): deleting them in the container made every build regenerate them.
/// `.git` stays out, as in the scripts (the image reads the version from a file instead).
pub const SYNC_IN_FILTERS: &[&str] = &["H /.git", "- /.make/", "- /_tmp/", "- /_output/", "- /"];

/// Output back: binaries and generated files (Era B list; the tree's own is used when it has one).
pub const COPY_OUT_FILTERS: &[&str] = &[
    "- /_temp/",
    "+ /vendor/",
    "+ /staging/***/Godeps/**",
    "+ /_output/dockerized/bin/**",
    "- /_output/dockerized/go/**",
    "+ zz_generated.*",
    "+ generated.proto",
    "+ *.pb.go",
    "+ types.go",
    "+ */",
    "- /**",
];

/// Runs one rsync against the daemon; returns its stdout (the itemized list, when asked for).
fn rsync(engine: &Engine, setup: &Setup, extra: &[String], src: &str, dst: &str, label: &str) -> Result<String> {
    let mut p = Proc::new("rsync").arg("--archive").arg(format!("--password-file={}", setup.password_file()));
    if kube_tree::log::level() >= 6 {
        p = p.arg("-iv");
    }
    if let Some(c) = std::env::var("KUBE_RSYNC_COMPRESS").ok().filter(|c| c != "0" && !c.is_empty()) {
        p = p.arg(format!("--compress-level={c}"));
    }
    let p = p.args(extra).arg(src).arg(dst);
    if engine.planned(&p) {
        return Ok(String::new());
    }
    let step = log::Step::start(label);
    let out = p.output_with_progress(label, Duration::from_secs(15))?;
    if !out.success() {
        return Err(Fail::new(format!("{label} failed: {}", out.first_lines(3).replace('\n', " | "))));
    }
    step.done();
    Ok(out.stdout)
}

pub fn sync_in(setup: &Setup, rsyncd: &Rsyncd, engine: &Engine) -> Result<()> {
    let mut args: Vec<String> = vec!["--delete".into()];
    args.extend(SYNC_IN_FILTERS.iter().map(|f| format!("--filter={f}")));
    rsync(
        engine,
        setup,
        &args,
        &format!("{}/", setup.tree.root),
        &rsyncd.module(),
        "syncing sources into the data container",
    )
    .map(drop)
}

/// The copy-out filters: the tree's own, with the container GOPATH excluded where the tree does
/// not exclude it yet (later Era B trees do, after the bin rule). Without it, `+ */` walks the
/// whole Go cache of the data container on every copy-out, for nothing: no file there matches.
pub fn copy_out_filters(tree: &Tree) -> Vec<String> {
    let mut filters = tree_filters(tree, "kube::build::copy_output");
    if filters.is_empty() {
        return COPY_OUT_FILTERS.iter().map(|s| s.to_string()).collect();
    }
    if !filters.iter().any(|f| f.contains("/_output/dockerized/go")) {
        let at = filters.iter().position(|f| f == "+ /_output/dockerized/bin/**").map_or(0, |i| i + 1);
        filters.insert(at, "- /_output/dockerized/go/**".into());
    }
    filters
}

/// Files the command rewrote in the data container and the copy-out left there: the volume
/// still equals the tree if their content is the same on both sides (one dry-run rsync by
/// checksum, of these files only). Err says which one differs.
fn same_content(setup: &Setup, rsyncd: &Rsyncd, engine: &Engine, files: &[String]) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    let list = setup.tree.path("_output/dockerized/.kit-compare");
    let compare = || -> Result<String> {
        setup.tree.write_file(&list, (files.join("\n") + "\n").as_bytes())?;
        rsync(
            engine,
            setup,
            &sync::same_content_args(&list),
            &rsyncd.module(),
            setup.tree.root.as_str(),
            "comparing what the command rewrote with the tree",
        )
    };
    let answer = compare();
    let _ = setup.tree.remove_file(&list);
    let itemized = answer.map_err(|e| e.msg)?;
    match sync::differs(files, &itemized) {
        None => Ok(()),
        Some(f) => Err(format!("{f} changed and stays in the container (the copy-out filters leave it there)")),
    }
}

/// How much a copy-out looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOut<'a> {
    /// The whole data container, through the tree's filters (copy-output, build/copy-output.sh).
    Full,
    /// The same, after a wrapped command (bringing its change list back when it is in the data
    /// container).
    Everything(&'a sync::ListAt),
    /// Only the entries on the wrapper's change list, through the same filters.
    Changed(&'a sync::ListAt),
}

/// Output back, through the tree's filters. Returns rsync's itemized list (`%i %n`, every entry
/// looked at) for [`sync::settle`].
pub fn copy_out(setup: &Setup, rsyncd: &Rsyncd, engine: &Engine, how: CopyOut) -> Result<String> {
    let mut filters = copy_out_filters(&setup.tree);
    if matches!(how, CopyOut::Everything(sync::ListAt::Volume) | CopyOut::Changed(sync::ListAt::Volume)) {
        filters = sync::with_list(&filters);
    }
    let mut args: Vec<String> = vec!["--prune-empty-dirs".into(), "-ii".into(), "--out-format=%i %n".into()];
    match how {
        // Read on the daemon's side, relative to the module (the tree).
        CopyOut::Changed(sync::ListAt::Volume) => args.push(format!("--files-from=:{}", sync::CHANGED)),
        CopyOut::Changed(at) => args.push(format!("--files-from={}", at.host_path(&setup.tree))),
        _ => {}
    }
    args.extend(filters.iter().map(|f| format!("--filter={f}")));
    let label = if matches!(how, CopyOut::Changed(_)) {
        "copying what the command changed out of the data container"
    } else {
        "copying output out of the data container"
    };
    rsync(engine, setup, &args, &rsyncd.module(), setup.tree.root.as_str(), label)
}

/// The environment the scripts pass into the build container: values come from ours (`--env
/// NAME` without a value, so nothing lands on the command line), GOLDFLAGS only when set.
pub fn build_env_args() -> Vec<String> {
    let mut args = Vec::new();
    let mut pass = |name: &str, default: Option<&str>| match (std::env::var(name).is_ok(), default) {
        (true, _) => args.extend(["--env".to_string(), name.to_string()]),
        (false, Some(d)) => args.extend(["--env".to_string(), format!("{name}={d}")]),
        (false, None) => {}
    };
    pass("KUBE_FASTBUILD", Some("false"));
    pass("KUBE_BUILDER_OS", Some(std::env::consts::OS));
    pass("KUBE_VERBOSE", Some("1"));
    for n in [
        "KUBE_BUILD_WITH_COVERAGE",
        "KUBE_BUILD_PLATFORMS",
        "KUBE_CGO_OVERRIDES",
        "KUBE_STATIC_OVERRIDES",
        "FORCE_HOST_GO",
        "GO_VERSION",
        "GOTOOLCHAIN",
        "KUBE_RACE",
        "GOFLAGS",
        "GOGCFLAGS",
        "GOLDFLAGS",
        "SOURCE_DATE_EPOCH",
        "GOPROXY",
    ] {
        pass(n, None);
    }
    for (env, v) in proxy_env() {
        args.extend(["--env".to_string(), format!("{env}={v}")]);
    }
    if let Ok(cg) = std::env::var("DOCKER_CGROUP_PARENT") {
        args.extend(["--cgroup-parent".to_string(), cg]);
    }
    args
}

/// `--interactive --tty` when stdin is a terminal, else attach stdout/stderr (as the scripts).
fn attach_args() -> Vec<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        vec!["--interactive".into(), "--tty".into()]
    } else {
        vec!["--attach=stdout".into(), "--attach=stderr".into()]
    }
}

/// Runs `cmd` in a fresh build container (rsync mode: from the data container's volumes; bind
/// mode: kube-cross with the tree mounted). The container is removed afterwards, whatever happens:
/// by the engine (`--rm`) when the command ends, by us when we are interrupted. `containers`
/// says whether a container of that name is left over from a crash.
pub fn run_in_container(
    engine: &Engine,
    setup: &Setup,
    containers: &Containers,
    cmd: &[String],
    extra: &[String],
    interactive: bool,
) -> Result<Option<ExitStatus>> {
    let name = setup.names.build.clone();
    remove_leftover_build(engine, setup, containers);
    let mut cleanup = Cleanup::new(engine);
    cleanup.names.push(name.clone());
    let args = build_container_args(engine, setup, cmd, extra, interactive);
    let status = if interactive { engine.interactive(&args)? } else { engine.stream(&args, &build_label(cmd))? };
    if !kube_tree::proc::interrupted() {
        // The command ended and `--rm` removed the container.
        cleanup.keep(&name);
    }
    Ok(status)
}

/// Starts the build container without waiting for it (rsync mode, local engine): its wrapped
/// command waits for the go of [`sync::ListAt::go`], so the container's start-up overlaps the
/// stamping and syncing of the tree. It is on `cleanup` until the caller has its status.
pub fn start_build_container(
    engine: &Engine,
    setup: &Setup,
    containers: &Containers,
    cmd: &[String],
    extra: &[String],
    label: String,
    cleanup: &mut Cleanup,
) -> std::thread::JoinHandle<Result<ExitStatus>> {
    remove_leftover_build(engine, setup, containers);
    cleanup.names.push(setup.names.build.clone());
    let run = engine.cmd(&build_container_args(engine, setup, cmd, extra, false));
    std::thread::spawn(move || run.run_streaming(&label))
}

/// A build container of this tree left over from a crash would block the name (a dry run
/// plans the removal, as it cannot know).
fn remove_leftover_build(engine: &Engine, setup: &Setup, containers: &Containers) {
    if engine.dry_run || containers.get(&setup.names.build).is_some() {
        engine.destroy(&setup.names.build);
    }
}

/// How the build container's output is labelled in the progress lines: the user's command.
fn build_label(cmd: &[String]) -> String {
    format!("build container ({})", cmd.join(" "))
}

/// The `run` arguments of the build container (rsync mode: the kube-build image with the data
/// container's volumes; bind mode: kube-cross with the tree mounted).
fn build_container_args(
    engine: &Engine,
    setup: &Setup,
    cmd: &[String],
    extra: &[String],
    interactive: bool,
) -> Vec<String> {
    let name = &setup.names.build;
    let mut args: Vec<String> =
        vec!["run".into(), format!("--name={name}"), format!("--hostname={}", setup.hostname), "--rm".into()];
    args.extend(setup.labels());
    let rootless = setup.mode == Mode::Bind && engine.is_rootless();
    if !rootless {
        args.push(format!("--user={}", setup.user));
    }
    let image = match setup.mode {
        Mode::Rsync => {
            args.extend(["--volumes-from".into(), setup.names.data.clone()]);
            setup.names.image.clone()
        }
        Mode::Bind => {
            args.extend([
                "--volume".into(),
                format!("{}:{REMOTE_ROOT}", setup.tree.root),
                "--workdir".into(),
                REMOTE_ROOT.into(),
            ]);
            args.extend([
                "--env".into(),
                "KUBE_OUTPUT_SUBPATH=_output/dockerized".into(),
                "--env".into(),
                format!("HOME={REMOTE_ROOT}"),
            ]);
            args.extend([
                "--env".into(),
                "GIT_AUTHOR_EMAIL=nobody@k8s.io".into(),
                "--env".into(),
                "GIT_AUTHOR_NAME=kube-build-image".into(),
            ]);
            args.extend(["--env".into(), format!("KUBE_GIT_VERSION_FILE={REMOTE_ROOT}/.dockerized-kube-version-defs")]);
            if Utf8Path::new("/etc/localtime").exists() {
                args.extend([
                    "--mount".into(),
                    "type=bind,source=/etc/localtime,target=/etc/localtime,readonly".into(),
                ]);
            }
            setup.cross_image.clone()
        }
    };
    args.extend(build_env_args());
    args.extend(extra.iter().cloned());
    if interactive {
        args.extend(attach_args());
    } else {
        args.extend(["--attach=stdout".into(), "--attach=stderr".into()]);
    }
    args.push(image);
    args.extend(cmd.iter().cloned());
    args
}

/// The choices shared by run-dockerized and build-shell.
pub struct RunOptions {
    pub mode: Option<String>,
    pub engine: Option<String>,
    pub cross_image: Option<String>,
    pub mirror: Option<String>,
    pub copy: bool,
    pub dry_run: bool,
    /// Sync everything in and copy everything out even when the last run's record says the data
    /// container matches the tree (for a container changed by hand).
    pub full_sync: bool,
}

/// Flags that take a value (the command starts after them).
pub const RUN_VALUE_FLAGS: &[&str] = &["--mode", "--engine", "--cross-image", "--mirror"];

impl RunOptions {
    pub fn from_ctx(ctx: &mut kube_tree::cli::Ctx) -> Result<RunOptions> {
        let mirror = ctx.opt_string("--mirror")?;
        if let Some(m) = &mirror {
            values::registry("--mirror", m)?;
        }
        let cross_image = ctx.opt_string("--cross-image")?;
        if let Some(i) = &cross_image {
            values::image_ref("--cross-image", i)?;
        }
        Ok(RunOptions {
            mode: ctx.opt_string("--mode")?,
            engine: ctx.opt_string("--engine")?,
            cross_image,
            mirror,
            copy: !ctx.flag("--no-copy"),
            dry_run: ctx.flag("--dry-run"),
            full_sync: ctx.flag("--full-sync")
                || std::env::var("KUBE_RUN_FULL_SYNC").is_ok_and(|v| v.starts_with(['y', 'Y'])),
        })
    }
}

/// The outcome of a containerized run.
pub struct RunResult {
    /// None in a dry run.
    pub status: Option<ExitStatus>,
    pub plan: Vec<String>,
    pub mode: Mode,
}

/// What a run learned before deciding anything: the images, the containers, kube-cross's ID,
/// and the tree's stamps being taken meanwhile (rsync mode).
struct Opening {
    facts: ImageFacts,
    containers: Containers,
    cross_id: String,
    stamps: Option<std::thread::JoinHandle<Result<sync::HostStamps>>>,
}

/// rsync mode: image, data container, rsync daemon, sync in (unless the sync record proves it
/// would change nothing), the build container, copy out, and a new sync record when the run
/// can prove the data container equals the tree again (see [`sync`]).
fn rsync_cycle(
    engine: &Engine,
    setup: &Setup,
    opts: &RunOptions,
    open: Opening,
    cmd: &[String],
    interactive: bool,
) -> Result<Option<ExitStatus>> {
    let (image_id, built) = build_image(engine, setup, &open.cross_id, &open.facts)?;
    remove_old_versions(engine, setup, &open.containers, built)?;
    let data_id = ensure_data_container(engine, setup, &open.containers)?;
    let key = rsyncd_key(&image_id, &data_id, &setup.user);
    let mut cleanup = Cleanup::new(engine);
    let mut rsyncd = start_rsyncd(engine, setup, &key, Some(&open.containers), &mut cleanup)?;
    // A shell is the user's terminal, not wrapped: with no change list, the next run syncs in
    // full. A local engine gets the list in a host directory, a remote one in the data container.
    let wrapped = !interactive;
    let list_at = if opts.dry_run || engine.is_remote() {
        sync::ListAt::Volume
    } else {
        sync::ListAt::Host(setup.tree.path("_output/dockerized/.kit-run"))
    };
    if !opts.dry_run {
        list_at.prepare(&setup.tree)?;
    }
    let (command, extra) =
        if wrapped { (sync::wrap(cmd, &list_at), list_at.engine_args()) } else { (cmd.to_vec(), Vec::new()) };
    // With the list in a host directory, the build container starts now and its command waits
    // for a go there: the container's start-up, most of a no-op run, overlaps the stamping and
    // the sync.
    let early = (wrapped && matches!(list_at, sync::ListAt::Host(_))).then(|| {
        start_build_container(engine, setup, &open.containers, &command, &extra, build_label(cmd), &mut cleanup)
    });
    let stamps = match open.stamps.map(|h| h.join().expect("the stamps thread panicked")) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            log::status_v(2, format!("no sync record this time: {e}"));
            None
        }
        None => None,
    };
    // The last run's record holds while nothing it names has changed: the same data container,
    // the same daemon (the scripts replace it), the same tree stamps.
    let in_sync = !opts.full_sync
        && rsyncd.reused
        && sync::Record::load(&setup.tree).is_some_and(|r| {
            r.data == data_id && r.rsyncd == rsyncd.id && stamps.as_ref().is_some_and(|s| s.sum == r.host)
        });
    if !opts.dry_run {
        sync::Record::forget(&setup.tree)?;
    }
    if in_sync {
        log::status(
            "sources unchanged since the last sync (same tree stamps, data container and rsync daemon): not syncing",
        );
    } else if let Err(e) = sync_in(setup, &rsyncd, engine) {
        if !rsyncd.reused || kube_tree::proc::interrupted() {
            return Err(e);
        }
        log::warn(format!("the rsync daemon left running did not serve ({e}): starting a new one"));
        rsyncd = start_rsyncd(engine, setup, &key, None, &mut cleanup)?;
        sync_in(setup, &rsyncd, engine)?;
    }
    let status = match early {
        Some(running) => {
            list_at.go(&setup.tree)?;
            let status = running.join().expect("the build container thread panicked")?;
            if !kube_tree::proc::interrupted() {
                // The command ended and `--rm` removed the container.
                cleanup.keep(&setup.names.build);
            }
            Some(status)
        }
        None => run_in_container(engine, setup, &open.containers, &command, &extra, interactive)?,
    };
    let ok = status.is_none_or(|s| s.success());
    let keep = ok && keep_rsyncd() && !kube_tree::proc::interrupted();
    if opts.copy && ok {
        let full = if wrapped { CopyOut::Everything(&list_at) } else { CopyOut::Full };
        let host_list = match list_at {
            sync::ListAt::Host(_) => std::fs::read_to_string(list_at.host_path(&setup.tree)).ok(),
            sync::ListAt::Volume => None,
        };
        let first = match (&host_list, &list_at) {
            (Some(l), _) if in_sync && l.trim().is_empty() => None,
            (Some(_), _) | (None, sync::ListAt::Volume) if in_sync => Some(CopyOut::Changed(&list_at)),
            _ => Some(full),
        };
        // A daemon left running that fails here (on a run that skipped the sync-in, this is its
        // first use) is replaced, and everything is copied out through the new one.
        let itemized = match first.map(|how| copy_out(setup, &rsyncd, engine, how)) {
            None => {
                log::status_v(2, "the command changed nothing in the data container: nothing to copy out");
                String::new()
            }
            Some(Ok(itemized)) => itemized,
            Some(Err(e)) if rsyncd.reused && !kube_tree::proc::interrupted() => {
                log::warn(format!(
                    "the rsync daemon left running did not serve ({e}): copying everything out through a new one"
                ));
                rsyncd = start_rsyncd(engine, setup, &key, None, &mut cleanup)?;
                copy_out(setup, &rsyncd, engine, full)?
            }
            Some(Err(e)) => return Err(e),
        };
        let changed = host_list.or_else(|| std::fs::read_to_string(list_at.host_path(&setup.tree)).ok());
        let _ = setup.tree.remove_file(list_at.host_path(&setup.tree));
        // The record needs the daemon it names to stay, and the stamps taken before the sync.
        if let (true, Some(mut stamps), Some(changed)) = (wrapped && keep && !opts.dry_run, stamps, changed) {
            let verdict = sync::settle(&setup.tree.root, &changed, list_at.dirs().as_deref(), &itemized, &mut stamps)
                .and_then(|kept| same_content(setup, &rsyncd, engine, &kept));
            match verdict {
                Ok(()) => {
                    sync::Record { data: data_id, rsyncd: rsyncd.id.clone(), host: stamps.sum }.save(&setup.tree)?
                }
                Err(why) => log::status(format!(
                    "the next run syncs in full: the data container differs from the tree after this command ({why})"
                )),
            }
        }
    }
    if keep {
        cleanup.keep(&setup.names.rsync);
    }
    Ok(status)
}

/// The whole containerized run of `cmd`: image, data container, sync in, build, copy out (rsync
/// mode), or kube-cross with the tree mounted (bind mode). Containers it starts are removed on
/// every path out, including SIGINT/SIGTERM.
pub fn run(tree: Tree, opts: &RunOptions, cmd: &[String], interactive: bool) -> Result<RunResult> {
    kube_tree::proc::install_interrupt_handler();
    let engine = Engine::new(opts.engine.clone(), opts.dry_run)?;
    let setup = Setup::new(tree, &engine, opts.mode.as_deref(), opts.cross_image.clone())?;
    // Written before the tree is stamped: it is part of what gets synced.
    if !opts.dry_run {
        save_version_defs(&setup)?;
    }
    // The opening questions, side by side: is the engine there, what images and containers
    // does it hold (everything up to the build container is decided from these answers), and
    // meanwhile, the stamps of the tree for the sync record.
    let stamps = (setup.mode == Mode::Rsync && !opts.dry_run).then(|| {
        let root = setup.tree.root.clone();
        std::thread::spawn(move || sync::HostStamps::take(&root))
    });
    let mut questions = vec![Engine::info_cmd(), ImageFacts::cmd(&setup), Containers::cmd()];
    questions.extend(engine.context_cmd());
    let answers = engine.query_all(&questions)?;
    engine.take_info(answers[0].as_ref())?;
    engine.take_context(answers.get(3).and_then(Option::as_ref));
    log::status(format!(
        "{} mode, image {}, tree hash {}",
        setup.mode.name(),
        match setup.mode {
            Mode::Rsync => &setup.names.image,
            Mode::Bind => &setup.cross_image,
        },
        setup.names.hash
    ));
    let facts = ImageFacts::read(&engine, &setup, answers[1].as_ref())?;
    let containers = Containers::read(answers[2].as_ref())?;
    let cross_id = ensure_cross_image(&engine, &setup, opts.mirror.as_deref(), facts.cross_id.clone())?;
    let status = match setup.mode {
        Mode::Rsync => {
            rsync_cycle(&engine, &setup, opts, Opening { facts, containers, cross_id, stamps }, cmd, interactive)?
        }
        Mode::Bind => {
            if !opts.dry_run {
                setup.tree.confined("_output/dockerized")?.create_dir_all()?;
            }
            run_in_container(&engine, &setup, &containers, cmd, &[], interactive)?
        }
    };
    if kube_tree::proc::interrupted() {
        return Err(Fail::interrupted());
    }
    let plan = engine.plan.borrow().clone();
    Ok(RunResult { status, plan, mode: setup.mode })
}

/// What make-clean would remove.
#[derive(Debug, Default)]
pub struct CleanPlan {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub dangling: Vec<String>,
    pub output: Option<kube_tree::Confined>,
}

pub fn clean_plan(engine: Option<&Engine>, setup: &Setup, all_dangling: bool) -> Result<CleanPlan> {
    let mut plan = CleanPlan::default();
    if let Some(e) = engine {
        plan.containers = containers_of(e, setup)?;
        plan.images = images_of(e, setup)?;
        if all_dangling {
            plan.dangling = e
                .query(&["images", "-q", "--filter", "dangling=true"])?
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
        }
    }
    let out = setup.tree.confined("_output")?;
    if out.exists() {
        plan.output = Some(out);
    }
    Ok(plan)
}

/// Makes everything under `dir` writable by its owner (Go's module cache is read-only), never
/// following a symlink.
fn make_writable(dir: &Utf8Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(dir)?;
    if md.file_type().is_symlink() {
        return Ok(());
    }
    let mode = md.permissions().mode();
    if mode & 0o200 == 0 {
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o200))?;
    }
    if md.is_dir() {
        for e in fs_err::read_dir(dir)? {
            let p =
                Utf8PathBuf::from_path_buf(e?.path()).map_err(|p| Fail::new(format!("not UTF-8: {}", p.display())))?;
            make_writable(&p)?;
        }
    }
    Ok(())
}

pub fn apply_clean(engine: Option<&Engine>, plan: &CleanPlan) -> Result<()> {
    if let Some(e) = engine {
        for c in &plan.containers {
            e.destroy(c);
        }
        for i in plan.images.iter().chain(plan.dangling.iter()) {
            let _ = e.run(&["rmi", i]);
        }
    }
    if let Some(out) = &plan.output {
        // A link in place of _output is removed as a link; its target is never touched.
        if !fs_err::symlink_metadata(out.path())?.file_type().is_symlink() {
            make_writable(&out.path())?;
        }
        out.remove_dir_all()?;
    }
    Ok(())
}

/// The glob patterns of what copy-output brings back (for reporting what landed).
pub const OUTPUT_GLOBS: &[&str] = &["_output/dockerized/bin/*/*/*"];

/// Binaries the containerized build left in the tree (`_output/dockerized/bin/<os>/<arch>/*`).
pub fn built_binaries(tree: &Tree) -> Vec<Utf8PathBuf> {
    let mut v = Vec::new();
    for pat in OUTPUT_GLOBS {
        if let Ok(paths) = glob::glob(tree.path(pat).as_str()) {
            v.extend(paths.flatten().filter_map(|p| Utf8PathBuf::from_path_buf(p).ok()).filter(|p| p.is_file()));
        }
    }
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_build_common_sh() {
        // `printf 'host:/src/kubernetes:master' | md5sum` = 20178bb46259346c90c5606e86a56f0c
        let n = Names::new("host", Utf8Path::new("/src/kubernetes"), "master", "5-v1.15.5-1");
        assert_eq!(n.hash, "20178bb462");
        assert_eq!(n.image, format!("kube-build:build-{}-5-v1.15.5-1", n.hash));
        assert_eq!(n.data, format!("kube-build-data-{}-5-v1.15.5-1", n.hash));
        assert_eq!(n.prefixes()[1], format!("kube-rsync-{}", n.hash));
    }

    #[test]
    fn one_ps_listing_answers_reuse_and_garbage_collection() {
        let text = "c1\tkube-build-data-20178bb462-5-v1.15.5-1\t/src/kubernetes\t\texited\tExited (0) 3 minutes ago\t\n\
                    c2\tkube-rsync-20178bb462-5-v1.15.5-1\t/src/kubernetes\tabc\trunning\tUp 2 minutes\t127.0.0.1:49153->8730/tcp\n\
                    c3\tkube-build-data-20178bb462-5-v1.14.0-1\t\t\texited\tExited (137) 2 days ago\t\n\
                    c4\tother\t\t\tcreated\tCreated\t0.0.0.0:8080->80/tcp, :::8080->80/tcp\n";
        let l = Containers::parse(text);
        assert_eq!(l.0.len(), 4);
        assert_eq!(l.get("kube-build-data-20178bb462-5-v1.15.5-1").unwrap().exit_code(), Some(0));
        assert_eq!(l.get("kube-build-data-20178bb462-5-v1.14.0-1").unwrap().exit_code(), Some(137));
        let rsync = l.get("kube-rsync-20178bb462-5-v1.15.5-1").unwrap();
        assert_eq!((rsync.key.as_str(), rsync.state.as_str(), rsync.exit_code()), ("abc", "running", None));
        assert_eq!(rsync.host_port(8730), Some(49153));
        // Published elsewhere than 127.0.0.1, or another port: not ours to use.
        assert_eq!(l.get("other").unwrap().host_port(80), None);
        assert_eq!(rsync.host_port(873), None);
        assert_eq!(l.get("other").unwrap().exit_code(), None);

        let tree = kube_tree::fixture::scratch_tree("dockerized-ps", &kube_tree::fixture::Spec::era_b());
        let tree = Tree::open(&tree).unwrap();
        let names = Names::new("host", Utf8Path::new("/src/kubernetes"), "master", "5-v1.15.5-1");
        let setup = Setup {
            tree,
            mode: Mode::Rsync,
            names,
            cross_image: String::new(),
            hostname: "host".into(),
            user: "0:0".into(),
        };
        // By name prefix (the scripts' containers carry no label), of any version.
        assert_eq!(setup.names.hash, "20178bb462");
        assert_eq!(
            l.of_tree(&setup),
            [
                "kube-build-data-20178bb462-5-v1.14.0-1",
                "kube-build-data-20178bb462-5-v1.15.5-1",
                "kube-rsync-20178bb462-5-v1.15.5-1"
            ]
        );
    }

    #[test]
    fn labels_are_read_out_of_the_inspect_json() {
        let json = r#"{"io.k8s-build-kit.context":"0123abcd","io.k8s-build-kit.owner":"k8s-build-kit"}"#;
        assert_eq!(label_of(json, "io.k8s-build-kit.context"), "0123abcd");
        assert_eq!(label_of("null", "io.k8s-build-kit.context"), "");
    }

    #[test]
    fn copy_out_excludes_the_container_gopath_once() {
        let root = kube_tree::fixture::scratch_tree("dockerized-filters", &kube_tree::fixture::Spec::era_b());
        let v120 = "function kube::build::copy_output() {\n  kube::build::rsync \\\n    --prune-empty-dirs \\\n    --filter='- /_temp/' \\\n    --filter='+ /_output/dockerized/bin/**' \\\n    --filter='+ types.go' \\\n    --filter='+ */' \\\n    --filter='- /**' \\\n    \"rsync://k8s@${KUBE_RSYNC_ADDR}/k8s/\" \"${KUBE_ROOT}\"\n}\n";
        std::fs::write(root.join("build/common.sh"), v120).unwrap();
        let tree = Tree::open(&root).unwrap();
        assert_eq!(
            copy_out_filters(&tree),
            ["- /_temp/", "+ /_output/dockerized/bin/**", "- /_output/dockerized/go/**", "+ types.go", "+ */", "- /**"]
        );
        // A tree that excludes it already is left as it is.
        std::fs::write(root.join("build/common.sh"), v120.replace("+ types.go", "- /_output/dockerized/go/**"))
            .unwrap();
        let f = copy_out_filters(&tree);
        assert_eq!(f.iter().filter(|f| f.contains("dockerized/go")).count(), 1, "{f:?}");
        // No function at all: the Era B list.
        std::fs::write(root.join("build/common.sh"), "").unwrap();
        assert_eq!(copy_out_filters(&tree), COPY_OUT_FILTERS);
    }

    #[test]
    fn the_rsyncd_key_changes_with_what_the_daemon_serves() {
        let k = rsyncd_key("sha256:img", "data1", "1000:1000");
        assert_eq!(k.len(), 16);
        assert_eq!(k, rsyncd_key("sha256:img", "data1", "1000:1000"));
        assert_ne!(k, rsyncd_key("sha256:img", "data2", "1000:1000"), "a replaced data container");
        assert_ne!(k, rsyncd_key("sha256:img2", "data1", "1000:1000"), "a rebuilt image (new password)");
        assert_ne!(k, rsyncd_key("sha256:img", "data1", "0:0"), "another user");
    }
}
