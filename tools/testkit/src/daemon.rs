//! A second, private Docker daemon for tests that must not touch the machine's own engine (what
//! they do is engine-wide: `make-clean --all-trees`) or that need several engines (fan-out):
//! its own config file, unix socket, data root, exec root and pid file, and its own bridge
//! interface made for it and deleted after, with iptables off. Never `bridge: none`: a daemon
//! started that way deletes the main daemon's `docker0`. The storage driver is dockerd's own
//! choice (overlay2 where the kernel and the data root allow it): a second daemon on
//! fuse-overlayfs built the kube-build image from scratch in about 5 minutes, mostly layer
//! commits.

use camino::Utf8PathBuf;
use kube_tree::proc::Proc;
use kube_tree::Fail;
use std::time::{Duration, Instant};

pub struct SecondDaemon {
    /// `unix://<run tmp>/kd-NAME/docker.sock`, for `docker -H` or `DOCKER_HOST`.
    pub host: String,
    dir: Utf8PathBuf,
    exec_root: Utf8PathBuf,
    bridge: String,
    child: Option<std::process::Child>,
}

fn ip(args: &[&str]) -> Result<(), Fail> {
    Proc::new("ip").args(args).timeout(Duration::from_secs(20)).read().map(|_| ())
}

/// The IPv4 routes of this machine (`ip -4 route show`), one a line.
fn routes() -> Result<String, Fail> {
    Proc::new("ip").args(["-4", "route", "show"]).timeout(Duration::from_secs(20)).read()
}

/// Gives `bridge` a 10.213.X.0/24 that no route of this machine uses: asked of the kernel, not
/// fixed, and checked again after the address is added (another run may have taken the same one
/// at the same moment: then this one lets it go and tries the next). Two daemons of one process
/// get different ones too (the fan-out test runs two at once).
fn claim_subnet(bridge: &str, name: &str) -> Result<(), Fail> {
    let start = u64::from(std::process::id()) + kube_tree::fnv::hash(name.as_bytes());
    for i in 0..200u64 {
        let x = 16 + (start + i) % 200;
        let net = format!("10.213.{x}.");
        if routes()?.lines().any(|l| l.starts_with(&net)) {
            continue;
        }
        let addr = format!("10.213.{x}.1/24");
        ip(&["addr", "add", &addr, "dev", bridge])?;
        if routes()?.lines().filter(|l| l.starts_with(&net)).count() == 1 {
            return Ok(());
        }
        ip(&["addr", "del", &addr, "dev", bridge])?;
    }
    Err(Fail::new("no free 10.213.X.0/24 subnet for a second docker daemon (ip -4 route show)"))
}

impl SecondDaemon {
    /// Starts one and waits until it answers. A missing `dockerd` or `ip`, or no root, is a
    /// missing prerequisite (a visible skip, fatal under CI).
    pub fn start(name: &str) -> Result<SecondDaemon, Fail> {
        SecondDaemon::start_with(name, "")
    }

    /// [`SecondDaemon::start`] with more daemon.json settings (`"key": value, ...`).
    pub fn start_with(name: &str, extra: &str) -> Result<SecondDaemon, Fail> {
        for p in ["dockerd", "ip", "docker"] {
            if kube_tree::proc::which(p).is_none() {
                return Err(Fail::new(format!("missing prerequisite: no `{p}` for a second docker daemon")));
            }
        }
        if !Proc::new("id").arg("-u").read().is_ok_and(|u| u.trim() == "0") {
            return Err(Fail::new("missing prerequisite: a second docker daemon needs root"));
        }
        let n = std::process::id() % 100_000;
        // Short paths: a unix socket path has a small limit.
        let exec_root = crate::run_tmp()?.join(format!("kd-{}", &name[..name.len().min(4)]));
        let dir = crate::scratch(&format!("daemon-{name}"));
        let bridge = format!("kbr{n}{}", &name[..name.len().min(3)]);
        let _ = ip(&["link", "del", &bridge]);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        let mut d = SecondDaemon {
            host: format!("unix://{exec_root}/docker.sock"),
            dir: dir.clone(),
            exec_root: exec_root.clone(),
            bridge: bridge.clone(),
            child: None,
        };
        ip(&["link", "set", &bridge, "up"])?;
        claim_subnet(&bridge, name)?;
        let config = format!(
            r#"{{"data-root": "{dir}/data", "exec-root": "{exec_root}", "pidfile": "{dir}/docker.pid", "hosts": ["{}"], "bridge": "{bridge}", "iptables": false, "ip-masq": false, "mtu": 1400{}}}"#,
            d.host,
            if extra.is_empty() { String::new() } else { format!(", {extra}") }
        );
        fs_err::write(dir.join("daemon.json"), config)?;
        let config = dir.join("daemon.json");
        let child = crate::spawn_logged("dockerd", &["--config-file", config.as_str()], &dir.join("dockerd.log"))?;
        d.child = Some(child);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if d.docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .timeout(Duration::from_secs(10))
                .read()
                .is_ok()
            {
                return Ok(d);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let said = std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
        Err(Fail::new(format!("the second dockerd did not answer in 60 s: {}", said.lines().last().unwrap_or(""))))
    }

    /// `docker -H <this daemon>`.
    pub fn docker(&self) -> Proc {
        Proc::new("docker").args(["-H", &self.host]).timeout(Duration::from_secs(120))
    }

    /// Loads `image` from the machine's daemon, saved there once per process: the fan-out tests
    /// load the run's stand-in (1.5 GB) into three daemons, and saved it three times at once.
    pub fn load_from_main(&self, image: &str) -> Result<(), Fail> {
        static SAVED: std::sync::Mutex<Vec<(String, Utf8PathBuf)>> = std::sync::Mutex::new(Vec::new());
        let tar = {
            // Held while saving: a second caller waits for the first one's tar.
            let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
            match saved.iter().find(|s| s.0 == image) {
                Some(s) => s.1.clone(),
                None => {
                    let dir = match saved.first() {
                        Some(s) => s.1.parent().map(Utf8PathBuf::from).unwrap_or_default(),
                        None => crate::scratch("saved-images"),
                    };
                    let tar = dir.join(format!("{}.tar", saved.len()));
                    Proc::new("docker")
                        .args(["save", "-o", tar.as_str(), image])
                        .timeout(Duration::from_secs(600))
                        .read()?;
                    saved.push((image.to_string(), tar.clone()));
                    tar
                }
            }
        };
        self.docker().timeout(Duration::from_secs(600)).args(["load", "-i", tar.as_str()]).read().map(|_| ())
    }

    /// An empty image under `tag` (enough to create containers that are never started).
    pub fn empty_image(&self, tag: &str) -> Result<(), Fail> {
        let empty = self.dir.join("empty.tar");
        if !empty.exists() {
            let dir = self.dir.join("empty");
            fs_err::create_dir_all(&dir)?;
            Proc::new("tar").arg("-C").arg(&dir).args(["-cf"]).arg(&empty).arg(".").read()?;
        }
        self.docker().args(["import"]).arg(&empty).arg(tag).read().map(|_| ())
    }
}

impl Drop for SecondDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Proc::new("kill").arg(c.id().to_string()).read();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(30) {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = ip(&["link", "del", &self.bridge]);
        let _ = std::fs::remove_dir_all(&self.exec_root);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
