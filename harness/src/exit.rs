//! Exit codes shared by every sub-command (documented in `--help` and README).

use std::fmt;

/// Everything ran and every threshold held.
pub const OK: u8 = 0;
/// Runtime failure: setup failed, I/O error, run interrupted.
pub const RUNTIME: u8 = 1;
/// Usage, config or scenario error, found before any request was sent.
pub const USAGE: u8 = 2;
/// `loadtest ab` ran out of trials before a verdict.
pub const UNDECIDED: u8 = 97;
/// A gate regressed against the baseline (`compare`, `bench --compare`).
pub const REGRESSED: u8 = 98;
/// One or more thresholds were crossed (k6 uses the same code).
pub const THRESHOLDS: u8 = 99;

/// An error that knows which exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Bad flags, scenario or config: nothing was sent.
    Usage(anyhow::Error),
    /// Something went wrong while running.
    Runtime(anyhow::Error),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => USAGE,
            Failure::Runtime(_) => RUNTIME,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(e) | Failure::Runtime(e) => write!(f, "{e:#}"),
        }
    }
}

/// Shorthands for turning any error into a classified one.
pub trait Classify<T> {
    fn usage(self) -> Result<T, Failure>;
    fn runtime(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Classify<T> for Result<T, E> {
    fn usage(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Usage(e.into()))
    }
    fn runtime(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Runtime(e.into()))
    }
}
