//! Why a value is not valid: [`TicketError`], which field and why. The
//! domain types are only constructible through these checks.

/// A value that failed validation: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The title was empty.
    #[error("title is empty: it must be 1 to 50 bytes of UTF-8")]
    TitleEmpty,
    /// The title was longer than its limit.
    #[error("title is {len} bytes long: it must be at most {max} bytes of UTF-8")]
    TitleTooLong {
        /// The length given, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// The description was empty.
    #[error("description is empty: it must be 1 to 500 bytes of UTF-8")]
    DescriptionEmpty,
    /// The description was longer than its limit.
    #[error("description is {len} bytes long: it must be at most {max} bytes of UTF-8")]
    DescriptionTooLong {
        /// The length given, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// A status that is not one of the known spellings.
    #[error("status {input:?} is not valid: use one of todo, to-do, inprogress, in-progress, done")]
    InvalidStatus {
        /// What was given.
        input: String,
    },
    /// A ticket id that is not a positive whole number.
    #[error("ticket id {input:?} is not valid: use a positive whole number such as 1")]
    InvalidId {
        /// What was given.
        input: String,
    },
    /// A `create_many` with more drafts than one record may hold.
    #[error("a batch of {count} creates is too large: at most {max} go into one atomic record")]
    BatchTooLarge {
        /// The drafts given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An update that would change no field.
    #[error("the update changes nothing: give at least one of title, description or status")]
    EmptyPatch,
}
