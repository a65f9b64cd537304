//! Exit-code contract: 0 ok, 1 problems found, 2 usage or environment error.

use std::fmt;

/// What a tool's `run` reports when it finished its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing wrong (exit 0).
    Ok,
    /// The tool did its job and found this many problems (exit 1).
    Problems(usize),
}

impl Status {
    pub fn from_count(n: usize) -> Status {
        if n == 0 {
            Status::Ok
        } else {
            Status::Problems(n)
        }
    }
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Problems(_) => 1,
        }
    }
}

/// A usage or environment error: one line for the user, exit 2, nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub msg: String,
    /// 2 for usage/environment errors; 130 when interrupted (SIGINT/SIGTERM).
    pub code: i32,
}

impl Fail {
    pub fn new(msg: impl Into<String>) -> Fail {
        Fail { msg: msg.into(), code: 2 }
    }
    pub fn interrupted() -> Fail {
        Fail { msg: "interrupted".into(), code: 130 }
    }
    pub fn exit_code(&self) -> i32 {
        self.code
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Fail {}

impl From<std::io::Error> for Fail {
    // fs-err errors already name the path, so their Display is the whole story.
    fn from(e: std::io::Error) -> Fail {
        Fail::new(e.to_string())
    }
}

impl From<pico_args::Error> for Fail {
    fn from(e: pico_args::Error) -> Fail {
        Fail::new(e.to_string())
    }
}

/// `bail!("...")`: return a [`Fail`] built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::fail::Fail::new(format!($($arg)*))) };
}

pub type Result<T, E = Fail> = std::result::Result<T, E>;
