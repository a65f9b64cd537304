//! The labels on everything this kit makes (containers, images, the shared cache volume), so
//! that a later run or make-clean can tell the kit's objects and their tree apart.

pub const LABEL_OWNER: &str = "io.k8s-build-kit.owner";
pub const LABEL_TREE: &str = "io.k8s-build-kit.tree";
pub const LABEL_HASH: &str = "io.k8s-build-kit.hash";
/// On the rsync daemon: what it was started from, so a later run knows whether it may reuse it.
pub const LABEL_KEY: &str = "io.k8s-build-kit.key";
/// The value of [`LABEL_OWNER`].
pub const OWNER: &str = "k8s-build-kit";
