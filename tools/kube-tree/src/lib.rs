//! The model of a Kubernetes checkout shared by every tool of the kit.
//!
//! * [`root`]: where the checkout is (`--kube-root` > `KUBE_ROOT` > cwd > the remembered tree >
//!   GOPATH); [`remember`]: the tree `cargo xtask fetch-tree` recorded.
//! * [`tree`]: which era it belongs to and the evidence for it.
//! * [`gomod`]: go.mod / go.work / vendor/modules.txt (the tree's era is read from go.mod).
//! * [`scripts`], [`version`]: facts read from the tree's own hack/lib scripts; the version stamp.
//! * [`goenv`], [`gover`]: the Go environment a tree of that era needs, the kube-proxy probe build,
//!   Go release ordering.
//! * [`proc`]: the one place that runs other programs (and handles SIGINT/SIGTERM); [`scope`]:
//!   where a thread's log lines go and what stops its programs (a fan-out share's thread).
//! * [`log`], [`fail`], [`cli`]: Kubernetes-style status lines, exit codes, common flags.
//! * [`confine`]: the checked path type every write, rename and delete goes through; [`read`]:
//!   the confined, regular-file-only, size-capped reads of tree files on top of it.
//! * [`fsx`], [`fnv`], [`json`]: atomic and all-or-nothing writes, fingerprints, JSON output.
//! * [`values`]: image references, registries, ports and engines, checked before use.
//! * [`walk`]: the one tree walk behind every change check.
//! * [`record`]: the kit's own state records in a tree: one versioned JSON envelope, loaded
//!   confined and capped, saved atomically.
//! * `fixture` (feature `fixture`, for tests only): small generated trees of each era.

pub mod cli;
pub mod confine;
pub mod fail;
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod fnv;
pub mod fsx;
pub mod goenv;
pub mod gomod;
pub mod gover;
pub mod json;
pub mod log;
pub mod proc;
pub mod read;
pub mod record;
pub mod remember;
pub mod root;
pub mod scope;
pub mod scripts;
pub mod suggest;
pub mod tree;
pub mod values;
pub mod version;
pub mod walk;

pub use camino::{Utf8Path, Utf8PathBuf};
pub use confine::{Confined, Jail};
pub use fail::{Fail, Status};
pub use read::Cap;
pub use tree::{Era, Tree, VendorLayout};
