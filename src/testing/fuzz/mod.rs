//! The checking code behind the fuzz targets in `fuzz/`, kept in the library
//! (behind the `arbitrary` feature, hidden from the docs, not a stable API) so
//! that `cargo test` on stable replays every committed corpus and regression
//! input through exactly the code the fuzzer ran.
//!
//! Each target has a `check_bytes(&[u8])` that the fuzz target calls with
//! libFuzzer's input and that panics on any violated property, and a
//! `check`/`run` that returns the violation instead (for the proptest state
//! machine, which shrinks on it).
//!
//! - [`command_stream`]: operations against a real store, step by step
//!   against [`Model`](crate::testing::model::Model), with restarts and crashes that cut the log.
//! - [`log_decode`]: arbitrary bytes as a log file, read with `read_log`
//!   and opened with `Store::open`; the two must agree, and nothing panics.
//! - [`record_roundtrip`]: events framed and decoded again, and every
//!   mutation of the encoding either rejected or canonical.
//!
//! This module may panic: that is how it reports a failed property to
//! libFuzzer. It never prints.

pub mod command_stream;
pub mod log_decode;
pub mod record_roundtrip;

use std::fmt;
use std::path::Path;

/// A violated property: what was being checked and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Where in the input it happened (e.g. `step 12: Create { .. }`).
    pub context: String,
    /// What differed.
    pub message: String,
}

impl Failure {
    pub(crate) fn new(context: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            context: context.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.message)
    }
}

impl std::error::Error for Failure {}

/// A scratch directory for one input: under `$TICKETLOG_FUZZ_DIR` if set, else
/// in `/dev/shm` when it is usable (fdatasync on tmpfs is nearly free, which
/// keeps the fuzzer fast; durability itself is tested elsewhere), else in the
/// system's temporary directory.
pub fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let in_dir = |base: &Path| {
        tempfile::Builder::new()
            .prefix("ticketlog-fuzz-")
            .tempdir_in(base)
    };
    if let Some(base) = std::env::var_os("TICKETLOG_FUZZ_DIR") {
        return in_dir(Path::new(&base));
    }
    in_dir(Path::new("/dev/shm")).or_else(|_| in_dir(&std::env::temp_dir()))
}

/// Fails with `message` unless `condition` holds.
pub(crate) fn ensure(
    condition: bool,
    context: &str,
    message: impl FnOnce() -> String,
) -> Result<(), Failure> {
    if condition {
        Ok(())
    } else {
        Err(Failure::new(context, message()))
    }
}

/// Fails unless `left == right`, showing both.
pub(crate) fn ensure_eq<T: PartialEq + fmt::Debug>(
    left: &T,
    right: &T,
    context: &str,
    what: &str,
) -> Result<(), Failure> {
    ensure(left == right, context, || {
        format!("{what}: store has {left:?}, model expects {right:?}")
    })
}
