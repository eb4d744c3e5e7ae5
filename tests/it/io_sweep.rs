//! I/O error sweep: a fixed workload (create a store, batches of creates,
//! updates and deletes with refusals among them, queries, close, reopen,
//! more commands, close) runs with its N-th storage operation failing, for
//! every N until the workload completes untouched, once and persistently.
//!
//! Checked for every N: a command whose flush failed is never acknowledged;
//! after a failed write or sync the store is poisoned and never touches
//! storage again (no retried fsync); a failed open is an I/O error, never a
//! corruption report; after a final power cut, reopening meets the oracle;
//! and no file handle or lock outlives its store (counted by `SimStorage`,
//! and for the real file system, in `/proc/self/fd`).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ticketlog::storage::{
    Fault, FaultKind, FileSystem, OpenMode, SimStorage, Storage, StorageFile, StorageLock,
};
use ticketlog::{ClientError, ListQuery, Options, StorageError, Store};

use crate::driver::{Driver, Opened, Parked};
use crate::model::{self, Model, ModelCommand};

fn create(title: &str) -> ModelCommand {
    ModelCommand::Create {
        title: title.into(),
        description: format!("{title}, made by the sweep"),
    }
}

fn update(id: u64, expected_version: Option<u64>) -> ModelCommand {
    ModelCommand::Update {
        id,
        title: Some(format!("ticket {id}, updated")),
        description: None,
        status: Some(ticketlog::Status::InProgress),
        expected_version,
    }
}

/// The workload's sessions: batches of commands, sent in order.
fn workload() -> Vec<Vec<Vec<ModelCommand>>> {
    vec![
        vec![
            vec![create("a")],
            vec![
                create("b"),
                create("c"),
                update(1, Some(1)),
                update(9, None), // refused: no such ticket
            ],
            vec![ModelCommand::Delete { id: 2 }],
        ],
        vec![
            vec![update(3, Some(7))], // refused: wrong version
            vec![
                update(3, Some(1)),
                create("d"),
                ModelCommand::Update {
                    id: 1,
                    title: None,
                    description: None,
                    status: None,
                    expected_version: None,
                }, // refused: changes nothing
                create("e"),
            ],
        ],
    ]
}

/// Sends `commands`, splitting them as the server must see them: from idle
/// one command goes alone, the rest wait for the next stop after a sync.
fn submit(driver: &mut Driver, mut commands: Vec<ModelCommand>) -> Result<(), String> {
    while !commands.is_empty() {
        match driver.parked() {
            None => return Ok(()), // a power cut closed the session
            Some(Parked::Idle) => {
                let first = commands.remove(0);
                driver.send(vec![(0, first)])?;
            }
            Some(Parked::AfterSync { failed: false }) => {
                let batch = commands.drain(..).enumerate().collect();
                driver.send(batch)?;
            }
            Some(_) => driver.advance()?,
        }
    }
    settle(driver)
}

/// Lets the server finish what it is doing.
fn settle(driver: &mut Driver) -> Result<(), String> {
    while let Some(parked) = driver.parked() {
        if parked == Parked::Idle {
            return Ok(());
        }
        driver.advance()?;
    }
    Ok(())
}

/// Opens; a once-only fault gets one retry. False if the store stays shut.
fn open(driver: &mut Driver, persistent: bool) -> Result<bool, String> {
    for _ in 0..2 {
        match driver.open()? {
            Opened::Yes => return Ok(true),
            Opened::Corrupt(_) | Opened::Diverged(_) => return Ok(false),
            Opened::IoFailed(_) if persistent => return Ok(false),
            Opened::IoFailed(_) => {}
        }
    }
    Err("a once-only fault failed two opens".into())
}

/// One run with `fault` injected at the start; returns whether it fired.
fn run_once(n: u64, fault: Fault, persistent: bool) -> Result<bool, String> {
    let sim = SimStorage::new(n);
    let kind = fault.kind();
    sim.inject(fault);
    let mut driver = Driver::new(sim.clone(), Path::new("/data/store"), Options::default(), 1);
    for session in workload() {
        if !open(&mut driver, persistent)? {
            continue;
        }
        for batch in session {
            submit(&mut driver, batch)?;
        }
        if driver.is_open() {
            driver.check_queries()?;
            driver.close()?;
        }
    }
    let fired = !sim.faults_fired().is_empty();
    // Whatever happened, a power cut now must keep every acknowledged command.
    sim.crash();
    sim.clear_faults();
    match driver.open()? {
        Opened::Yes => driver.close()?,
        Opened::Corrupt(error) => {
            // Only a lying disk (a dropped write or sync) may leave that.
            if kind != FaultKind::DropWrite {
                return Err(format!("corrupt after {kind:?}: {error}"));
            }
        }
        Opened::Diverged(why) => {
            if kind != FaultKind::DropWrite {
                return Err(format!("diverged after {kind:?}: {why}"));
            }
        }
        Opened::IoFailed(error) => return Err(format!("open without faults failed: {error}")),
    }
    driver.check_no_leaks("at the end")?;
    Ok(fired)
}

