//! The tree the user fetched, remembered for the next commands: one line, the tree's absolute
//! path, in `$XDG_CONFIG_HOME/k8s-build-kit/tree` (else `~/.config/k8s-build-kit/tree`).
//! Discovery reads it after the current directory and before GOPATH; `cargo xtask fetch-tree`
//! writes it and `cargo xtask fetch-tree --forget` removes it. A `--kube-root` given to a tool is
//! not remembered: the choice stays visible on the command line, and a tool run never writes to
//! the user's configuration behind their back.

use crate::confine::Jail;
use crate::fail::{Fail, Result};
use crate::read::Cap;
use camino::{Utf8Path, Utf8PathBuf};

/// The name of the record inside the kit's config directory.
pub const FILE: &str = "tree";
/// How to forget, for messages.
pub const FORGET: &str = "cargo xtask fetch-tree --forget";

/// The kit's config directory: `$XDG_CONFIG_HOME/k8s-build-kit` when that is an absolute path
/// (the XDG rule: a relative one is ignored), else `$HOME/.config/k8s-build-kit`.
pub fn config_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<Utf8PathBuf> {
    let xdg = env("XDG_CONFIG_HOME").map(Utf8PathBuf::from).filter(|p| p.is_absolute());
    let base =
        xdg.or_else(|| env("HOME").map(Utf8PathBuf::from).filter(|p| p.is_absolute()).map(|h| h.join(".config")))?;
    Some(base.join("k8s-build-kit"))
}

/// Where the record is (whether or not it exists), for messages.
pub fn record_path(env: &dyn Fn(&str) -> Option<String>) -> Option<Utf8PathBuf> {
    config_dir(env).map(|d| d.join(FILE))
}

/// The remembered tree, if any. A record that cannot be understood (not one absolute path, a
/// control character, not a regular file, too long) is an error naming the file and the way out.
pub fn recall(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Utf8PathBuf>> {
    let Some(dir) = config_dir(env) else { return Ok(None) };
    if !dir.is_dir() {
        return Ok(None);
    }
    let record = dir.join(FILE);
    let bad = |why: &str| Fail::new(format!("the remembered tree in {record} {why}; `{FORGET}` removes it"));
    let text =
        Jail::new(&dir)?.path(FILE)?.read_text(Cap::LINE).map_err(|e| bad(&format!("cannot be read: {}", e.msg)))?;
    let Some(text) = text else { return Ok(None) };
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let path = Utf8PathBuf::from(line);
    if line.is_empty() || !path.is_absolute() {
        return Err(bad("is not an absolute path"));
    }
    if line.chars().any(char::is_control) {
        return Err(bad("holds a control character"));
    }
    Ok(Some(path))
}

/// Records `root` (absolute, printable) as the remembered tree; returns the record's path.
pub fn remember(root: &Utf8Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Utf8PathBuf> {
    if !root.is_absolute() || root.as_str().chars().any(char::is_control) {
        return Err(Fail::new(format!(
            "refusing to remember {}: not a printable absolute path",
            root.as_str().escape_debug()
        )));
    }
    let dir = config_dir(env)
        .ok_or_else(|| Fail::new("cannot remember the tree: neither XDG_CONFIG_HOME nor HOME is an absolute path"))?;
    fs_err::create_dir_all(&dir)?;
    Jail::new(&dir)?.path(FILE)?.write_atomic(format!("{root}\n").as_bytes())?;
    Ok(dir.join(FILE))
}

/// Removes the record; returns its path when there was one to remove.
pub fn forget(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Utf8PathBuf>> {
    let Some(dir) = config_dir(env).filter(|d| d.is_dir()) else { return Ok(None) };
    let record = Jail::new(&dir)?.path(FILE)?;
    if std::fs::symlink_metadata(record.path()).is_err() {
        return Ok(None);
    }
    record.remove_file()?;
    Ok(Some(dir.join(FILE)))
}
