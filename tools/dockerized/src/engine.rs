//! The engine: the docker or podman CLI with DOCKER_OPTS, its questions (each time-bounded),
//! dry runs that record instead of run, and the cleanup guard of a run's containers.

use kube_tree::proc::{Captured, Proc};
use kube_tree::{log, values, Fail};
use std::cell::RefCell;
use std::process::ExitStatus;
use std::time::Duration;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// Engine memory below which builds get killed (build/README.md, PR #62219).
pub const MIN_MEMORY: u64 = 4_500_000_000;

/// How long an engine may take to answer a question (info, inspect, ps, context): a hung
/// daemon is named and the run stops, instead of waiting forever. Builds have no limit.
pub(crate) const QUERY_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Which engine program to run, checked once: `docker` or `podman`, or a path to one of them,
/// and so its [`Kind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineChoice {
    pub program: String,
    pub kind: Kind,
}

impl EngineChoice {
    /// `v` as given by `what` (a flag or a variable), refused unless it names docker or podman.
    pub fn parse(what: &str, v: &str) -> Result<EngineChoice> {
        values::engine(what, v)?;
        let kind = if v.rsplit('/').next() == Some("podman") { Kind::Podman } else { Kind::Docker };
        Ok(EngineChoice { program: v.to_string(), kind })
    }

    /// The engine of that kind, found on PATH.
    pub fn of(kind: Kind) -> EngineChoice {
        EngineChoice { program: kind.name().to_string(), kind }
    }
}

/// Where an engine is when the run names it (a fan-out's engine) instead of taking it from
/// the environment: the CLI's own global flags for it (`--context NAME`, `-H URL`, `--url URL`),
/// the variables that would contradict them (left out of its commands' environment) and the
/// daemon's address when the flags give it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub opts: Vec<String>,
    pub unset: Vec<&'static str>,
    pub host: Option<String>,
}

/// The container engine CLI (`docker` or `podman`), with `DOCKER_OPTS`, in dry-run or for real.
pub struct Engine {
    pub program: String,
    kind: Kind,
    opts: Vec<String>,
    /// Named by the run, not the environment (see [`Target`]).
    target: Option<Target>,
    pub dry_run: bool,
    /// Commands a dry run would have run, in order.
    pub plan: RefCell<Vec<String>>,
    remote: std::cell::OnceCell<bool>,
    facts: std::cell::OnceCell<Facts>,
}

impl Engine {
    /// `--engine` > `KUBE_CONTAINER_ENGINE` > docker.
    pub fn new(choice: Option<EngineChoice>, dry_run: bool) -> Result<Engine> {
        let choice = match choice {
            Some(c) => c,
            None => match std::env::var("KUBE_CONTAINER_ENGINE").ok().filter(|s| !s.is_empty()) {
                Some(e) => EngineChoice::parse("KUBE_CONTAINER_ENGINE", &e)?,
                None => EngineChoice::of(Kind::Docker),
            },
        };
        // docker hands an ssh:// host to ssh, podman a CONTAINER_HOST: neither may be an option.
        for var in ["DOCKER_HOST", "CONTAINER_HOST"] {
            if let Some(h) = std::env::var(var).ok().filter(|h| !h.is_empty()) {
                values::endpoint(var, &h)?;
            }
        }
        // Split as a shell would, so quoted options keep their spaces.
        let raw = std::env::var("DOCKER_OPTS").unwrap_or_default();
        let opts = shell_words::split(&raw)
            .map_err(|e| Fail::new(format!("DOCKER_OPTS `{}`: {e}", values::masked(&raw).escape_debug())))?;
        if let Some(bad) = opts.iter().find(|o| o.chars().any(char::is_control)) {
            return Err(Fail::new(format!(
                "DOCKER_OPTS: `{}` holds a control character",
                values::masked(bad).escape_debug()
            )));
        }
        check_endpoint_opts(&opts)?;
        Ok(Engine {
            program: choice.program,
            kind: choice.kind,
            opts,
            target: None,
            dry_run,
            plan: RefCell::new(Vec::new()),
            remote: std::cell::OnceCell::new(),
            facts: std::cell::OnceCell::new(),
        })
    }

    /// This engine at `target`: its flags after DOCKER_OPTS's, on every command it runs.
    pub(crate) fn aimed(mut self, target: Target) -> Engine {
        self.opts.extend(target.opts.iter().cloned());
        self.target = Some(target);
        self
    }

