//! The `ticketlog` binary, driven as a user would: real processes, a real
//! data directory, exit statuses, stdout and stderr.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use ticketlog::{Status, TicketId};

use crate::common;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Asserts exit 0 and an empty stderr, returning stdout.
    fn ok(&self) -> &str {
        assert!(self.success(), "expected success, got {self:#?}");
        assert_eq!(self.stderr, "", "unexpected stderr: {self:#?}");
        &self.stdout
    }

    /// Parses every stdout line as one JSON object.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("stdout line {line:?} is not JSON: {e}"));
                assert!(value.is_object(), "not an object: {line}");
                value
            })
            .collect()
    }

    /// The single JSON object on stdout.
    fn json(&self) -> Value {
        let mut lines = self.json_lines();
        assert_eq!(lines.len(), 1, "expected one JSON line: {self:#?}");
        lines.pop().unwrap()
    }
}

fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ticketlog"));
    command
        .env_remove("TICKETLOG_DIR")
        .env_remove("TICKETLOG_SERVER")
        .stdin(Stdio::null());
    command
}

/// Runs `ticketlog --dir DIR ARGS…`.
fn ticketlog(dir: &Path, args: &[&str]) -> Run {
    let mut command = command();
    command.arg("--dir").arg(dir).args(args);
    run(command)
}

fn run(mut command: Command) -> Run {
    let output = command.output().expect("run the ticketlog binary");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn add(dir: &Path, title: &str, description: &str) -> Value {
    ticketlog(
        dir,
        &[
            "--json",
            "add",
            "--title",
            title,
            "--description",
            description,
        ],
    )
    .json()
}

/// A store holding `n` tickets titled "seed 1" … "seed n", closed again.
fn seeded(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let client = store.client();
    for i in 1..=n {
        let ticket = client.create(common::draft(&format!("seed {i}"))).unwrap();
        assert_eq!(ticket.id.get(), i);
    }
    store.close().unwrap();
    dir
}

fn ids(tickets: &[Value]) -> Vec<u64> {
    tickets.iter().map(|t| t["id"].as_u64().unwrap()).collect()
}

fn status_of(ticket: &Value) -> Status {
    ticket["status"]
        .as_str()
        .expect("status is a string")
        .parse()
        .expect("status is an accepted spelling")
}

// ---------------------------------------------------------------- happy path

#[test]
fn add_prints_the_new_ticket_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let run = ticketlog(
        dir.path(),
        &[
            "add",
            "--title",
            "Fix the flux",
            "--description",
            "It leaks.",
        ],
    );
    let out = run.ok();
    assert!(
        out.starts_with("#1 [todo] Fix the flux (version 1)\n"),
        "{out}"
    );
    assert!(out.contains("It leaks."), "{out}");
    assert!(out.contains("created "), "{out}");

    let run = ticketlog(
        dir.path(),
        &["add", "--title", "Second", "--description", "d"],
    );
    assert!(
        run.ok().starts_with("#2 [todo] Second (version 1)\n"),
        "{run:#?}"
    );
}

#[test]
fn add_json_prints_every_field_with_a_numeric_id() {
    let dir = tempfile::tempdir().unwrap();
    let ticket = add(dir.path(), "  Spaced title ", "Line one\nline two");
    let object = ticket.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "description",
            "id",
            "status",
            "title",
            "updated_at",
            "version"
        ]
    );
    assert_eq!(ticket["id"].as_u64(), Some(1), "id must be a JSON number");
    assert_eq!(ticket["title"], "  Spaced title ");
    assert_eq!(ticket["description"], "Line one\nline two");
    assert_eq!(status_of(&ticket), Status::ToDo);
    assert_eq!(ticket["version"].as_u64(), Some(1));
    // RFC 3339 in UTC with milliseconds, as the HTTP server sends it.
    let created_at = ticket["created_at"]
        .as_str()
        .expect("created_at is a string");
    assert!(
        created_at.len() == 24 && created_at.as_bytes()[10] == b'T' && created_at.ends_with('Z'),
        "{ticket}"
    );
    assert_eq!(ticket["created_at"], ticket["updated_at"]);

    assert_eq!(add(dir.path(), "Next", "d")["id"].as_u64(), Some(2));
}

