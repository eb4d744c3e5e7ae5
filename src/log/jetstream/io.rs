//! The NATS side of the JetStream log: the connection and the runtime it
//! runs on, the stream's required configuration, the fenced publish with
//! its in-doubt resolution, the leader-served read-back, and the tail task.
//!
//! Every wait here is bounded (a timeout on each request, the in-doubt
//! deadline around each publish). Nothing here decides what a batch means:
//! it moves bytes and reports what the server said.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config, DiscardPolicy, LastRawMessageErrorKind, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use crate::error::OpenError;
use crate::log::LogWaker;

/// The oldest NATS server trusted with the log: 2.12.3 has the clustering
/// and peer-removal fixes made after the Jepsen analysis of 2.12.1, and
/// every release since 2.10 can fsync before acknowledging.
pub const SERVER_VERSION_MIN: &str = "2.12.3";

/// Replicas of the stream: a write is acknowledged once two of three hold it.
pub const STREAM_REPLICAS: usize = 3;

/// How long the server remembers a `Nats-Msg-Id` (duplicate publishes of one
/// batch within it are dropped): longer than any in-doubt deadline.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Bytes of a message left for its headers (Msg-Id, expected stream and
/// sequence) under the server's and the stream's size limits.
pub const HEADER_ALLOWANCE_BYTES: usize = 512;

/// Each request (a publish's ack, a read-back, a stream lookup) waits at
/// most this long; the in-doubt deadline bounds the retries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the client pings a server that has sent it nothing; after
/// three unanswered pings it drops the connection and reconnects to another
/// server. A node that is paused (SIGSTOP, a stalled VM) keeps its sockets
/// open, so without pings a host connected to it would wait for the
/// default interval (60 s, so three minutes) while the rest of the cluster
/// elected a new leader and went on; with 1 s it is back within ~3 s. Any
/// traffic from the server resets the timer, so a busy connection sends no
/// pings at all.
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// The first and the longest pause between two tries of an unsettled
/// publish: short, so that the first try after an election gets in.
const RETRY_PAUSE_MIN: Duration = Duration::from_millis(50);
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(250);

/// Set (to anything) to have every unsettled publish attempt described on
/// stderr: for finding out where a pause in acknowledgements goes.
pub const TRACE_ENV: &str = "TICKETLOG_JETSTREAM_TRACE";

/// Writes `line()` to stderr if [`TRACE_ENV`] is set.
pub(crate) fn trace(line: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os(TRACE_ENV).is_some()) {
        eprintln!("ticketlog jetstream: {}", line());
    }
}

/// After this long without a message, the tail asks the stream whether it
/// missed any (and starts a new consumer if so).
const TAIL_IDLE_CHECK: Duration = Duration::from_secs(2);

/// Messages the tail holds for the server thread before it stops reading.
const TAIL_CAPACITY: usize = 64;

/// The subject a stream's batches are published on.
pub fn subject_for(stream: &str) -> String {
    format!("ticketlog.{stream}")
}

/// Whether `version` ("2.14.6", "v2.12.3-beta") is at least `min`.
pub fn version_at_least(version: &str, min: &str) -> bool {
    fn parts(text: &str) -> Vec<u64> {
        text.trim_start_matches('v')
            .split(['.', '-', '+'])
            .take(3)
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    }
    parts(version) >= parts(min)
}

/// The configuration ticketlog creates the stream with, and requires of an
/// existing one: file storage on three replicas, nothing ever removed by a
/// limit (a full disk fails the publish), no deletes or purges.
pub fn stream_config(stream: &str, message_bytes_max: usize) -> Config {
    Config {
        name: stream.to_string(),
        subjects: vec![subject_for(stream)],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: STREAM_REPLICAS,
        max_messages: -1,
        max_bytes: -1,
        max_age: Duration::ZERO,
        // Bounded by the option's validation to at most 1 MiB.
        max_message_size: i32::try_from(message_bytes_max).unwrap_or(i32::MAX),
        discard: DiscardPolicy::New,
        duplicate_window: DUPLICATE_WINDOW,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        allow_direct: false,
        ..Config::default()
    }
}

