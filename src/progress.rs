//! Progress of the steps that can take a while — replaying the log, loading
//! or writing a snapshot, compacting — reported to a callback the caller
//! installs with [`Options::progress`](crate::Options::progress).
//!
//! The library never prints: what to show (the CLI draws a progress bar on
//! stderr once a step has run for a second) is the caller's choice. Reports
//! are throttled by the callers of [`Progress::report`], so a callback runs at
//! most a few hundred times per step.

use std::fmt;
use std::sync::Arc;

/// The step being reported on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProgressStep {
    /// Opening: loading the newest snapshot (units: tickets).
    LoadSnapshot,
    /// Opening: replaying the log after the snapshot (units: bytes).
    Replay,
    /// Writing a snapshot, on its helper thread (units: tickets).
    WriteSnapshot,
    /// Removing segments and snapshots a new snapshot made unnecessary
    /// (units: files).
    Compact,
}

impl ProgressStep {
    /// A short name: `load snapshot`, `replay`, `write snapshot`, `compact`.
    pub fn name(self) -> &'static str {
        match self {
            ProgressStep::LoadSnapshot => "load snapshot",
            ProgressStep::Replay => "replay",
            ProgressStep::WriteSnapshot => "write snapshot",
            ProgressStep::Compact => "compact",
        }
    }
}

/// How far a step has come: `done` of `total` units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The step.
    pub step: ProgressStep,
    /// Units done so far.
    pub done: u64,
    /// Units in all (at least `done`).
    pub total: u64,
}

/// The callback [`Options::progress`](crate::Options::progress) installs.
#[derive(Clone)]
pub(crate) struct ProgressFn(Arc<dyn Fn(Progress) + Send + Sync>);

impl ProgressFn {
    pub fn new(callback: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        ProgressFn(Arc::new(callback))
    }

    /// Calls the callback.
    pub fn report(&self, step: ProgressStep, done: u64, total: u64) {
        (self.0)(Progress {
            step,
            done,
            total: total.max(done),
        });
    }
}

impl fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressFn")
    }
}
