//! `ticketlog log repair`: cut a torn tail, or with `--drop-after-corruption`
//! mid-log corruption, saving the cut bytes beside the log; always say what
//! was done. Exit 0 when the log is clean afterwards, 2 when corruption was
//! found and left alone, 3 when the log cannot be read or repaired.

use std::path::Path;
use std::process::ExitCode;

use ticketlog::OpenError;
use ticketlog::inspect::{self, Repair, RepairAction, RepairReport};

use super::output::Output;
use super::{CliError, EXIT_CORRUPT, EXIT_UNREADABLE};

pub(crate) fn run(
    dir: &Path,
    drop_after_corruption: bool,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    let repair = if drop_after_corruption {
        Repair::DropAfterCorruption
    } else {
        Repair::TornTailOnly
    };
    let report = match inspect::repair_log(dir, repair) {
        Ok(report) => report,
        Err(error @ OpenError::Corrupt { .. }) => {
            // Only a format this build cannot read is refused this way.
            eprintln!("ticketlog: {error}; nothing was changed (a newer ticketlog may read it)");
            return Ok(ExitCode::from(EXIT_CORRUPT));
        }
        Err(error) => {
            eprintln!("ticketlog: {error}");
            return Ok(ExitCode::from(EXIT_UNREADABLE));
        }
    };
    print(out, &report)?;
    Ok(match report.action {
        RepairAction::Refused { .. } => ExitCode::from(EXIT_CORRUPT),
        _ => ExitCode::SUCCESS,
    })
}

fn print(out: &mut Output, report: &RepairReport) -> std::io::Result<()> {
    let kept = format!(
        "kept {} records, last ticket id {}",
        report.records_kept, report.last_id_kept
    );
    let path = report.path.display();
    if out.is_json() {
        let (action, detail) = match &report.action {
            RepairAction::Clean => ("clean", serde_json::json!({})),
            RepairAction::CutTornTail {
                offset,
                bytes,
                damage,
                saved_to,
            } => (
                "cut_torn_tail",
                serde_json::json!({
                    "offset": offset, "bytes": bytes, "damage": damage.to_string(),
                    "saved_to": saved_to,
                }),
            ),
            RepairAction::DroppedAfterCorruption {
                offset,
                bytes,
                damage,
                records_dropped,
                saved_to,
            } => (
                "dropped_after_corruption",
                serde_json::json!({
                    "offset": offset, "bytes": bytes, "damage": damage.to_string(),
                    "records_dropped": records_dropped, "saved_to": saved_to,
                }),
            ),
            RepairAction::Refused {
                offset,
                bytes,
                damage,
                records_dropped,
            } => (
                "refused",
                serde_json::json!({
                    "offset": offset, "bytes": bytes, "damage": damage.to_string(),
                    "records_dropped": records_dropped,
                }),
            ),
            _ => ("unknown", serde_json::json!({})),
        };
        return out.json_line(&serde_json::json!({
            "path": report.path,
            "action": action,
            "detail": detail,
            "records_kept": report.records_kept,
            "last_id_kept": report.last_id_kept,
        }));
    }
    match &report.action {
        RepairAction::Clean => out.text(&format!("{path}: clean, nothing to repair; {kept}")),
        RepairAction::CutTornTail {
            offset,
            bytes,
            damage,
            saved_to,
        } => out.text(&format!(
            "{path}: cut a torn tail of {bytes} bytes at byte {offset} ({damage}); \
             saved them to {}; {kept}",
            saved_to.display()
        )),
        RepairAction::DroppedAfterCorruption {
            offset,
            bytes,
            damage,
            records_dropped,
            saved_to,
        } => out.text(&format!(
            "{path}: dropped {bytes} bytes from byte {offset} ({damage}): {records_dropped} \
             records lost; saved them to {}; {kept}",
            saved_to.display()
        )),
        RepairAction::Refused {
            offset,
            bytes,
            damage,
            records_dropped,
        } => {
            eprintln!(
                "ticketlog: {path} is corrupt at byte {offset}: {damage}; nothing was changed. \
                 `ticketlog log repair --drop-after-corruption` would drop {bytes} bytes \
                 ({records_dropped} records, acknowledged ones among them) and keep \
                 {} records, last ticket id {}",
                report.records_kept, report.last_id_kept
            );
            Ok(())
        }
        _ => out.text(&format!("{path}: {:?}", report.action)),
    }
}
