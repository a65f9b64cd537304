//! The rsync password a kube-build image carries.
//!
//! The scripts make one per image, so every tree and every branch builds its image's last
//! steps (the password's, and those after it) again: about 40 s of layer commits on
//! fuse-overlayfs, the storage rootless engines use. With the shared Go cache (the default),
//! every tree on that cache gets one password instead: the user's, kept 0600 in the kit's cache
//! and named after the cache volume. The image's context is then the same for every tree, branch
//! and worktree of a version, and the engine's layer cache builds a new one in seconds. Whoever
//! can read it could read each tree's copy already: the same user. `--cache private` keeps a
//! password per image, as the scripts do.

use crate::cache::valid_volume_name;
use crate::setup::uid_gid;
use camino::Utf8Path;
use kube_tree::confine::{Confined, Jail};
use kube_tree::{log, Cap, Fail, Tree};
use std::os::unix::fs::MetadataExt;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// How many characters the scripts' password has.
const LENGTH: usize = 32;

/// Where the user's passwords of the shared caches are kept, in the kit's cache.
pub fn shared_dir() -> camino::Utf8PathBuf {
    setup_go::pick::cache_dir(&|k| std::env::var(k).ok()).join("rsyncd")
}

/// 32 random alphanumerics, as the scripts make one.
fn random() -> Result<String> {
    use std::io::Read;
    let mut raw = vec![0u8; 512];
    fs_err::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| *b as char).filter(|c| c.is_ascii_alphanumeric()).take(LENGTH).collect())
}

/// A password file as the kit writes it: a regular file of this user, readable by nobody else,
/// holding 32 alphanumerics. Anything else is refused (never used, never overwritten).
fn read(file: &Confined) -> Result<Option<String>> {
    let Some(text) = file.read_text(Cap::LINE)? else { return Ok(None) };
    let md = fs_err::symlink_metadata(file.path())?;
    let me = uid_gid()?;
    if me.split(':').next() != Some(md.uid().to_string().as_str()) || md.mode() & 0o077 != 0 {
        return Err(Fail::new(format!(
            "{}: an rsync password must be this user's and readable by nobody else (remove it: the kit makes another)",
            file.path()
        )));
    }
    let pw = text.trim_end_matches('\n');
    if pw.len() != LENGTH || !pw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Fail::new(format!("{}: not an rsync password the kit wrote (remove it)", file.path())));
    }
    Ok(Some(pw.to_string()))
}

/// Writes `pw` to `file` unless it holds it already; a new file is 0600 from the start and
/// takes its place whole. With `keep_first`, a file that appeared meanwhile (another run) wins.
fn store(file: &Confined, pw: &str, keep_first: bool) -> Result<()> {
    let tmp = file.temp("new");
    tmp.write_new(pw.as_bytes(), Some(0o600))?;
    let placed = if keep_first { tmp.hard_link_to(file) } else { tmp.rename_to(file) };
    let _ = tmp.remove_file();
    match placed {
        Err(_) if keep_first && file.exists() => Ok(()),
        other => other,
    }
}

/// Whose password an image gets.
pub(crate) enum Owner<'a> {
    /// Every tree's on the shared cache `volume`, kept in `dir` ([`shared_dir`]).
    SharedCache { dir: &'a Utf8Path, volume: &'a str },
    /// The image's own, as the scripts make it.
    Image,
}

/// Whether `file` exists and belongs to another user (a kit cache shared between users).
fn foreign(file: &Confined) -> Result<bool> {
    let Ok(md) = std::fs::symlink_metadata(file.path()) else { return Ok(false) };
    Ok(uid_gid()?.split(':').next() != Some(md.uid().to_string().as_str()))
}

/// The password of the shared cache `volume`, kept in `dir`, made on first use; None when
/// another user's is there (the image then gets its own, as with a private cache).
fn of_shared_cache(dir: &Utf8Path, volume: &str) -> Result<Option<String>> {
    if !valid_volume_name(volume) {
        return Err(Fail::new(format!("cache volume `{}`: not a volume name", volume.escape_debug())));
    }
    fs_err::create_dir_all(dir)?;
    let file = Jail::new(dir)?.path(format!("{volume}.password"))?;
    if foreign(&file)? {
        log::warn(format!("{} is another user's: this image gets a password of its own", file.path()));
        return Ok(None);
    }
    if let Some(pw) = read(&file)? {
        return Ok(Some(pw));
    }
    store(&file, &random()?, true)?;
    read(&file)?.ok_or_else(|| Fail::new(format!("{}: vanished as it was made", file.path()))).map(Some)
}