/// The first field in which `found` differs from what ticketlog needs.
pub fn config_difference(
    needed: &Config,
    found: &Config,
) -> Option<(&'static str, String, String)> {
    macro_rules! check {
        ($($field:ident),*) => {
            $(
                if needed.$field != found.$field {
                    return Some((
                        stringify!($field),
                        format!("{:?}", needed.$field),
                        format!("{:?}", found.$field),
                    ));
                }
            )*
        };
    }
    check!(
        subjects,
        retention,
        storage,
        num_replicas,
        max_messages,
        max_bytes,
        max_age,
        max_message_size,
        discard,
        duplicate_window,
        deny_delete,
        deny_purge,
        allow_rollup,
        allow_direct
    );
    if found.mirror.is_some() || found.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        return Some(("sources", "none".into(), "a mirror or sources".into()));
    }
    None
}

/// What a fenced publish came to.
#[derive(Debug)]
pub enum Published {
    /// The batch is in the stream at this sequence, on a quorum's disks.
    Committed(u64),
    /// Another batch holds the sequence this one was decided for.
    Fenced,
    /// Neither could be established before the deadline: in doubt.
    Unavailable { waited: Duration, cause: String },
}

/// What the stream holds at one sequence, as its leader says.
enum ReadBack {
    /// The message there, byte for byte.
    Found(Bytes),
    /// Nothing there yet.
    Absent,
}

