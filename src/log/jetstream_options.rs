//! Which NATS servers and stream hold a JetStream log: the options of the
//! second log backend, compiled in every build (so `Options` can name the
//! backend, and a build without the `jetstream` feature can refuse it).

use std::time::Duration;

use crate::error::OpenError;

/// Default time an append to a replicated log may stay in doubt (no
/// acknowledgement, no answer to the read-back) before its commands get
/// [`StorageError::Unavailable`](crate::StorageError::Unavailable): 15 s,
/// longer than a NATS leader election (4–9 s).
pub const IN_DOUBT_DEADLINE_DEFAULT: Duration = Duration::from_secs(15);
/// Default largest JetStream message (one batch, or a part of one): 1 MiB,
/// the NATS server's default `max_payload`.
pub const JETSTREAM_MESSAGE_BYTES_DEFAULT: usize = 1 << 20;

/// Which NATS servers and stream hold a [`LogBackend::JetStream`] log.
///
/// ```
/// use ticketlog::{JetStreamOptions, LogBackend, Options};
///
/// let log = JetStreamOptions::new(["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"], "TICKETS");
/// let options = Options::default().log_backend(LogBackend::JetStream(log));
/// assert!(matches!(options.get_log_backend(), LogBackend::JetStream(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetStreamOptions {
    servers: Vec<String>,
    stream: String,
    in_doubt_deadline: Duration,
    message_bytes_max: usize,
}

impl JetStreamOptions {
    /// The servers' URLs (give all three: the client moves to another when
    /// one is lost) and the stream's name (letters, digits, `-` and `_`).
    pub fn new(
        servers: impl IntoIterator<Item = impl Into<String>>,
        stream: impl Into<String>,
    ) -> Self {
        JetStreamOptions {
            servers: servers.into_iter().map(Into::into).collect(),
            stream: stream.into(),
            in_doubt_deadline: IN_DOUBT_DEADLINE_DEFAULT,
            message_bytes_max: JETSTREAM_MESSAGE_BYTES_DEFAULT,
        }
    }

    /// How long an append may stay in doubt before its commands get
    /// `Unavailable` (default [`IN_DOUBT_DEADLINE_DEFAULT`]). Also bounds
    /// each wait of opening and of catching up.
    pub fn in_doubt_deadline(mut self, deadline: Duration) -> Self {
        self.in_doubt_deadline = deadline;
        self
    }

    /// The stream's largest message, `max_msg_size` (default
    /// [`JETSTREAM_MESSAGE_BYTES_DEFAULT`]; 4 KiB to 1 MiB). A batch that
    /// would be larger is split; one command too large for it is refused
    /// with [`StorageError::RecordTooLarge`](crate::StorageError::RecordTooLarge).
    /// Part of the stream's configuration: every host must use the same.
    pub fn message_bytes_max(mut self, bytes: usize) -> Self {
        self.message_bytes_max = bytes;
        self
    }

    /// The server URLs.
    pub fn get_servers(&self) -> &[String] {
        &self.servers
    }

    /// The stream's name.
    pub fn get_stream(&self) -> &str {
        &self.stream
    }

    /// The in-doubt deadline.
    pub fn get_in_doubt_deadline(&self) -> Duration {
        self.in_doubt_deadline
    }

    /// The largest message.
    pub fn get_message_bytes_max(&self) -> usize {
        self.message_bytes_max
    }

    pub(crate) fn validate(&self) -> Result<(), OpenError> {
        let invalid = |what: String| Err(OpenError::InvalidOptions(what));
        if self.servers.is_empty() {
            return invalid("a JetStream log needs at least one server URL".into());
        }
        if self.stream.is_empty()
            || self.stream.len() > 64
            || !self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return invalid(format!(
                "stream name {:?} is not valid: 1 to 64 letters, digits, '-' or '_'",
                self.stream
            ));
        }
        if self.in_doubt_deadline.is_zero() {
            return invalid("the in-doubt deadline must be longer than zero".into());
        }
        if !(4 << 10..=1 << 20).contains(&self.message_bytes_max) {
            return invalid(format!(
                "message_bytes_max {} is not between 4 KiB and 1 MiB",
                self.message_bytes_max
            ));
        }
        Ok(())
    }
}
