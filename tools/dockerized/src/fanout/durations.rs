//! The measured cost of each platform on each engine, kept in the tree for the next split.

use kube_tree::{Cap, Fail, Tree};
use std::collections::BTreeMap;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// Seconds each platform took on each engine, by engine spec (`_output/dockerized/.kit-fanout-durations`).
pub type Durations = BTreeMap<String, BTreeMap<String, f64>>;

const DURATIONS: &str = "_output/dockerized/.kit-fanout-durations";

/// The measured durations (none yet: empty). A file that cannot be read is an error.
pub fn load_durations(tree: &Tree) -> Result<Durations> {
    let path = tree.path(DURATIONS);
    let Some(text) = tree.read_text(&path, Cap::SCRIPT)? else { return Ok(Durations::new()) };
    let d: Durations = serde_json::from_str(&text)
        .map_err(|e| Fail::new(format!("{path}: not a durations file ({e}); remove it to start afresh")))?;
    if d.values().flat_map(|m| m.values()).any(|s| !s.is_finite() || *s < 0.0) {
        return Err(Fail::new(format!("{path}: a negative or non-finite duration; remove it to start afresh")));
    }
    Ok(d)
}

pub fn save_durations(tree: &Tree, d: &Durations) -> Result<()> {
    let text = serde_json::to_string_pretty(d).map_err(|e| Fail::new(format!("durations: {e}")))?;
    tree.write_file(DURATIONS, text.as_bytes())
}
