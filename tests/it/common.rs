//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ticketlog::inspect::LOG_FILE_NAME;
pub use ticketlog::rng::Rng;
use ticketlog::{Options, Store, TicketDraft};

/// A draft with the given title and a fixed description.
pub fn draft(title: &str) -> TicketDraft {
    TicketDraft {
        title: title.try_into().expect("test titles are valid"),
        description: "A ticket made by a test.".try_into().expect("valid"),
    }
}

/// The log file of a data directory.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join(LOG_FILE_NAME)
}

/// Opens a store with default options, panicking on failure (tests only).
pub fn open(dir: &Path) -> Store {
    Store::open(dir, Options::default()).expect("open store")
}

/// A seed for a randomised test: `TICKETLOG_SEED` if set, else from the
/// clock; printed so a failure can be replayed (the crate's one helper).
pub use ticketlog::rng::test_seed as seed;

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bitwise: the
/// tests' own, written from the spec in docs/FORMAT.md rather than reusing
/// the code under test, for building and forging headers by hand.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
