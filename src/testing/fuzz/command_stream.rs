//! The `command_stream` property: a sequence of operations run against a real
//! store on the real file system gets, step by step, exactly the replies and
//! errors the [`Model`] predicts; the store's state equals the model's after
//! every step; and after every reopen — a clean restart, or a crash that cut
//! bytes off the log — the state is the model's state for exactly the records
//! that survived. A `create_many` is one record: after a crash all of its
//! tickets exist or none does.
//!
//! A crash is the store dropped without `close`, then the tail of its log cut
//! at an arbitrary byte (possibly into the file header) and, when the header
//! survives, zeros appended (a file whose length was updated before its data
//! was). Acknowledged records are lost only because the test cut durable
//! bytes, so the surviving records are exactly those whose bytes are intact,
//! and the model replays precisely those.

use std::fs;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};

use crate::api::client::{Client, PendingReply};
use crate::api::inspect::record::{FILE_HEADER_LEN, FileHeader};
use crate::api::inspect::{self, LOG_FILE_NAME, LogEntry};
use crate::api::store::Store;
use crate::domain::command::{Command, ListQuery};
use crate::domain::ticket::{
    Status, Ticket, TicketDescription, TicketDraft, TicketId, TicketPatch, TicketTitle,
};
use crate::domain::validation::TicketError;
use crate::engine::request::ClientError;
use crate::options::Options;
use crate::testing::fuzz::{Failure, scratch_dir};
use crate::testing::model::{Model, Refusal, validate_description, validate_title};

/// Operations run per input at most, so one input cannot run for long.
pub const OPS_MAX: usize = 200;
/// Commands in one pipelined burst at most.
pub const PIPELINE_COMMANDS_MAX: usize = 16;
/// Most drafts built for one `create_many`: just past the call's limit.
pub const CREATE_MANY_DRAFTS_MAX: usize = crate::domain::command::CREATE_MANY_MAX + 8;
/// Longest raw text built for an invalid-input operation, in bytes.
pub const RAW_TEXT_BYTES_MAX: usize = 1024;

/// Which ticket an operation is about, resolved against the model when the
/// operation runs, so that inputs hit live tickets often.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The n-th live ticket (modulo their number); the next id if none is live.
    Live(u8),
    /// The n-th id that is not live (deleted, or lost to a cut log); an id
    /// never minted if there is none.
    Gone(u8),
    /// This id, whatever it is (0 and huge ids included).
    Raw(u64),
}

/// An update's expected version, resolved against the target's version.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The version the ticket is at: the update applies.
    Current,
    /// The current version plus this (a conflict unless 0).
    Off(i8),
    /// This version.
    Raw(u64),
}

/// Text for an invalid-input operation, checked through `TryFrom` like user input.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum RawText {
    /// The empty string.
    Empty,
    /// This text.
    Text(String),
    /// `text` repeated until it is at least `bytes` long (capped at
    /// [`RAW_TEXT_BYTES_MAX`]): reaches the limits and just past them.
    Repeat {
        /// What to repeat.
        text: String,
        /// The length to reach.
        bytes: u16,
    },
}

impl RawText {
    /// The text this stands for.
    pub fn build(&self) -> String {
        match self {
            RawText::Empty => String::new(),
            RawText::Text(text) => text.clone(),
            RawText::Repeat { text, bytes } => {
                let want = usize::from(*bytes).min(RAW_TEXT_BYTES_MAX);
                let mut built = String::new();
                while !text.is_empty() && built.len() < want {
                    built.push_str(text);
                }
                built
            }
        }
    }
}

/// A command inside a [`Op::Pipeline`].
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Pipelined {
    /// Create a ticket.
    Create {
        /// Its title.
        title: TicketTitle,
        /// Its description.
        description: TicketDescription,
    },
    /// Update a ticket.
    Update {
        /// Which one (resolved before the burst is sent).
        target: Target,
        /// New title.
        title: Option<TicketTitle>,
        /// New status.
        status: Option<Status>,
        /// Expected version.
        expect: Option<Expect>,
    },
    /// Delete a ticket.
    Delete {
        /// Which one (resolved before the burst is sent).
        target: Target,
    },
}

