//! Testing support shared by every oracle of the crate (behind the `testing`
//! cargo feature, hidden from the docs, not a stable API).
//!
//! - [`model`]: the one independent model of the store — tickets, the
//!   rules a command is decided and applied by, and checks of real tickets,
//!   replies and logs against it. The fuzz targets, the proptest state
//!   machine, the simulation and `ticketlog crash-test` all check with it.
//! - [`faults`]: [`FaultyStorage`], a wrapper around any
//!   [`Storage`](crate::storage::Storage) that fails, gates (holds) or
//!   panics at the k-th operation, and records every operation.
//! - `fuzz` (with the `arbitrary` feature): the checks behind the fuzz
//!   targets in `fuzz/`.
//!
//! Nothing here is used by the store itself, and nothing here prints.

pub mod faults;
#[cfg(feature = "arbitrary")]
pub mod fuzz;
pub mod model;

pub use faults::FaultyStorage;

/// The most events one subscription feed holds before the server counts its
/// subscriber as lagging (tests count against it).
pub const FEED_EVENTS_MAX: usize = crate::engine::subscription::FEED_EVENTS_MAX;
