//! The ticket domain: identifiers, validated field types, statuses and the
//! ticket itself, plus the shapes clients use to create and change tickets.
//!
//! Every field type here can only be built through validation, so a value of
//! type [`TicketTitle`] or [`TicketDescription`] is always within its limits.
//! This module never touches the disk or the clock.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::time::Timestamp;
use crate::domain::validation::TicketError;

/// The identifier of a ticket: 1, 2, 3, … minted only by the server, strictly
/// increasing and never reused, also after a delete or a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(u64);

impl TicketId {
    /// The id as a plain number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for TicketId {
    fn from(value: u64) -> Self {
        TicketId(value)
    }
}

impl From<TicketId> for u64 {
    fn from(id: TicketId) -> Self {
        id.0
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for TicketId {
    type Err = TicketError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim().parse::<u64>() {
            Ok(0) | Err(_) => Err(TicketError::InvalidId {
                input: input.to_owned(),
            }),
            Ok(n) => Ok(TicketId(n)),
        }
    }
}

/// Maximum length of a title, in bytes of UTF-8.
pub const TITLE_BYTES_MAX: usize = 50;
/// Maximum length of a description, in bytes of UTF-8.
pub const DESCRIPTION_BYTES_MAX: usize = 500;

/// A ticket title: 1 to [`TITLE_BYTES_MAX`] bytes of UTF-8, kept exactly as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TicketTitle(String);

/// A ticket description: 1 to [`DESCRIPTION_BYTES_MAX`] bytes of UTF-8, kept exactly as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TicketDescription(String);

impl TicketTitle {
    /// The title as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the title and returns its string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TicketDescription {
    /// The description as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the description and returns its string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<TicketTitle> for String {
    fn from(title: TicketTitle) -> Self {
        title.0
    }
}

impl From<TicketDescription> for String {
    fn from(description: TicketDescription) -> Self {
        description.0
    }
}

impl TryFrom<String> for TicketTitle {
    type Error = TicketError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.len() {
            0 => Err(TicketError::TitleEmpty),
            len if len > TITLE_BYTES_MAX => Err(TicketError::TitleTooLong {
                len,
                max: TITLE_BYTES_MAX,
            }),
            _ => Ok(TicketTitle(value)),
        }
    }
}

impl TryFrom<&str> for TicketTitle {
    type Error = TicketError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        // Check the length before copying, so an enormous input is not cloned.
        if value.len() > TITLE_BYTES_MAX {
            return Err(TicketError::TitleTooLong {
                len: value.len(),
                max: TITLE_BYTES_MAX,
            });
        }
        TicketTitle::try_from(value.to_owned())
    }
}

impl TryFrom<String> for TicketDescription {
    type Error = TicketError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.len() {
            0 => Err(TicketError::DescriptionEmpty),
            len if len > DESCRIPTION_BYTES_MAX => Err(TicketError::DescriptionTooLong {
                len,
                max: DESCRIPTION_BYTES_MAX,
            }),
            _ => Ok(TicketDescription(value)),
        }
    }
}

impl TryFrom<&str> for TicketDescription {
    type Error = TicketError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        if value.len() > DESCRIPTION_BYTES_MAX {
            return Err(TicketError::DescriptionTooLong {
                len: value.len(),
                max: DESCRIPTION_BYTES_MAX,
            });
        }
        TicketDescription::try_from(value.to_owned())
    }
}

impl fmt::Display for TicketTitle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TicketDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a ticket is in its life.
///
/// The order of the variants is part of the log format (bincode writes the
/// variant index): append new variants, never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Not started. Every new ticket starts here.
    ToDo,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
}

impl Status {
    /// Every status, in workflow order.
    pub const ALL: [Status; 3] = [Status::ToDo, Status::InProgress, Status::Done];

    /// The canonical spelling accepted by [`FromStr`] and printed by the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::ToDo => "todo",
            Status::InProgress => "in-progress",
            Status::Done => "done",
        }
    }

    /// Dense index 0..3, used for per-status counters.
    pub(crate) const fn index(self) -> usize {
        match self {
            Status::ToDo => 0,
            Status::InProgress => 1,
            Status::Done => 2,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = TicketError;

    /// Accepts `todo`, `to-do`, `inprogress`, `in-progress` and `done`, in any case.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.to_ascii_lowercase().as_str() {
            "todo" | "to-do" => Ok(Status::ToDo),
            "inprogress" | "in-progress" => Ok(Status::InProgress),
            "done" => Ok(Status::Done),
            _ => Err(TicketError::InvalidStatus {
                input: input.to_owned(),
            }),
        }
    }
}

/// A ticket as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ticket {
    /// Its identifier, minted by the server.
    pub id: TicketId,
    /// Its title.
    pub title: TicketTitle,
    /// Its description.
    pub description: TicketDescription,
    /// Its status.
    pub status: Status,
    /// 1 when created, one more with every accepted change.
    pub version: u64,
    /// When the server accepted the command that created it.
    pub created_at: Timestamp,
    /// When the server accepted the command that last changed it.
    pub updated_at: Timestamp,
}

/// What a client supplies to create a ticket. A new ticket starts as [`Status::ToDo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketDraft {
    /// The new ticket's title.
    pub title: TicketTitle,
    /// The new ticket's description.
    pub description: TicketDescription,
}

/// A change to a ticket: each `Some` field is set; `None` fields stay as they are.
///
/// With `expected_version`, the change is applied only if the ticket's current
/// version equals it (optimistic concurrency); otherwise the client gets
/// [`ClientError::Conflict`](crate::ClientError::Conflict) and nothing is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TicketPatch {
    /// A new title.
    pub title: Option<TicketTitle>,
    /// A new description.
    pub description: Option<TicketDescription>,
    /// A new status.
    pub status: Option<Status>,
    /// Apply only if the ticket is at this version.
    pub expected_version: Option<u64>,
}

impl TicketPatch {
    /// True when the patch sets no field (only, at most, an expected version).
    pub fn changes_nothing(&self) -> bool {
        self.title.is_none() && self.description.is_none() && self.status.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_id_round_trips_through_display_and_parse() {
        let id = TicketId::from(42);
        assert_eq!(id.to_string(), "42");
        assert_eq!("42".parse::<TicketId>().unwrap(), id);
        assert!("0".parse::<TicketId>().is_err());
        assert!("x".parse::<TicketId>().is_err());
        assert_eq!(u64::from(id), 42);
    }
}