/// Puts the image's password at `path` in the tree: the shared cache's, or for an image of its
/// own the one already there or a new one.
pub(crate) fn ensure(tree: &Tree, path: &Utf8Path, owner: Owner) -> Result<()> {
    let file = tree.confined(path)?;
    let shared = match owner {
        Owner::SharedCache { dir, volume } => of_shared_cache(dir, volume)?,
        Owner::Image => None,
    };
    match shared {
        Some(pw) => {
            let have = if file.exists() { read(&file).ok().flatten() } else { None };
            if have.as_deref() != Some(pw.as_str()) {
                store(&file, &pw, false)?;
            }
            Ok(())
        }
        // One already there is kept (the scripts' too): the image built with it stays current.
        None if file.exists() => Ok(()),
        None => store(&file, &random()?, false),
    }
}

#[cfg(test)]
mod tests {
    use super::{ensure, read, Owner};
    use kube_tree::confine::Jail;
    use kube_tree::fixture::{scratch_dir, scratch_tree, Spec};
    use kube_tree::Tree;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn trees_on_one_shared_cache_get_one_password_and_a_private_one_its_own() {
        let dir = scratch_dir("pw-cache").join("rsyncd");
        let (a, b) = (scratch_tree("pw-a", &Spec::era_b()), scratch_tree("pw-b", &Spec::era_b()));
        let (a, b) = (Tree::open(&a).unwrap(), Tree::open(&b).unwrap());
        let at = |t: &Tree| t.root.join("_output/images/x/rsyncd.password");
        for t in [&a, &b] {
            std::fs::create_dir_all(at(t).parent().unwrap()).unwrap();
        }
        let volume = "k8s-build-kit-unit";
        let shared = || Owner::SharedCache { dir: &dir, volume };
        ensure(&a, &at(&a), shared()).unwrap();
        ensure(&b, &at(&b), shared()).unwrap();
        let (pa, pb) = (std::fs::read_to_string(at(&a)).unwrap(), std::fs::read_to_string(at(&b)).unwrap());
        assert_eq!(pa, pb);
        assert!(pa.len() == 32 && pa.bytes().all(|c| c.is_ascii_alphanumeric()), "{pa}");
        assert_eq!(std::fs::metadata(at(&a)).unwrap().permissions().mode() & 0o777, 0o600);
        // An image of its own: its own password, kept across runs.
        std::fs::remove_file(at(&b)).unwrap();
        ensure(&b, &at(&b), Owner::Image).unwrap();
        let own = std::fs::read_to_string(at(&b)).unwrap();
        assert_ne!(own, pa);
        ensure(&b, &at(&b), Owner::Image).unwrap();
        assert_eq!(std::fs::read_to_string(at(&b)).unwrap(), own);
        // Back on the shared cache: the tree's copy is the shared one again.
        ensure(&b, &at(&b), shared()).unwrap();
        assert_eq!(std::fs::read_to_string(at(&b)).unwrap(), pa);
        // A shared password others can read is refused, and left as it is.
        let kept = dir.join(format!("{volume}.password"));
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ensure(&a, &at(&a), shared()).unwrap_err();
        assert!(e.msg.contains("readable by nobody else"), "{}", e.msg);
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), pa);
        // So is one that is not a password the kit wrote, and a volume name that is not one.
        std::fs::write(&kept, "short").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read(&Jail::new(&dir).unwrap().path(format!("{volume}.password")).unwrap()).is_err());
        let bad = Owner::SharedCache { dir: &dir, volume: "../x" };
        assert!(ensure(&a, &at(&a), bad).is_err());
        // Another user's (a kit cache shared between users): the image gets its own password.
        // Only root can give a file away; as anyone else this case is not checked.
        if super::uid_gid().unwrap().starts_with("0:") {
            std::fs::write(&kept, &pa).unwrap();
            std::os::unix::fs::chown(&kept, Some(65534), None).unwrap();
            std::fs::remove_file(at(&a)).unwrap();
            ensure(&a, &at(&a), shared()).unwrap();
            let own = std::fs::read_to_string(at(&a)).unwrap();
            assert!(own != pa && own.len() == 32, "{own}");
        } else {
            eprintln!("not root: the case of another user's password file is not checked");
        }
        for t in [&a, &b] {
            let _ = std::fs::remove_dir_all(t.root.parent().unwrap());
        }
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}
