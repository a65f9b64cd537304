//! A real image registry on 127.0.0.1 (Debian's `docker-registry`), for the mirror tests: its
//! own storage in a scratch directory, a free port, stopped on drop. Engines trust registries on
//! 127.0.0.0/8 without TLS.

use camino::Utf8PathBuf;
use kube_tree::Fail;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: Utf8PathBuf,
    child: Option<std::process::Child>,
}

impl Registry {
    pub fn start(name: &str) -> Result<Registry, Fail> {
        if kube_tree::proc::which("docker-registry").is_none() {
            return Err(Fail::new(
                "missing prerequisite: no `docker-registry` (Debian: apt-get install docker-registry)",
            ));
        }
        // A directory per registry, even for one name: `scratch` empties a directory it hands out
        // again, and two tests of one process starting "mirror" at once lost each other's blobs.
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = crate::scratch(&format!("registry-{name}-{n}"));
        // The port is the kernel's pick, released for the registry to bind: another process may
        // take it in between, and then the registry exits at once; it is tried again on another.
        let mut said = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let addr = format!("127.0.0.1:{port}");
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {dir}/data\nhttp:\n  addr: {addr}\n"
            );
            fs_err::write(dir.join("config.yml"), config)?;
            let config = dir.join("config.yml");
            let log = dir.join("registry.log");
            let mut child = crate::spawn_logged("docker-registry", &["serve", config.as_str()], &log)?;
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(30) && child.try_wait().ok().flatten().is_none() {
                if answers(&addr) {
                    return Ok(Registry { addr, dir, child: Some(child) });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            said = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(Fail::new(format!("docker-registry did not serve on 5 ports: {}", said.lines().last().unwrap_or(""))))
    }
}

/// `GET /v2/` on `addr` answers 200: a registry serves there.
fn answers(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(s, "GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