#[test]
fn json_flag_is_accepted_before_and_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let before = ticketlog(
        dir.path(),
        &["--json", "add", "--title", "a", "--description", "d"],
    );
    before.ok();
    assert_eq!(before.json()["id"].as_u64(), Some(1));
    let after = ticketlog(
        dir.path(),
        &["add", "--title", "b", "--description", "d", "--json"],
    );
    after.ok();
    assert_eq!(after.json()["id"].as_u64(), Some(2));

    for args in [&["--json", "get", "2"][..], &["get", "2", "--json"][..]] {
        let run = ticketlog(dir.path(), args);
        run.ok();
        assert_eq!(run.json()["title"], "b", "{args:?}");
    }
    for args in [&["--json", "list"][..], &["list", "--json"][..]] {
        let run = ticketlog(dir.path(), args);
        run.ok();
        assert_eq!(ids(&run.json_lines()), [1, 2], "{args:?}");
    }
    for args in [&["--json", "stats"][..], &["stats", "--json"][..]] {
        let run = ticketlog(dir.path(), args);
        run.ok();
        assert_eq!(run.json()["todo"].as_u64(), Some(2), "{args:?}");
    }
}

#[test]
fn get_prints_one_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let created = add(dir.path(), "Find me", "Somewhere.");
    add(dir.path(), "Other", "x");

    let run = ticketlog(dir.path(), &["--json", "get", "1"]);
    run.ok();
    assert_eq!(run.json(), created);

    let text = ticketlog(dir.path(), &["get", "1"]);
    assert!(
        text.ok().starts_with("#1 [todo] Find me (version 1)\n"),
        "{text:#?}"
    );
    assert!(text.stdout.contains("Somewhere."), "{text:#?}");
}

#[test]
fn list_prints_one_json_object_per_line_in_ascending_id_order() {
    let dir = seeded(7);
    let run = ticketlog(dir.path(), &["--json", "list"]);
    run.ok();
    assert_eq!(run.stdout.lines().count(), 7);
    let tickets = run.json_lines();
    assert_eq!(ids(&tickets), [1, 2, 3, 4, 5, 6, 7]);
    for ticket in &tickets {
        let id = ticket["id"].as_u64().unwrap();
        assert_eq!(ticket["title"], format!("seed {id}"));
    }

    // Text mode lists the same tickets in the same order.
    let text = ticketlog(dir.path(), &["list"]);
    let headers: Vec<&str> = text.ok().lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(headers.len(), 7, "{text:#?}");
    for (i, header) in headers.iter().enumerate() {
        assert!(header.starts_with(&format!("#{} ", i + 1)), "{header}");
    }
}

#[test]
fn list_of_an_empty_store_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(ticketlog(dir.path(), &["--json", "list"]).ok(), "");
}

#[test]
fn list_filters_by_status_after_and_limit() {
    let dir = seeded(8);
    for id in ["2", "5", "7"] {
        ticketlog(dir.path(), &["update", id, "--status", "done"]).ok();
    }
    ticketlog(dir.path(), &["update", "3", "--status", "In-Progress"]).ok();

    let list = |args: &[&str]| {
        let mut all = vec!["--json", "list"];
        all.extend_from_slice(args);
        let run = ticketlog(dir.path(), &all);
        run.ok();
        run.json_lines()
    };

    let done = list(&["--status", "done"]);
    assert_eq!(ids(&done), [2, 5, 7]);
    assert!(done.iter().all(|t| status_of(t) == Status::Done));
    assert_eq!(ids(&list(&["--status", "in-progress"])), [3]);
    assert_eq!(ids(&list(&["--status", "TODO"])), [1, 4, 6, 8]);

    assert_eq!(ids(&list(&["--after", "5"])), [6, 7, 8]);
    assert_eq!(ids(&list(&["--after", "8"])), Vec::<u64>::new());
    assert_eq!(ids(&list(&["--limit", "3"])), [1, 2, 3]);
    assert_eq!(ids(&list(&["--limit", "0"])), Vec::<u64>::new());
    assert_eq!(ids(&list(&["--after", "2", "--limit", "2"])), [3, 4]);
    assert_eq!(
        ids(&list(&["--status", "done", "--after", "2", "--limit", "1"])),
        [5]
    );
}

