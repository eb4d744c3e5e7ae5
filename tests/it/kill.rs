//! A real crash: `ticketlog load` is killed with SIGKILL while concurrent
//! clients are creating tickets, and every id it printed (each printed only
//! once its create was acknowledged, that is, durable) must be in the store
//! after reopening, with no holes in the id sequence.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ticketlog::{ListQuery, TicketId};

use crate::common::{self, Rng};

/// Kill cycles on the same directory.
const CYCLES: usize = 3;

/// Kills the child if the test panics before it is reaped.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `ticketlog --dir DIR load --clients 4`, reads acknowledged ids until
/// at least `want` have arrived, kills it with SIGKILL, then drains the ids
/// still in the pipe. Returns every acknowledged id, in the order printed.
fn load_until_killed(dir: &Path, durability: &str, want: usize) -> Vec<u64> {
    let child = Command::new(env!("CARGO_BIN_EXE_ticketlog"))
        .env_remove("TICKETLOG_DIR")
        .arg("--dir")
        .arg(dir)
        .args(["--durability", durability, "load", "--clients", "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ticketlog load");
    let mut reaper = Reaper(Some(child));
    let child = reaper.0.as_mut().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();

    let mut acked = Vec::new();
    let mut line = String::new();
    let mut read_one = |acked: &mut Vec<u64>| -> bool {
        line.clear();
        let n = stdout.read_line(&mut line).expect("read load's stdout");
        if n == 0 {
            return false;
        }
        // A line without its newline was cut off mid-write: not an acknowledgement.
        // (Each id is one write of at most a few bytes, so this should not happen.)
        if let Some(id) = line.strip_suffix('\n') {
            let id: u64 = id
                .parse()
                .unwrap_or_else(|e| panic!("load printed {id:?}, not an id: {e}"));
            acked.push(id);
        } else {
            eprintln!("kill: ignoring an unterminated last line {line:?}");
        }
        true
    };

    while acked.len() < want {
        if !read_one(&mut acked) {
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            let status = child.wait();
            panic!(
                "load ended after {} ids, before being killed ({status:?}): {err}",
                acked.len()
            );
        }
    }

    child.kill().expect("SIGKILL the load process");
    let status = child.wait().expect("reap the load process");
    reaper.0 = None;
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "load was not killed: {status:?}");
    }
    #[cfg(not(unix))]
    assert!(!status.success());

    // Lines already in the pipe were acknowledged before the kill.
    let before_drain = acked.len();
    while read_one(&mut acked) {}
    let mut err = String::new();
    stderr.read_to_string(&mut err).expect("read load's stderr");
    eprintln!(
        "kill: {} ids read before SIGKILL, {} more drained from the pipe; stderr: {:?}",
        before_drain,
        acked.len() - before_drain,
        err.trim_end()
    );
    acked
}

/// Opens the store and checks it against every id acknowledged so far.
/// Returns the largest id present.
fn check_store(dir: &Path, acked: &BTreeSet<u64>, previous_max: u64) -> u64 {
    let store = common::open(dir);
    eprintln!("kill: recovery {:?}", store.recovery());
    let client = store.client();
    let tickets = client.list(ListQuery::default()).unwrap();
    let stats = client.stats().unwrap();

    let present: Vec<u64> = tickets.iter().map(|t| t.id.get()).collect();
    let max = present.last().copied().unwrap_or(0);
    // No deletes happen in load, so the present ids are exactly 1..=max.
    assert!(
        present.iter().copied().eq(1..=max),
        "ids have holes: {} tickets, max id {max}",
        present.len()
    );
    assert_eq!(stats.next_id, TicketId::from(max + 1));
    assert_eq!(stats.tickets(), max);
    assert!(
        max >= previous_max,
        "tickets acknowledged earlier are gone: max id {max} < {previous_max}"
    );

    for ticket in &tickets {
        assert!(
            ticket.title.as_str().starts_with("load "),
            "ticket {} has title {:?}",
            ticket.id,
            ticket.title.as_str()
        );
        assert_eq!(ticket.version, 1, "ticket {}", ticket.id);
    }
    for &id in acked {
        let ticket = client
            .get(TicketId::from(id))
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged ticket {id} is missing after SIGKILL"));
        assert!(ticket.title.as_str().starts_with("load "), "{ticket:?}");
    }
    store.close().unwrap();
    max
}

/// A process crash loses nothing acknowledged in any durability mode: under
/// `interval` and `never` a command is acknowledged after its write, and the
/// kernel keeps written pages when the process dies.
fn every_acknowledged_ticket_survives_sigkill_with(durability: &str) {
    let seed = common::seed(&format!(
        "kill::every_acknowledged_ticket_survives_sigkill ({durability})"
    ));
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();

    let mut all_acked = BTreeSet::new();
    let mut max = 0;
    for cycle in 1..=CYCLES {
        let want = 50 + rng.below(451) as usize;
        let acked = load_until_killed(dir.path(), durability, want);
        assert!(acked.len() >= want);

        let unique: BTreeSet<u64> = acked.iter().copied().collect();
        assert_eq!(unique.len(), acked.len(), "an id was printed twice");
        // Ids are never reused: this run's ids are all new.
        let first_new = unique.first().copied().unwrap();
        assert!(
            first_new > max,
            "cycle {cycle}: id {first_new} reused (the store already went up to {max})"
        );
        eprintln!(
            "kill: cycle {cycle}: wanted {want}, {} acknowledged, ids {first_new}..={}",
            acked.len(),
            unique.last().unwrap()
        );
        all_acked.extend(unique);

        max = check_store(dir.path(), &all_acked, max);
        assert!(max >= *all_acked.last().unwrap());
    }
    eprintln!(
        "kill: {} ids acknowledged over {CYCLES} cycles, store holds 1..={max} (seed {seed})",
        all_acked.len()
    );
}

#[test]
fn every_acknowledged_ticket_survives_sigkill() {
    every_acknowledged_ticket_survives_sigkill_with("always");
}

#[test]
fn every_acknowledged_ticket_survives_sigkill_under_interval_durability() {
    every_acknowledged_ticket_survives_sigkill_with("interval:5");
}

#[test]
fn every_acknowledged_ticket_survives_sigkill_under_never_durability() {
    every_acknowledged_ticket_survives_sigkill_with("never");
}
