//! The `log_decode` property: any bytes at all, written as a data directory's
//! log, are read by [`inspect::read_log`] and opened by [`Store::open`] without a
//! panic, a hang or an unbounded allocation, and the two agree:
//!
//! - `read_log` gives a consistent report (records back to back from the
//!   header, sequence numbers without gaps, each record's bytes decoding to
//!   its events and re-encoding to exactly those bytes, then either a
//!   version-2 zero tail or a torn tail that covers the rest of the file) or
//!   a typed `Corrupt` error inside the file; and it changes nothing on disk;
//! - `Store::open` then fails with the very same error and changes nothing,
//!   or succeeds with the report's records, the state an independent model
//!   replays them to, and the torn tail cut off (version 1) or zeroed in
//!   place (version 2) — after which the store can
//!   append, and a second read finds a clean log.

use std::fs;
use std::path::Path;

use crate::api::inspect::record::{FILE_HEADER_LEN, FORMAT_VERSION, FileHeader};
use crate::api::inspect::{self, LOG_FILE_NAME, LogEntry, LogReport, decode_record, frame_record};
use crate::api::store::Store;
use crate::domain::command::ListQuery;
use crate::domain::ticket::TicketDraft;
use crate::error::OpenError;
use crate::options::Options;
use crate::testing::fuzz::{Failure, ensure, ensure_eq, scratch_dir};
use crate::testing::model::Model;

/// Builds the log file from `data`: the first byte chooses whether a valid
/// file header is put in front of the rest (bit 0) and, if so, whether its
/// first LSN is 1 or taken from the next byte (bit 1) and whether it is of
/// format version 1 (bit 2) or 2 (the zero tail). Then checks it.
pub fn check_bytes(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut log = Vec::with_capacity(FILE_HEADER_LEN + rest.len());
    let mut rest = rest;
    if mode & 1 == 1 {
        let mut first_lsn = 1;
        if mode & 2 == 2
            && let Some((&lsn, tail)) = rest.split_first()
        {
            first_lsn = u64::from(lsn).max(1);
            rest = tail;
        }
        let version = if mode & 4 == 4 { 1 } else { FORMAT_VERSION };
        log.extend_from_slice(&FileHeader { first_lsn, version }.encode());
    }
    log.extend_from_slice(rest);
    let dir = scratch_dir().expect("a scratch directory for the log");
    if let Err(failure) = check(&log, dir.path()) {
        panic!("log_decode: {failure}");
    }
}

/// Writes `log` as the log of the empty directory `dir`, then checks it.
pub fn check(log: &[u8], dir: &Path) -> Result<(), Failure> {
    let path = dir.join(LOG_FILE_NAME);
    fs::write(&path, log).map_err(|e| Failure::new("setup", format!("write log: {e}")))?;
    let on_disk = || fs::read(&path).map_err(|e| Failure::new("read back", e.to_string()));

    let mut entries = Vec::new();
    let read = inspect::read_log(dir, |entry| entries.push(entry.clone()));
    ensure(on_disk()? == log, "read_log", || "changed the file".into())?;
    ensure(!dir.join("LOCK").exists(), "read_log", || {
        "created a lock file".into()
    })?;

    match read {
        Ok(report) => {
            let model = check_report(log, &report, &entries)?;
            check_open_succeeds(log, dir, &report, &model)
        }
        Err(OpenError::Corrupt {
            file,
            offset,
            damage,
        }) => {
            ensure_eq(&file, &path, "read_log", "corrupt file")?;
            ensure(offset < log.len() as u64, "read_log", || {
                format!(
                    "corruption at {offset}, past the end of {} bytes",
                    log.len()
                )
            })?;
            match Store::open(dir, Options::default()) {
                Err(OpenError::Corrupt {
                    offset: open_offset,
                    damage: open_damage,
                    ..
                }) => {
                    ensure_eq(&open_offset, &offset, "open", "corrupt offset")?;
                    ensure_eq(&open_damage, &damage, "open", "damage")?;
                }
                other => {
                    return Err(Failure::new(
                        "open",
                        format!("read_log found {damage} at {offset}, open gave {other:?}"),
                    ));
                }
            }
            ensure(on_disk()? == log, "open", || {
                "a failed open changed the file".into()
            })
        }
        Err(other) => Err(Failure::new(
            "read_log",
            format!("not a state nor corruption: {other}"),
        )),
    }
}