#[test]
fn update_changes_fields_and_honours_expect_version() {
    let dir = tempfile::tempdir().unwrap();
    let created = add(dir.path(), "Original", "First text.");

    let run = ticketlog(
        dir.path(),
        &[
            "--json",
            "update",
            "1",
            "--status",
            "in-progress",
            "--expect-version",
            "1",
        ],
    );
    run.ok();
    let updated = run.json();
    assert_eq!(status_of(&updated), Status::InProgress);
    assert_eq!(updated["version"].as_u64(), Some(2));
    assert_eq!(updated["title"], "Original");
    assert_eq!(updated["created_at"], created["created_at"]);
    assert!(updated["updated_at"].as_u64() >= created["updated_at"].as_u64());

    let run = ticketlog(
        dir.path(),
        &[
            "--json",
            "update",
            "1",
            "--title",
            "Renamed",
            "--description",
            "Second text.",
            "--status",
            "done",
            "--expect-version",
            "2",
        ],
    );
    run.ok();
    let updated = run.json();
    assert_eq!(updated["title"], "Renamed");
    assert_eq!(updated["description"], "Second text.");
    assert_eq!(status_of(&updated), Status::Done);
    assert_eq!(updated["version"].as_u64(), Some(3));

    // Without --expect-version the update applies to whatever version is current.
    let text = ticketlog(dir.path(), &["update", "1", "--status", "todo"]);
    assert!(
        text.ok().starts_with("#1 [todo] Renamed (version 4)\n"),
        "{text:#?}"
    );

    // The change is durable: a new process sees it.
    let run = ticketlog(dir.path(), &["--json", "get", "1"]);
    run.ok();
    assert_eq!(run.json()["version"].as_u64(), Some(4));
}

#[test]
fn delete_prints_the_removed_ticket_and_it_is_gone() {
    let dir = seeded(3);
    let run = ticketlog(dir.path(), &["--json", "delete", "2"]);
    run.ok();
    let removed = run.json();
    assert_eq!(removed["id"].as_u64(), Some(2));
    assert_eq!(removed["title"], "seed 2");

    let list = ticketlog(dir.path(), &["--json", "list"]);
    list.ok();
    assert_eq!(ids(&list.json_lines()), [1, 3]);

    let text = ticketlog(dir.path(), &["delete", "3"]);
    assert!(text.ok().starts_with("#3 [todo] seed 3 "), "{text:#?}");

    // Ids are never reused after a delete.
    assert_eq!(
        add(dir.path(), "After deletes", "d")["id"].as_u64(),
        Some(4)
    );
}

#[test]
fn stats_counts_tickets_by_status() {
    let dir = seeded(5);
    ticketlog(dir.path(), &["update", "1", "--status", "done"]).ok();
    ticketlog(dir.path(), &["update", "2", "--status", "inprogress"]).ok();
    ticketlog(dir.path(), &["update", "3", "--status", "inprogress"]).ok();
    ticketlog(dir.path(), &["delete", "4"]).ok();
    let log_len = std::fs::metadata(common::log_path(dir.path()))
        .unwrap()
        .len();

    let run = ticketlog(dir.path(), &["--json", "stats"]);
    run.ok();
    let stats = run.json();
    assert_eq!(stats["todo"].as_u64(), Some(1));
    assert_eq!(stats["in_progress"].as_u64(), Some(2));
    assert_eq!(stats["done"].as_u64(), Some(1));
    assert_eq!(stats["next_id"].as_u64(), Some(6));
    assert_eq!(stats["records"].as_u64(), Some(9));
    assert_eq!(stats["log_bytes"].as_u64(), Some(log_len));

    let text = ticketlog(dir.path(), &["stats"]);
    let out = text.ok();
    assert!(
        out.contains("tickets: 4 (todo 1, in-progress 2, done 1)"),
        "{out}"
    );
    assert!(out.contains("next id: 6"), "{out}");
    assert!(
        out.contains(&format!("log: 9 records, {log_len} bytes")),
        "{out}"
    );
}

#[test]
fn ticketlog_dir_environment_variable_is_used_without_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = command();
    cmd.env("TICKETLOG_DIR", dir.path())
        .current_dir(cwd.path())
        .args(["--json", "add", "--title", "env", "--description", "d"]);
    let run = run(cmd);
    run.ok();
    assert_eq!(run.json()["id"].as_u64(), Some(1));
    assert!(common::log_path(dir.path()).exists());
    assert!(
        std::fs::read_dir(cwd.path()).unwrap().next().is_none(),
        "nothing is created in the working directory"
    );
}

// ---------------------------------------------------------------- bad input