    /// The engine command with `args` (for a caller that sets its own time limit, as doctor).
    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Proc {
        self.cmd(args)
    }

    pub(crate) fn cmd<S: AsRef<str>>(&self, args: &[S]) -> Proc {
        let mut p = Proc::new(&self.program).args(&self.opts).args(args.iter().map(|a| a.as_ref()));
        for var in self.target.iter().flat_map(|t| &t.unset) {
            p = p.env_remove(var);
        }
        p
    }

    /// The daemon's address when it is known without asking: the target's, else DOCKER_HOST.
    fn given_host(&self) -> Option<String> {
        match &self.target {
            Some(t) => t.host.clone(),
            None => std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()),
        }
    }

    /// In a dry run, records the command (as shown: any password in it masked) and says so.
    pub(crate) fn planned(&self, p: &Proc) -> bool {
        if self.dry_run {
            self.plan.borrow_mut().push(p.display());
        }
        self.dry_run
    }

    /// Runs a command that changes something; it must succeed.
    pub(crate) fn run<S: AsRef<str>>(&self, args: &[S]) -> Result<Captured> {
        self.try_run(args)?.map_err(Failed::into_fail)
    }

    /// Runs a command that changes something; a failure comes back whole (its stderr), for a
    /// caller that tells causes apart. Err only when it could not be run at all.
    pub(crate) fn try_run<S: AsRef<str>>(&self, args: &[S]) -> Result<std::result::Result<Captured, Failed>> {
        let p = self.cmd(args);
        if self.planned(&p) {
            return Ok(Ok(fake_ok()));
        }
        let out = p.output()?;
        Ok(if out.success() { Ok(out) } else { Err(Failed { command: p.display(), out }) })
    }

    /// The ID of image `name`, None when the engine has no such image (or in a dry run).
    pub(crate) fn image_id(&self, name: &str) -> Result<Option<String>> {
        self.query(&Engine::image_id_cmd(name))
    }

    /// The question [`Engine::image_id`] asks, to batch it with others ([`Engine::query_all`]).
    pub(crate) fn image_id_cmd(name: &str) -> Vec<String> {
        ["image", "inspect", "--format", "{{.Id}}", name].map(String::from).to_vec()
    }

    /// Asks the engine something; None if it says no (or in a dry run, where nothing is asked).
    pub(crate) fn query<S: AsRef<str>>(&self, args: &[S]) -> Result<Option<String>> {
        let p = self.cmd(args).timeout(QUERY_LIMIT);
        if self.planned(&p) {
            return Ok(None);
        }
        let out = p.output()?;
        Ok(out.success().then(|| out.stdout.trim().to_string()))
    }

    /// Runs a long command with its output streamed to our stderr.
    pub(crate) fn stream<S: AsRef<str>>(&self, args: &[S], label: &str) -> Result<Option<ExitStatus>> {
        let p = self.cmd(args);
        if self.planned(&p) {
            return Ok(None);
        }
        p.run_streaming(label).map(Some)
    }

    pub(crate) fn interactive<S: AsRef<str>>(&self, args: &[S]) -> Result<Option<ExitStatus>> {
        let p = self.cmd(args);
        if self.planned(&p) {
            return Ok(None);
        }
        p.run_interactive().map(Some)
    }

    /// kill + rm -f -v (the scripts' destroy_container), quietly, even after an interrupt.
    pub(crate) fn destroy(&self, name: &str) {
        let rm = self.cmd(&["rm", "-f", "-v", name]).uninterruptible();
        if !self.planned(&rm) {
            let _ = rm.output();
        }
    }

    /// A local daemon can bind-mount the tree; one reached over TCP/SSH (or a context pointing
    /// there) cannot, and gets the rsync mode.
    pub(crate) fn is_remote(&self) -> bool {
        *self.remote.get_or_init(|| self.find_remote())
    }

    pub(crate) fn find_remote(&self) -> bool {
        let host = self.given_host().or_else(|| {
            let cmd = self.context_cmd()?;
            self.cmd(&cmd).timeout(QUERY_LIMIT).read().ok().map(|s| s.trim().to_string())
        });
        host.is_some_and(|h| remote_host(&h))
    }

    /// The docker context question, when the engine's place is still unknown and DOCKER_HOST
    /// does not say it (so it can join a batch of questions).
    pub(crate) fn context_cmd(&self) -> Option<Vec<String>> {
        let asked = self.remote.get().is_some() || self.given_host().is_some();
        (!asked && self.kind() == Kind::Docker && !self.dry_run)
            .then(|| ["context", "inspect", "--format", "{{.Endpoints.docker.Host}}"].map(String::from).to_vec())
    }

    /// Takes the answer to [`Engine::context_cmd`].
    pub(crate) fn take_context(&self, answer: Option<&Captured>) {
        if let Some(a) = answer {
            let host = if a.success() { a.stdout.trim() } else { "" };
            let _ = self.remote.set(remote_host(host));
        }
    }

    /// Asks several independent questions at once: each CLI call costs tens of milliseconds,
    /// mostly the CLI starting up, so a run's opening questions are asked side by side. Answers
    /// come in order; None in a dry run (where the commands are only recorded).
    pub(crate) fn query_all(&self, cmds: &[Vec<String>]) -> Result<Vec<Option<Captured>>> {
        let procs: Vec<Proc> = cmds.iter().map(|c| self.cmd(c).timeout(QUERY_LIMIT)).collect();
        if self.dry_run {
            for p in &procs {
                self.planned(p);
            }
            return Ok(procs.iter().map(|_| None).collect());
        }
        std::thread::scope(|s| {
            // Each under this thread's scope: a fan-out share's question stops with the share.
            let running: Vec<_> = procs
                .iter()
                .map(|p| {
                    let scope = kube_tree::scope::Scope::current();
                    s.spawn(move || scope.enter(|| p.output()))
                })
                .collect();
            running.into_iter().map(|h| h.join().expect("a query thread panicked").map(Some)).collect()
        })
    }

    /// The `info` question [`Engine::take_info`] judges: memory, rootless, SELinux and the
    /// registry mirrors, each in the engine's own words (docker and podman name them apart).
    pub fn info_cmd(&self) -> Vec<String> {
        let format = match self.kind() {
            Kind::Docker => "{{.MemTotal}}\t{{json .SecurityOptions}}\t{{json .RegistryConfig.Mirrors}}",
            Kind::Podman => {
                "{{.Host.MemTotal}}\t{{.Host.Security.Rootless}}\t{{.Host.Security.SELinuxEnabled}}\t{{json .Registries}}\t{{.Host.RemoteSocket.Path}}\t{{.Host.RemoteSocket.Exists}}"
            }
        };
        ["info", "--format", format].map(String::from).to_vec()
    }

    /// The one reachability probe: the `info` question ([`Engine::info_cmd`]) within `limit`,
    /// judged by [`Engine::read_info`]. (A run's opening asks the same, batched with others.)
    pub fn probe(&self, limit: std::time::Duration) -> Result<Facts> {
        let out = self.cmd(&self.info_cmd()).timeout(limit).output()?;
        self.read_info(&out)
    }

    /// Judges the `info` answer: unreachable is an environment error, too little memory a
    /// warning; remembers what later steps adapt to (rootless, SELinux).
    pub(crate) fn take_info(&self, out: Option<&Captured>) -> Result<()> {
        let Some(out) = out else { return Ok(()) };
        let facts = self.read_info(out)?;
        if facts.memory < MIN_MEMORY {
            log::warn(format!("the engine has {:.1} GB of memory; builds need at least 4.5 GB (linker kills otherwise): raise it (Docker Desktop: Settings > Resources; podman machine set --memory)", facts.memory as f64 / 1e9));
        }
        let _ = self.facts.set(facts);
        Ok(())
    }

    /// The facts in an `info` answer (see [`Engine::info_cmd`]); unreachable is an error.
    pub fn read_info(&self, out: &Captured) -> Result<Facts> {
        if !out.success() {
            return Err(Fail::new(format!(
                "cannot reach the {} engine: {} ({})",
                self.program,
                values::masked(&out.first_lines(1)),
                match self.kind() {
                    Kind::Docker => "start the daemon, or check DOCKER_HOST / the context",
                    Kind::Podman => "check `podman info`, or CONTAINER_HOST / the podman connection",
                }
            )));
        }
        let f: Vec<&str> = out.stdout.trim().split('\t').collect();
        let memory = f[0].trim().parse().map_err(|_| {
            Fail::new(format!("`{} info` answered `{}` instead of the engine's memory", self.program, short(f[0])))
        })?;
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        Ok(match self.kind() {
            Kind::Docker => Facts {
                memory,
                rootless: field(1).contains("name=rootless"),
                selinux: field(1).contains("name=selinux"),
                mirrors: json_strings(field(2)),
                api_socket: None,
            },
            Kind::Podman => Facts {
                memory,
                rootless: field(1) == "true",
                selinux: field(2) == "true",
                mirrors: podman_mirrors(field(3)),
                api_socket: (!field(4).is_empty()).then(|| (field(4).to_string(), field(5) == "true")),
            },
        })
    }

    /// `info`: reachable, with how much memory.
    pub fn check(&self) -> Result<()> {
        let out = self.query_all(&[self.info_cmd()])?;
        self.take_info(out[0].as_ref())
    }

    /// What `info` said (after [`Engine::check`] or a batch with [`Engine::info_cmd`]).
    pub fn facts(&self) -> Facts {
        self.facts.get().cloned().unwrap_or_default()
    }

    /// A rootless engine maps root inside to the user outside (known after [`Engine::check`]).
    pub(crate) fn is_rootless(&self) -> bool {
        self.facts().rootless
    }
}