/// The connection, its runtime, and the stream it writes.
pub struct Io {
    /// Owns the connection's tasks. A runtime of its own keeps the engine
    /// synchronous: the server thread blocks on it between batches.
    pub(super) runtime: Runtime,
    pub(super) context: Context,
    pub stream: String,
    pub subject: String,
    pub servers: String,
    pub deadline: Duration,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("stream", &self.stream)
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

/// What opening learned about the stream.
pub struct Opened {
    pub io: Arc<Io>,
    /// The stream's last sequence when it was opened (0: empty).
    pub last_seq: u64,
    /// The stream's first sequence (1 unless messages were removed).
    pub first_seq: u64,
    /// The payload of the message at `last_seq`, if there is one.
    pub last_payload: Option<Bytes>,
    /// The largest frame a message may carry.
    pub frame_bytes_max: usize,
    /// When the stream was created, in nanoseconds since the epoch: with its
    /// name, what tells this stream from an earlier one of the same name.
    pub created_unix_nanos: i128,
}

impl Io {
    /// Connects, checks the server's version, and creates the stream or
    /// checks the existing one's configuration.
    pub fn open(
        servers: &[String],
        stream: &str,
        message_bytes_max: usize,
        deadline: Duration,
    ) -> Result<Opened, OpenError> {
        let servers_text = servers.join(",");
        let unreachable = |cause: String| OpenError::LogUnreachable {
            servers: servers_text.clone(),
            cause,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ticketlog-nats")
            .enable_all()
            .build()
            .map_err(|e| unreachable(format!("cannot start the I/O runtime: {e}")))?;
        let mut addrs = Vec::with_capacity(servers.len());
        for url in servers {
            addrs.push(
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|e| OpenError::InvalidOptions(format!("server URL {url:?}: {e}")))?,
            );
        }
        let needed = stream_config(stream, message_bytes_max);
        let opened = runtime.block_on(async {
            let client = tokio::time::timeout(
                deadline,
                async_nats::ConnectOptions::new()
                    .connection_timeout(REQUEST_TIMEOUT)
                    .request_timeout(Some(REQUEST_TIMEOUT))
                    .ping_interval(PING_INTERVAL)
                    .max_reconnects(None)
                    .connect(addrs.as_slice()),
            )
            .await
            .map_err(|_| unreachable(format!("no server answered within {deadline:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
            let info = client.server_info();
            if !version_at_least(&info.version, SERVER_VERSION_MIN) {
                return Err(OpenError::LogServerTooOld {
                    servers: servers_text.clone(),
                    version: info.version.clone(),
                    min: SERVER_VERSION_MIN,
                });
            }
            let frame_bytes_max = message_bytes_max
                .min(info.max_payload)
                .saturating_sub(HEADER_ALLOWANCE_BYTES);
            let mut context = jetstream::new(client);
            context.set_timeout(REQUEST_TIMEOUT);
            let started = Instant::now();
            // The meta leader may still be being elected: retry, bounded.
            let mut stream_handle = loop {
                let error = match context.get_stream(stream).await {
                    Ok(handle) => break handle,
                    Err(error) => error,
                };
                let not_found = matches!(
                    error.kind(),
                    async_nats::jetstream::context::GetStreamErrorKind::JetStream(e)
                        if e.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
                );
                if not_found {
                    match context.create_stream(needed.clone()).await {
                        Ok(handle) => break handle,
                        // Another host may have created it meanwhile: look again.
                        Err(_) if started.elapsed() < deadline => {
                            pause_before_retry().await;
                            continue;
                        }
                        Err(e) => return Err(unreachable(format!("create stream {stream}: {e}"))),
                    }
                }
                if started.elapsed() >= deadline {
                    return Err(unreachable(format!("look up stream {stream}: {error}")));
                }
                pause_before_retry().await;
            };
            let found = stream_handle.cached_info().config.clone();
            let created_unix_nanos = stream_handle.cached_info().created.unix_timestamp_nanos();
            if let Some((field, expected, found)) = config_difference(&needed, &found) {
                return Err(OpenError::LogConfigMismatch {
                    stream: stream.to_string(),
                    field,
                    expected,
                    found,
                });
            }
            let state = stream_handle
                .info()
                .await
                .map_err(|e| unreachable(format!("stream {stream} info: {e}")))?
                .state
                .clone();
            let last_payload = if state.last_sequence > 0 {
                match read_back(&context, stream, state.last_sequence).await {
                    Ok(ReadBack::Found(payload)) => Some(payload),
                    Ok(ReadBack::Absent) => None,
                    Err(cause) => return Err(unreachable(cause)),
                }
            } else {
                None
            };
            Ok((
                context,
                state,
                last_payload,
                frame_bytes_max,
                created_unix_nanos,
            ))
        });
        let (context, state, last_payload, frame_bytes_max, created_unix_nanos) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                // Dropping a runtime waits for its tasks; do it off any
                // async context (this thread is the opener's own).
                drop(runtime);
                return Err(error);
            }
        };
        Ok(Opened {
            io: Arc::new(Io {
                runtime,
                context,
                stream: stream.to_string(),
                subject: subject_for(stream),
                servers: servers_text,
                deadline,
            }),
            last_seq: state.last_sequence,
            first_seq: state.first_sequence,
            last_payload,
            frame_bytes_max,
            created_unix_nanos,
        })
    }

    /// Publishes `frame` fenced on the stream's last sequence being
    /// `expected_last`, with `msg_id` for safe retries, and resolves any
    /// doubt until the deadline. Never reports `Committed` unless the stream
    /// holds exactly these bytes at the returned sequence.
    ///
    /// A copy that may have landed (no acknowledgement in time, a dropped
    /// connection) is resolved by sending the identical bytes again, not by
    /// reading back first: the Msg-Id turns a copy that did land into a
    /// duplicate acknowledgement and the fence refuses one that would land
    /// anywhere else, so only those two answers need the read-back of
    /// sequence `expected_last + 1`. A fence refusal counts as fenced only
    /// when it names a last sequence at or past that one: a refusal naming
    /// one short of it (no further than what this host saw committed) comes
    /// from a deposed leader
    /// while the new one may store the copy, so the read-back decides (what
    /// a server holds was committed: a replica stores an entry only once a
    /// majority has it). While the stream has no leader (an
    /// election after the leader died) a read-back gets no answer and would
    /// cost a full request timeout per try, where a publish is refused at
    /// once ("no responders"); so the retries follow the election closely
    /// and the first publish after it settles the batch.
    pub fn publish(&self, expected_last: u64, frame: Bytes, msg_id: &str) -> Published {
        self.runtime.block_on(async {
            let started = Instant::now();
            let target = expected_last + 1;
            let mut pause = RETRY_PAUSE_MIN;
            let mut cause = String::from("no answer yet");
            loop {
                let elapsed = started.elapsed();
                if elapsed >= self.deadline {
                    return Published::Unavailable {
                        waited: elapsed,
                        cause,
                    };
                }
                let attempt =
                    tokio::time::timeout(REQUEST_TIMEOUT.min(self.deadline - elapsed), async {
                        let ack = self
                            .context
                            .send_publish(
                                self.subject.clone(),
                                PublishMessage::build()
                                    .payload(frame.clone())
                                    .message_id(msg_id)
                                    .expected_stream(&self.stream)
                                    .expected_last_sequence(expected_last),
                            )
                            .await?;
                        ack.await
                    })
                    .await;
                let read_back_needed = match attempt {
                    Ok(Ok(ack)) if ack.sequence == target && !ack.duplicate => {
                        return Published::Committed(target);
                    }
                    Ok(Ok(ack)) if ack.sequence == target => {
                        // A duplicate ack names the sequence the first copy
                        // of this Msg-Id got: ours, unless the read-back
                        // says otherwise.
                        cause = "a duplicate acknowledgement".into();
                        true
                    }
                    Ok(Ok(ack)) => {
                        // Acknowledged somewhere else than it was fenced
                        // for: only a broken fence does that. The read-back
                        // decides; never trust this ack.
                        cause = format!(
                            "acknowledged at sequence {} though fenced for {target}",
                            ack.sequence
                        );
                        true
                    }
                    Ok(Err(error)) if error.kind() == PublishErrorKind::WrongLastSequence => {
                        // A leader refuses with its own last sequence. One
                        // at or past `target` has something there: another
                        // host got in first. One short of it (at most
                        // `expected_last`, which this host saw committed) is
                        // a deposed leader that has not yet heard of its
                        // successor, while the real leader may be taking
                        // this very copy: seen with a leader cut off from
                        // the other nodes and healed, where every "fenced"
                        // batch of a host was in the stream, decided again
                        // and published again, 64 times. Then, or if the
                        // answer names no sequence, the read-back decides.
                        let reported = refused_at(&error.to_string());
                        if reported.is_some_and(|last| last >= target) {
                            return Published::Fenced;
                        }
                        cause = format!("a stale refusal ({error})");
                        true
                    }
                    Ok(Err(error)) if error.kind() == PublishErrorKind::StreamNotFound => {
                        // No responders: no stream leader listens (an
                        // election); this copy reached no stream.
                        cause = "no stream leader (no responders)".into();
                        false
                    }
                    Ok(Err(error)) => {
                        cause = error.to_string();
                        false
                    }
                    Err(_) => {
                        cause = format!("no acknowledgement within {REQUEST_TIMEOUT:?}");
                        false
                    }
                };
                trace(|| format!("publish {target} at {:?}: {cause}", started.elapsed()));
                if read_back_needed {
                    // What does the stream hold at `target`?
                    match read_back(&self.context, &self.stream, target).await {
                        Ok(ReadBack::Found(stored)) if stored == frame => {
                            trace(|| format!("read back {target}: this batch ({cause})"));
                            return Published::Committed(target);
                        }
                        Ok(ReadBack::Found(_)) => return Published::Fenced,
                        // Not there: sending the same bytes again is safe.
                        Ok(ReadBack::Absent) => {}
                        Err(read_cause) => cause = format!("{cause}; read-back: {read_cause}"),
                    }
                    trace(|| format!("read back {target} at {:?}: {cause}", started.elapsed()));
                }
                tokio::time::sleep(pause.min(self.deadline.saturating_sub(started.elapsed())))
                    .await;
                pause = (pause * 2).min(RETRY_PAUSE_MAX);
            }
        })
    }

    /// Reads the messages from `from_seq` to `to_seq` with one ordered
    /// consumer, for a reader on another thread: each wait bounded by the
    /// deadline.
    pub fn read_range(
        &self,
        from_seq: u64,
        to_seq: u64,
        visit: &mut VisitMessage<'_>,
    ) -> Result<(), String> {
        if from_seq > to_seq {
            return Ok(());
        }
        let (tx, mut rx) = mpsc::channel(TAIL_CAPACITY);
        let task = self.runtime.spawn(tail(
            self.context.clone(),
            self.stream.clone(),
            from_seq,
            tx,
            Arc::new(Mutex::new(None)),
            Arc::new(AtomicBool::new(false)),
        ));
        let result = (|| {
            loop {
                // The timer is made inside the runtime, which it needs.
                let item = self
                    .runtime
                    .block_on(async { tokio::time::timeout(self.deadline, rx.recv()).await })
                    .map_err(|_| format!("no message within {:?}", self.deadline))?;
                match item {
                    Some(TailItem::Message { seq, payload }) => {
                        if !visit(seq, &payload)? || seq >= to_seq {
                            return Ok(());
                        }
                    }
                    None => return Err("the reading task stopped".into()),
                }
            }
        })();
        task.abort();
        result
    }

    /// Starts the tail: every message from `from_seq` on, in order, into a
    /// bounded channel; `wake` is called when one arrives and no wake is
    /// pending.
    pub fn start_tail(&self, from_seq: u64) -> Tail {
        let (tx, rx) = mpsc::channel(TAIL_CAPACITY);
        let waker = Arc::new(Mutex::new(None));
        let wake_pending = Arc::new(AtomicBool::new(false));
        let task = self.runtime.spawn(tail(
            self.context.clone(),
            self.stream.clone(),
            from_seq,
            tx,
            Arc::clone(&waker),
            Arc::clone(&wake_pending),
        ));
        Tail {
            rx,
            waker,
            wake_pending,
            task,
        }
    }

    /// The message the stream's leader holds at `seq`, if any.
    pub fn read_message(&self, seq: u64) -> Result<Option<Bytes>, String> {
        self.runtime
            .block_on(read_back(&self.context, &self.stream, seq))
            .map(|found| match found {
                ReadBack::Found(payload) => Some(payload),
                ReadBack::Absent => None,
            })
    }

    /// Sleeps on the runtime's timer (the server thread between batches).
    pub fn pause(&self, duration: Duration) {
        self.runtime
            .block_on(async { tokio::time::sleep(duration).await });
    }

    /// Waits at most `wait` for the tail's next message.
    pub fn next_tail(&self, tail: &mut Tail, wait: Duration) -> Option<TailItem> {
        self.runtime
            .block_on(async { tokio::time::timeout(wait, tail.rx.recv()).await })
            .ok()
            .flatten()
    }
}

/// Called with each message's sequence and payload; `Ok(false)` stops.
pub type VisitMessage<'a> = dyn FnMut(u64, &[u8]) -> Result<bool, String> + 'a;

/// One message of the stream, as the tail delivers it.
#[derive(Debug)]
pub enum TailItem {
    /// The message at `seq`.
    Message { seq: u64, payload: Bytes },
}

/// The server thread's end of the tail task.
pub struct Tail {
    rx: mpsc::Receiver<TailItem>,
    waker: Arc<Mutex<Option<LogWaker>>>,
    wake_pending: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail").finish_non_exhaustive()
    }
}

impl Tail {
    /// The next message, if one is already here.
    pub fn try_next(&mut self) -> Option<TailItem> {
        self.rx.try_recv().ok()
    }