/// One step of a command stream.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create a ticket from valid fields.
    Create {
        /// Its title.
        title: TicketTitle,
        /// Its description.
        description: TicketDescription,
    },
    /// Create a ticket from raw text: validation must refuse empty and
    /// over-long fields exactly as the model does, and pass the rest.
    CreateUnchecked {
        /// The title text.
        title: RawText,
        /// The description text.
        description: RawText,
    },
    /// Update any subset of a ticket's fields, with or without an expected version.
    Update {
        /// Which ticket.
        target: Target,
        /// New title.
        title: Option<TicketTitle>,
        /// New description.
        description: Option<TicketDescription>,
        /// New status.
        status: Option<Status>,
        /// Expected version.
        expect: Option<Expect>,
    },
    /// An update from raw text, validated like user input.
    UpdateUnchecked {
        /// Which ticket.
        target: Target,
        /// New title text.
        title: Option<RawText>,
        /// New description text.
        description: Option<RawText>,
        /// New status.
        status: Option<Status>,
        /// Expected version.
        expect: Option<Expect>,
    },
    /// Delete a ticket.
    Delete {
        /// Which ticket.
        target: Target,
    },
    /// Read one ticket.
    Get {
        /// Which ticket.
        target: Target,
    },
    /// List tickets.
    List {
        /// Only this status.
        status: Option<Status>,
        /// Only ids after this one.
        after: Option<Target>,
        /// At most this many.
        limit: Option<u8>,
    },
    /// Send several commands without waiting, then wait for every reply (one
    /// client's commands apply in order; the server may group-commit them).
    Pipeline {
        /// The commands, at most [`PIPELINE_COMMANDS_MAX`] are used.
        commands: Vec<Pipelined>,
    },
    /// Parse a ticket id as the CLI does.
    ParseId {
        /// The text.
        text: String,
    },
    /// Parse a status as the CLI does.
    ParseStatus {
        /// The text.
        text: String,
    },
    /// Create several tickets as one log record with `create_many`.
    CreateMany {
        /// The drafts.
        drafts: Vec<TicketDraft>,
        /// Repeat the drafts until there are this many (at most
        /// [`CREATE_MANY_DRAFTS_MAX`]), to reach and pass the call's limit.
        repeat_to: Option<u16>,
    },
    /// Close the store and open it again.
    Restart,
    /// Drop the store without closing, cut the log's tail, maybe append zeros, reopen.
    Crash {
        /// Bytes cut off the end (modulo the file's length plus one).
        cut: u16,
        /// Zero bytes appended afterwards (only when the file header survives).
        zeros: u8,
    },
}

/// Decodes `data` into operations (as libFuzzer's input) and runs them;
/// panics on the first violated property.
pub fn check_bytes(data: &[u8]) {
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let dir = scratch_dir().expect("a scratch directory for the store");
    if let Err(failure) = run(&ops, dir.path()) {
        panic!("command_stream: {failure}");
    }
}

/// Runs `ops` (at most [`OPS_MAX`]) against a store in `dir`, an empty
/// directory, checking every step against the model; then closes the store
/// and checks the log on disk.
pub fn run(ops: &[Op], dir: &Path) -> Result<(), Failure> {
    let mut harness = Harness::open(dir).map_err(|message| Failure::new("open", message))?;
    for (index, op) in ops.iter().take(OPS_MAX).enumerate() {
        harness
            .step(op)
            .and_then(|()| harness.check_state())
            .map_err(|message| Failure::new(format!("step {index}: {op:?}"), message))?;
    }
    harness
        .restart()
        .map_err(|message| Failure::new("final restart", message))
}

struct Harness {
    dir: PathBuf,
    store: Option<Store>,
    client: Client,
    model: Model,
}

type Checked = Result<(), String>;

impl Harness {
    fn open(dir: &Path) -> Result<Harness, String> {
        let store = Store::open(dir, Options::default()).map_err(|e| format!("open: {e}"))?;
        let client = store.client();
        let harness = Harness {
            dir: dir.to_path_buf(),
            store: Some(store),
            client,
            model: Model::default(),
        };
        let report = harness.store().recovery().clone();
        if report.records_replayed != 0 || report.torn_tail.is_some() {
            return Err(format!("a new store reports {report:?}"));
        }
        Ok(harness)
    }

