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

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::{Captured, Proc};
use kube_tree::{fsx, log, version, Era, Fail, Tree};
use std::cell::RefCell;
use std::process::ExitStatus;
use std::time::Duration;

pub const LABEL_OWNER: &str = "io.k8s-build-kit.owner";
pub const LABEL_TREE: &str = "io.k8s-build-kit.tree";
pub const LABEL_HASH: &str = "io.k8s-build-kit.hash";
pub const OWNER: &str = "k8s-build-kit";
/// Where the tree lives inside every container.
pub const REMOTE_ROOT: &str = "/go/src/k8s.io/kubernetes";
/// Engine memory below which builds get killed (build/README.md, PR #62219).
pub const MIN_MEMORY: u64 = 4_500_000_000;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// The container engine CLI (`docker` or `podman`), with `DOCKER_OPTS`, in dry-run or for real.
pub struct Engine {
    pub program: String,
    opts: Vec<String>,
    pub dry_run: bool,
    /// Commands a dry run would have run, in order.
    pub plan: RefCell<Vec<String>>,
    remote: std::cell::OnceCell<bool>,
}

impl Engine {
    /// `--engine` > `KUBE_CONTAINER_ENGINE` > docker.
    pub fn new(flag: Option<String>, dry_run: bool) -> Result<Engine> {
        let program = flag.or_else(|| std::env::var("KUBE_CONTAINER_ENGINE").ok()).unwrap_or_else(|| "docker".into());
        if !["docker", "podman"].contains(&program.as_str()) && !program.contains('/') {
            return Err(Fail::new(format!("unknown engine `{program}` (docker or podman)")));
        }
        let opts = std::env::var("DOCKER_OPTS").unwrap_or_default().split_whitespace().map(str::to_string).collect();
        Ok(Engine { program, opts, dry_run, plan: RefCell::new(Vec::new()), remote: std::cell::OnceCell::new() })
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
            return Err(Fail::new(format!("`{}` failed: {}", short(&p.display()), out.first_lines(2).replace('\n', " | "))));
        }
        Ok(out)
    }

    /// Asks the engine something; None if it says no (or in a dry run, where nothing is asked).
    pub fn query<S: AsRef<str>>(&self, args: &[S]) -> Result<Option<String>> {
        let p = self.cmd(args);
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
            if self.program != "docker" || self.dry_run {
                return None;
            }
            self.cmd(&["context", "inspect", "--format", "{{.Endpoints.docker.Host}}"]).read().ok().map(|s| s.trim().to_string())
        });
        host.is_some_and(|h| h.starts_with("tcp://") || h.starts_with("ssh://") || h.starts_with("http"))
    }

    /// `docker info`: reachable, with how much memory. Unreachable is an environment error.
    pub fn check(&self) -> Result<()> {
        let p = self.cmd(&["info", "--format", "{{.MemTotal}}"]);
        if self.planned(&p) {
            return Ok(());
        }
        let out = p.output()?;
        if !out.success() {
            return Err(Fail::new(format!("cannot reach the {} engine: {} (start the daemon, or check DOCKER_HOST / the context)", self.program, out.first_lines(1))));
        }
        let mem: u64 = out.stdout.trim().parse().unwrap_or(u64::MAX);
        if mem < MIN_MEMORY {
            log::warn(format!("the engine has {:.1} GB of memory; builds need at least 4.5 GB (linker kills otherwise): raise it (Docker Desktop: Settings > Resources)", mem as f64 / 1e9));
        }
        Ok(())
    }
}

fn fake_ok() -> Captured {
    use std::os::unix::process::ExitStatusExt;
    Captured { status: ExitStatus::from_raw(0), stdout: String::new(), stderr: String::new(), elapsed: Duration::ZERO }
}

fn short(s: &str) -> String {
    if s.len() > 160 { format!("{}...", &s[..157]) } else { s.to_string() }
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
        [format!("kube-build-{}", self.hash), format!("kube-rsync-{}", self.hash), format!("kube-build-data-{}", self.hash)]
    }
}

