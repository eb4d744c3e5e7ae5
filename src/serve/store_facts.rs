//! What the server knows about the store it serves beyond what a query
//! answers: the durability mode and retention it was opened with, and the
//! report of that open's recovery (torn tail cut, snapshot used), which `GET
//! /health` reports.
//!
//! Everything here comes from the library's public API (`Options`,
//! `Store::recovery`) at open; nothing reads the store's files. A server
//! started on a `Client` alone (in-process, for `bench`) has none.

use ticketlog::{Durability, RecoveryReport, Retention};

use crate::cli::json::RecoveryJson;

/// The store's settings and its open's recovery report, fixed for the
/// server's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoreFacts {
    /// `always`, `interval:MS` or `never`.
    pub durability: String,
    /// `keep-all` or `compact`.
    pub retention: String,
    pub recovery: RecoveryJson,
}

impl StoreFacts {
    /// The facts of a store opened with `durability` and `retention` whose
    /// recovery gave `report` (`Store::recovery`).
    pub fn new(report: &RecoveryReport, durability: Durability, retention: Retention) -> Self {
        StoreFacts {
            durability: durability.to_string(),
            retention: retention.to_string(),
            recovery: RecoveryJson::from(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlog::{Options, Store};

    #[test]
    fn the_facts_name_the_modes_as_the_cli_spells_them_and_no_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let facts = StoreFacts::new(
            store.recovery(),
            Durability::Interval(std::time::Duration::from_millis(50)),
            Retention::Compact,
        );
        assert_eq!(
            (facts.durability.as_str(), facts.retention.as_str()),
            ("interval:50", "compact")
        );
        assert_eq!(facts.recovery.torn_tail, None);
        assert_eq!(facts.recovery.history_starts_at_lsn, 1);
        let json = serde_json::to_string(&facts.recovery).unwrap();
        assert!(!json.contains(&*dir.path().to_string_lossy()), "{json}");
        store.close().unwrap();
    }
}
