//! The record of the last build per platform and target list (`_output/local/.kit-build-state`),
//! a [`kube_tree::record`] of kind `kube-build-state`. The kit's own cache: one that cannot be
//! used (a FIFO, a link out, too large, another version, or the tab-separated format of kits
//! before the versioned records) is thrown away, said on stderr, and everything is rebuilt; the
//! next record replaces it.

use camino::Utf8Path;
use kube_tree::record::{self, Kind};
use kube_tree::{log, Cap, Confined, Fail, Tree};
use serde::{Deserialize, Serialize};

/// Where the record lives, relative to the tree.
pub const PATH: &str = "_output/local/.kit-build-state";

/// One of the kit's own caches under `_output`: one that cannot be read (a FIFO, a link out,
/// too large, not text) is thrown away, said on stderr, and rebuilt by the next write.
pub(crate) fn read_cache(tree: &Tree, path: &Utf8Path, what: &str) -> Option<String> {
    match tree.read_text(path, Cap::LIST) {
        Ok(t) => t,
        Err(e) => {
            log::warn(format!("{}; the {what} is thrown away and made again", e.msg));
            None
        }
    }
}

const KIND: Kind = Kind { name: "kube-build-state", version: 1, cap: Cap::LIST };

/// One platform's record: the build date, the fingerprint of what the build read, and the
/// stamps of the binaries it reported (go's and their copies), so that a binary replaced or
/// edited since (an edit moves ctime even when size and mtime are put back) is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformRecord {
    /// `<platform>|<targets>`.
    pub key: String,
    pub date: String,
    pub fingerprint: u64,
    pub outputs: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Rows {
    platforms: Vec<PlatformRecord>,
}

/// The records of the last builds, and where they are saved.
pub struct BuildState {
    file: Confined,
    rows: Rows,
}

impl BuildState {
    pub fn load(file: Confined) -> BuildState {
        let rows = record::load(&file, KIND).or_absent("the build record is thrown away (everything is rebuilt)");
        BuildState { file, rows: rows.unwrap_or_default() }
    }

    pub fn get(&self, key: &str) -> Option<&PlatformRecord> {
        self.rows.platforms.iter().find(|r| r.key == key)
    }

    /// Replaces the record of `rec.key` and saves them all.
    pub fn set(&mut self, rec: PlatformRecord) -> Result<(), Fail> {
        self.rows.platforms.retain(|r| r.key != rec.key);
        self.rows.platforms.push(rec);
        record::save(&self.file, KIND, &self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_tree::Jail;

    #[test]
    fn records_survive_a_reload_and_the_old_format_is_thrown_away() {
        let dir = camino::Utf8PathBuf::from_path_buf(std::env::temp_dir())
            .unwrap()
            .join(format!("kube-build-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("_output/local")).unwrap();
        let file = Jail::new(&dir).unwrap().path(PATH).unwrap();
        // The tab-separated format of earlier kits: not obeyed, treated as no record.
        std::fs::write(
            file.path(),
            "linux/amd64|cmd/kubectl\t2026-01-01T00:00:00Z\t00000000000000ff\t0000000000000001\n",
        )
        .unwrap();
        let mut state = BuildState::load(file.clone());
        assert_eq!(state.get("linux/amd64|cmd/kubectl"), None);
        let rec = PlatformRecord {
            key: "linux/amd64|cmd/kubectl".into(),
            date: "2026-12-03T00:00:00Z".into(),
            fingerprint: u64::MAX,
            outputs: 7,
        };
        state.set(rec.clone()).unwrap();
        state.set(PlatformRecord { key: "linux/arm64|cmd/kubectl".into(), ..rec.clone() }).unwrap();
        let again = BuildState::load(file);
        assert_eq!(again.get("linux/amd64|cmd/kubectl"), Some(&rec));
        assert_eq!(again.rows.platforms.len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
