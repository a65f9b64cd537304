//! Installing a downloaded Go into the cache: unpacked beside its final place, checked, then
//! renamed into `<cache>/go/<version>` in one step. An error or an interrupt at any point leaves
//! nothing behind but what was there before.

use crate::local::{self, Installed};
use crate::mirror::{Archive, Mirror};
use crate::verify;
use kube_tree::gover::GoVersion;
use kube_tree::{log, Confined, Fail, Jail};

/// `<cache>/go`, the kit's Go installations; every write stays inside it (a jail), and it is
/// only created when something is installed (looking changes nothing).
pub struct Cache {
    dir: camino::Utf8PathBuf,
}

impl Cache {
    pub fn open(cache: &camino::Utf8Path) -> Cache {
        let cache = Cache { dir: cache.join("go") };
        cache.sweep_dead();
        cache
    }

    pub fn dir(&self) -> &camino::Utf8Path {
        &self.dir
    }

    /// The jail of writes, creating the directory.
    fn jail(&self) -> Result<Jail, Fail> {
        fs_err::create_dir_all(&self.dir).map_err(|e| Fail::new(format!("cannot create the Go cache: {e}")))?;
        Jail::new(&self.dir)
    }

    /// The installation of `v` in the cache, if complete.
    pub fn get(&self, v: &GoVersion) -> Option<Installed> {
        let goroot = self.dir.join(&v.text);
        (local::version_at(&goroot).as_ref() == Some(v)).then(|| Installed {
            version: v.clone(),
            goroot,
            place: "cache",
        })
    }

    /// What an earlier run installed for `wanted` when the site lacked that exact patch (so a
    /// later run needs no network to make the same choice).
    pub fn fallback_of(&self, wanted: &GoVersion) -> Option<Installed> {
        let text = local::read_small(&self.dir.join(format!(".fallback-{}", wanted.text)))?;
        let v = GoVersion::parse(text.trim()).ok().filter(|v| v.minor == wanted.minor)?;
        self.get(&v)
    }

    pub fn remember_fallback(&self, wanted: &GoVersion, got: &GoVersion) -> Result<(), Fail> {
        self.jail()?.write_file(format!(".fallback-{}", wanted.text), format!("{}\n", got.text).as_bytes())
    }

    /// Downloads, verifies and installs `a`; returns the installation. SIGINT/SIGTERM stop it
    /// at once: the temps are removed and the error is the interrupt (exit 130).
    pub fn install(&self, mirror: &Mirror, a: &Archive) -> Result<Installed, Fail> {
        if let Some(i) = self.get(&a.version) {
            return Ok(i);
        }
        kube_tree::proc::install_interrupt_handler();
        let pid = std::process::id();
        let made = self.missing_dirs();
        let jail = self.jail()?;
        let dl = jail.path(format!(".download-{pid}-{}", a.filename))?;
        let tmp = jail.path(format!(".unpack-{pid}-{}", a.version.text))?;
        let res = self.fetch(mirror, a, &dl).and_then(|_| self.unpack_and_place(&jail, a, &dl, &tmp));
        let _ = dl.remove_file();
        let _ = tmp.remove_dir_all();
        if res.is_err() {
            // A failed install leaves the disk as it found it: the directories it made go too
            // (remove_dir removes only what is still empty).
            for d in made {
                let _ = std::fs::remove_dir(d);
            }
        }
        res
    }

    /// The directories [`Cache::jail`] would create, deepest first.
    fn missing_dirs(&self) -> Vec<camino::Utf8PathBuf> {
        self.dir.ancestors().take_while(|d| !d.as_str().is_empty() && !d.exists()).map(|d| d.to_owned()).collect()
    }

