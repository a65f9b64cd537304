//! The containerized build of a Kubernetes tree, as build/run.sh and friends do it, for every era:
//!
//! * rsync mode (eras A and B, and any engine that is not local): a `kube-build` image built from
//!   the tree's build/build-image, a data container holding the sources and caches, an rsync
//!   daemon container on 127.0.0.1 to sync in and out, a throw-away build container;
//! * bind mode (era C, or `--mode bind` on a local engine): kube-cross run directly with the tree
//!   mounted at /go/src/k8s.io/kubernetes.
//!
//! Names follow build/common.sh (so trees built by the scripts are recognised); everything made
//! here also carries labels naming this kit and the tree.

mod arrival;
pub mod cache;
pub mod fanout;
pub mod image;
pub mod toolchain;

mod bind_mode;
mod build;
mod cache_upkeep;
mod clean;
mod containers;
mod copy_output;
mod data_container;
mod engine;
pub mod flags;
mod itemized;
mod job;
mod labels;
mod layout;
mod md5;
mod opening;
mod options;
pub mod password;
mod report;
mod result;
mod rsync;
mod rsync_mode;
mod run;
mod seed;
mod setup;
mod state;
mod sync;

// What the tools use; everything else stays inside the crate.
pub use clean::{all_trees_plan, apply_clean, built_binaries, clean_plan, sizes, CleanPlan};
pub use copy_output::{copy_output, Copied};
pub use engine::{Engine, EngineChoice, Facts, Failed, Kind, MIN_MEMORY};
pub use job::Job;
pub use labels::{LABEL_HASH, LABEL_KEY, LABEL_OWNER, LABEL_TREE, OWNER};
pub use layout::REMOTE_ROOT;
pub use options::{engine_flag, EngineList, RunOptions, ShareOf};
pub use report::{binaries_json, copy_json, RunSubject};
pub use run::{run, RunResult};
pub use setup::{registry_of, Mode, Names, Setup};
pub use state::StateTag;