    fn store(&self) -> &Store {
        self.store
            .as_ref()
            .expect("the harness always holds an open store between steps")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE_NAME)
    }

    fn step(&mut self, op: &Op) -> Checked {
        match op {
            Op::Create { title, description } => self.execute(Command::Create(TicketDraft {
                title: title.clone(),
                description: description.clone(),
            })),
            Op::CreateUnchecked { title, description } => {
                let title = checked_title(&title.build())?;
                let description = checked_description(&description.build())?;
                match (title, description) {
                    (Some(title), Some(description)) => {
                        self.execute(Command::Create(TicketDraft { title, description }))
                    }
                    _ => Ok(()),
                }
            }
            Op::Update {
                target,
                title,
                description,
                status,
                expect,
            } => {
                let id = self.resolve(target);
                let patch = TicketPatch {
                    title: title.clone(),
                    description: description.clone(),
                    status: *status,
                    expected_version: self.expected_version(id, expect.as_ref()),
                };
                self.execute(Command::Update(id, patch))
            }
            Op::UpdateUnchecked {
                target,
                title,
                description,
                status,
                expect,
            } => {
                let title = match title {
                    Some(raw) => match checked_title(&raw.build())? {
                        Some(title) => Some(title),
                        None => return Ok(()),
                    },
                    None => None,
                };
                let description = match description {
                    Some(raw) => match checked_description(&raw.build())? {
                        Some(description) => Some(description),
                        None => return Ok(()),
                    },
                    None => None,
                };
                let id = self.resolve(target);
                let patch = TicketPatch {
                    title,
                    description,
                    status: *status,
                    expected_version: self.expected_version(id, expect.as_ref()),
                };
                self.execute(Command::Update(id, patch))
            }
            Op::Delete { target } => {
                let id = self.resolve(target);
                self.execute(Command::Delete(id))
            }
            Op::Get { target } => {
                let id = self.resolve(target);
                let got = self.client.get(id).map_err(|e| format!("get: {e}"))?;
                let expected = self.model.get(id).cloned();
                if got != expected {
                    return Err(format!("get({id}) = {got:?}, model expects {expected:?}"));
                }
                Ok(())
            }
            Op::List {
                status,
                after,
                limit,
            } => {
                let query = ListQuery {
                    status: *status,
                    after: after.as_ref().map(|target| self.resolve(target)),
                    limit: limit.map(usize::from),
                };
                let got = self
                    .client
                    .list(query.clone())
                    .map_err(|e| format!("list: {e}"))?;
                let expected = self.model.list(&query);
                if got != expected {
                    return Err(format!(
                        "list({query:?}) = {got:?}, model expects {expected:?}"
                    ));
                }
                Ok(())
            }
            Op::Pipeline { commands } => self.pipeline(commands),
            Op::ParseId { text } => {
                let got = text.parse::<TicketId>();
                let expected = match text.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(TicketId::from(n)),
                    _ => Err(TicketError::InvalidId {
                        input: text.clone(),
                    }),
                };
                if got != expected {
                    return Err(format!("parse id = {got:?}, model expects {expected:?}"));
                }
                Ok(())
            }
            Op::ParseStatus { text } => {
                let got = text.parse::<Status>();
                let spelled = |names: &[&str]| names.iter().any(|n| text.eq_ignore_ascii_case(n));
                let expected = if spelled(&["todo", "to-do"]) {
                    Ok(Status::ToDo)
                } else if spelled(&["inprogress", "in-progress"]) {
                    Ok(Status::InProgress)
                } else if spelled(&["done"]) {
                    Ok(Status::Done)
                } else {
                    Err(TicketError::InvalidStatus {
                        input: text.clone(),
                    })
                };
                if got != expected {
                    return Err(format!(
                        "parse status = {got:?}, model expects {expected:?}"
                    ));
                }
                Ok(())
            }
            Op::CreateMany { drafts, repeat_to } => {
                let mut drafts = drafts.clone();
                if let Some(count) = repeat_to
                    && !drafts.is_empty()
                {
                    let count = usize::from(*count).min(CREATE_MANY_DRAFTS_MAX);
                    drafts = drafts.iter().cycle().take(count).cloned().collect();
                }
                self.create_many(drafts)
            }
            Op::Restart => self.restart(),
            Op::Crash { cut, zeros } => self.crash(*cut, *zeros),
        }
    }

    fn resolve(&self, target: &Target) -> TicketId {
        match target {
            Target::Live(n) => {
                let live: Vec<TicketId> = self.model.tickets().map(|t| t.id).collect();
                if live.is_empty() {
                    self.model.next_id()
                } else {
                    live[usize::from(*n) % live.len()]
                }
            }
            Target::Gone(n) => {
                let gone: Vec<u64> = self.model.gone_ids().collect();
                if gone.is_empty() {
                    TicketId::from(self.model.next_id().get() + u64::from(*n))
                } else {
                    TicketId::from(gone[usize::from(*n) % gone.len()])
                }
            }
            Target::Raw(id) => TicketId::from(*id),
        }
    }

    fn expected_version(&self, id: TicketId, expect: Option<&Expect>) -> Option<u64> {
        let current = self.model.get(id).map_or(1, |ticket| ticket.version);
        expect.map(|expect| match expect {
            Expect::Current => current,
            Expect::Off(delta) => current.wrapping_add_signed(i64::from(*delta)),
            Expect::Raw(version) => *version,
        })
    }

    /// Runs one command and checks its reply against the model.
    fn execute(&mut self, command: Command) -> Checked {
        let decision = self.model.decide(&command);
        let reply = self.client.execute(command.clone());
        self.check_reply(&command, decision, reply)
    }

    fn check_reply(
        &mut self,
        command: &Command,
        decision: Result<crate::testing::model::Decision, Refusal>,
        reply: Result<Ticket, ClientError>,
    ) -> Checked {
        match (decision, reply) {
            (Ok(decision), Ok(ticket)) => self
                .model
                .acknowledge(decision, &ticket)
                .map_err(|e| format!("{command:?}: {e}")),
            (Err(refusal), Err(error)) if refusal.matches(&error) => Ok(()),
            (decision, reply) => Err(format!(
                "{command:?}: store answered {reply:?}, model expects {decision:?}"
            )),
        }
    }

    /// Runs one `create_many` and checks its reply against the model.
    fn create_many(&mut self, drafts: Vec<TicketDraft>) -> Checked {
        let count = drafts.len();
        let decision = self.model.decide_many(&drafts).map(<[TicketDraft]>::to_vec);
        match (decision, self.client.create_many(drafts)) {
            (Ok(drafts), Ok(tickets)) => self
                .model
                .acknowledge_many(&drafts, &tickets)
                .map_err(|e| format!("create_many of {count}: {e}")),
            (Err(refusal), Err(error)) if refusal.matches(&error) => Ok(()),
            (decision, reply) => Err(format!(
                "create_many of {count}: store answered {:?}, model expects {:?}",
                reply.map(|tickets| tickets.len()),
                decision.map(|drafts| drafts.len())
            )),
        }
    }

    fn pipeline(&mut self, commands: &[Pipelined]) -> Checked {
        // Targets are resolved against the model before the burst, as a
        // client that pipelines would know them.
        let commands: Vec<Command> = commands
            .iter()
            .take(PIPELINE_COMMANDS_MAX)
            .map(|pipelined| match pipelined {
                Pipelined::Create { title, description } => Command::Create(TicketDraft {
                    title: title.clone(),
                    description: description.clone(),
                }),
                Pipelined::Update {
                    target,
                    title,
                    status,
                    expect,
                } => {
                    let id = self.resolve(target);
                    Command::Update(
                        id,
                        TicketPatch {
                            title: title.clone(),
                            description: None,
                            status: *status,
                            expected_version: self.expected_version(id, expect.as_ref()),
                        },
                    )
                }
                Pipelined::Delete { target } => Command::Delete(self.resolve(target)),
            })
            .collect();
        let mut pending: Vec<(Command, PendingReply<Ticket>)> = Vec::new();
        for command in commands {
            let reply = self
                .client
                .submit(command.clone())
                .map_err(|e| format!("submit {command:?}: {e}"))?;
            pending.push((command, reply));
        }
        // One client's commands apply in submission order, so the model
        // decides each in that order too.
        for (command, reply) in pending {
            let decision = self.model.decide(&command);
            self.check_reply(&command, decision, reply.wait())?;
        }
        Ok(())
    }

    /// The store's live state and figures against the model's.
    fn check_state(&self) -> Checked {
        let listed = self
            .client
            .list(ListQuery::default())
            .map_err(|e| format!("list: {e}"))?;
        let expected = self.model.list(&ListQuery::default());
        if listed != expected {
            return Err(format!(
                "state: store lists {listed:?}, model holds {expected:?}"
            ));
        }
        let stats = self.client.stats().map_err(|e| format!("stats: {e}"))?;
        self.model.check_stats(&stats)?;
        // The file holds the log's bytes, then (preallocated) only zeros.
        let file = fs::read(self.log_path()).map_err(|e| format!("read log: {e}"))?;
        let tail = usize::try_from(stats.log_bytes)
            .ok()
            .and_then(|at| file.get(at..));
        match tail {
            Some(tail) if tail.iter().all(|&b| b == 0) => Ok(()),
            _ => Err(format!(
                "stats report {} log bytes; the file has {} and not only zeros after them",
                stats.log_bytes,
                file.len()
            )),
        }
    }

    /// After a reopen: every ticket by id, and the ids around them.
    fn check_reopened_state(&self) -> Checked {
        self.check_state()?;
        for ticket in self.model.tickets() {
            let got = self
                .client
                .get(ticket.id)
                .map_err(|e| format!("get: {e}"))?;
            if got.as_ref() != Some(ticket) {
                return Err(format!("after reopen get({}) = {got:?}", ticket.id));
            }
        }
        for id in self.model.gone_ids().chain([self.model.next_id().get()]) {
            let got = self
                .client
                .get(TicketId::from(id))
                .map_err(|e| format!("get: {e}"))?;
            if got.is_some() {
                return Err(format!("after reopen ticket {id} exists: {got:?}"));
            }
        }
        Ok(())
    }

    /// Reads the closed store's log and checks it holds exactly the model's
    /// acknowledged changes, cleanly ended.
    fn check_closed_log(&mut self) -> Result<Vec<LogEntry>, String> {
        let mut entries = Vec::new();
        let report = inspect::read_log(&self.dir, |entry| entries.push(entry.clone()))
            .map_err(|e| format!("read_log after close: {e}"))?;
        self.model.check_log(&entries)?;
        if report.scan.torn_tail.is_some() || report.scan.valid_bytes != report.scan.file_bytes {
            return Err(format!("a cleanly written log reads as {report:?}"));
        }
        let tickets = self.model.tickets().count() as u64;
        if report.next_id != self.model.next_id() || report.tickets != tickets {
            return Err(format!(
                "read_log replays to next id {} and {} tickets, model has {} and {tickets}",
                report.next_id,
                report.tickets,
                self.model.next_id()
            ));
        }
        Ok(entries)
    }

    fn reopen(&mut self) -> Result<(), String> {
        let store =
            Store::open(&self.dir, Options::default()).map_err(|e| format!("reopen: {e}"))?;
        self.client = store.client();
        self.store = Some(store);
        Ok(())
    }

    fn restart(&mut self) -> Checked {
        let store = self.store.take().expect("open between steps");
        store.close().map_err(|e| format!("close: {e}"))?;
        let entries = self.check_closed_log()?;
        let file_len = fs::metadata(self.log_path())
            .map_err(|e| format!("stat log: {e}"))?
            .len();
        self.reopen()?;
        let report = self.store().recovery();
        // Every record is replayed: the model's commands, plus the seals and
        // digest records the store adds, which carry no command.
        if report.records_replayed != entries.len() as u64
            || (entries.len() as u64) < self.model.records()
            || report.torn_tail.is_some()
            || report.log_bytes != file_len
        {
            return Err(format!(
                "reopen after close reports {report:?}; model has {} records in {file_len} bytes",
                self.model.records()
            ));
        }
        self.check_reopened_state()
    }

    fn crash(&mut self, cut: u16, zeros: u8) -> Checked {
        // Without close: Drop must leave every acknowledged record in the log.
        drop(self.store.take());
        let entries = self.check_closed_log()?;
        let path = self.log_path();
        let before = fs::read(&path).map_err(|e| format!("read log: {e}"))?;

        let keep = before.len() - usize::from(cut) % (before.len() + 1);
        let header_survives = keep >= FILE_HEADER_LEN;
        let mut after = before[..keep].to_vec();
        if header_survives {
            after.resize(keep + usize::from(zeros), 0);
        }
        fs::write(&path, &after).map_err(|e| format!("write cut log: {e}"))?;

        // The records that survive are those whose bytes are all still there
        // (zeros appended can even restore a record whose cut bytes were zeros).
        let survivors = if header_survives {
            entries
                .iter()
                .take_while(|entry| {
                    let range = entry.offset as usize..(entry.offset + entry.len) as usize;
                    after.get(range.clone()) == Some(&before[range])
                })
                .count()
        } else {
            0
        };
        let valid_end = match survivors {
            0 if !header_survives => 0,
            0 => FILE_HEADER_LEN as u64,
            n => entries[n - 1].offset + entries[n - 1].len,
        };
        // Zeros after the records of a version-2 segment are its zero tail,
        // not a torn tail (docs/FORMAT.md, "The zero tail").
        let zero_tail = header_survives
            && after[..FILE_HEADER_LEN]
                .try_into()
                .ok()
                .and_then(|header| FileHeader::decode(header).ok())
                .is_some_and(|header| header.allows_zero_tail())
            && after[valid_end as usize..].iter().all(|&b| b == 0);
        let dropped = if zero_tail {
            0
        } else {
            after.len() as u64 - valid_end
        };

        self.reopen()?;
        let report = self.store().recovery().clone();
        let log_bytes = valid_end.max(FILE_HEADER_LEN as u64);
        if report.records_replayed != survivors as u64
            || report.bytes_dropped() != dropped
            || report.torn_tail.is_some() != (dropped > 0)
            || report.log_bytes != log_bytes
        {
            return Err(format!(
                "after cutting the log to {keep} bytes and appending {} zeros, reopen reports \
                 {report:?}; expected {survivors} records, {dropped} bytes dropped, {log_bytes} bytes",
                after.len() - keep
            ));
        }
        // Seals and digest records survive or not like any record, but carry
        // no command: the model keeps the commands among the survivors.
        let commands = entries[..survivors]
            .iter()
            .filter(|entry| entry.changes.iter().any(|change| change.at().is_some()))
            .count();
        self.model = self.model.truncated(commands)?;
        self.model
            .set_records_without_commands((survivors - commands) as u64);
        self.check_reopened_state()
    }
}

