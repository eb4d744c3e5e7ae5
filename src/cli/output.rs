//! How the CLI prints: text for people, or one JSON object per line (keys are
//! the Rust field names) for programs. Data goes to stdout only.

use std::io::{self, Stdout, Write};

use serde::Serialize;
use ticketlog::wal::{LogEntry, LogReport};
use ticketlog::{Change, Stats, Ticket};

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

    pub fn ticket(&mut self, ticket: &Ticket) -> io::Result<()> {
        if self.json {
            return self.json_line(ticket);
        }
        writeln!(
            self.stdout.lock(),
            "#{} [{}] {} (version {})\n    {}\n    created {}, updated {}",
            ticket.id,
            ticket.status,
            ticket.title,
            ticket.version,
            ticket.description,
            ticket.created_at,
            ticket.updated_at
        )
    }

    pub fn stats(&mut self, stats: &Stats) -> io::Result<()> {
        if self.json {
            return self.json_line(stats);
        }
        writeln!(
            self.stdout.lock(),
            "tickets: {} (todo {}, in-progress {}, done {})\nnext id: {}\nlog: {} records, {} bytes",
            stats.tickets(),
            stats.todo,
            stats.in_progress,
            stats.done,
            stats.next_id,
            stats.records,
            stats.log_bytes
        )
    }

    pub fn log_entry(&mut self, entry: &LogEntry) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({
                "lsn": entry.lsn,
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
        if self.json {
            return self.json_line(&serde_json::json!({
                "path": scan.path,
                "records": scan.records,
                "bytes": scan.file_bytes,
                "valid_bytes": scan.valid_bytes,
                "last_id": last_id,
                "tickets": report.tickets,
                "torn_tail": scan.torn_tail.as_ref().map(|torn| serde_json::json!({
                    "offset": torn.offset,
                    "bytes": torn.bytes,
                    "damage": torn.damage.to_string(),
                })),
            }));
        }
        writeln!(
            self.stdout.lock(),
            "{}: {} records, {} bytes, last id {}, {} live tickets",
            scan.path.display(),
            scan.records,
            scan.file_bytes,
            last_id,
            report.tickets
        )?;
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
