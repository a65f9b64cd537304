//! The engine tests' shared helpers (testkit::engine), and the tool under test.
#![allow(dead_code)] // each test file uses its own part

pub use testkit::engine::*;

use camino::Utf8Path;
use kube_tree::proc::Captured;

pub const BIN: &str = env!("CARGO_BIN_EXE_run-dockerized");

pub fn rd(root: &Utf8Path, args: &[&str], envs: &[(&str, &str)]) -> Captured {
    tool(BIN, &[], root, args, envs)
}
