//! Reads of tree files, confined like writes: the path is resolved beneath the root (a symlink
//! whose target leaves the tree is refused, naming it), only a regular file is read (a FIFO, a
//! device or a directory is refused without waiting on it), and each read has a size cap fit for
//! what the file is, so a link to `/dev/zero` or a huge file cannot exhaust memory.

use crate::confine::Confined;
use crate::fail::{Fail, Result};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

/// How large a file of a kind may be (bytes), and what the kind is called in a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub bytes: u64,
    pub what: &'static str,
}

impl Cap {
    /// A one-line file: `.go-version`, `build/build-image/cross/VERSION`, a Go's `VERSION`.
    pub const LINE: Cap = Cap { bytes: 4 << 10, what: "version file" };
    /// A script, Makefile, Dockerfile, go.mod or YAML of the tree's build (all are kilobytes).
    pub const SCRIPT: Cap = Cap { bytes: 2 << 20, what: "build file" };
    /// A Go source file read for its tags and imports.
    pub const SOURCE: Cap = Cap { bytes: 16 << 20, what: "source file" };
    /// A long list: `vendor/modules.txt`, `go.sum`, or one of the kit's own records in `_output`
    /// (a record of stamps holds a line per file of the tree).
    pub const LIST: Cap = Cap { bytes: 256 << 20, what: "list or record" };
}

/// What a file that is not a regular one is, for a refusal: `a FIFO`, `a directory`, ...
pub fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

impl Confined {
    /// The bytes of this regular file (through a link only while it stays beneath the root),
    /// at most `cap.bytes`; `None` when nothing is there.
    pub fn read_bytes(&self, cap: Cap) -> Result<Option<Vec<u8>>> {
        if !self.exists() {
            return Ok(None);
        }
        let target = self.follow()?;
        let shown = self.rel();
        // O_NOFOLLOW: the entry was swapped for a link after the check; O_NONBLOCK: opening a
        // FIFO returns at once, and fstat then refuses it.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(target.path());
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Fail::new(format!("refusing to read {shown}: it became a symlink while being read")))
            }
            Err(e) => return Err(Fail::new(format!("cannot read {shown}: {e}"))),
        };
        let md = file.metadata().map_err(|e| Fail::new(format!("cannot read {shown}: {e}")))?;
        if !md.is_file() {
            return Err(Fail::new(format!(
                "refusing to read {shown}: it is {}, not a regular file",
                kind_of(md.file_type())
            )));
        }
        let too_big = || {
            Fail::new(format!("refusing to read {shown}: larger than the {} bytes a {} may have", cap.bytes, cap.what))
        };
        if md.len() > cap.bytes {
            return Err(too_big());
        }
        let mut buf = Vec::with_capacity(md.len() as usize);
        (&mut file)
            .take(cap.bytes + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Fail::new(format!("cannot read {shown}: {e}")))?;
        if buf.len() as u64 > cap.bytes {
            return Err(too_big());
        }
        Ok(Some(buf))
    }

    /// [`Confined::read_bytes`] as UTF-8 text; a file that is not text is an error.
    pub fn read_text(&self, cap: Cap) -> Result<Option<String>> {
        match self.read_bytes(cap)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| Fail::new(format!("refusing to read {}: it is not UTF-8 text", self.rel()))),
        }
    }

    /// The first line of a one-line file, trimmed; `None` when missing or empty.
    pub fn read_line(&self) -> Result<Option<String>> {
        let text = self.read_text(Cap::LINE)?;
        let line = text.as_deref().and_then(|t| t.lines().next()).map(str::trim).unwrap_or_default();
        if line.chars().any(char::is_control) {
            return Err(Fail::new(format!(
                "refusing {}: a control character in {:?}",
                self.rel(),
                line.escape_debug().to_string()
            )));
        }
        Ok(Some(line.to_string()).filter(|l| !l.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confine::Jail;
    use camino::Utf8PathBuf;

    struct Scratch(Utf8PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A root `tree/` and a directory `out/` beside it, in a fresh scratch directory.
    fn scratch(name: &str) -> (Scratch, Jail, Utf8PathBuf) {
        let base = Utf8PathBuf::from_path_buf(std::env::temp_dir()).unwrap();
        let dir = base.join(format!("kube-tree-read-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tree/sub")).unwrap();
        std::fs::create_dir_all(dir.join("out")).unwrap();
        let jail = Jail::new(&dir.join("tree")).unwrap();
        let out = dir.join("out");
        (Scratch(dir), jail, out)
    }

    #[test]
    fn a_regular_file_is_read_and_a_missing_one_is_none() {
        let (_s, jail, _) = scratch("plain");
        std::fs::write(jail.root().join("sub/VERSION"), "v1.15.5-1\nignored\n").unwrap();
        assert_eq!(jail.path("sub/VERSION").unwrap().read_line().unwrap().as_deref(), Some("v1.15.5-1"));
        assert_eq!(jail.path("sub/missing").unwrap().read_text(Cap::SCRIPT).unwrap(), None);
    }

    #[test]
    fn a_link_out_of_the_tree_is_refused_and_one_inside_is_followed() {
        let (_s, jail, out) = scratch("links");
        std::fs::write(out.join("canary"), "SECRET-CANARY").unwrap();
        std::os::unix::fs::symlink(out.join("canary"), jail.root().join(".go-version")).unwrap();
        let e = jail.path(".go-version").unwrap().read_line().unwrap_err();
        assert!(e.msg.contains("symlink to") && !e.msg.contains("SECRET"), "{}", e.msg);
        std::fs::write(jail.root().join("sub/real"), "1.15.5").unwrap();
        std::os::unix::fs::symlink("sub/real", jail.root().join("inside")).unwrap();
        assert_eq!(jail.path("inside").unwrap().read_line().unwrap().as_deref(), Some("1.15.5"));
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_and_dev_zero_is_refused() {
        let (_s, jail, _) = scratch("special");
        let fifo = jail.root().join("sub/common.sh");
        let c = std::ffi::CString::new(fifo.as_str()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = jail.path("sub/common.sh").unwrap().read_text(Cap::SCRIPT).unwrap_err();
        assert!(e.msg.contains("a FIFO"), "{}", e.msg);
        std::os::unix::fs::symlink("/dev/zero", jail.root().join("zero")).unwrap();
        let e = jail.path("zero").unwrap().read_text(Cap::LIST).unwrap_err();
        assert!(e.msg.contains("refusing"), "{}", e.msg);
        let e = jail.path("sub").unwrap().read_text(Cap::LIST).unwrap_err();
        assert!(e.msg.contains("a directory"), "{}", e.msg);
    }

    #[test]
    fn the_cap_is_kept_and_text_must_be_utf8() {
        let (_s, jail, _) = scratch("cap");
        std::fs::write(jail.root().join("big"), vec![b'x'; 5000]).unwrap();
        let e = jail.path("big").unwrap().read_line().unwrap_err();
        assert!(e.msg.contains("larger than the 4096 bytes a version file"), "{}", e.msg);
        std::fs::write(jail.root().join("bin"), [0xff, 0xfe, b'\n']).unwrap();
        assert!(jail.path("bin").unwrap().read_text(Cap::LINE).unwrap_err().msg.contains("not UTF-8"));
        std::fs::write(jail.root().join("esc"), "1.15.5\x1b[2J\n").unwrap();
        assert!(jail.path("esc").unwrap().read_line().unwrap_err().msg.contains("control character"));
    }
}