/// What the engine says of itself in `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Bytes of memory the engine's machine has.
    pub memory: u64,
    /// Root inside a container is the calling user outside.
    pub rootless: bool,
    /// Volumes need a label (or labelling disabled) to be readable inside.
    pub selinux: bool,
    /// Registry mirrors the engine is configured with.
    pub mirrors: Vec<String>,
    /// podman's docker-compatible API socket, and whether it is listening (for tools that speak
    /// only docker: `DOCKER_HOST=unix://PATH` once `podman system service` runs).
    pub api_socket: Option<(String, bool)>,
}

/// The strings of a JSON array (`null` or anything else: none).
fn json_strings(text: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(text.trim()).unwrap_or_default()
}

/// The mirrors in podman's `{{json .Registries}}`: `{"docker.io": {"Mirrors": [{"Location":
/// ...}]}, "search": [...]}`, as `docker.io -> LOCATION`.
fn podman_mirrors(text: &str) -> Vec<String> {
    let Ok(serde_json::Value::Object(regs)) = serde_json::from_str(text.trim()) else { return Vec::new() };
    let mut out = Vec::new();
    for (prefix, reg) in &regs {
        for m in reg.get("Mirrors").and_then(|m| m.as_array()).into_iter().flatten() {
            if let Some(loc) = m.get("Location").and_then(|l| l.as_str()) {
                out.push(format!("{prefix} -> {loc}"));
            }
        }
    }
    out
}

