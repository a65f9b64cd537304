//! The engine: the docker or podman CLI with DOCKER_OPTS, its questions (each time-bounded),
//! dry runs that record instead of run, and the cleanup guard of a run's containers.

use super::*;

/// How long an engine may take to answer a question (info, inspect, ps, context): a hung
/// daemon is named and the run stops, instead of waiting forever. Builds have no limit.
pub(crate) const QUERY_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

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

    pub(crate) fn cmd<S: AsRef<str>>(&self, args: &[S]) -> Proc {
        Proc::new(&self.program).args(&self.opts).args(args.iter().map(|a| a.as_ref()))
    }

    /// In a dry run, records the command and says so.
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
        let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()).or_else(|| {
            let cmd = self.context_cmd()?;
            self.cmd(&cmd).timeout(QUERY_LIMIT).read().ok().map(|s| s.trim().to_string())
        });
        host.is_some_and(|h| remote_host(&h))
    }

    /// The docker context question, when the engine's place is still unknown and DOCKER_HOST
    /// does not say it (so it can join a batch of questions).
    pub(crate) fn context_cmd(&self) -> Option<Vec<String>> {
        let asked = self.remote.get().is_some() || std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty());
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
            let running: Vec<_> = procs.iter().map(|p| s.spawn(move || p.output())).collect();
            running.into_iter().map(|h| h.join().expect("a query thread panicked").map(Some)).collect()
        })
    }

    /// The `docker info` question [`Engine::take_info`] judges.
    pub(crate) fn info_cmd() -> Vec<String> {
        ["info", "--format", "{{.MemTotal}}\t{{json .SecurityOptions}}"].map(String::from).to_vec()
    }

    /// Judges `docker info`'s answer: unreachable is an environment error, too little memory a
    /// warning; remembers whether the engine is rootless (bind mode then runs as root inside).
    pub(crate) fn take_info(&self, out: Option<&Captured>) -> Result<()> {
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
    pub(crate) fn is_rootless(&self) -> bool {
        self.rootless.get().copied().unwrap_or(false)
    }
}

/// An engine endpoint that cannot see our files (so no bind mounts): TCP, SSH, HTTP.
/// Which CLI the engine is: what it can do differs (docker has contexts; podman runs rootless).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

impl Engine {
    /// The engine's kind, from its program's file name (checked when the engine was made).
    pub(crate) fn kind(&self) -> Kind {
        if self.program.rsplit('/').next() == Some("podman") {
            Kind::Podman
        } else {
            Kind::Docker
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
        Fail::new(format!("`{}` failed: {}", short(&self.command), self.out.error_lines(2).replace('\n', " | ")))
    }
}

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
                return Err(Fail::new(format!("{var} `{}`: a control character in a proxy value", v.escape_debug())));
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
