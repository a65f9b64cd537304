//! Warnings said once: the Go fallback ("the tree wants goX but it cannot be had; using goY from
//! PATH") is news the first time for a tree and a pair of Gos, noise on every build after. A
//! note under the kit's cache dir (`said/<name>-<hash>`) records that it was said; `-v` says it
//! again.

use camino::Utf8Path;
use kube_tree::confine::Jail;

/// Whether to say the warning `name` about `key` now: always when `verbose`, else only when no
/// note of it is under `cache` (and one is then left). A cache that cannot be written means the
/// warning is said every time, never that it is lost.
pub fn once(cache: &Utf8Path, name: &str, key: &str, verbose: bool) -> bool {
    let dir = cache.join("said");
    let note = format!("{name}-{:016x}", kube_tree::fnv::hash(key.as_bytes()));
    let seen = dir.join(&note).is_file();
    if !seen && fs_err::create_dir_all(&dir).is_ok() {
        let written = Jail::new(&dir).and_then(|j| j.path(&note)?.write_atomic(key.as_bytes()));
        if let Err(e) = written {
            kube_tree::log::status_v(2, format!("cannot note that a warning was said: {e}"));
        }
    }
    verbose || !seen
}

#[cfg(test)]
mod tests {
    use super::once;
    use kube_tree::fixture;

    #[test]
    fn said_once_per_key_and_again_when_verbose() {
        let cache = fixture::scratch_dir("sg-notice");
        assert!(once(&cache, "go-fallback", "/t\0go1.15.5\0go1.19.8", false));
        assert!(!once(&cache, "go-fallback", "/t\0go1.15.5\0go1.19.8", false));
        assert!(once(&cache, "go-fallback", "/t\0go1.15.5\0go1.19.8", true), "-v says it again");
        assert!(once(&cache, "go-fallback", "/other\0go1.15.5\0go1.19.8", false), "another tree");
        assert!(once(&cache, "go-fallback", "/t\0go1.15.5\0go1.20.1", false), "another Go on PATH");
        // A cache that cannot be written: said every time.
        let file = cache.join("a-file");
        std::fs::write(&file, "").unwrap();
        assert!(once(&file, "go-fallback", "k", false));
        assert!(once(&file, "go-fallback", "k", false));
    }
}