#[test]
fn failing_every_operation_once_or_for_good_never_loses_an_acknowledged_command() {
    let kinds = [
        (FaultKind::Eio, true),
        (FaultKind::NoSpace, true),
        (FaultKind::ShortWrite, true),
        (FaultKind::DropWrite, true),
        (FaultKind::Crash, false), // a power cut at every operation
    ];
    let mut runs = 0;
    let mut ops_in_workload = BTreeSet::new();
    for (kind, also_persistent) in kinds {
        for persistent in [false, true] {
            if persistent && !also_persistent {
                continue;
            }
            let mut n = 0;
            loop {
                let mut fault = Fault::after(kind, n);
                if persistent {
                    fault = fault.persistent();
                }
                let fired = run_once(n, fault.clone(), persistent).unwrap_or_else(|error| {
                    panic!(
                        "io_sweep: {kind:?} at operation {n} (persistent: {persistent}): {error}"
                    )
                });
                runs += 1;
                if !fired {
                    break; // the workload ran past operation n untouched
                }
                n += 1;
                assert!(n < 1000, "the workload should end");
            }
            ops_in_workload.insert(n);
            eprintln!(
                "io_sweep: {kind:?} (persistent: {persistent}): operations 0..{n} failed in turn"
            );
        }
    }
    // Every kind swept the same workload, of the same length.
    assert_eq!(ops_in_workload.len(), 1, "{ops_in_workload:?}");
    let ops = *ops_in_workload.first().unwrap();
    assert!(ops > 30, "the workload has {ops} operations");
    eprintln!("io_sweep: {runs} runs, 0 violations");
}

// The real file system, with a wrapper that fails the n-th operation.

#[derive(Debug)]
struct Failing {
    ops: AtomicU64,
    fail_at: u64,
    persistent: bool,
    fired: AtomicBool,
    disarmed: AtomicBool,
}

