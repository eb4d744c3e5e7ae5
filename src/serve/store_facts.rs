//! What the server knows about the store it serves beyond what a query
//! answers: the durability mode and retention it was opened with, and the
//! report of that open's recovery (torn tail cut, snapshot used). `GET
//! /health` reports them and `GET /stats` derives the last LSN from them.
//!
//! Everything here comes from the library's public API (`Options`,
//! `Store::recovery`) at open; nothing reads the store's files.

use ticketlog::{Durability, RecoveryReport, Retention, Stats};

use crate::cli::json::RecoveryJson;

/// The store's settings and its open's recovery report, fixed for the
/// server's life.
#[derive(Clone, Debug)]
pub(crate) struct StoreFacts {
    /// `always`, `interval:MS` or `never`.
    pub durability: String,
    pub retention: Retention,
    /// The LSN of the oldest record in the log when the store was opened.
    pub first_lsn_at_open: u64,
    pub recovery: RecoveryJson,
}

impl StoreFacts {
    /// The facts of a store opened with `durability` and `retention` whose
    /// recovery gave `report` (`Store::recovery`).
    pub fn new(report: &RecoveryReport, durability: Durability, retention: Retention) -> Self {
        StoreFacts {
            durability: durability.to_string(),
            retention,
            first_lsn_at_open: report.history_starts_at_lsn,
            recovery: RecoveryJson::from(report),
        }
    }

    /// The LSN of the newest record, when it can be known exactly from
    /// `stats`: the log holds `stats.records` records from its oldest one,
    /// and under `keep-all` retention (the server never compacts) the oldest
    /// is the one it held at open. Under `compact` the oldest moves with each
    /// snapshot, which the library's `Stats` does not report: `None`.
    pub fn last_lsn(&self, stats: &Stats) -> Option<u64> {
        match self.retention {
            Retention::KeepAll => Some((self.first_lsn_at_open + stats.records).saturating_sub(1)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlog::{Options, Store};

    #[test]
    fn the_last_lsn_counts_from_the_oldest_record_and_only_under_keep_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let client = store.client();
        let facts = StoreFacts::new(store.recovery(), Durability::Always, Retention::KeepAll);
        assert_eq!(facts.last_lsn(&client.stats().unwrap()), Some(0));
        for title in ["a", "b", "c"] {
            client
                .create(ticketlog::TicketDraft {
                    title: title.try_into().unwrap(),
                    description: "d".try_into().unwrap(),
                })
                .unwrap();
        }
        assert_eq!(facts.last_lsn(&client.stats().unwrap()), Some(3));
        let facts = StoreFacts::new(store.recovery(), Durability::Always, Retention::Compact);
        assert_eq!(facts.last_lsn(&client.stats().unwrap()), None);
        assert_eq!(facts.durability, "always");
        store.close().unwrap();
    }
}
