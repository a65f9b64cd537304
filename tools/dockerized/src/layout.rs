//! Where the tree lives inside every container (the scripts' path, which every era's build
//! expects).

pub const REMOTE_ROOT: &str = "/go/src/k8s.io/kubernetes";
