//! The measured cost of each platform on each engine, kept in the tree for the next split.

use kube_tree::record::{self, Kind};
use kube_tree::{Cap, Fail, Tree};
use std::collections::BTreeMap;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// Seconds each platform took on each engine, by engine spec (`_output/dockerized/.kit-fanout-durations`).
pub type Durations = BTreeMap<String, BTreeMap<String, f64>>;

const DURATIONS: &str = "_output/dockerized/.kit-fanout-durations";

const KIND: Kind = Kind { name: "fanout-durations", version: 1, cap: Cap::SCRIPT };

/// The measured durations (none yet: empty). A file that cannot be used is an error.
pub fn load_durations(tree: &Tree) -> Result<Durations> {
    let file = tree.confined(DURATIONS)?;
    let d: Durations = record::load(&file, KIND)
        .or_fail()
        .map_err(|e| Fail::new(format!("{}; remove it to start afresh", e.msg)))?
        .unwrap_or_default();
    if d.values().flat_map(|m| m.values()).any(|s| !s.is_finite() || *s < 0.0) {
        return Err(Fail::new(format!("{DURATIONS}: a negative or non-finite duration; remove it to start afresh")));
    }
    Ok(d)
}

pub fn save_durations(tree: &Tree, d: &Durations) -> Result<()> {
    record::save(&tree.confined(DURATIONS)?, KIND, d)
}
