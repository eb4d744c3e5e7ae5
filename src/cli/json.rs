//! The one JSON representation of tickets, events, histories and stats,
//! shared by the CLI's `--json`, the HTTP server (`ticketlog serve`) and the
//! CLI's `--server` client. `docs/openapi.json` is its written contract and
//! the tests check real responses against it.
//!
//! Statuses are spelled as the CLI spells them (`todo`, `in-progress`,
//! `done`), timestamps are RFC 3339 strings in UTC, events carry a `type`
//! tag. These types are built from the library's types and never go the
//! other way: what a client sends is parsed by the request types in
//! `serve::routes` and validated by the library's own constructors.

use serde::{Deserialize, Serialize};
#[cfg(feature = "serve")]
use ticketlog::RecoveryReport;
use ticketlog::{Change, Event, History, Stats, Status, Ticket};

/// A ticket on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketJson {
    pub id: u64,
    pub title: String,
    pub description: String,
    pub status: StatusJson,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Ticket> for TicketJson {
    fn from(ticket: &Ticket) -> Self {
        TicketJson {
            id: ticket.id.get(),
            title: ticket.title.as_str().to_owned(),
            description: ticket.description.as_str().to_owned(),
            status: ticket.status.into(),
            version: ticket.version,
            created_at: ticket.created_at.to_string(),
            updated_at: ticket.updated_at.to_string(),
        }
    }
}

/// A status on the wire: exactly the three canonical spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StatusJson {
    #[serde(rename = "todo")]
    ToDo,
    #[serde(rename = "in-progress")]
    InProgress,
    #[serde(rename = "done")]
    Done,
}

impl From<Status> for StatusJson {
    fn from(status: Status) -> Self {
        match status {
            Status::ToDo => StatusJson::ToDo,
            Status::InProgress => StatusJson::InProgress,
            Status::Done => StatusJson::Done,
        }
    }
}

impl StatusJson {
    /// The spelling, as `Status::as_str` has it.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusJson::ToDo => Status::ToDo.as_str(),
            StatusJson::InProgress => Status::InProgress.as_str(),
            StatusJson::Done => Status::Done.as_str(),
        }
    }
}

/// One change of one ticket on the wire, tagged with `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum EventJson {
    /// The ticket was created (version 1, status `todo`).
    Created {
        lsn: u64,
        ticket_id: u64,
        version: u64,
        at: String,
        title: String,
        description: String,
    },
    /// The ticket was changed; only the fields that were set are present.
    Updated {
        lsn: u64,
        ticket_id: u64,
        version: u64,
        at: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<StatusJson>,
    },
    /// The ticket was deleted, at this version.
    Deleted {
        lsn: u64,
        ticket_id: u64,
        version: u64,
        at: String,
    },
}

impl EventJson {
    /// The wire form of `event`; `None` for a change that is about no ticket
    /// (the library never puts one in an `Event`, and a newer library's new
    /// kind of change is skipped rather than misreported).
    pub fn from_event(event: &Event) -> Option<Self> {
        let (lsn, ticket_id, version, at) = (
            event.lsn,
            event.ticket_id.get(),
            event.version,
            event.at.to_string(),
        );
        Some(match &event.change {
            Change::Created {
                title, description, ..
            } => EventJson::Created {
                lsn,
                ticket_id,
                version,
                at,
                title: title.as_str().to_owned(),
                description: description.as_str().to_owned(),
            },
            Change::Updated {
                title,
                description,
                status,
                ..
            } => EventJson::Updated {
                lsn,
                ticket_id,
                version,
                at,
                title: title.as_ref().map(|t| t.as_str().to_owned()),
                description: description.as_ref().map(|d| d.as_str().to_owned()),
                status: status.map(StatusJson::from),
            },
            Change::Deleted { .. } => EventJson::Deleted {
                lsn,
                ticket_id,
                version,
                at,
            },
            _ => return None,
        })
    }

    /// `created`, `updated` or `deleted`: the `type` tag (and the SSE event name).
    pub fn kind(&self) -> &'static str {
        match self {
            EventJson::Created { .. } => "created",
            EventJson::Updated { .. } => "updated",
            EventJson::Deleted { .. } => "deleted",
        }
    }

    /// (lsn, version, at) of any event.
    pub fn header(&self) -> (u64, u64, &str) {
        match self {
            EventJson::Created {
                lsn, version, at, ..
            }
            | EventJson::Updated {
                lsn, version, at, ..
            }
            | EventJson::Deleted {
                lsn, version, at, ..
            } => (*lsn, *version, at),
        }
    }
}

/// A ticket's history on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryJson {
    pub ticket_id: u64,
    /// The LSN of the oldest record still in the log (1: nothing was compacted).
    pub first_lsn: u64,
    /// Whether the history goes back to the ticket's creation.
    pub complete: bool,
    pub events: Vec<EventJson>,
}

impl HistoryJson {
    pub fn new(ticket_id: u64, history: &History) -> Self {
        HistoryJson {
            ticket_id,
            first_lsn: history.first_lsn,
            complete: history.is_complete(),
            events: history
                .events
                .iter()
                .filter_map(EventJson::from_event)
                .collect(),
        }
    }
}

