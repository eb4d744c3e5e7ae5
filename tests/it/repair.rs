//! `ticketlog log repair`: a torn tail is cut and saved beside the log;
//! mid-log corruption is refused (nothing changes) unless
//! `--drop-after-corruption` is given, which cuts at the first damaged
//! record, saves the bytes, and says how many records were lost and which
//! ticket id is the last kept. `log verify` names the repair needed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use ticketlog::inspect::{self, LogEntry};
use ticketlog::{ListQuery, Ticket};

use crate::common::{draft, log_path, open};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ticketlog(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_ticketlog"))
        .env_remove("TICKETLOG_DIR")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run ticketlog");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn repair(dir: &Path, drop: bool) -> Run {
    let mut args = vec!["log", "repair"];
    if drop {
        args.push("--drop-after-corruption");
    }
    ticketlog(dir, &args)
}

/// A store of `count` tickets, one record each (one client, one at a time,
/// so no batches and no seal), and its records.
fn store_with(dir: &Path, count: u64) -> Vec<LogEntry> {
    let store = open(dir);
    for n in 1..=count {
        store
            .client()
            .create(draft(&format!("ticket {n}")))
            .unwrap();
    }
    store.close().unwrap();
    let mut entries = Vec::new();
    inspect::read_log(dir, |entry| entries.push(entry.clone())).unwrap();
    assert_eq!(entries.len() as u64, count);
    entries
}

fn tickets(dir: &Path) -> Vec<Ticket> {
    let store = open(dir);
    let tickets = store.client().list(ListQuery::default()).unwrap();
    store.close().unwrap();
    tickets
}

fn saved_copies(dir: &Path) -> Vec<PathBuf> {
    let mut saved: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains(".damaged"))
        .collect();
    saved.sort();
    saved
}

#[test]
fn a_clean_log_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 3);
    let before = fs::read(log_path(dir.path())).unwrap();
    let run = repair(dir.path(), true);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("clean, nothing to repair"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("kept 3 records, last ticket id 3"),
        "{}",
        run.stdout
    );
    assert_eq!(fs::read(log_path(dir.path())).unwrap(), before);
    assert!(saved_copies(dir.path()).is_empty());
}

#[test]
fn a_torn_tail_is_cut_and_its_bytes_saved_beside_the_log() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 4);
    let path = log_path(dir.path());
    let clean = fs::read(&path).unwrap();
    let tail = b"half a record, then the power went".to_vec();
    fs::write(&path, [clean.clone(), tail.clone()].concat()).unwrap();

    let verify = ticketlog(dir.path(), &["log", "verify"]);
    assert_eq!(verify.code, Some(1));
    assert!(
        verify.stderr.contains("`ticketlog log repair`"),
        "{}",
        verify.stderr
    );

    let run = repair(dir.path(), false);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "cut a torn tail of {} bytes at byte {}",
            tail.len(),
            clean.len()
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("kept 4 records, last ticket id 4"),
        "{}",
        run.stdout
    );
    assert_eq!(fs::read(&path).unwrap(), clean);
    let saved = saved_copies(dir.path());
    assert_eq!(saved.len(), 1);
    assert_eq!(fs::read(&saved[0]).unwrap(), tail);
    assert!(run.stdout.contains(&saved[0].display().to_string()));
    assert_eq!(ticketlog(dir.path(), &["log", "verify"]).code, Some(0));
    assert_eq!(tickets(dir.path()).len(), 4);

    // The same tear again: a second saved copy, the first one kept.
    fs::write(&path, [clean.clone(), tail.clone()].concat()).unwrap();
    assert_eq!(repair(dir.path(), false).code, Some(0));
    let saved = saved_copies(dir.path());
    assert_eq!(saved.len(), 2, "{saved:?}");
    for copy in &saved {
        assert_eq!(fs::read(copy).unwrap(), tail);
    }
}

