//! A real HTTP server on 127.0.0.1 in the layout of the official Go download site, serving Go
//! archives repacked from real distributions that can be had here (Debian bullseye's
//! golang-1.15, which is go1.15.15), with a JSON listing and `.sha256` files, and faults on
//! demand (a wrong checksum, a short body, no listing, down, an endless or dripping body, more
//! bytes than listed); [`GoArchive::pack`] makes small archives that are not a Go.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::Proc;
use kube_tree::{log, Fail};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the server does wrong, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The listing and the `.sha256` files name a checksum the archive does not have.
    WrongSum,
    /// Archives are cut off halfway (the Content-Length promises all of it).
    Truncate,
    /// No JSON listing (a plain file mirror: only archives and `.sha256` files).
    NoListing,
    /// Archives are sent without a Content-Length and without end (zeros after the archive).
    Endless,
    /// The listing comes one byte every 2 s.
    DripListing,
    /// Archives: the first 64 KiB, then one byte a second (a download that is still running).
    SlowArchive,
    /// Archives are announced and sent 4096 bytes longer than the listing says.
    Oversize,
}

/// A repacked real Go: its archive and what the listing says of it.
#[derive(Debug, Clone)]
pub struct GoArchive {
    pub version: String,
    pub path: Utf8PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// Debian bullseye's golang-1.15 repacked in the official layout (`go/bin`, `go/pkg`, `go/src`,
/// `go/VERSION`) as `go1.15.15.linux-amd64.tar.gz`; built once, cached.
pub fn go115_archive() -> Result<GoArchive, Fail> {
    let bin = crate::tree_go()?;
    let goroot = bin.parent().expect("GOROOT").to_owned();
    let dir = crate::cached("go-archives", |_, tmp| {
        let step = log::Step::start("repacking golang-1.15 in the official layout");
        let name = "go1.15.15.linux-amd64.tar.gz";
        let parent = goroot.parent().expect("parent");
        let top = goroot.file_name().expect("name");
        // -h: Debian's GOROOT links src, api, misc to /usr/share; the official archive has them.
        Proc::new("tar")
            .args(["-c", "-h", "-I", "gzip -1", "--owner=0", "--group=0", "--transform"])
            .arg(format!("s,^{top},go,"))
            .arg("-f")
            .arg(tmp.join(name))
            .arg("-C")
            .arg(parent)
            .arg(top)
            .timeout(std::time::Duration::from_secs(600))
            .read()?;
        step.done();
        Ok(())
    })?;
    let path = dir.join("go1.15.15.linux-amd64.tar.gz");
    let sha256 = Proc::new("sha256sum").arg(&path).read()?.split_whitespace().next().unwrap_or("").to_string();
    let size = std::fs::metadata(&path)?.len();
    Ok(GoArchive { version: "1.15.15".into(), path, sha256, size })
}

impl GoArchive {
    /// A small archive of `version` made from what `fill` puts into the `go/` it is given
    /// (in `dir`, which the caller removes): for archives that are not a Go, or hold traps.
    pub fn pack(dir: &Utf8Path, version: &str, fill: impl FnOnce(&Utf8Path)) -> Result<GoArchive, Fail> {
        let src = dir.join(format!("src-{version}"));
        std::fs::create_dir_all(src.join("go"))?;
        fill(&src.join("go"));
        let path = dir.join(format!("go{version}.linux-amd64.tar.gz"));
        Proc::new("tar")
            .args(["-c", "-z", "--owner=0", "--group=0", "-f"])
            .arg(&path)
            .arg("-C")
            .arg(&src)
            .arg("go")
            .read()?;
        let sha256 = Proc::new("sha256sum").arg(&path).read()?.split_whitespace().next().unwrap_or("").to_string();
        let size = std::fs::metadata(&path)?.len();
        Ok(GoArchive { version: version.into(), path, sha256, size })
    }
}

/// The running server; stopped (and its port closed) on drop.
pub struct GoMirror {
    /// The base URL, ending in `/dl/`.
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Every request line served, for tests to see what was asked.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl GoMirror {
    pub fn start(archives: &[GoArchive]) -> GoMirror {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(Fault::None));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (f, s, r, a) = (fault.clone(), stop.clone(), requests.clone(), archives.to_vec());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let fault = *f.lock().unwrap();
                let (a, r) = (a.clone(), r.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &a, fault, &r);
                });
            }
        });
        GoMirror { url: format!("http://{addr}/dl/"), fault, stop, addr, thread: Some(thread), requests }
    }

    pub fn set_fault(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }

    /// Stops serving: later connections are refused (the port is closed).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for GoMirror {
    fn drop(&mut self) {
        self.stop();
    }
}