    /// Lets the task wake the server again on the next message.
    pub fn rearm(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }

    /// Sets what the task calls to wake the server.
    pub fn set_waker(&self, wake: LogWaker) {
        // A poisoned lock means a waker panicked; replacing it is still right.
        let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(wake);
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The last sequence a fence refusal names ("wrong last sequence: 683"),
/// if it names one.
fn refused_at(text: &str) -> Option<u64> {
    const MARK: &str = "wrong last sequence: ";
    let mut found = None;
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        rest = &rest[at + MARK.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(number) = digits.parse() {
            found = Some(number);
        }
    }
    found
}

/// A pause between retries of an opening request.
async fn pause_before_retry() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// What the stream's leader holds at `seq` (`allow_direct` is off, so no
/// replica that lags answers).
async fn read_back(context: &Context, stream: &str, seq: u64) -> Result<ReadBack, String> {
    let handle = tokio::time::timeout(REQUEST_TIMEOUT, context.get_stream_no_info(stream))
        .await
        .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(REQUEST_TIMEOUT, handle.get_raw_message(seq)).await {
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        Ok(Ok(message)) => Ok(ReadBack::Found(message.payload)),
        Ok(Err(error)) => match error.kind() {
            LastRawMessageErrorKind::NoMessageFound => Ok(ReadBack::Absent),
            LastRawMessageErrorKind::JetStream(e)
                if e.error_code() == async_nats::jetstream::ErrorCode::NO_MESSAGE_FOUND =>
            {
                Ok(ReadBack::Absent)
            }
            _ => Err(error.to_string()),
        },
    }
}

/// The tail task: an ordered consumer from `from_seq`, recreated from the
/// next sequence after any error, forwarding each message in order.
async fn tail(
    context: Context,
    stream: String,
    from_seq: u64,
    tx: mpsc::Sender<TailItem>,
    waker: Arc<Mutex<Option<LogWaker>>>,
    wake_pending: Arc<AtomicBool>,
) {
    let mut next_seq = from_seq.max(1);
    loop {
        let consumer = async {
            let handle = context
                .get_stream_no_info(&stream)
                .await
                .map_err(|e| e.to_string())?;
            let consumer = handle
                .create_consumer(OrderedConfig {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: next_seq,
                    },
                    ..OrderedConfig::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())
        };
        let mut messages = match tokio::time::timeout(REQUEST_TIMEOUT, consumer).await {
            Ok(Ok(messages)) => messages,
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            let item = match tokio::time::timeout(TAIL_IDLE_CHECK, messages.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break, // recreate from `next_seq`
                Err(_idle) => {
                    // Quiet for a while: a consumer left behind by a node
                    // failure can stay silent. If the stream holds more than
                    // we have seen, start a new one from `next_seq`.
                    let last = tokio::time::timeout(REQUEST_TIMEOUT, context.get_stream(&stream))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .map(|handle| handle.cached_info().state.last_sequence);
                    if last.is_some_and(|last| last >= next_seq) {
                        break;
                    }
                    continue;
                }
            };
            let Ok(message) = item else {
                break; // recreate from `next_seq`
            };
            let Ok(info) = message.info() else {
                break;
            };
            // Forwarded as delivered: the server thread checks that the
            // sequences are contiguous and stops loudly if not.
            let seq = info.stream_sequence;
            next_seq = seq + 1;
            let payload = message.payload.clone();
            if tx.send(TailItem::Message { seq, payload }).await.is_err() {
                return; // the log is gone
            }
            if !wake_pending.swap(true, Ordering::AcqRel) {
                let slot = waker.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(wake) = slot.as_ref() {
                    wake();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_last_sequence_it_was_checked_against() {
        assert_eq!(
            refused_at(
                "wrong last sequence: wrong last sequence: 683 (code 400, error code 10071)"
            ),
            Some(683)
        );
        assert_eq!(refused_at("wrong last sequence: 0"), Some(0));
        assert_eq!(refused_at("wrong last sequence"), None);
        assert_eq!(refused_at("stream not found"), None);
    }

    #[test]
    fn versions_older_than_the_minimum_are_refused() {
        assert!(version_at_least("2.14.6", SERVER_VERSION_MIN));
        assert!(version_at_least("v2.12.3", SERVER_VERSION_MIN));
        assert!(version_at_least("2.12.10", SERVER_VERSION_MIN));
        assert!(version_at_least("3.0.0", SERVER_VERSION_MIN));
        assert!(!version_at_least("2.12.2", SERVER_VERSION_MIN));
        assert!(!version_at_least("2.9.10", SERVER_VERSION_MIN));
        assert!(!version_at_least("2.10.25", SERVER_VERSION_MIN));
        assert!(!version_at_least("garbage", SERVER_VERSION_MIN));
    }

    #[test]
    fn a_stream_differing_in_one_field_is_named() {
        let needed = stream_config("T", 1 << 20);
        assert!(config_difference(&needed, &needed).is_none());
        let mut found = needed.clone();
        found.num_replicas = 1;
        assert_eq!(
            config_difference(&needed, &found).unwrap().0,
            "num_replicas"
        );
        let mut found = needed.clone();
        found.storage = StorageType::Memory;
        assert_eq!(config_difference(&needed, &found).unwrap().0, "storage");
    }
}
