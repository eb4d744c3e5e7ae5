//! Settings for opening a store, with builder methods named after each setting.

use std::fmt;
use std::sync::Arc;

use crate::error::OpenError;
use crate::storage::{FileSystem, Storage};
use crate::wal::Recovery;

/// Default capacity of the request channel.
pub const CHANNEL_CAPACITY_DEFAULT: usize = 1024;
/// Default bound on the requests the server takes into one group commit.
pub const BATCH_COMMANDS_MAX_DEFAULT: usize = 4096;

/// How to open a [`Store`](crate::Store).
///
/// ```
/// let options = ticketlog::Options::default().channel_capacity(16);
/// assert_eq!(options.get_channel_capacity(), 16);
/// ```
#[derive(Clone)]
pub struct Options {
    channel_capacity: usize,
    batch_commands_max: usize,
    storage: Arc<dyn Storage>,
    recovery: Recovery,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            channel_capacity: CHANNEL_CAPACITY_DEFAULT,
            batch_commands_max: BATCH_COMMANDS_MAX_DEFAULT,
            storage: Arc::new(FileSystem),
            recovery: Recovery::default(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("channel_capacity", &self.channel_capacity)
            .field("batch_commands_max", &self.batch_commands_max)
            .field("storage", &self.storage)
            .field("recovery", &self.recovery)
            .finish()
    }
}

impl Options {
    /// How many requests may wait in the request channel (at least 1). When it
    /// is full, blocking client calls wait and `try_*` calls fail with
    /// [`ClientError::Overloaded`](crate::ClientError::Overloaded).
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity;
        self
    }

    /// The most requests the server takes into one batch, that is, one write
    /// and one `fdatasync` (at least 1; 1 turns group commit off).
    pub fn batch_commands_max(mut self, max: usize) -> Self {
        self.batch_commands_max = max;
        self
    }

    /// The storage under the log (default: the real [`FileSystem`]).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// What opening does with a damaged end of the log (default:
    /// [`Recovery::TruncateTornTail`]; [`Recovery::Strict`] changes nothing
    /// and fails instead).
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    /// The recovery mode.
    pub fn get_recovery(&self) -> Recovery {
        self.recovery
    }

    /// The request channel's capacity.
    pub fn get_channel_capacity(&self) -> usize {
        self.channel_capacity
    }

    /// The bound on requests per batch.
    pub fn get_batch_commands_max(&self) -> usize {
        self.batch_commands_max
    }

    pub(crate) fn storage_ref(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub(crate) fn validate(&self) -> Result<(), OpenError> {
        if self.channel_capacity == 0 {
            return Err(OpenError::InvalidOptions(
                "channel_capacity must be at least 1".into(),
            ));
        }
        if self.batch_commands_max == 0 {
            return Err(OpenError::InvalidOptions(
                "batch_commands_max must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
