//! The value nearly every step of a run takes: its engine and setup. The steps themselves are
//! `impl Job` blocks in the modules of what they do (the build container, the rsync daemon, the
//! image, the cache, the records).

use crate::engine::Engine;
use crate::setup::Setup;

/// One containerized run's engine and setup: what nearly every step needs, passed as one value.
#[derive(Clone, Copy)]
pub struct Job<'a> {
    pub engine: &'a Engine,
    pub setup: &'a Setup,
}
