//! How the CLI prints: text for people, or one JSON object per line for
//! programs. Tickets, events and stats use the wire types of `json.rs` (the
//! same JSON the HTTP server sends), and their text is printed from those
//! too, so a local command and one run against `--server` print the same.
//! Data goes to stdout only.

use std::io::{self, Stdout, Write};

use serde::Serialize;
use ticketlog::inspect::{LogEntry, LogReport};
use ticketlog::{Change, CompactInfo, SnapshotInfo};

use super::json::{EventJson, HistoryJson, StatsJson, TicketJson};

pub(crate) struct Output {
    json: bool,
    stdout: Stdout,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output {
            json,
            stdout: io::stdout(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Writes one line of text (ignored in JSON mode).
    pub fn text(&mut self, line: &str) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        writeln!(self.stdout.lock(), "{line}")
    }

    /// Writes one value as a JSON line.
    pub fn json_line(&mut self, value: &impl Serialize) -> io::Result<()> {
        let mut stdout = self.stdout.lock();
        serde_json::to_writer(&mut stdout, value)?;
        writeln!(stdout)
    }

    /// A ticket: its wire form in JSON mode, else two indented lines under a heading.
    pub fn ticket(&mut self, ticket: &TicketJson) -> io::Result<()> {
        if self.json {
            return self.json_line(ticket);
        }
        writeln!(
            self.stdout.lock(),
            "#{} [{}] {} (version {})\n    {}\n    created {}, updated {}",
            ticket.id,
            ticket.status.as_str(),
            ticket.title,
            ticket.version,
            ticket.description,
            ticket.created_at,
            ticket.updated_at
        )
    }

    pub fn stats(&mut self, stats: &StatsJson) -> io::Result<()> {
        if self.json {
            return self.json_line(stats);
        }
        writeln!(
            self.stdout.lock(),
            "tickets: {} (todo {}, in-progress {}, done {})\nnext id: {}\nlog: {} records, {} bytes",
            stats.tickets,
            stats.todo,
            stats.in_progress,
            stats.done,
            stats.next_id,
            stats.records,
            stats.log_bytes
        )
    }

    /// A ticket's history: one line per event (in JSON, one object per
    /// event). When compaction removed its beginning, says where it starts
    /// (on stderr in JSON mode, so stdout stays one event per line).
    pub fn history(&mut self, history: &HistoryJson) -> io::Result<()> {
        if !history.complete {
            let note = format!(
                "history of ticket {} starts at lsn {} (earlier segments were compacted)",
                history.ticket_id, history.first_lsn
            );
            if self.json {
                eprintln!("ticketlog: {note}");
            } else {
                writeln!(self.stdout.lock(), "{note}")?;
            }
        }
        for event in &history.events {
            if self.json {
                self.json_line(event)?;
            } else {
                let (lsn, version, at) = event.header();
                writeln!(
                    self.stdout.lock(),
                    "lsn={lsn} version={version} at={at} {}",
                    describe_event(event)
                )?;
            }
        }
        Ok(())
    }

    pub fn snapshot(&mut self, info: &SnapshotInfo) -> io::Result<()> {
        if self.json {
            return self.json_line(info);
        }
        writeln!(
            self.stdout.lock(),
            "snapshot at lsn {}: {} tickets, {} bytes, {}",
            info.lsn,
            info.tickets,
            info.bytes,
            info.path.display()
        )
    }

    pub fn compaction(&mut self, info: &CompactInfo) -> io::Result<()> {
        if self.json {
            return self.json_line(info);
        }
        writeln!(
            self.stdout.lock(),
            "compacted: removed {} segments and {} snapshots, reclaimed {} bytes\n\
             snapshot at lsn {} ({} bytes); log now {} bytes; history starts at lsn {}",
            info.segments_removed,
            info.snapshots_removed,
            info.bytes_reclaimed,
            info.snapshot.lsn,
            info.snapshot.bytes,
            info.log_bytes,
            info.history_starts_at_lsn
        )
    }

    pub fn log_entry(&mut self, entry: &LogEntry) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({
                "lsn": entry.lsn,
                "segment": entry.segment,
                "offset": entry.offset,
                "len": entry.len,
                "changes": entry.changes,
            }));
        }
        if entry.changes.is_empty() {
            return writeln!(
                self.stdout.lock(),
                "lsn={} offset={} len={} seal (clean close: everything before is durable)",
                entry.lsn,
                entry.offset,
                entry.len
            );
        }
        for change in &entry.changes {
            let detail = match change {
                Change::Created {
                    title, description, ..
                } => format!(
                    "title={:?} description={:?}",
                    title.as_str(),
                    description.as_str()
                ),
                Change::Updated {
                    version,
                    title,
                    description,
                    status,
                    ..
                } => {
                    let mut fields = format!("version={version}");
                    if let Some(title) = title {
                        fields += &format!(" title={:?}", title.as_str());
                    }
                    if let Some(description) = description {
                        fields += &format!(" description={:?}", description.as_str());
                    }
                    if let Some(status) = status {
                        fields += &format!(" status={status}");
                    }
                    fields
                }
                Change::Deleted { version, .. } => format!("version={version}"),
                Change::Digest {
                    digest,
                    next_id,
                    tickets,
                } => format!("state digest={digest:#018x} next_id={next_id} tickets={tickets}"),
                _ => String::new(),
            };
            let mut line = format!(
                "lsn={} segment={} offset={} len={}",
                entry.lsn, entry.segment, entry.offset, entry.len
            );
            if let Some(at) = change.at() {
                line += &format!(" at={at}");
            }
            line += &format!(" {}", change.kind());
            if let Some(id) = change.ticket_id() {
                line += &format!(" id={id}");
            }
            writeln!(self.stdout.lock(), "{line} {detail}")?;
        }
        Ok(())
    }

    /// The summary of `log verify` (after `log dump`, on stderr-free stdout only in text mode).
    pub fn log_report(&mut self, report: &LogReport) -> io::Result<()> {
        let scan = &report.scan;
        let last_id = report.next_id.get().saturating_sub(1);
        let first_lsn = report.segments.first().map_or(1, |s| s.first_lsn);
        let valid_bytes: u64 = report.segments.iter().map(|s| s.valid_bytes).sum();
        if self.json {
            return self.json_line(&serde_json::json!({
                "path": scan.path,
                "segments": report.segments.len(),
                "first_lsn": first_lsn,
                "records": report.records,
                "bytes": report.bytes,
                "valid_bytes": valid_bytes,
                "last_id": last_id,
                "tickets": report.tickets,
                "base_snapshot": report.base_snapshot.as_ref().map(|s| s.lsn),
                "snapshots": report.snapshots.iter().map(|check| serde_json::json!({
                    "path": check.path,
                    "lsn": check.lsn,
                    "ok": check.result.is_ok(),
                    "damage": check.result.as_ref().err().map(|(offset, damage)| {
                        format!("at byte {offset}: {damage}")
                    }),
                })).collect::<Vec<_>>(),
                "torn_tail": scan.torn_tail.as_ref().map(|torn| serde_json::json!({
                    "offset": torn.offset,
                    "bytes": torn.bytes,
                    "damage": torn.damage.to_string(),
                })),
            }));
        }
        writeln!(
            self.stdout.lock(),
            "{}: {} records, {} bytes in {} segments (lsn {} to {}), last id {}, {} live tickets",
            scan.path.parent().map_or_else(
                || scan.path.display().to_string(),
                |d| d.display().to_string()
            ),
            report.records,
            report.bytes,
            report.segments.len(),
            first_lsn,
            scan.next_lsn.saturating_sub(1),
            last_id,
            report.tickets
        )?;
        for check in &report.snapshots {
            match &check.result {
                Ok(()) => writeln!(
                    self.stdout.lock(),
                    "snapshot at lsn {}: ok{}",
                    check.lsn,
                    if report
                        .base_snapshot
                        .as_ref()
                        .is_some_and(|b| b.lsn == check.lsn)
                    {
                        " (replay started here: the log before it was compacted)"
                    } else {
                        ""
                    }
                )?,
                Err((offset, damage)) => writeln!(
                    self.stdout.lock(),
                    "snapshot at lsn {}: DAMAGED at byte {offset}: {damage}",
                    check.lsn
                )?,
            }
        }
        match &scan.torn_tail {
            None => writeln!(self.stdout.lock(), "clean: no torn tail"),
            Some(torn) => writeln!(
                self.stdout.lock(),
                "torn tail: opening the store would cut {} bytes at byte {} ({})",
                torn.bytes,
                torn.offset,
                torn.damage
            ),
        }
    }
}

/// What an event changed, in words: `created title=… description=…`,
/// `updated title=… status=…` (only the fields it set), `deleted`.
fn describe_event(event: &EventJson) -> String {
    match event {
        EventJson::Created {
            title, description, ..
        } => format!("created title={title:?} description={description:?}"),
        EventJson::Updated {
            title,
            description,
            status,
            ..
        } => {
            let mut text = "updated".to_string();
            if let Some(title) = title {
                text += &format!(" title={title:?}");
            }
            if let Some(description) = description {
                text += &format!(" description={description:?}");
            }
            if let Some(status) = status {
                text += &format!(" status={}", status.as_str());
            }
            text
        }
        EventJson::Deleted { .. } => "deleted".to_string(),
    }
}