#[test]
fn mid_log_corruption_is_refused_without_the_flag_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let entries = store_with(dir.path(), 6);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let victim = &entries[2];
    bytes[(victim.offset + victim.len - 3) as usize] ^= 0x10;
    fs::write(&path, &bytes).unwrap();

    let verify = ticketlog(dir.path(), &["log", "verify"]);
    assert_eq!(verify.code, Some(2));
    assert!(
        verify.stderr.contains(&format!(
            "`ticketlog log repair --drop-after-corruption` cuts the log at byte {}",
            victim.offset
        )),
        "{}",
        verify.stderr
    );

    let run = repair(dir.path(), false);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("corrupt at byte {}", victim.offset)),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert!(run.stderr.contains("(4 records,"), "{}", run.stderr);
    assert!(
        run.stderr.contains("keep 2 records, last ticket id 2"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert!(saved_copies(dir.path()).is_empty());
}

#[test]
fn dropping_after_corruption_cuts_at_the_first_damaged_record_and_says_what_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let entries = store_with(dir.path(), 6);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let victim = &entries[3];
    bytes[(victim.offset + 5) as usize] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let run = ticketlog(
        dir.path(),
        &["--json", "log", "repair", "--drop-after-corruption"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(report["action"], "dropped_after_corruption", "{report}");
    assert_eq!(report["detail"]["offset"], victim.offset, "{report}");
    assert_eq!(
        report["detail"]["bytes"],
        bytes.len() as u64 - victim.offset
    );
    assert_eq!(report["detail"]["records_dropped"], 3, "{report}");
    assert_eq!(report["records_kept"], 3);
    assert_eq!(report["last_id_kept"], 3);
    let saved = PathBuf::from(report["detail"]["saved_to"].as_str().unwrap());
    assert_eq!(
        fs::read(&saved).unwrap(),
        &bytes[victim.offset as usize..],
        "the dropped bytes are saved as they were"
    );
    assert_eq!(fs::read(&path).unwrap(), &bytes[..victim.offset as usize]);
    assert_eq!(ticketlog(dir.path(), &["log", "verify"]).code, Some(0));
    let kept = tickets(dir.path());
    assert_eq!(
        kept.iter().map(|t| t.id.get()).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // New tickets continue after the last id kept.
    let store = open(dir.path());
    assert_eq!(store.client().create(draft("after")).unwrap().id.get(), 4);
    store.close().unwrap();
}

#[test]
fn a_damaged_file_header_with_records_after_it_can_only_be_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 2);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(repair(dir.path(), false).code, Some(2));
    let run = repair(dir.path(), true);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("dropped"), "{}", run.stdout);
    assert!(
        run.stdout.contains("kept 0 records, last ticket id 0"),
        "{}",
        run.stdout
    );
    assert!(tickets(dir.path()).is_empty());
}

#[test]
fn a_newer_format_version_is_never_repaired() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 2);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let run = repair(dir.path(), true);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert!(saved_copies(dir.path()).is_empty());
}

#[test]
fn repair_refuses_a_log_that_a_store_has_open_and_a_directory_without_one() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 1);
    let store = open(dir.path());
    let run = repair(dir.path(), true);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("already open"), "{}", run.stderr);
    store.close().unwrap();

    let empty = tempfile::tempdir().unwrap();
    let run = repair(empty.path(), false);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("no log to repair"), "{}", run.stderr);
    assert_eq!(
        fs::read_dir(empty.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn repair_refuses_a_cut_that_would_drop_records_a_snapshot_covers() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::common::open(dir.path());
    for n in 0..10 {
        store
            .client()
            .create(crate::common::draft(&format!("t{n}")))
            .unwrap();
    }
    store.snapshot().unwrap();
    store.close().unwrap();
    let mut entries = Vec::new();
    ticketlog::inspect::read_log(dir.path(), |entry| entries.push(entry.clone())).unwrap();
    let victim = &entries[3];
    let path = crate::common::log_path(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(victim.offset + victim.len - 1) as usize] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    match ticketlog::inspect::repair_log(
        dir.path(),
        ticketlog::inspect::Repair::DropAfterCorruption,
    ) {
        Err(ticketlog::OpenError::Corrupt {
            damage: ticketlog::Damage::SnapshotBeyondLog { log_end_lsn, .. },
            ..
        }) => assert_eq!(log_end_lsn, victim.lsn - 1),
        other => panic!("expected a refusal naming the snapshot, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
}