impl Failing {
    fn check(&self) -> io::Result<()> {
        let index = self.ops.fetch_add(1, Ordering::SeqCst);
        let hit = !self.disarmed.load(Ordering::SeqCst)
            && (index == self.fail_at || (self.persistent && index > self.fail_at));
        if hit {
            self.fired.store(true, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct FailingFs(Arc<Failing>);

#[derive(Debug)]
struct FailingFile(Box<dyn StorageFile>, Arc<Failing>);

impl Storage for FailingFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<bool> {
        self.0.check()?;
        FileSystem.create_dir_all(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn StorageLock>>> {
        self.0.check()?;
        FileSystem.try_lock(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.0.check()?;
        FileSystem.exists(path)
    }
    fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        self.0.check()?;
        let file = FileSystem.open_file(path, mode)?;
        Ok(Box::new(FailingFile(file, Arc::clone(&self.0))))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.check()?;
        FileSystem.sync_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.check()?;
        FileSystem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.0.check()?;
        FileSystem.remove_file(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.0.check()?;
        FileSystem.list_dir(dir)
    }
}

impl StorageFile for FailingFile {
    fn size(&self) -> io::Result<u64> {
        self.1.check()?;
        self.0.size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.1.check()?;
        self.0.read_at(offset, buf)
    }
    fn write_all_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.1.check()?;
        self.0.write_all_at(offset, data)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.1.check()?;
        self.0.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.1.check()?;
        self.0.set_len(len)
    }
}

/// Open descriptors of this process that point into `dir`. Other tests run
/// in parallel, so only descriptors of this test's own directory count.
fn fds_into(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.canonicalize().expect("the test directory exists");
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable on Linux")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .collect()
}

/// The workload on the real file system, one client, blocking calls (so the
/// operation sequence is fixed). Returns whether the fault fired.
fn run_real(fail_at: u64, persistent: bool) -> Result<bool, String> {
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = temp.path().join("store");
    let failing = Arc::new(Failing {
        ops: AtomicU64::new(0),
        fail_at,
        persistent,
        fired: AtomicBool::new(false),
        disarmed: AtomicBool::new(false),
    });
    let options = || Options::default().storage(Arc::new(FailingFs(Arc::clone(&failing))));
    let mut accepted: Vec<ModelCommand> = Vec::new();
    let mut acked = 0usize;
    for session in workload() {
        let store = match Store::open(&dir, options()) {
            Ok(store) => store,
            Err(ticketlog::OpenError::Io { .. }) => {
                let leaked = fds_into(temp.path());
                if !leaked.is_empty() {
                    return Err(format!("a failed open left descriptors open: {leaked:?}"));
                }
                // The log may hold fewer commands than were accepted: reopen
                // through the oracle below; until then, replay what is there.
                continue;
            }
            Err(other) => return Err(format!("open failed with {other}")),
        };
        // The count sees an open store's descriptors (the lock and the log),
        // so its zero after close means something.
        let open_fds = fds_into(temp.path()).len();
        if open_fds < 2 {
            return Err(format!("an open store shows {open_fds} descriptors"));
        }
        let client = store.client();
        let log = std::fs::read(dir.join(ticketlog::inspect::LOG_FILE_NAME))
            .map_err(|e| e.to_string())?;
        model::check_whole(&log)?;
        let (records, _) = model::commands_in_log(&log);
        accepted.truncate(records);
        acked = acked.min(records);
        let mut model = Model::replay(&accepted)?;
        let mut poisoned = false;
        for command in session.into_iter().flatten() {
            let expected = model.decide(&command);
            let reply = client.execute(command.to_command());
            match (&expected, reply) {
                (_, Err(ClientError::Storage(StorageError::Poisoned { .. }))) if poisoned => {}
                (Ok(ticket), Ok(got)) if !poisoned && ticket.matches(&got) => {
                    model.apply(&command).map_err(|r| format!("{r:?}"))?;
                    accepted.push(command);
                    acked = accepted.len();
                }
                (Ok(_), Err(ClientError::Storage(StorageError::Io { .. }))) if !poisoned => {
                    // Not acknowledged; it may or may not be in the log.
                    accepted.push(command);
                    poisoned = true;
                }
                (Err(rejection), Err(error)) if rejection.matches(&error) => {}
                (expected, got) => {
                    return Err(format!(
                        "{command:?}: expected {expected:?} (poisoned: {poisoned}), got {got:?}"
                    ));
                }
            }
        }
        let tickets = client
            .list(ListQuery::default())
            .map_err(|e| e.to_string())?;
        let next_id = client.stats().map_err(|e| e.to_string())?.next_id;
        let live = if poisoned {
            Model::replay(&accepted[..accepted.len() - 1])?
        } else {
            model
        };
        live.check(&tickets, next_id)
            .map_err(|e| format!("queries after the workload: {e}"))?;
        // A clean close syncs and may seal the log, so it can fail on its own.
        let fired_before = failing.fired.load(Ordering::SeqCst);
        let closed = store.close();
        let fired_in_close = !fired_before && failing.fired.load(Ordering::SeqCst);
        match (&closed, poisoned) {
            (Ok(()), false) | (Err(StorageError::Poisoned { .. }), true) => {}
            (Err(StorageError::Io { .. }), false) if fired_in_close || persistent => {}
            _ => return Err(format!("close gave {closed:?}, poisoned: {poisoned}")),
        }
        drop(client);
        let leaked = fds_into(temp.path());
        if !leaked.is_empty() {
            return Err(format!("descriptors left open after close: {leaked:?}"));
        }
    }
    let fired = failing.fired.load(Ordering::SeqCst);
    failing.disarmed.store(true, Ordering::SeqCst);
    let store = Store::open(&dir, options()).map_err(|e| format!("final open: {e}"))?;
    let log =
        std::fs::read(dir.join(ticketlog::inspect::LOG_FILE_NAME)).map_err(|e| e.to_string())?;
    model::check_recovered(&store, &log, &accepted, acked)?;
    model::check_whole(&log)?;
    store.close().map_err(|e| e.to_string())?;
    let leaked = fds_into(temp.path());
    if !leaked.is_empty() {
        return Err(format!("descriptors left open at the end: {leaked:?}"));
    }
    Ok(fired)
}

#[test]
fn failing_every_operation_of_the_real_file_system_leaks_no_descriptor() {
    let mut runs = 0;
    for persistent in [false, true] {
        let mut n = 0;
        loop {
            let fired = run_real(n, persistent).unwrap_or_else(|error| {
                panic!(
                    "io_sweep (real FS): EIO at operation {n} (persistent: {persistent}): {error}"
                )
            });
            runs += 1;
            if !fired {
                break;
            }
            n += 1;
            assert!(n < 1000, "the workload should end");
        }
        eprintln!("io_sweep (real FS): persistent {persistent}: operations 0..{n} failed in turn");
        assert!(n > 30);
    }
    eprintln!("io_sweep (real FS): {runs} runs, 0 violations");
}
