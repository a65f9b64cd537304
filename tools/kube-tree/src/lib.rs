//! The model of a Kubernetes checkout shared by every tool of the kit.
//!
//! * [`root`]: where the checkout is (`--kube-root` > `KUBE_ROOT` > cwd > GOPATH).
//! * [`tree`]: which era it belongs to and the evidence for it.
//! * [`gomod`]: go.mod / go.work / vendor/modules.txt readers.
//! * [`goenv`]: the Go environment a tree of that era needs, and the kube-proxy probe build.
//! * [`proc`]: the one place that runs other programs.
//! * [`log`], [`fail`], [`cli`]: Kubernetes-style status lines, exit codes, common flags.
//! * [`fsx`]: atomic writes and symlink swaps.

pub mod cli;
pub mod depsyaml;
pub mod fail;
pub mod fixture;
pub mod fnv;
pub mod fsx;
pub mod goenv;
pub mod gover;
pub mod gomod;
pub mod json;
pub mod log;
pub mod proc;
pub mod root;
pub mod scripts;
pub mod textdiff;
pub mod tree;
pub mod version;

pub use camino::{Utf8Path, Utf8PathBuf};
pub use fail::{Fail, Status};
pub use tree::{Era, Tree, VendorLayout};