/// Runs a command that must fail: non-zero exit, exactly one line on stderr
/// containing every one of `needles`, nothing on stdout, and the log file
/// byte-for-byte as it was.
fn assert_refused(dir: &Path, args: &[&str], needles: &[&str]) {
    let log = common::log_path(dir);
    let before = std::fs::read(&log).expect("the log exists before the command");
    let run = ticketlog(dir, args);
    assert!(
        !run.success() && run.code.is_some(),
        "{args:?} must fail: {run:#?}"
    );
    assert_eq!(run.stdout, "", "{args:?} printed on stdout: {run:#?}");
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "{args:?} must print exactly one line on stderr: {run:#?}"
    );
    assert!(run.stderr.ends_with('\n'), "{run:#?}");
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "{args:?}: stderr does not mention {needle:?}: {}",
            run.stderr
        );
    }
    let after = std::fs::read(&log).unwrap();
    assert!(before == after, "{args:?} changed the log");
}

#[test]
fn add_with_an_empty_title_is_refused() {
    let dir = seeded(2);
    assert_refused(
        dir.path(),
        &["add", "--title", "", "--description", "d"],
        &["title", "empty"],
    );
}

#[test]
fn add_with_a_51_byte_title_is_refused() {
    let dir = seeded(2);
    let title = "t".repeat(51);
    assert_refused(
        dir.path(),
        &["add", "--title", &title, "--description", "d"],
        &["title", "51", "50"],
    );
    // Multi-byte: 17 × '€' is 51 bytes.
    let title = "€".repeat(17);
    assert_refused(
        dir.path(),
        &["--json", "add", "--title", &title, "--description", "d"],
        &["title", "51", "50"],
    );
}

#[test]
fn add_with_a_501_byte_description_is_refused() {
    let dir = seeded(2);
    let description = "d".repeat(501);
    assert_refused(
        dir.path(),
        &["add", "--title", "ok", "--description", &description],
        &["description", "501", "500"],
    );
    assert_refused(
        dir.path(),
        &["add", "--title", "ok", "--description", ""],
        &["description", "empty"],
    );
}

#[test]
fn update_with_an_invalid_title_or_description_is_refused() {
    let dir = seeded(2);
    let title = "t".repeat(51);
    assert_refused(
        dir.path(),
        &["update", "1", "--title", &title],
        &["title", "51"],
    );
    let description = "d".repeat(501);
    assert_refused(
        dir.path(),
        &["update", "1", "--description", &description],
        &["description", "501"],
    );
}

#[test]
fn get_of_an_unknown_id_is_refused() {
    let dir = seeded(2);
    assert_refused(dir.path(), &["get", "3"], &["ticket 3", "does not exist"]);
    assert_refused(
        dir.path(),
        &["--json", "get", "999"],
        &["999", "does not exist"],
    );
}

#[test]
fn update_of_an_unknown_id_is_refused() {
    let dir = seeded(2);
    assert_refused(
        dir.path(),
        &["update", "3", "--status", "done"],
        &["ticket 3", "does not exist"],
    );
}

#[test]
fn delete_of_an_unknown_id_is_refused() {
    let dir = seeded(2);
    assert_refused(
        dir.path(),
        &["delete", "3"],
        &["ticket 3", "does not exist"],
    );
    // Deleting twice: the second delete finds nothing.
    ticketlog(dir.path(), &["delete", "2"]).ok();
    assert_refused(
        dir.path(),
        &["delete", "2"],
        &["ticket 2", "does not exist"],
    );
}

#[test]
fn malformed_ids_are_refused() {
    let dir = seeded(2);
    for id in ["0", "abc", "1.5"] {
        assert_refused(dir.path(), &["get", id], &[id, "not valid"]);
    }
    // Clap reads a bare "-1" as an unknown flag; either way it is refused.
    assert_refused(dir.path(), &["get", "-1"], &["-1"]);
    assert_refused(dir.path(), &["get", "--", "-1"], &["-1", "not valid"]);
    assert_refused(
        dir.path(),
        &["list", "--after", "abc"],
        &["abc", "not valid"],
    );
}

#[test]
fn a_bad_status_is_refused() {
    let dir = seeded(2);
    assert_refused(
        dir.path(),
        &["update", "1", "--status", "bogus"],
        &["bogus", "todo", "in-progress", "done"],
    );
    assert_refused(
        dir.path(),
        &["list", "--status", "finished"],
        &["finished", "todo", "in-progress", "done"],
    );
}

#[test]
fn a_wrong_expect_version_is_refused() {
    let dir = seeded(2);
    assert_refused(
        dir.path(),
        &["update", "1", "--status", "done", "--expect-version", "5"],
        &["ticket 1", "version 1", "5"],
    );
    // After a successful update, the old version is stale.
    ticketlog(
        dir.path(),
        &["update", "1", "--status", "done", "--expect-version", "1"],
    )
    .ok();
    assert_refused(
        dir.path(),
        &["update", "1", "--status", "todo", "--expect-version", "1"],
        &["ticket 1", "version 2", "expected version 1"],
    );
}

