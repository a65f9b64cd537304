//! The kit's own state records in a tree (under `_output`): one versioned JSON envelope for all
//! of them, read through the confined, capped reads ([`crate::read`]) and written atomically
//! through [`Confined`], so a tool declares its data type and nothing else: no parser, no format
//! of its own.
//!
//! On disk: `{"record":"<kind>","version":N,"data":<the tool's data>}`. A record is never
//! half-believed: another kind, another version, a file that does not parse or is not a regular
//! file beneath the root is [`Loaded::Refused`] with the reason, and the caller chooses what that
//! means: "no record" said on stderr ([`Loaded::or_absent`]) or an error ([`Loaded::or_fail`]).

use crate::confine::Confined;
use crate::fail::{Fail, Result};
use crate::log;
use crate::read::Cap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A kind of record: its name on disk, the one version this kit reads and writes, and how
/// large a file of it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    pub version: u32,
    pub cap: Cap,
}

/// What [`load`] found.
#[derive(Debug)]
pub enum Loaded<T> {
    Found(T),
    /// No file there.
    Absent,
    /// A file that is not a record of this kind and version (the reason names the file).
    Refused(Fail),
}

impl<T> Loaded<T> {
    /// The record, or none: a refused one is said on stderr with `instead` (what the caller
    /// does without it), for records the kit can rebuild.
    pub fn or_absent(self, instead: &str) -> Option<T> {
        match self {
            Loaded::Found(v) => Some(v),
            Loaded::Absent => None,
            Loaded::Refused(e) => {
                log::warn(format!("{}; {instead}", e.msg));
                None
            }
        }
    }

    /// The record, or none when there is no file; a refused one is the error.
    pub fn or_fail(self) -> Result<Option<T>> {
        match self {
            Loaded::Found(v) => Ok(Some(v)),
            Loaded::Absent => Ok(None),
            Loaded::Refused(e) => Err(e),
        }
    }
}

#[derive(Serialize)]
struct Written<'a, T> {
    record: &'a str,
    version: u32,
    data: &'a T,
}

#[derive(Deserialize)]
struct Read {
    record: String,
    version: u32,
    data: serde_json::Value,
}

/// Reads the record of `kind` at `file`.
pub fn load<T: DeserializeOwned>(file: &Confined, kind: Kind) -> Loaded<T> {
    let bytes = match file.read_bytes(kind.cap) {
        Ok(Some(b)) => b,
        Ok(None) => return Loaded::Absent,
        Err(e) => return Loaded::Refused(e),
    };
    match decode(&bytes, kind) {
        Ok(v) => Loaded::Found(v),
        Err(why) => Loaded::Refused(Fail::new(format!("{}: {why}", file.rel()))),
    }
}

/// The data of a record of `kind`, or why the bytes are not one.
fn decode<T: DeserializeOwned>(bytes: &[u8], kind: Kind) -> std::result::Result<T, String> {
    let env: Read = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a `{}` record this kit wrote (an older kit's format, or garbage: {e})", kind.name))?;
    if env.record != kind.name {
        return Err(format!("a `{}` record, not a `{}` one", env.record.escape_debug(), kind.name));
    }
    if env.version != kind.version {
        return Err(format!(
            "a `{}` record of version {}; this kit reads version {}",
            kind.name, env.version, kind.version
        ));
    }
    serde_json::from_value(env.data).map_err(|e| format!("a `{}` record whose data does not fit: {e}", kind.name))
}

/// Writes `data` as the record of `kind` at `file`, atomically (a temp beside it and a rename),
/// creating its directory beneath the root.
pub fn save<T: Serialize>(file: &Confined, kind: Kind, data: &T) -> Result<()> {
    let env = Written { record: kind.name, version: kind.version, data };
    let bytes = serde_json::to_vec(&env).map_err(|e| Fail::new(format!("{}: cannot encode: {e}", file.rel())))?;
    file.jail().write_file(file.rel(), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Jail;

    const KIND: Kind = Kind { name: "test-state", version: 2, cap: Cap { bytes: 1 << 10, what: "test record" } };

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Row {
        key: String,
        stamp: u64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Data {
        rows: Vec<Row>,
    }

    fn scratch(name: &str) -> (camino::Utf8PathBuf, Confined) {
        let dir = camino::Utf8PathBuf::from_path_buf(std::env::temp_dir())
            .unwrap()
            .join(format!("kube-tree-record-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = Jail::new(&dir).unwrap().path("_output/local/.state").unwrap();
        (dir, file)
    }

    #[test]
    fn a_saved_record_loads_back_and_a_missing_one_is_absent() {
        let (dir, file) = scratch("round");
        assert!(matches!(load::<Data>(&file, KIND), Loaded::Absent));
        let data = Data { rows: vec![Row { key: "linux/amd64|cmd/kubectl".into(), stamp: u64::MAX }] };
        save(&file, KIND, &data).unwrap();
        assert_eq!(load::<Data>(&file, KIND).or_fail().unwrap(), Some(data));
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(text.starts_with(r#"{"record":"test-state","version":2,"data":"#), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn other_kinds_versions_and_garbage_are_refused_with_the_reason() {
        let (dir, file) = scratch("refused");
        std::fs::create_dir_all(file.path().parent().unwrap()).unwrap();
        let cases = [
            ("key\tdate\t00\t00\n", "an older kit's format"),
            (r#"{"record":"other","version":2,"data":{"rows":[]}}"#, "a `other` record, not a `test-state` one"),
            (r#"{"record":"test-state","version":3,"data":{"rows":[]}}"#, "of version 3; this kit reads version 2"),
            (r#"{"record":"test-state","version":2,"data":{"rows":7}}"#, "whose data does not fit"),
        ];
        for (text, why) in cases {
            std::fs::write(file.path(), text).unwrap();
            match load::<Data>(&file, KIND) {
                Loaded::Refused(e) => assert!(e.msg.contains(why) && e.msg.contains(".state"), "{text}: {}", e.msg),
                other => panic!("{text}: {other:?}"),
            }
            assert!(load::<Data>(&file, KIND).or_fail().is_err());
            assert_eq!(load::<Data>(&file, KIND).or_absent("starting afresh"), None);
        }
        // Over the cap: refused without reading it whole.
        std::fs::write(file.path(), vec![b' '; 2 << 10]).unwrap();
        assert!(matches!(load::<Data>(&file, KIND), Loaded::Refused(_)));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
