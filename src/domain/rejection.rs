//! Why the state machine refuses a command ([`Rejection`]): it names a
//! ticket that does not exist, expects another version, or is not valid.
//! A rejection writes nothing.

use crate::domain::ticket::TicketId;
pub use crate::domain::validation::TicketError;

/// Why [`State::decide`](crate::state::State::decide) rejects a command:
/// it names a ticket that does not exist, expects another version, or is
/// not valid (an empty patch, too many drafts). Nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No ticket has this id.
    NotFound(TicketId),
    /// The ticket is not at the version the command expected.
    Conflict {
        /// The ticket.
        id: TicketId,
        /// The version the command expected.
        expected: u64,
        /// The ticket's current version.
        actual: u64,
    },
    /// The command is not valid.
    Invalid(TicketError),
}

impl From<TicketError> for Rejection {
    fn from(error: TicketError) -> Self {
        Rejection::Invalid(error)
    }
}