fn listing(archives: &[GoArchive], fault: Fault) -> String {
    let sum = |a: &GoArchive| if fault == Fault::WrongSum { "0".repeat(64) } else { a.sha256.clone() };
    let releases: Vec<String> = archives
        .iter()
        .map(|a| {
            let v = &a.version;
            format!(
                r#"{{"version":"go{v}","stable":true,"files":[{{"filename":"go{v}.src.tar.gz","os":"","arch":"","version":"go{v}","sha256":"{z}","size":1,"kind":"source"}},{{"filename":"go{v}.darwin-amd64.tar.gz","os":"darwin","arch":"amd64","version":"go{v}","sha256":"{z}","size":1,"kind":"archive"}},{{"filename":"go{v}.linux-amd64.tar.gz","os":"linux","arch":"amd64","version":"go{v}","sha256":"{s}","size":{n},"kind":"archive"}}]}}"#,
                z = "1".repeat(64),
                s = sum(a),
                n = a.size
            )
        })
        .collect();
    format!("[{}]", releases.join(","))
}

fn serve(conn: TcpStream, archives: &[GoArchive], fault: Fault, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    log.lock().unwrap().push(line.trim().to_string());
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let mut out = conn;
    let head = |out: &mut TcpStream, status: &str, len: u64| {
        write!(out, "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
    };
    let not_found = |out: &mut TcpStream| head(out, "404 Not Found", 0);
    if path == "/dl/?mode=json&include=all" {
        if fault == Fault::NoListing {
            return not_found(&mut out);
        }
        let body = listing(archives, fault);
        head(&mut out, "200 OK", body.len() as u64)?;
        if fault == Fault::DripListing {
            for b in body.as_bytes().chunks(1) {
                out.write_all(b)?;
                out.flush()?;
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            return Ok(());
        }
        return out.write_all(body.as_bytes());
    }
    let name = path.strip_prefix("/dl/").unwrap_or("");
    for a in archives {
        let file = format!("go{}.linux-amd64.tar.gz", a.version);
        if name == format!("{file}.sha256") {
            let body = if fault == Fault::WrongSum { "0".repeat(64) } else { a.sha256.clone() };
            head(&mut out, "200 OK", body.len() as u64)?;
            return out.write_all(body.as_bytes());
        }
        if name == file {
            return send_archive(&mut out, a, fault);
        }
    }
    not_found(&mut out)
}

fn send_archive(out: &mut TcpStream, a: &GoArchive, fault: Fault) -> std::io::Result<()> {
    let data = std::fs::read(&a.path)?;
    match fault {
        Fault::Endless => {
            write!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            out.write_all(&data)?;
            let zeros = vec![0u8; 64 << 10];
            // Until the client hangs up (a write then fails).
            loop {
                out.write_all(&zeros)?;
            }
        }
        Fault::SlowArchive => {
            write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", a.size)?;
            let first = data.len().min(64 << 10);
            out.write_all(&data[..first])?;
            for b in data[first..].chunks(1) {
                out.write_all(b)?;
                out.flush()?;
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            Ok(())
        }
        Fault::Oversize => {
            write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", a.size + 4096)?;
            out.write_all(&data)?;
            out.write_all(&[0u8; 4096])
        }
        _ => {
            write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", a.size)?;
            let n = if fault == Fault::Truncate { data.len() / 2 } else { data.len() };
            out.write_all(&data[..n])
        }
    }
}

/// A scratch `KUBE_KIT_CACHE` for one test (nothing installed there yet).
pub fn scratch_cache(name: &str) -> Utf8PathBuf {
    crate::scratch(name)
}

/// Lists what `dir` holds, names only (for "nothing was installed" checks).
pub fn entries(dir: &Utf8Path) -> Vec<String> {
    let mut v: Vec<String> =
        dir.read_dir_utf8().into_iter().flatten().flatten().map(|e| e.file_name().to_string()).collect();
    v.sort();
    v
}
