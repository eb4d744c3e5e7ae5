//! The data directory's lock: one writer at a time.
//!
//! Architecture invariant: a store holds the lock from before it reads the
//! log until its server thread has stopped writing; a read-only inspection
//! takes it too when a store has ever run in the directory, so it never reads
//! a log that is being written.

use std::path::Path;
use std::thread;

use crate::error::OpenError;
use crate::storage::{Storage, StorageLock};

/// The lock file in a data directory; an open store holds an exclusive lock on it.
pub(crate) const LOCK_FILE_NAME: &str = "LOCK";

/// How long a contended directory lock is retried before `AlreadyOpen`.
///
/// A lock is tied to an open file description, which a child process forked
/// by any thread of this process shares until it calls `exec`. So a store
/// closed a moment ago can still look locked for that long; a store that is
/// really open elsewhere stays locked and is reported after this bound.
const LOCK_RETRY_MS_MAX: u64 = 200;

/// Takes the data directory's lock, or reports who holds it.
pub(crate) fn lock_dir(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<Box<dyn StorageLock>, OpenError> {
    let lock_path = dir.join(LOCK_FILE_NAME);
    let started = std::time::Instant::now();
    let mut pause_ms = 1;
    loop {
        match storage.try_lock(&lock_path) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) if started.elapsed().as_millis() < u128::from(LOCK_RETRY_MS_MAX) => {
                thread::sleep(std::time::Duration::from_millis(pause_ms));
                pause_ms = (pause_ms * 2).min(20);
            }
            Ok(None) => {
                return Err(OpenError::AlreadyOpen {
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(OpenError::io("lock", &lock_path, e)),
        }
    }
}