/// Which CLI the engine is: what it can do differs (docker has contexts; podman runs rootless).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }
    }
}

impl Engine {
    /// The engine's kind, decided when the engine was made.
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl Engine {
    /// An image name as listed, in the words the tree's scripts use: podman lists a name with no
    /// registry as `localhost/NAME`.
    pub(crate) fn listed_name<'s>(&self, listed: &'s str) -> &'s str {
        match self.kind() {
            Kind::Podman => listed.strip_prefix("localhost/").unwrap_or(listed),
            Kind::Docker => listed,
        }
    }
}

/// An engine command that ran and failed, with everything it said.
#[derive(Debug)]
pub struct Failed {
    pub command: String,
    pub out: Captured,
}

impl Failed {
    /// Whether the engine's own error output says `text`.
    pub(crate) fn says(&self, text: &str) -> bool {
        self.out.stderr.contains(text)
    }
    /// The one-line error for the user.
    pub(crate) fn into_fail(self) -> Fail {
        let hint = if self.says("error setting rlimit") {
            // podman as root raises nofile/nproc to the maximum by default; a host that withholds
            // CAP_SYS_RESOURCE (a container, some CI sandboxes) refuses that.
            " (the engine may not raise the container's ulimits here: set default_ulimits in containers.conf, e.g. [\"nofile=20000:20000\", \"nproc=20000:20000\"])"
        } else {
            ""
        };
        let said = values::masked(&self.out.error_lines(2).replace('\n', " | "));
        Fail::new(format!("`{}` failed: {said}{hint}", short(&self.command)))
    }
}