    /// The download, on a thread of its own so that an interrupt is heard while a read waits
    /// on a slow site: this thread then returns at once (the process exits, ending the other).
    fn fetch(&self, mirror: &Mirror, a: &Archive, dl: &Confined) -> Result<(), Fail> {
        let step = log::Step::start(format!("downloading {}{}", mirror.base(), a.filename));
        // Created here, so that the file exists before any interrupt can ask for its removal.
        let mut file = fs_err::OpenOptions::new().write(true).create_new(true).open(dl.path())?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (m, arch) = (mirror.clone(), a.clone());
        std::thread::spawn(move || {
            let _ = tx.send(m.download(&arch, &mut file));
        });
        let bytes = loop {
            if kube_tree::proc::interrupted() {
                return Err(Fail::interrupted());
            }
            match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(res) => break res?,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Fail::new(format!("{}: the download stopped without an answer", a.filename)))
                }
            }
        };
        step.done();
        log::status(format!("{} ({:.1} MB) matches SHA-256 {}", a.filename, bytes as f64 / 1e6, a.sha256));
        Ok(())
    }

    fn unpack_and_place(&self, jail: &Jail, a: &Archive, dl: &Confined, tmp: &Confined) -> Result<Installed, Fail> {
        if !a.filename.ends_with(".tar.gz") {
            return Err(Fail::new(format!("{}: only .tar.gz archives can be installed on this system", a.filename)));
        }
        let bad = |why: String| Fail::new(format!("{}: {why}; nothing installed", a.filename));
        let step = log::Step::start(format!("unpacking {}", a.filename));
        tmp.create_dir_all()?;
        unpack(dl, tmp).map_err(|e| if e.code == 130 { e } else { bad(e.msg) })?;
        step.done();
        let goroot = tmp.join("go")?;
        let root = goroot.path();
        verify::links_stay_inside(&root).map_err(bad)?;
        match local::version_at(&root) {
            Some(v) if v == a.version => {}
            other => {
                return Err(bad(format!(
                    "go/VERSION says {}, not go{}",
                    other.map(|v| v.text).unwrap_or_else(|| "nothing readable".into()),
                    a.version.text
                )))
            }
        }
        verify::reports(&root, &a.version).map_err(bad)?;
        if kube_tree::proc::interrupted() {
            return Err(Fail::interrupted());
        }
        let dest = jail.path(&a.version.text)?;
        if let Err(e) = goroot.rename_to(&dest) {
            // Another run may have installed it meanwhile: that one is as good.
            return self.get(&a.version).ok_or(e);
        }
        Ok(self.get(&a.version).expect("just installed"))
    }

    /// Removes the temps of runs that died (their pid is gone).
    fn sweep_dead(&self) {
        let Ok(rd) = self.dir.read_dir_utf8() else { return };
        let Ok(jail) = Jail::new(&self.dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name();
            let pid = name
                .strip_prefix(".download-")
                .or_else(|| name.strip_prefix(".unpack-"))
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid.filter(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                if let Ok(c) = jail.path(name) {
                    log::status_v(2, format!("removing {name}, left by a run that died (pid {pid})"));
                    let _ = if e.file_type().is_ok_and(|t| t.is_dir()) { c.remove_dir_all() } else { c.remove_file() };
                }
            }
        }
    }
}

/// Unpacks `dl` into `tmp`, refusing (before writing it) any entry that is not under `go/` or a
/// link that leads out of it; an interrupt stops between entries.
fn unpack(dl: &Confined, tmp: &Confined) -> Result<(), Fail> {
    let file = fs_err::File::open(dl.path())?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    archive.set_preserve_mtime(true);
    for entry in archive.entries().map_err(|e| Fail::new(e.to_string()))? {
        if kube_tree::proc::interrupted() {
            return Err(Fail::interrupted());
        }
        let mut entry = entry.map_err(|e| Fail::new(format!("not a readable tar.gz ({e})")))?;
        let path = entry.path().map_err(|e| Fail::new(e.to_string()))?.into_owned();
        let kind = entry.header().entry_type();
        let target = entry.link_name().map_err(|e| Fail::new(e.to_string()))?.map(|t| t.into_owned());
        let link = match (&target, kind) {
            (Some(t), tar::EntryType::Symlink) => Some((t.as_path(), true)),
            (Some(t), tar::EntryType::Link) => Some((t.as_path(), false)),
            _ => None,
        };
        if let Some(why) = verify::entry_refusal(&path, link) {
            return Err(Fail::new(why));
        }
        let inside = entry.unpack_in(tmp.path()).map_err(|e| Fail::new(format!("{}: {e}", path.display())))?;
        if !inside {
            return Err(Fail::new(format!("an entry that leaves the archive's directory: {}", path.display())));
        }
    }
    Ok(())
}