/// `TryFrom` on a title against the model's validation; `Some` when valid.
fn checked_title(text: &str) -> Result<Option<TicketTitle>, String> {
    let from_string = TicketTitle::try_from(text.to_owned());
    let from_str = TicketTitle::try_from(text);
    if from_string != from_str {
        return Err(format!(
            "title {text:?}: from String {from_string:?}, from &str {from_str:?}"
        ));
    }
    match (from_string, validate_title(text)) {
        (Ok(title), Ok(())) if title.as_str() == text => Ok(Some(title)),
        (Err(got), Err(expected)) if got == expected => Ok(None),
        (got, expected) => Err(format!(
            "title {text:?}: validation gives {got:?}, model expects {expected:?}"
        )),
    }
}

/// `TryFrom` on a description against the model's validation; `Some` when valid.
fn checked_description(text: &str) -> Result<Option<TicketDescription>, String> {
    let from_string = TicketDescription::try_from(text.to_owned());
    let from_str = TicketDescription::try_from(text);
    if from_string != from_str {
        return Err(format!(
            "description {text:?}: from String {from_string:?}, from &str {from_str:?}"
        ));
    }
    match (from_string, validate_description(text)) {
        (Ok(description), Ok(())) if description.as_str() == text => Ok(Some(description)),
        (Err(got), Err(expected)) if got == expected => Ok(None),
        (got, expected) => Err(format!(
            "description {text:?}: validation gives {got:?}, model expects {expected:?}"
        )),
    }
}