/// The store's figures on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsJson {
    pub tickets: u64,
    pub todo: u64,
    pub in_progress: u64,
    pub done: u64,
    pub next_id: u64,
    pub log_bytes: u64,
    pub records: u64,
    /// The LSN of the newest record (0: none yet).
    pub last_lsn: u64,
}

impl From<&Stats> for StatsJson {
    fn from(stats: &Stats) -> Self {
        StatsJson {
            tickets: stats.tickets(),
            todo: stats.todo,
            in_progress: stats.in_progress,
            done: stats.done,
            next_id: stats.next_id.get(),
            log_bytes: stats.log_bytes,
            records: stats.records,
            last_lsn: stats.last_lsn,
        }
    }
}

#[cfg(feature = "serve")]
/// What the last open of the store found and did, on the wire (`GET
/// /health`). Files are named without their directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoveryJson {
    /// Records replayed (those after the snapshot, if one was loaded).
    pub records_replayed: u64,
    /// Bytes of the log after recovery.
    pub log_bytes: u64,
    /// Segment files of the log.
    pub segments: u64,
    /// The LSN of the oldest record in the log: history starts here.
    pub history_starts_at_lsn: u64,
    /// The damaged or incomplete end of the log that was cut off, if any.
    pub torn_tail: Option<TornTailJson>,
    /// The snapshot the state was loaded from, if any.
    pub snapshot: Option<SnapshotJson>,
    /// Newer snapshots that failed a check and were skipped.
    pub snapshots_rejected: Vec<RejectedSnapshotJson>,
}

#[cfg(feature = "serve")]
/// A torn tail cut at open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TornTailJson {
    pub offset: u64,
    pub bytes: u64,
    pub damage: String,
}

#[cfg(feature = "serve")]
/// The snapshot an open loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotJson {
    pub file: String,
    pub lsn: u64,
    pub bytes: u64,
    pub tickets: u64,
}

#[cfg(feature = "serve")]
/// A snapshot an open skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectedSnapshotJson {
    pub file: String,
    pub offset: u64,
    pub damage: String,
}

#[cfg(feature = "serve")]
/// The last part of `path` (a file name, never a directory of this machine).
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(feature = "serve")]
impl From<&RecoveryReport> for RecoveryJson {
    fn from(report: &RecoveryReport) -> Self {
        RecoveryJson {
            records_replayed: report.records_replayed,
            log_bytes: report.log_bytes,
            segments: report.segments,
            history_starts_at_lsn: report.history_starts_at_lsn,
            torn_tail: report.torn_tail.as_ref().map(|torn| TornTailJson {
                offset: torn.offset,
                bytes: torn.bytes,
                damage: torn.damage.to_string(),
            }),
            snapshot: report.snapshot.as_ref().map(|snapshot| SnapshotJson {
                file: file_name(&snapshot.path),
                lsn: snapshot.lsn,
                bytes: snapshot.bytes,
                tickets: snapshot.tickets,
            }),
            snapshots_rejected: report
                .snapshots_rejected
                .iter()
                .map(|rejected| RejectedSnapshotJson {
                    file: file_name(&rejected.path),
                    offset: rejected.offset,
                    damage: rejected.damage.to_string(),
                })
                .collect(),
        }
    }
}

/// `GET /health`: whether the store takes writes, how it was opened, and
/// what its open's recovery did.
#[cfg(feature = "serve")]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthJson {
    /// `ok` or `refusing-writes`.
    pub status: String,
    /// Why the store refuses writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `always`, `interval:MS` or `never` (absent from a server started
    /// without its store's settings, as `bench` starts one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<String>,
    /// `keep-all` or `compact` (absent as `durability` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// What the open's recovery did (absent as `durability` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryJson>,
}

/// A page of `GET /tickets`: the tickets, and the `after` of the next page
/// (`null` when this is the last one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageJson {
    pub tickets: Vec<TicketJson>,
    pub next_after: Option<u64>,
}

/// The tickets `POST /tickets/batch` created, in the order given.
#[cfg(feature = "serve")]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketsJson {
    pub tickets: Vec<TicketJson>,
}

/// Every error response: `{"error": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorBodyJson {
    pub error: ErrorJson,
}

/// What went wrong: a stable code, a sentence, and for a version conflict the
/// ticket's current version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorJson {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// With `compacted`: the position of the oldest event the log still holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_position: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_spelled_as_the_cli_spells_them() {
        for status in Status::ALL {
            let json = serde_json::to_string(&StatusJson::from(status)).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(StatusJson::from(status).as_str(), status.as_str());
        }
        assert!(serde_json::from_str::<StatusJson>("\"ToDo\"").is_err());
    }

    #[test]
    fn events_are_tagged_with_type() {
        let event = EventJson::Deleted {
            lsn: 3,
            ticket_id: 1,
            version: 2,
            at: "1970-01-01T00:00:00.000Z".into(),
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["type"], "deleted");
        assert_eq!(event.kind(), "deleted");
        let updated: EventJson = serde_json::from_str(
            r#"{"type":"updated","lsn":4,"ticket_id":1,"version":3,"at":"x","status":"done"}"#,
        )
        .unwrap();
        assert_eq!(updated.header(), (4, 3, "x"));
    }
}
