//! A run's state files under `_output/dockerized` (sync record, last run, change lists). With a
//! fan-out, each engine's share keeps its own (`NAME.<tag>`), so the engines' runs in one tree
//! never read each other's: the share's [`StateTag`] travels in its options and setup.

/// The tag of one fan-out share's state files: 1-16 lowercase letters or digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTag(String);

impl StateTag {
    /// `t` when it is a valid tag.
    pub fn new(t: &str) -> Option<StateTag> {
        let ok = (1..=16).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        ok.then(|| StateTag(t.to_string()))
    }

    /// `e` and 8 hex digits of `hash` (a fan-out engine's tag).
    pub(crate) fn of_hash(hash: u32) -> StateTag {
        StateTag(format!("e{hash:08x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The state file `name` of the run tagged `tag` (None: a run of its own), relative to the tree.
pub(crate) fn state_file(name: &str, tag: Option<&StateTag>) -> String {
    match tag {
        Some(t) => format!("_output/dockerized/{name}.{}", t.0),
        None => format!("_output/dockerized/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{state_file, StateTag};

    #[test]
    fn a_tag_is_short_lowercase_letters_and_digits() {
        assert!(StateTag::new("e0123abcd").is_some());
        for bad in ["", "E01", "a-b", "a/b", "../x", "abcdefghijklmnopq"] {
            assert!(StateTag::new(bad).is_none(), "{bad}");
        }
        let t = StateTag::new("e01").unwrap();
        assert_eq!(state_file(".kit-last-run", Some(&t)), "_output/dockerized/.kit-last-run.e01");
        assert_eq!(state_file(".kit-last-run", None), "_output/dockerized/.kit-last-run");
    }
}