/// The endpoints DOCKER_OPTS names (`-H URL`, `--host URL`, podman's `--url URL`, or with `=`)
/// pass the same check as DOCKER_HOST: an ssh host there reaches ssh's command line too.
fn check_endpoint_opts(opts: &[String]) -> Result<()> {
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        let (flag, inline) = o.split_once('=').map_or((o.as_str(), None), |(f, v)| (f, Some(v)));
        if ["-H", "--host", "--url"].contains(&flag) {
            if let Some(v) = inline.or_else(|| it.next().map(String::as_str)) {
                values::endpoint(&format!("DOCKER_OPTS {flag}"), v)?;
            }
        }
    }
    Ok(())
}

/// An engine endpoint that cannot see our files (so no bind mounts): TCP, SSH, HTTP.
pub(crate) fn remote_host(h: &str) -> bool {
    h.starts_with("tcp://") || h.starts_with("ssh://") || h.starts_with("http")
}

pub(crate) fn fake_ok() -> Captured {
    use std::os::unix::process::ExitStatusExt;
    Captured { status: ExitStatus::from_raw(0), stdout: String::new(), stderr: String::new(), elapsed: Duration::ZERO }
}

pub(crate) const PROXIES: [(&str, &str); 3] = [
    ("KUBERNETES_HTTPS_PROXY", "https_proxy"),
    ("KUBERNETES_HTTP_PROXY", "http_proxy"),
    ("KUBERNETES_NO_PROXY", "no_proxy"),
];

/// The proxies the scripts pass into the image and the build container: `KUBERNETES_*_PROXY`
/// as `https_proxy`, `http_proxy`, `no_proxy` (checked by [`check_proxy_env`] first).
pub(crate) fn proxy_env() -> Vec<(&'static str, String)> {
    PROXIES.iter().filter_map(|(var, env)| std::env::var(var).ok().map(|v| (*env, v))).collect()
}

/// A proxy value goes into a Dockerfile line: one with a control character (a newline would
/// start a new instruction) is refused before anything runs.
pub(crate) fn check_proxy_env() -> Result<()> {
    for (var, _) in PROXIES {
        if let Ok(v) = std::env::var(var) {
            if v.chars().any(char::is_control) {
                return Err(Fail::new(format!(
                    "{var} `{}`: a control character in a proxy value",
                    values::masked(&v).escape_debug()
                )));
            }
        }
    }
    Ok(())
}