/// Checks a successful read's report against the bytes; returns the model
/// the records replay to.
fn check_report(log: &[u8], report: &LogReport, entries: &[LogEntry]) -> Result<Model, Failure> {
    let context = "read_log report";
    let scan = &report.scan;
    ensure_eq(&scan.file_bytes, &(log.len() as u64), context, "file bytes")?;
    ensure_eq(&scan.records, &(entries.len() as u64), context, "records")?;

    let header = log
        .get(..FILE_HEADER_LEN)
        .and_then(|bytes| FileHeader::decode(bytes.try_into().ok()?).ok());
    let Some(header) = header else {
        // No valid header: only an interrupted creation reads as a log.
        ensure(
            log.len() <= FILE_HEADER_LEN && entries.is_empty(),
            context,
            || format!("a log without a valid header read as {report:?}"),
        )?;
        ensure_eq(&scan.valid_bytes, &0, context, "valid bytes")?;
        ensure_eq(
            &scan
                .torn_tail
                .as_ref()
                .map(|torn| (torn.offset, torn.bytes)),
            &(!log.is_empty()).then_some((0, log.len() as u64)),
            context,
            "torn header",
        )?;
        return Ok(Model::default());
    };

    let mut offset = FILE_HEADER_LEN as u64;
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("record {index}");
        ensure_eq(&entry.offset, &offset, &at, "offset")?;
        ensure_eq(&entry.lsn, &(header.first_lsn + index as u64), &at, "lsn")?;
        let bytes = &log[offset as usize..(offset + entry.len) as usize];
        let (decoded_header, decoded) = decode_record(bytes)
            .map_err(|damage| Failure::new(&at, format!("read_log took it, decode: {damage}")))?;
        ensure_eq(&decoded, &entry.changes, &at, "changes")?;
        let mut framed = Vec::new();
        frame_record(&mut framed, decoded_header.unsynced_before, &entry.changes)
            .map_err(|e| Failure::new(&at, format!("re-frame: {e}")))?;
        ensure(framed == bytes, &at, || {
            "the record's bytes are not the canonical encoding of its changes".into()
        })?;
        offset += entry.len;
    }
    ensure_eq(&scan.valid_bytes, &offset, context, "valid bytes")?;
    ensure_eq(
        &scan.next_lsn,
        &(header.first_lsn + entries.len() as u64),
        context,
        "next lsn",
    )?;
    let torn = scan
        .torn_tail
        .as_ref()
        .map(|torn| (torn.offset, torn.bytes));
    // After the records: nothing, a version-2 zero tail, or a torn tail.
    let rest = &log[offset as usize..];
    let zero_tail = header.allows_zero_tail() && rest.iter().all(|&b| b == 0);
    let expected_torn = (!rest.is_empty() && !zero_tail).then_some((offset, rest.len() as u64));
    ensure_eq(&torn, &expected_torn, context, "torn tail")?;
    let expected_zeros = if zero_tail { rest.len() as u64 } else { 0 };
    ensure_eq(&scan.zero_tail_bytes, &expected_zeros, context, "zero tail")?;
    ensure_eq(&scan.version, &header.version, context, "version")?;

    let model = Model::replay(entries)
        .map_err(|e| Failure::new(context, format!("records the store replayed: {e}")))?;
    ensure_eq(&report.next_id, &model.next_id(), context, "next id")?;
    ensure_eq(
        &report.tickets,
        &(model.tickets().count() as u64),
        context,
        "tickets",
    )?;
    Ok(model)
}

/// Opens a log that `read_log` accepted and checks the store against it.
fn check_open_succeeds(
    log: &[u8],
    dir: &Path,
    report: &LogReport,
    model: &Model,
) -> Result<(), Failure> {
    let context = "open";
    let store = Store::open(dir, Options::default()).map_err(|e| {
        Failure::new(
            context,
            format!("read_log accepted the log, open failed: {e}"),
        )
    })?;
    let recovery = store.recovery().clone();
    ensure_eq(
        &recovery.records_replayed,
        &report.scan.records,
        context,
        "records",
    )?;
    ensure_eq(
        &recovery.torn_tail,
        &report.scan.torn_tail,
        context,
        "torn tail",
    )?;
    let kept = report.scan.valid_bytes as usize;
    let expected_file = if kept == 0 {
        FileHeader::new(1).encode().to_vec()
    } else if report.scan.version >= 2 {
        // A zero tail stays; a torn tail is zeroed in place.
        let mut file = log[..kept].to_vec();
        file.resize(log.len(), 0);
        file
    } else {
        log[..kept].to_vec()
    };
    let path = dir.join(LOG_FILE_NAME);
    let file = fs::read(&path).map_err(|e| Failure::new(context, e.to_string()))?;
    ensure(file == expected_file, context, || {
        format!(
            "the file after open has {} bytes, expected the {} valid bytes",
            file.len(),
            expected_file.len()
        )
    })?;
    ensure_eq(
        &recovery.log_bytes,
        &(kept.max(FILE_HEADER_LEN) as u64),
        context,
        "log bytes",
    )?;

    let client = store.client();
    let listed = client
        .list(ListQuery::default())
        .map_err(|e| Failure::new(context, e.to_string()))?;
    let expected: Vec<_> = model.tickets().cloned().collect();
    ensure_eq(&listed, &expected, context, "tickets")?;

    // The store writes after what it recovered: the next id, the next LSN.
    let draft = TicketDraft {
        title: "after recovery".try_into().expect("a valid title"),
        description: "appended by the log_decode check"
            .try_into()
            .expect("valid"),
    };
    let created = client
        .create(draft)
        .map_err(|e| Failure::new(context, format!("create after recovery: {e}")))?;
    ensure_eq(&created.id, &model.next_id(), context, "created id")?;
    store
        .close()
        .map_err(|e| Failure::new(context, format!("close: {e}")))?;

    let mut entries = Vec::new();
    let again = inspect::read_log(dir, |entry| entries.push(entry.clone()))
        .map_err(|e| Failure::new("read_log after open", e.to_string()))?;
    ensure_eq(
        &again.scan.records,
        &(report.scan.records + 1),
        "read_log after open",
        "records",
    )?;
    ensure_eq(
        &again.scan.torn_tail,
        &None,
        "read_log after open",
        "torn tail",
    )?;
    let last = entries.last().map(|entry| entry.lsn);
    let next_lsn = if kept == 0 { 1 } else { report.scan.next_lsn };
    ensure_eq(
        &last,
        &Some(next_lsn),
        "read_log after open",
        "appended lsn",
    )
}