#[test]
fn an_update_with_no_fields_is_refused() {
    let dir = seeded(2);
    assert_refused(dir.path(), &["update", "1"], &["changes nothing"]);
    assert_refused(
        dir.path(),
        &["update", "1", "--expect-version", "1"],
        &["changes nothing"],
    );
}

// ---------------------------------------------------------------- log verify / dump

/// `(lsn, offset, len)` of every record, from `ticketlog --json log dump`.
fn dump(dir: &Path) -> Vec<(u64, u64, u64)> {
    let run = ticketlog(dir, &["--json", "log", "dump"]);
    run.ok();
    run.json_lines()
        .iter()
        .map(|line| {
            assert!(line["changes"].is_array(), "{line}");
            (
                line["lsn"].as_u64().unwrap(),
                line["offset"].as_u64().unwrap(),
                line["len"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn log_verify_of_a_clean_log_exits_0_and_prints_the_record_count() {
    let dir = seeded(5);
    let log = std::fs::read(common::log_path(dir.path())).unwrap();

    let run = ticketlog(dir.path(), &["log", "verify"]);
    let out = run.ok();
    assert!(out.contains("5 records"), "{out}");
    assert!(out.contains(&format!("{} bytes", log.len())), "{out}");
    assert!(out.contains("clean"), "{out}");

    let run = ticketlog(dir.path(), &["--json", "log", "verify"]);
    run.ok();
    let report = run.json();
    assert_eq!(report["records"].as_u64(), Some(5));
    assert_eq!(report["bytes"].as_u64(), Some(log.len() as u64));
    assert_eq!(report["valid_bytes"].as_u64(), Some(log.len() as u64));
    assert_eq!(report["last_id"].as_u64(), Some(5));
    assert_eq!(report["tickets"].as_u64(), Some(5));
    assert!(report["torn_tail"].is_null(), "{report}");

    assert_eq!(std::fs::read(common::log_path(dir.path())).unwrap(), log);
}

#[test]
fn log_verify_of_a_torn_tail_exits_1_and_does_not_change_the_file() {
    let dir = seeded(3);
    let path = common::log_path(dir.path());
    let clean_len = std::fs::metadata(&path).unwrap().len();
    let mut torn = std::fs::read(&path).unwrap();
    let garbage = [0xde, 0xad, 0xbe, 0xef, 0x01];
    torn.extend_from_slice(&garbage);
    std::fs::write(&path, &torn).unwrap();

    let run = ticketlog(dir.path(), &["log", "verify"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stdout.contains("3 records"), "{run:#?}");
    assert!(run.stdout.contains("torn tail"), "{run:#?}");
    assert!(
        run.stdout
            .contains(&format!("{} bytes at byte {clean_len}", garbage.len())),
        "{run:#?}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        torn,
        "verify changed the log"
    );

    let run = ticketlog(dir.path(), &["--json", "log", "verify"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let report = run.json();
    assert_eq!(report["records"].as_u64(), Some(3));
    assert_eq!(report["valid_bytes"].as_u64(), Some(clean_len));
    assert_eq!(
        report["torn_tail"]["bytes"].as_u64(),
        Some(garbage.len() as u64)
    );
    assert_eq!(report["torn_tail"]["offset"].as_u64(), Some(clean_len));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        torn,
        "verify changed the log"
    );

    // `log dump` reads the good records, reports the torn tail, and changes nothing.
    let run = ticketlog(dir.path(), &["--json", "log", "dump"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.json_lines().len(), 3);
    assert!(run.stderr.contains("torn tail"), "{run:#?}");
    assert_eq!(std::fs::read(&path).unwrap(), torn, "dump changed the log");
}

#[test]
fn log_verify_of_a_flipped_bit_mid_log_exits_2_and_names_the_offset() {
    let dir = seeded(5);
    let records = dump(dir.path());
    assert_eq!(records.len(), 5);
    let (lsn, offset, len) = records[2];
    assert_eq!(lsn, 3);

    // Flip one bit in the middle of record 3's payload (after its 24-byte header).
    let path = common::log_path(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let header_len = ticketlog::inspect::record::RECORD_HEADER_LEN as u64;
    assert!(len > header_len);
    let at = (offset + header_len + (len - header_len) / 2) as usize;
    bytes[at] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();

    let run = ticketlog(dir.path(), &["log", "verify"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert_eq!(run.stdout, "", "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    assert!(
        run.stderr.contains(&format!("at byte {offset}")),
        "stderr does not name offset {offset}: {}",
        run.stderr
    );
    assert!(run.stderr.contains("corrupt"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "verify changed the log"
    );

    // Opening the store refuses the corrupt log too, with the same exit status,
    // and leaves the file alone.
    let run = ticketlog(dir.path(), &["get", "1"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert_eq!(run.stdout, "", "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    assert!(
        run.stderr.contains(&format!("at byte {offset}")),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "open changed the log");
}

#[test]
fn log_dump_json_prints_one_line_per_record_with_lsn_1_to_n() {
    let dir = seeded(4);
    ticketlog(dir.path(), &["update", "2", "--status", "done"]).ok();
    ticketlog(dir.path(), &["delete", "3"]).ok();
    let file_len = std::fs::metadata(common::log_path(dir.path()))
        .unwrap()
        .len();

    // `--json` after the subcommand, too.
    let run = ticketlog(dir.path(), &["log", "dump", "--json"]);
    run.ok();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 6);
    let header_len = ticketlog::inspect::record::FILE_HEADER_LEN as u64;
    let mut expected_offset = header_len;
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["lsn"].as_u64(), Some(i as u64 + 1), "{line}");
        assert_eq!(line["offset"].as_u64(), Some(expected_offset), "{line}");
        expected_offset += line["len"].as_u64().unwrap();
        assert_eq!(line["changes"].as_array().map(Vec::len), Some(1), "{line}");
    }
    assert_eq!(expected_offset, file_len, "records cover the whole file");
    assert_eq!(dump(dir.path()).len(), 6);

    // The text dump names each change kind.
    let text = ticketlog(dir.path(), &["log", "dump"]);
    let out = text.ok();
    assert_eq!(out.lines().count(), 6, "{out}");
    assert_eq!(out.matches(" created id=").count(), 4, "{out}");
    assert_eq!(out.matches(" updated id=2").count(), 1, "{out}");
    assert_eq!(out.matches(" deleted id=3").count(), 1, "{out}");
}

// ---------------------------------------------------------------- snapshot / compact / history

#[test]
fn snapshot_then_history_then_compact_from_the_command_line() {
    let dir = seeded(3);
    ticketlog(dir.path(), &["update", "2", "--status", "in-progress"]).ok();
    ticketlog(dir.path(), &["update", "2", "--title", "Renamed"]).ok();

    let run = ticketlog(dir.path(), &["snapshot"]);
    let out = run.ok();
    assert!(out.contains("snapshot at lsn 5: 3 tickets"), "{out}");
    let run = ticketlog(dir.path(), &["--json", "snapshot"]);
    let info = run.json();
    assert_eq!(info["lsn"].as_u64(), Some(5));
    assert_eq!(info["tickets"].as_u64(), Some(3));

    // History: one line per change, oldest first, only the fields each set.
    let run = ticketlog(dir.path(), &["history", "2"]);
    let out = run.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("lsn=2 version=1 ") && lines[0].contains("created"),
        "{out}"
    );
    assert!(
        lines[1].contains("version=2") && lines[1].ends_with("updated status=in-progress"),
        "{out}"
    );
    assert!(
        lines[2].contains("version=3") && lines[2].ends_with("updated title=\"Renamed\""),
        "{out}"
    );
    let run = ticketlog(dir.path(), &["--json", "history", "2"]);
    let events = run.json_lines();
    assert_eq!(
        events
            .iter()
            .map(|e| e["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        events
            .iter()
            .map(|e| e["lsn"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 4, 5]
    );
    assert_eq!(events[1]["type"], "updated", "{:?}", events[1]);
    assert_eq!(events[1]["status"], "in-progress", "{:?}", events[1]);
    // A ticket never created.
    let run = ticketlog(dir.path(), &["history", "99"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("ticket 99 does not exist"), "{run:#?}");

    // Compact: one segment only, so nothing to remove but the older snapshot.
    let run = ticketlog(dir.path(), &["compact"]);
    let out = run.ok();
    assert!(out.contains("reclaimed"), "{out}");
    assert!(out.contains("history starts at lsn 1"), "{out}");
    let run = ticketlog(dir.path(), &["--json", "compact"]);
    let info = run.json();
    assert_eq!(info["segments_removed"].as_u64(), Some(0));
    assert_eq!(info["history_starts_at_lsn"].as_u64(), Some(1));

    // Verify lists the snapshot, and the state survives.
    let run = ticketlog(dir.path(), &["log", "verify"]);
    let out = run.ok();
    assert!(out.contains("snapshot at lsn 5: ok"), "{out}");
    let run = ticketlog(dir.path(), &["--json", "get", "2"]);
    assert_eq!(run.json()["title"].as_str(), Some("Renamed"));
}

#[test]
fn log_dump_takes_an_lsn_range() {
    let dir = seeded(6);
    let run = ticketlog(
        dir.path(),
        &["--json", "log", "dump", "--from-lsn", "2", "--to-lsn", "4"],
    );
    run.ok();
    let lsns: Vec<u64> = run
        .json_lines()
        .iter()
        .map(|line| line["lsn"].as_u64().unwrap())
        .collect();
    assert_eq!(lsns, [2, 3, 4]);
    let run = ticketlog(dir.path(), &["log", "dump", "--from-lsn", "5"]);
    assert_eq!(run.ok().lines().count(), 2);
    let run = ticketlog(dir.path(), &["log", "dump", "--to-lsn", "0"]);
    assert_eq!(run.ok(), "");
}

#[test]
fn a_damaged_snapshot_is_reported_by_verify_and_skipped_by_open() {
    let dir = seeded(3);
    let run = ticketlog(dir.path(), &["--json", "snapshot"]);
    let path = std::path::PathBuf::from(run.json()["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let run = ticketlog(dir.path(), &["log", "verify"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stdout.contains("DAMAGED"), "{run:#?}");
    assert!(run.stderr.contains("snapshot-"), "{run:#?}");

    let run = ticketlog(dir.path(), &["get", "3"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stderr.contains("skipped damaged snapshot")
            && run.stderr.contains("replayed the whole log"),
        "{run:#?}"
    );
}

// ---------------------------------------------------------------- demo

#[test]
fn demo_reports_an_identical_state_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let run = ticketlog(
        dir.path(),
        &["demo", "--clients", "4", "--ops", "200", "--seed", "1"],
    );
    assert!(run.success(), "{run:#?}");
    assert!(run.stdout.contains("identical to before close"), "{run:#?}");
    assert!(!run.stdout.contains("DIFFERENT"), "{run:#?}");
}

#[test]
fn demo_json_reports_identical_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let run = ticketlog(
        dir.path(),
        &[
            "--json",
            "demo",
            "--clients",
            "4",
            "--ops",
            "200",
            "--seed",
            "1",
        ],
    );
    assert!(run.success(), "{run:#?}");
    let report = run.json();
    assert_eq!(
        report["identical_after_reopen"],
        Value::Bool(true),
        "{report}"
    );
    assert_eq!(report["clients"].as_u64(), Some(4));
    assert_eq!(report["ops"].as_u64(), Some(800));
    assert_eq!(report["seed"].as_u64(), Some(1));

    // The demo's store stays behind, and agrees with the report.
    let store = common::open(dir.path());
    let stats = store.client().stats().unwrap();
    store.close().unwrap();
    assert_eq!(Some(stats.tickets()), report["tickets"].as_u64());
    assert_eq!(Some(stats.records), report["log_records"].as_u64());
    let created = report["created"].as_u64().unwrap();
    let deleted = report["deleted"].as_u64().unwrap();
    assert_eq!(stats.tickets(), created - deleted);
    assert_eq!(stats.next_id, TicketId::from(created + 1));
}

// ---------------------------------------------------------------- locking

#[test]
fn a_second_process_is_refused_while_the_store_is_open() {
    let dir = seeded(1);
    let log_before = std::fs::read(common::log_path(dir.path())).unwrap();
    let store = common::open(dir.path());

    let run = ticketlog(dir.path(), &["add", "--title", "t", "--description", "d"]);
    assert!(!run.success(), "{run:#?}");
    assert_eq!(run.stdout, "", "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    assert!(run.stderr.contains("already open"), "{run:#?}");

    // Reading while a store writes is read-only inspection of the live
    // store: it works, says so, and changes nothing.
    let run = ticketlog(dir.path(), &["log", "verify"]);
    assert!(run.success(), "{run:#?}");
    assert!(run.stderr.contains("open in another process"), "{run:#?}");
    let run = ticketlog(dir.path(), &["get", "1"]);
    assert!(run.success(), "{run:#?}");
    assert!(run.stderr.contains("read-only, up to LSN"), "{run:#?}");
    assert_eq!(
        std::fs::read(common::log_path(dir.path())).unwrap(),
        log_before
    );

    // The open store is unaffected, and once it is closed the binary works.
    let client = store.client();
    assert_eq!(client.stats().unwrap().tickets(), 1);
    store.close().unwrap();
    assert_eq!(
        std::fs::read(common::log_path(dir.path())).unwrap(),
        log_before
    );
    assert_eq!(add(dir.path(), "t", "d")["id"].as_u64(), Some(2));
}

/// The fields the peers harness reads from every `bench --json` line.
const PEERS_FIELDS: [&str; 9] = [
    "engine",
    "workload",
    "clients",
    "ops",
    "secs",
    "ops_per_s",
    "p50_us",
    "p99_us",
    "bytes_on_disk",
];

#[test]
fn bench_prints_one_json_line_with_the_peers_fields_and_cleans_up() {
    let parent = tempfile::tempdir().unwrap();
    for (args, workload, ops) in [
        (
            &["--workload", "insert", "--clients", "3", "--ops", "20"][..],
            "insert",
            60,
        ),
        (
            &["--workload", "insert", "--ops", "50", "--pipeline", "8"][..],
            "insert",
            50,
        ),
        (
            &["--workload", "mixed", "--clients", "2", "--ops", "30"][..],
            "mixed",
            60,
        ),
        (&["--workload", "reopen", "--ops", "40"][..], "reopen", 40),
        (
            &["--workload", "memory", "--ops", "1500"][..],
            "memory",
            1500,
        ),
    ] {
        let mut full = vec!["bench"];
        full.extend_from_slice(args);
        full.push("--json");
        let run = ticketlog(parent.path(), &full);
        assert!(run.success(), "{run:#?}");
        let line = run.json();
        for field in PEERS_FIELDS {
            assert!(
                line.get(field).is_some(),
                "{workload}: no {field} in {line}"
            );
        }
        assert_eq!(line["engine"], "ticketlog");
        assert_eq!(line["workload"], workload);
        assert_eq!(line["ops"].as_u64(), Some(ops), "{line}");
        assert!(line["ops_per_s"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["bytes_on_disk"].as_u64().unwrap() > 0, "{line}");
        if workload == "reopen" {
            assert_eq!(line["missing"].as_u64(), Some(0), "{line}");
        }
    }
    // Each run made its store in a fresh directory under --dir and removed it.
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}

#[test]
fn bench_snapshot_latency_times_a_baseline_as_long_as_a_snapshot_at_the_pace_it_is_given() {
    let parent = tempfile::tempdir().unwrap();
    // 6,000 tickets make a snapshot of about 1.5 MB: at 1 MiB/s, the writer
    // must wait at its first 1 MiB sync until a second has passed.
    let run = ticketlog(
        parent.path(),
        &[
            "bench",
            "--workload",
            "snapshot-latency",
            "--clients",
            "2",
            "--ops",
            "3000",
            "--snapshot-write-bytes-per-s",
            "1048576",
            "--json",
        ],
    );
    assert!(run.success(), "{run:#?}");
    let line = run.json();
    assert_eq!(line["workload"], "snapshot-latency");
    assert_eq!(line["tickets"].as_u64(), Some(6000), "{line}");
    let snapshot_bytes = line["snapshot_bytes"].as_u64().unwrap();
    assert!(snapshot_bytes > 1 << 20, "{line}");
    let first = line["first_snapshot_secs"].as_f64().unwrap();
    let during = line["snapshot_secs"].as_f64().unwrap();
    assert!(
        first >= 0.99 && during >= 0.99,
        "the pace was not kept: {line}"
    );
    // The baseline phase lasts as long as the first snapshot took.
    let baseline_secs = line["baseline_secs"].as_f64().unwrap();
    assert!(baseline_secs >= first, "{line}");
    assert!(line["baseline_ops"].as_u64().unwrap() >= 2 * 500, "{line}");
    assert!(line["ops"].as_u64().unwrap() > 0, "{line}");
    assert!(line["p99_ratio"].as_f64().unwrap() > 0.0, "{line}");
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}

#[test]
fn a_bad_durability_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = ticketlog(dir.path(), &["--durability", "sometimes", "stats"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("interval:MS"), "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 1);
    let run = ticketlog(dir.path(), &["--durability", "interval:0", "stats"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    ticketlog(dir.path(), &["--durability", "interval:50", "stats"]).ok();
}