/// At most 160 characters (never cut inside a UTF-8 character).
pub(crate) fn short(s: &str) -> String {
    if s.chars().count() > 160 {
        format!("{}...", s.chars().take(157).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Removes containers when dropped (also after an error or an interrupt).
pub(crate) struct Cleanup<'a> {
    engine: &'a Engine,
    pub names: Vec<String>,
}

impl<'a> Cleanup<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Cleanup<'a> {
        Cleanup { engine, names: Vec::new() }
    }

    /// Takes `name` off the list: it stays (or is already gone).
    pub(crate) fn keep(&mut self, name: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;
    use crate::image;
    use crate::setup::Mode;
    use std::os::unix::process::ExitStatusExt;

    fn said(code: i32, stdout: &str) -> Captured {
        Captured {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into(),
            stderr: "Cannot connect to the Docker daemon".into(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn info_is_read_in_each_engines_words() {
        let docker = Engine::new(Some(EngineChoice::of(Kind::Docker)), false).unwrap();
        assert!(docker.info_cmd()[2].starts_with("{{.MemTotal}}"));
        let f = docker
            .read_info(&said(
                0,
                "25276510208\t[\"name=seccomp,profile=default\",\"name=selinux\"]\t[\"https://mirror.gcr.io/\"]\n",
            ))
            .unwrap();
        assert_eq!(
            f,
            Facts {
                memory: 25276510208,
                rootless: false,
                selinux: true,
                mirrors: vec!["https://mirror.gcr.io/".into()],
                api_socket: None,
            }
        );
        let f = docker.read_info(&said(0, "8000000000\t[\"name=rootless\"]\tnull")).unwrap();
        assert!(f.rootless && !f.selinux && f.mirrors.is_empty());

        let podman = Engine::new(Some(EngineChoice::of(Kind::Podman)), false).unwrap();
        assert!(podman.info_cmd()[2].starts_with("{{.Host.MemTotal}}"));
        let regs = r#"{"docker.io":{"Prefix":"docker.io","Mirrors":[{"Location":"127.0.0.1:5000","Insecure":true}]},"search":["docker.io"]}"#;
        let socket = "/run/user/1000/podman/podman.sock";
        let f = podman.read_info(&said(0, &format!("1000\ttrue\tfalse\t{regs}\t{socket}\tfalse"))).unwrap();
        assert_eq!(
            f,
            Facts {
                memory: 1000,
                rootless: true,
                selinux: false,
                mirrors: vec!["docker.io -> 127.0.0.1:5000".into()],
                api_socket: Some((socket.into(), false)),
            }
        );

        // Unreachable, or an answer that is not the memory: one line naming the engine.
        let e = podman.read_info(&said(125, "")).unwrap_err();
        assert!(e.msg.contains("cannot reach the podman engine") && e.msg.contains("podman info"), "{}", e.msg);
        let e = docker.read_info(&said(0, "<no value>\t")).unwrap_err();
        assert!(e.msg.contains("instead of the engine's memory"), "{}", e.msg);
    }

    #[test]
    fn the_build_user_follows_the_engine() {
        let engine = |program: &str, info: &str| {
            let e = Engine::new(Some(EngineChoice::parse("--engine", program).unwrap()), false).unwrap();
            e.take_info(Some(&said(0, info))).unwrap();
            e
        };
        let rootful = engine("podman", "9000000000\tfalse\tfalse\t{}");
        let rootless = engine("podman", "9000000000\ttrue\tfalse\t{}");
        let selinux = engine("podman", "9000000000\ttrue\ttrue\t{}");
        let docker_rootless = engine("docker", "9000000000\t[\"name=rootless\"]\tnull");
        assert_eq!(build::user_args(&rootful, Mode::Bind, "1000:1000"), ["--user=1000:1000"]);
        assert_eq!(build::user_args(&rootless, Mode::Bind, "1000:1000"), ["--userns=keep-id"]);
        assert_eq!(
            build::user_args(&selinux, Mode::Bind, "1000:1000"),
            ["--userns=keep-id", "--security-opt", "label=disable"]
        );
        assert!(build::user_args(&docker_rootless, Mode::Bind, "1000:1000").is_empty());
        // rsync mode: the build works in the engine's own volumes, as the caller's uid.
        assert_eq!(build::user_args(&selinux, Mode::Rsync, "1000:1000"), ["--user=1000:1000"]);
    }

    #[test]
    fn podman_pulls_loopback_mirrors_over_plain_http() {
        let from = "127.0.0.1:5000/k8s/kube-cross:v1";
        assert_eq!(image::pull_args(Kind::Docker, "127.0.0.1:5000/k8s", from), ["pull", from]);
        assert_eq!(image::pull_args(Kind::Podman, "127.0.0.1:5000/k8s", from), ["pull", "--tls-verify=false", from]);
        assert_eq!(image::pull_args(Kind::Podman, "localhost:5000", from)[1], "--tls-verify=false");
        assert_eq!(image::pull_args(Kind::Podman, "[::1]:5000", from)[1], "--tls-verify=false");
        assert_eq!(image::pull_args(Kind::Podman, "mirror.example.com/k8s", from), ["pull", from]);
        assert_eq!(image::pull_args(Kind::Podman, "127.0.0.1.example.com:5000", from), ["pull", from]);
    }

    #[test]
    fn endpoints_in_docker_opts_are_checked() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_endpoint_opts(&v(&["-H", "ssh://me@builder", "--tls", "--url=tcp://h:2375"])).is_ok());
        for bad in [
            v(&["-H", "ssh://-oProxyCommand=x"]),
            v(&["--host=ssh://-l@h"]),
            v(&["--log-level", "debug", "--url", "tcp://h:0"]),
        ] {
            assert!(check_endpoint_opts(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_refused_ulimit_gets_the_fix() {
        let f = Failed {
            command: "podman run x".into(),
            out: Captured {
                stderr: "Error: runc: runc create failed: error setting rlimit type 7: operation not permitted".into(),
                ..said(126, "")
            },
        };
        assert!(f.into_fail().msg.contains("default_ulimits in containers.conf"));
    }
}
