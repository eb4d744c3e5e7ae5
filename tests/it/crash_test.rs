//! `ticketlog crash-test`: a short kill -9 soak with real processes, as a
//! user would run it. The checking itself is unit-tested against broken
//! recoveries in `src/cli/crash_test.rs`; here it must pass on the real
//! store, in text and JSON, under `Always` and (a process kill loses nothing
//! written to the OS) `Never`.

use std::process::Command;

use serde_json::Value;

use crate::common;

fn crash_test(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ticketlog"))
        .env_remove("TICKETLOG_DIR")
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .expect("run ticketlog crash-test")
}

#[test]
fn twenty_kill_cycles_lose_no_acknowledged_command() {
    let seed = common::seed("crash_test::twenty_kill_cycles_lose_no_acknowledged_command");
    let dir = tempfile::tempdir().unwrap();
    let seed = seed.to_string();
    let run = crash_test(
        dir.path(),
        &[
            "--json",
            "crash-test",
            "--cycles",
            "20",
            "--clients",
            "4",
            "--seed",
            &seed,
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "crash-test failed: {stderr}");
    let stdout = String::from_utf8(run.stdout).unwrap();
    let summary: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(summary["cycles"], 20, "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
    let acknowledged = summary["commands_acknowledged"].as_u64().unwrap();
    let recovered = summary["commands_recovered"].as_u64().unwrap();
    assert!(acknowledged > 0, "{summary}");
    assert!(recovered >= acknowledged, "{summary}");
    assert_eq!(summary["in_flight_at_kill"], 20 * 4, "{summary}");
    assert!(stderr.contains(&format!("--seed {seed}")), "{stderr}");

    // The store it leaves behind is sound and holds what the summary says.
    let store = common::open(dir.path());
    assert_eq!(store.recovery().torn_tail, None);
    store.close().unwrap();
}

#[test]
fn the_text_summary_reports_lost_zero_and_other_modes_pass_too() {
    let dir = tempfile::tempdir().unwrap();
    let run = crash_test(
        dir.path(),
        &[
            "--durability",
            "never",
            "crash-test",
            "--cycles",
            "5",
            "--clients",
            "2",
            "--seed",
            "7",
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.lines().any(|l| l == "cycles: 5"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "lost: 0"), "{stdout}");
    assert!(stdout.contains("commands acknowledged: "), "{stdout}");
    assert!(stdout.contains("commands recovered: "), "{stdout}");
}