/// `$HOSTNAME` as bash sets it (our environment may not have it).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()))
        .or_else(|| Proc::new("hostname").read().ok().map(|s| s.trim().to_string()))
        .unwrap_or_default()
}

fn uid_gid() -> Result<String> {
    let id = |f: &str| Proc::new("id").arg(f).read().map(|s| s.trim().to_string());
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
            return Err(Fail::new("--mode bind needs a local engine: this one is remote (DOCKER_HOST/context), use the rsync mode"));
        }
        let tag = std::env::var("KUBE_CROSS_VERSION").ok().filter(|s| !s.is_empty()).or_else(|| tree.cross_tag.clone())
            .ok_or_else(|| Fail::new("no build/build-image/cross/VERSION in the tree and no KUBE_CROSS_VERSION"))?;
        let cross_image = match cross_image.or_else(|| std::env::var("KUBE_CROSS_IMAGE").ok().filter(|s| !s.is_empty())) {
            Some(img) if img.rsplit('/').next().is_some_and(|last| last.contains(':')) => img,
            Some(repo) => format!("{repo}:{tag}"),
            None => format!("{}:{tag}", tree_cross_repo(&tree)),
        };
        let version = if tree.era == Era::C {
            "6".to_string()
        } else {
            let base = std::fs::read_to_string(tree.path("build/build-image/VERSION")).map(|s| s.trim().to_string()).unwrap_or_else(|_| "5".into());
            format!("{base}-{tag}")
        };
        let branch = if tree.path(".git").exists() {
            Proc::new("git").args(["symbolic-ref", "--short", "-q", "HEAD"]).dir(&tree.root).read().map(|s| s.trim().to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        let hostname = hostname();
        let names = Names::new(&hostname, &tree.root, &branch, &version);
        Ok(Setup { tree, mode, names, cross_image, hostname, user: uid_gid()? })
    }

    pub fn labels(&self) -> Vec<String> {
        vec![
            "--label".into(), format!("{LABEL_OWNER}={OWNER}"),
            "--label".into(), format!("{LABEL_TREE}={}", self.tree.root),
            "--label".into(), format!("{LABEL_HASH}={}", self.names.hash),
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
    let path = setup.tree.path(".dockerized-kube-version-defs");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        fsx::atomic_write(&path, text.as_bytes())?;
    }
    Ok(())
}

/// kube-cross must be there (no registry is assumed reachable); `--mirror` pulls it from a mirror
/// and tags it with the name the tree expects. Returns its image ID (empty in a dry run).
pub fn ensure_cross_image(engine: &Engine, setup: &Setup, mirror: Option<&str>) -> Result<String> {
    let inspect = || engine.query(&["image", "inspect", "--format", "{{.Id}}", &setup.cross_image]);
    if let Some(id) = inspect()? {
        return Ok(id);
    }
    if let Some(m) = mirror {
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
fn ensure_password(path: &Utf8Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if path.is_file() {
        return Ok(());
    }
    let mut raw = vec![0u8; 512];
    use std::io::Read;
    fs_err::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    let pw: String = raw.iter().map(|b| *b as char).filter(|c| c.is_ascii_alphanumeric()).take(32).collect();
    fsx::atomic_write(path, pw.as_bytes())?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Builds `kube-build:build-<hash>-<version>` from the tree's build/build-image, unless an image
/// built from the same context (and the same kube-cross, `cross_id`) is there already.
pub fn build_image(engine: &Engine, setup: &Setup, cross_id: &str) -> Result<()> {
    let ctx = setup.context_dir();
    if engine.dry_run {
        let mut args: Vec<String> = vec!["build".into(), "-t".into(), setup.names.image.clone(), "--pull=false".into()];
        args.extend(setup.labels());
        args.push(ctx.to_string());
        engine.run(&args)?;
        return Ok(());
    }
    fs_err::create_dir_all(&ctx)?;
    let src = setup.tree.path("build/build-image");
    let mut dockerfile = fs_err::read_to_string(src.join("Dockerfile"))?;
    let tag = setup.cross_image.rsplit_once(':').map(|x| x.1).unwrap_or("");
    let placeholder = dockerfile.contains("KUBE_BUILD_IMAGE_CROSS_TAG");
    if placeholder {
        // Era A style: the FROM line carries a placeholder the scripts sed; the whole image name
        // is written, so a --cross-image or mirror choice is honoured too.
        dockerfile = dockerfile
            .lines()
            .map(|l| if l.trim_start().starts_with("FROM ") && l.contains("KUBE_BUILD_IMAGE_CROSS_TAG") { format!("FROM {}", setup.cross_image) } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
    }
    for (var, env) in [("KUBERNETES_HTTPS_PROXY", "https_proxy"), ("KUBERNETES_HTTP_PROXY", "http_proxy"), ("KUBERNETES_NO_PROXY", "no_proxy")] {
        if let Ok(v) = std::env::var(var) {
            dockerfile += &format!("ENV {env} {v}\n");
        }
    }
    fsx::atomic_write(&ctx.join("Dockerfile"), dockerfile.as_bytes())?;
    fsx::atomic_write(&ctx.join("rsyncd.sh"), &fs_err::read(src.join("rsyncd.sh"))?)?;
    let localtime = std::fs::read("/etc/localtime").unwrap_or_default();
    fsx::atomic_write(&ctx.join("localtime"), &localtime)?;
    ensure_password(&setup.password_file())?;

    let mut key = Vec::new();
    for f in ["Dockerfile", "rsyncd.sh", "localtime", "rsyncd.password"] {
        key.extend(fs_err::read(ctx.join(f))?);
    }
    key.extend(cross_id.as_bytes());
    let context_hash = md5::hex(&key);
    let have = engine.query(&["image", "inspect", "--format", "{{index .Config.Labels \"io.k8s-build-kit.context\"}}", &setup.names.image])?;
    if have.as_deref() == Some(context_hash.as_str()) {
        log::status_v(2, format!("{} is up to date", setup.names.image));
        return Ok(());
    }
    let step = log::Step::start(format!("building {}", setup.names.image));
    let mut args: Vec<String> = vec!["build".into(), "-t".into(), setup.names.image.clone(), "--pull=false".into()];
    args.extend(setup.labels());
    args.extend(["--label".into(), format!("io.k8s-build-kit.context={context_hash}")]);
    if !placeholder {
        let (repo, tag) = setup.cross_image.rsplit_once(':').unwrap_or((&setup.cross_image, tag));
        args.extend(["--build-arg".into(), format!("KUBE_CROSS_IMAGE={repo}"), "--build-arg".into(), format!("KUBE_CROSS_VERSION={tag}")]);
    }
    args.push(ctx.to_string());
    engine.run(&args)?;
    step.done();
    Ok(())
}

/// Removes this tree's containers and images of other versions (the scripts' garbage collection).
pub fn remove_old_versions(engine: &Engine, setup: &Setup) -> Result<()> {
    if engine.dry_run {
        return Ok(());
    }
    let current = [&setup.names.build, &setup.names.rsync, &setup.names.data];
    for name in containers_of(engine, setup)? {
        if !current.contains(&&name) {
            log::status(format!("removing {name} (an older version of this tree's build)"));
            engine.destroy(&name);
        }
    }
    for img in images_of(engine, setup)? {
        if img != setup.names.image {
            let _ = engine.run(&["rmi", &img]);
        }
    }
    Ok(())
}

/// This tree's containers: by name prefix (the scripts' scheme) or by our tree label.
pub fn containers_of(engine: &Engine, setup: &Setup) -> Result<Vec<String>> {
    let listing = engine.query(&["ps", "-a", "--format", "{{.Names}}\t{{.Label \"io.k8s-build-kit.tree\"}}"])?.unwrap_or_default();
    let prefixes = setup.names.prefixes();
    let mut out: Vec<String> = listing
        .lines()
        .filter_map(|l| {
            let (name, tree) = l.split_once('\t').unwrap_or((l, ""));
            let ours = prefixes.iter().any(|p| name.starts_with(&format!("{p}-")) || name == p) || tree == setup.tree.root.as_str();
            ours.then(|| name.to_string())
        })
        .collect();
    out.sort();
    Ok(out)
}

/// This tree's kube-build images (`kube-build:build-<hash>*`).
pub fn images_of(engine: &Engine, setup: &Setup) -> Result<Vec<String>> {
    let listing = engine.query(&["images", "kube-build", "--format", "{{.Repository}}:{{.Tag}}"])?.unwrap_or_default();
    let prefix = format!("kube-build:build-{}", setup.names.hash);
    Ok(listing.lines().filter(|l| l.starts_with(&prefix)).map(str::to_string).collect())
}

/// The data container: sources, caches and outputs live in its volumes between builds. One that
/// exited non-zero is recreated (a stale data container was the cause of #20904).
pub fn ensure_data_container(engine: &Engine, setup: &Setup) -> Result<()> {
    let data = &setup.names.data;
    match engine.query(&["inspect", "-f", "{{.State.ExitCode}}", data])? {
        Some(code) if code == "0" => return Ok(()),
        Some(code) => {
            log::warn(format!("{data} exited with {code}: recreating it"));
            engine.destroy(data);
        }
        None => {}
    }
    let step = log::Step::start(format!("creating the data container {data}"));
    let mut args: Vec<String> = vec!["run".into(), "--name".into(), data.clone(), "--hostname".into(), setup.hostname.clone()];
    args.extend(setup.labels());
    args.extend(["--volume".into(), REMOTE_ROOT.into()]);
    for p in ["linux_386", "linux_amd64", "linux_arm", "linux_arm64", "linux_ppc64le", "darwin_amd64", "darwin_386", "windows_amd64", "windows_386"] {
        args.extend(["--volume".into(), format!("/usr/local/go/pkg/{p}_cgo")]);
    }
    args.push(setup.names.image.clone());
    args.extend(["chown".into(), "-R".into(), setup.user.clone(), REMOTE_ROOT.into(), "/usr/local/go/pkg/".into()]);
    engine.run(&args)?;
    step.done();
    Ok(())
}

/// A running rsync daemon container and where to reach it.
pub struct Rsyncd {
    pub addr: String,
}

/// Starts the rsync daemon container, published on 127.0.0.1 only (`KUBE_RSYNC_PORT` or an
/// ephemeral port), and waits until it answers. The caller's [`Cleanup`] removes it.
pub fn start_rsyncd(engine: &Engine, setup: &Setup, cleanup: &mut Cleanup) -> Result<Rsyncd> {
    let name = &setup.names.rsync;
    engine.destroy(name);
    let port = std::env::var("KUBE_RSYNC_PORT").unwrap_or_default();
    // A pinned port that something else holds: say so before docker does (or, where the engine
    // publishes through iptables instead of a proxy, silently does not).
    if let Ok(p) = port.parse::<u16>() {
        if !engine.dry_run && !engine.is_remote() && std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
            return Err(Fail::new(format!("rsync port 127.0.0.1:{port} is taken: unset KUBE_RSYNC_PORT for an ephemeral port, or choose another")));
        }
    }
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone(), "--user".into(), setup.user.clone(), "--hostname".into(), setup.hostname.clone()];
    args.extend(["--volumes-from".into(), setup.names.data.clone()]);
    args.extend(setup.labels());
    args.extend(["-p".into(), format!("127.0.0.1:{port}:8730"), setup.names.image.clone(), "/rsyncd.sh".into()]);
    cleanup.names.push(name.clone());
    if let Err(e) = engine.run(&args) {
        if e.msg.contains("already allocated") || e.msg.contains("address already in use") {
            return Err(Fail::new(format!("rsync port 127.0.0.1:{port} is taken: unset KUBE_RSYNC_PORT for an ephemeral port, or choose another")));
        }
        return Err(e);
    }
    if engine.dry_run {
        return Ok(Rsyncd { addr: format!("127.0.0.1:{}", if port.is_empty() { "PORT" } else { &port }) });
    }
    let mapped = engine.query(&["port", name, "8730"])?.ok_or_else(|| Fail::new("could not get the effective rsync port (the rsync container did not come up)"))?;
    let port = mapped.lines().next().and_then(|l| l.rsplit(':').next()).unwrap_or("").to_string();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        let probe = Proc::new("rsync").arg(format!("rsync://k8s@{addr}/")).arg(format!("--password-file={}", setup.password_file())).output()?;
        if probe.success() {
            return Ok(Rsyncd { addr });
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
pub const SYNC_IN_FILTERS: &[&str] = &["- /.make/", "- /_tmp/", "- /_output/", "- /"];

/// Output back: binaries and generated files (Era B list; the tree's own is used when it has one).
pub const COPY_OUT_FILTERS: &[&str] = &[
    "- /_temp/", "+ /vendor/", "+ /staging/***/Godeps/**", "+ /_output/dockerized/bin/**", "- /_output/dockerized/go/**",
    "+ zz_generated.*", "+ generated.proto", "+ *.pb.go", "+ types.go", "+ */", "- /**",
];

fn rsync(engine: &Engine, setup: &Setup, extra: &[String], src: &str, dst: &str, label: &str) -> Result<()> {
    let mut p = Proc::new("rsync").arg("--archive").arg(format!("--password-file={}", setup.password_file()));
    if kube_tree::log::level() >= 6 {
        p = p.arg("-iv");
    }
    if let Some(c) = std::env::var("KUBE_RSYNC_COMPRESS").ok().filter(|c| c != "0" && !c.is_empty()) {
        p = p.arg(format!("--compress-level={c}"));
    }
    let p = p.args(extra).arg(src).arg(dst);
    if engine.planned(&p) {
        return Ok(());
    }
    let step = log::Step::start(label);
    let out = p.output_with_progress(label, Duration::from_secs(15))?;
    if !out.success() {
        return Err(Fail::new(format!("{label} failed: {}", out.first_lines(3).replace('\n', " | "))));
    }
    step.done();
    Ok(())
}

pub fn sync_in(setup: &Setup, rsyncd: &Rsyncd, engine: &Engine) -> Result<()> {
    let mut args: Vec<String> = vec!["--delete".into()];
    args.extend(SYNC_IN_FILTERS.iter().map(|f| format!("--filter={f}")));
    rsync(engine, setup, &args, &format!("{}/", setup.tree.root), &format!("rsync://k8s@{}/k8s/", rsyncd.addr), "syncing sources into the data container")
}

pub fn copy_out(setup: &Setup, rsyncd: &Rsyncd, engine: &Engine) -> Result<()> {
    let tree_filters = tree_filters(&setup.tree, "kube::build::copy_output");
    let filters: Vec<String> = if tree_filters.is_empty() { COPY_OUT_FILTERS.iter().map(|s| s.to_string()).collect() } else { tree_filters };
    let mut args: Vec<String> = vec!["--prune-empty-dirs".into()];
    args.extend(filters.iter().map(|f| format!("--filter={f}")));
    rsync(engine, setup, &args, &format!("rsync://k8s@{}/k8s/", rsyncd.addr), setup.tree.root.as_str(), "copying output out of the data container")
}

/// The environment the scripts pass into the build container: values come from ours (`--env
/// NAME` without a value, so nothing lands on the command line), GOLDFLAGS only when set.
pub fn build_env_args() -> Vec<String> {
    let mut args = Vec::new();
    let mut pass = |name: &str, default: Option<&str>| {
        match (std::env::var(name).is_ok(), default) {
            (true, _) => args.extend(["--env".to_string(), name.to_string()]),
            (false, Some(d)) => args.extend(["--env".to_string(), format!("{name}={d}")]),
            (false, None) => {}
        }
    };
    pass("KUBE_FASTBUILD", Some("false"));
    pass("KUBE_BUILDER_OS", Some(std::env::consts::OS));
    pass("KUBE_VERBOSE", Some("1"));
    for n in ["KUBE_BUILD_WITH_COVERAGE", "KUBE_BUILD_PLATFORMS", "KUBE_CGO_OVERRIDES", "KUBE_STATIC_OVERRIDES", "FORCE_HOST_GO", "GO_VERSION", "GOTOOLCHAIN", "KUBE_RACE", "GOFLAGS", "GOGCFLAGS", "GOLDFLAGS", "SOURCE_DATE_EPOCH", "GOPROXY"] {
        pass(n, None);
    }
    for (var, env) in [("KUBERNETES_HTTPS_PROXY", "https_proxy"), ("KUBERNETES_HTTP_PROXY", "http_proxy"), ("KUBERNETES_NO_PROXY", "no_proxy")] {
        if let Ok(v) = std::env::var(var) {
            args.extend(["--env".to_string(), format!("{env}={v}")]);
        }
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
/// mode: kube-cross with the tree mounted). The container is removed afterwards, whatever happens.
pub fn run_in_container(engine: &Engine, setup: &Setup, cmd: &[String], interactive: bool) -> Result<Option<ExitStatus>> {
    let name = setup.names.build.clone();
    engine.destroy(&name);
    let mut cleanup = Cleanup::new(engine);
    cleanup.names.push(name.clone());
    let mut args: Vec<String> = vec!["run".into(), format!("--name={name}"), format!("--hostname={}", setup.hostname)];
    args.extend(setup.labels());
    let rootless = setup.mode == Mode::Bind && engine.query(&["info", "--format", "{{json .SecurityOptions}}"])?.is_some_and(|o| o.contains("name=rootless"));
    if !rootless {
        args.push(format!("--user={}", setup.user));
    }
    let image = match setup.mode {
        Mode::Rsync => {
            args.extend(["--volumes-from".into(), setup.names.data.clone()]);
            setup.names.image.clone()
        }
        Mode::Bind => {
            args.extend(["--volume".into(), format!("{}:{REMOTE_ROOT}", setup.tree.root), "--workdir".into(), REMOTE_ROOT.into()]);
            args.extend(["--env".into(), "KUBE_OUTPUT_SUBPATH=_output/dockerized".into(), "--env".into(), format!("HOME={REMOTE_ROOT}")]);
            args.extend(["--env".into(), "GIT_AUTHOR_EMAIL=nobody@k8s.io".into(), "--env".into(), "GIT_AUTHOR_NAME=kube-build-image".into()]);
            args.extend(["--env".into(), format!("KUBE_GIT_VERSION_FILE={REMOTE_ROOT}/.dockerized-kube-version-defs")]);
            if Utf8Path::new("/etc/localtime").exists() {
                args.extend(["--mount".into(), "type=bind,source=/etc/localtime,target=/etc/localtime,readonly".into()]);
            }
            setup.cross_image.clone()
        }
    };
    args.extend(build_env_args());
    if interactive {
        args.extend(attach_args());
    } else {
        args.extend(["--attach=stdout".into(), "--attach=stderr".into()]);
    }
    args.push(image);
    args.extend(cmd.iter().cloned());
    if interactive {
        engine.interactive(&args)
    } else {
        engine.stream(&args, &format!("build container ({})", cmd.join(" ")))
    }
}

/// The choices shared by run-dockerized and build-shell.
pub struct RunOptions {
    pub mode: Option<String>,
    pub engine: Option<String>,
    pub cross_image: Option<String>,
    pub mirror: Option<String>,
    pub copy: bool,
    pub dry_run: bool,
}

/// Flags that take a value (the command starts after them).
pub const RUN_VALUE_FLAGS: &[&str] = &["--mode", "--engine", "--cross-image", "--mirror"];

impl RunOptions {
    pub fn from_ctx(ctx: &mut kube_tree::cli::Ctx) -> Result<RunOptions> {
        Ok(RunOptions {
            mode: ctx.opt_string("--mode")?,
            engine: ctx.opt_string("--engine")?,
            cross_image: ctx.opt_string("--cross-image")?,
            mirror: ctx.opt_string("--mirror")?,
            copy: !ctx.flag("--no-copy"),
            dry_run: ctx.flag("--dry-run"),
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

/// The whole containerized run of `cmd`: image, data container, sync in, build, copy out (rsync
/// mode), or kube-cross with the tree mounted (bind mode). Containers it starts are removed on
/// every path out, including SIGINT/SIGTERM.
pub fn run(tree: Tree, opts: &RunOptions, cmd: &[String], interactive: bool) -> Result<RunResult> {
    kube_tree::proc::install_interrupt_handler();
    let engine = Engine::new(opts.engine.clone(), opts.dry_run)?;
    engine.check()?;
    let setup = Setup::new(tree, &engine, opts.mode.as_deref(), opts.cross_image.clone())?;
    log::status(format!("{} mode, image {}, tree hash {}", setup.mode.name(), match setup.mode { Mode::Rsync => &setup.names.image, Mode::Bind => &setup.cross_image }, setup.names.hash));
    let cross_id = ensure_cross_image(&engine, &setup, opts.mirror.as_deref())?;
    if !opts.dry_run {
        save_version_defs(&setup)?;
    }
    let status = match setup.mode {
        Mode::Rsync => {
            build_image(&engine, &setup, &cross_id)?;
            remove_old_versions(&engine, &setup)?;
            ensure_data_container(&engine, &setup)?;
            let mut cleanup = Cleanup::new(&engine);
            let rsyncd = start_rsyncd(&engine, &setup, &mut cleanup)?;
            sync_in(&setup, &rsyncd, &engine)?;
            let status = run_in_container(&engine, &setup, cmd, interactive)?;
            if opts.copy && status.map_or(true, |s| s.success()) {
                copy_out(&setup, &rsyncd, &engine)?;
            }
            status
        }
        Mode::Bind => {
            if !opts.dry_run {
                fs_err::create_dir_all(setup.tree.path("_output/dockerized"))?;
            }
            run_in_container(&engine, &setup, cmd, interactive)?
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
    pub output: Option<Utf8PathBuf>,
}

pub fn clean_plan(engine: Option<&Engine>, setup: &Setup, all_dangling: bool) -> Result<CleanPlan> {
    let mut plan = CleanPlan::default();
    if let Some(e) = engine {
        plan.containers = containers_of(e, setup)?;
        plan.images = images_of(e, setup)?;
        if all_dangling {
            plan.dangling = e.query(&["images", "-q", "--filter", "dangling=true"])?.unwrap_or_default().lines().map(str::to_string).collect();
        }
    }
    let out = setup.tree.path("_output");
    if std::fs::symlink_metadata(&out).is_ok() {
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
            let p = Utf8PathBuf::from_path_buf(e?.path()).map_err(|p| Fail::new(format!("not UTF-8: {}", p.display())))?;
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
        let md = fs_err::symlink_metadata(out)?;
        if md.file_type().is_symlink() {
            fs_err::remove_file(out)?;
        } else {
            make_writable(out)?;
            // remove_dir_all removes symlinks inside, never what they point to.
            fs_err::remove_dir_all(out)?;
        }
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
}
