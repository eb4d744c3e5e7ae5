//! [`FaultyStorage`]: the one fault-injection layer for operations. It wraps
//! any [`Storage`] — the real file system, or a `SimStorage` — counts and
//! records every operation, and makes the k-th matching one fail (once, or
//! that one and every later one: what a crash at that step leaves on a disk
//! whose page cache is not modelled), block until the test lets it go (a
//! gate), or panic (a bug that kills the calling thread).
//!
//! It knows nothing of a page cache or power cuts: that is `SimStorage`'s
//! own disk model (torn and lying writes, power cuts inside an operation).
//! Faults here are decided by counting alone, so the same workload hits the
//! same operation every run.
//!
//! It never panics on what a caller does; only an armed [`Effect::Panic`]
//! panics, on purpose.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::storage::{FileSystem, OpKind, OpenMode, Storage, StorageFile, StorageLock};

/// `EIO` on Linux and the BSDs.
const EIO: i32 = 5;
/// `ENOSPC` on Linux and the BSDs.
const ENOSPC: i32 = 28;
/// Operations recorded at the most; later ones are counted but not kept.
const OPS_RECORDED_MAX: usize = 1 << 20;

/// Which operations a [`Fault`] (or a gate) counts and can hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ops {
    /// Every operation.
    All,
    /// Operations of one kind.
    Only(OpKind),
    /// Operations that change the disk: creating a directory or a file,
    /// writing, syncing a file or a directory, truncating, renaming and
    /// removing. Opening an existing file, reading, sizing, listing,
    /// `exists` and locking are not.
    Mutating,
}

impl Ops {
    fn matches(self, record: &OpRecord) -> bool {
        match self {
            Ops::All => true,
            Ops::Only(op) => record.op == op,
            Ops::Mutating => record.is_mutating(),
        }
    }
}

/// What a [`Fault`] does to the operation it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// The operation fails with `EIO` before it reaches the wrapped storage.
    Eio,
    /// The operation fails with `ENOSPC` before it reaches the wrapped storage.
    NoSpace,
    /// The calling thread panics inside the operation (a bug in the caller's
    /// stack, or a thread that dies mid-fsync).
    Panic,
}

/// A fault to arm with [`FaultyStorage::inject`].
///
/// ```
/// use ticketlog::storage::OpKind;
/// use ticketlog::testing::faults::{Effect, Fault};
/// // Fail the third file sync from now, and every operation that changes
/// // the disk after it: a crash at that sync.
/// let crash = Fault::after(Effect::Eio, 2).only(OpKind::SyncData);
/// let dead = Fault::after(Effect::Eio, 4).mutating().persistent();
/// # let _ = (crash, dead);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    effect: Effect,
    ops: Ops,
    skip: u64,
    persistent: bool,
}

impl Fault {
    /// Lets `skip` matching operations pass after it is armed and hits the
    /// next one (`skip = 0`: the very next one). Matches every operation
    /// until narrowed.
    pub fn after(effect: Effect, skip: u64) -> Fault {
        Fault {
            effect,
            ops: Ops::All,
            skip,
            persistent: false,
        }
    }

    /// Counts and hits only operations of this kind.
    pub fn only(self, op: OpKind) -> Fault {
        self.matching(Ops::Only(op))
    }

    /// Counts and hits only operations that change the disk ([`Ops::Mutating`]).
    pub fn mutating(self) -> Fault {
        self.matching(Ops::Mutating)
    }

    /// Counts and hits only `ops`.
    pub fn matching(mut self, ops: Ops) -> Fault {
        self.ops = ops;
        self
    }

    /// Hits every matching operation from the first one on, not just once.
    pub fn persistent(mut self) -> Fault {
        self.persistent = true;
        self
    }
}

/// One operation as [`FaultyStorage`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// Its index among every operation since the wrapper was made.
    pub index: u64,
    /// What it was.
    pub op: OpKind,
    /// The file or directory (for a rename, the old name).
    pub path: PathBuf,
    /// For `open_file` and `create_dir_all`: the file or directory did not
    /// exist before, so the operation creates it.
    pub creates: bool,
    /// An injected fault failed it (or panicked inside it).
    pub failed: bool,
    /// The wrapped storage failed it with this error.
    pub error: Option<io::ErrorKind>,
}

impl OpRecord {
    /// Whether the operation changes the disk (see [`Ops::Mutating`]).
    pub fn is_mutating(&self) -> bool {
        match self.op {
            OpKind::OpenFile | OpKind::CreateDirAll => self.creates,
            OpKind::WriteAt
            | OpKind::SyncData
            | OpKind::SetLen
            | OpKind::SyncDir
            | OpKind::Rename
            | OpKind::RemoveFile => true,
            _ => false,
        }
    }

    /// `"<verb> <file name>"`, with ` FAILED` when a fault hit it: for
    /// example `create ticketlog.wal`, `sync_data ticketlog.wal FAILED`.
    pub fn describe(&self) -> String {
        let verb = match self.op {
            OpKind::CreateDirAll => "create_dir",
            OpKind::TryLock => "lock",
            OpKind::Exists => "exists",
            OpKind::OpenFile if self.creates => "create",
            OpKind::OpenFile => "open",
            OpKind::SyncDir => "sync_dir",
            OpKind::Rename => "rename",
            OpKind::RemoveFile => "remove",
            OpKind::ListDir => "list_dir",
            OpKind::Size => "size",
            OpKind::ReadAt => "read",
            OpKind::WriteAt => "write",
            OpKind::SyncData => "sync_data",
            OpKind::SetLen => "set_len",
        };
        let name = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let failed = if self.failed { " FAILED" } else { "" };
        format!("{verb} {name}{failed}")
    }
}

impl fmt::Display for OpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.index, self.describe())
    }
}

/// A held operation: see [`FaultyStorage::gate`]. Dropping it lets the
/// operation go on.
#[derive(Debug)]
pub struct Gate {
    entered: Receiver<()>,
    release: SyncSender<()>,
}

impl Gate {
    /// Waits until an operation is held at the gate; false if none is
    /// within `limit` (a bound so that a wrong expectation fails instead of
    /// hanging, not a synchronisation delay).
    pub fn entered_within(&self, limit: Duration) -> bool {
        self.entered.recv_timeout(limit).is_ok()
    }

    /// Lets the held operation (or the next one to arrive) go on.
    pub fn release(&self) {
        // Capacity 1, and the gate takes at most one release: never blocks.
        let _ = self.release.try_send(());
    }
}

enum Action {
    Fail(Effect),
    Gate {
        entered: SyncSender<()>,
        release: Receiver<()>,
    },
}

struct Armed {
    action: Action,
    ops: Ops,
    skip: u64,
    persistent: bool,
}

#[derive(Default)]
struct Plan {
    armed: Vec<Armed>,
    ops: u64,
    fired: u64,
    records: Vec<OpRecord>,
}

/// What the operation that was just counted must do.
enum Hit {
    Pass,
    Fail(Effect),
    Hold {
        entered: SyncSender<()>,
        release: Receiver<()>,
    },
}

/// A wrapper around any [`Storage`] that records every operation and
/// injects the faults armed with [`Self::inject`] and [`Self::gate`]. Cheap
/// to clone: clones share the plan and the record.
#[derive(Clone)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    plan: Arc<Mutex<Plan>>,
}

impl fmt::Debug for FaultyStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStorage")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Default for FaultyStorage {
    /// The real file system, wrapped.
    fn default() -> Self {
        FaultyStorage::new(FileSystem)
    }
}

fn lock(plan: &Mutex<Plan>) -> MutexGuard<'_, Plan> {
    // Every update of the plan is complete before anything can panic (an
    // armed panic fires after the guard is dropped), so a poisoned lock's
    // data is consistent.
    plan.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FaultyStorage {
    /// Wraps `inner`, with no fault armed.
    pub fn new(inner: impl Storage) -> FaultyStorage {
        FaultyStorage {
            inner: Arc::new(inner),
            plan: Arc::default(),
        }
    }

    /// Arms `fault`; it counts operations from now. Every armed fault counts
    /// each operation it matches; the first armed one whose count has run
    /// out decides it.
    pub fn inject(&self, fault: Fault) {
        lock(&self.plan).armed.push(Armed {
            action: Action::Fail(fault.effect),
            ops: fault.ops,
            skip: fault.skip,
            persistent: fault.persistent,
        });
    }

    /// Holds the next operation matching `ops` before it runs, until the
    /// returned gate is released (or dropped).
    pub fn gate(&self, ops: Ops) -> Gate {
        let (entered, entered_rx) = mpsc::sync_channel(1);
        let (release_tx, release) = mpsc::sync_channel(1);
        lock(&self.plan).armed.push(Armed {
            action: Action::Gate { entered, release },
            ops,
            skip: 0,
            persistent: false,
        });
        Gate {
            entered: entered_rx,
            release: release_tx,
        }
    }

    /// Disarms every fault and gate not yet hit.
    pub fn clear_faults(&self) {
        lock(&self.plan).armed.clear();
    }

    /// How many operations a fault has failed (or panicked in) so far.
    pub fn fired(&self) -> u64 {
        lock(&self.plan).fired
    }

    /// Every operation so far, in the order they began.
    pub fn ops(&self) -> Vec<OpRecord> {
        lock(&self.plan).records.clone()
    }

    /// How many operations so far.
    pub fn op_count(&self) -> u64 {
        lock(&self.plan).ops
    }

    /// How many operations of kind `op` reached the wrapped storage (no
    /// fault failed them).
    pub fn count(&self, op: OpKind) -> u64 {
        let plan = lock(&self.plan);
        plan.records
            .iter()
            .filter(|record| record.op == op && !record.failed)
            .count() as u64
    }

    /// Notes the wrapped storage's error, if any, on operation `index`.
    fn finish<T>(&self, index: u64, result: io::Result<T>) -> io::Result<T> {
        if let Err(error) = &result {
            let mut plan = lock(&self.plan);
            // Records are kept in index order until the cap.
            if let Some(record) = usize::try_from(index)
                .ok()
                .and_then(|at| plan.records.get_mut(at))
            {
                record.error = Some(error.kind());
            }
        }
        result
    }

    /// Counts one operation and carries out the fault that hits it, if any;
    /// returns the operation's index.
    fn begin(&self, op: OpKind, path: &Path, creates: bool) -> io::Result<u64> {
        let index;
        let hit = {
            let mut plan = lock(&self.plan);
            index = plan.ops;
            let mut record = OpRecord {
                index,
                op,
                path: path.to_path_buf(),
                creates,
                failed: false,
                error: None,
            };
            plan.ops += 1;
            let mut position = None;
            for (at, armed) in plan.armed.iter_mut().enumerate() {
                if !armed.ops.matches(&record) {
                    continue;
                }
                if armed.skip > 0 {
                    armed.skip -= 1;
                } else if position.is_none() {
                    position = Some(at);
                }
            }
            let hit = match position {
                None => Hit::Pass,
                Some(at) if plan.armed[at].persistent => match plan.armed[at].action {
                    Action::Fail(effect) => Hit::Fail(effect),
                    // Gates are armed once only.
                    Action::Gate { .. } => Hit::Pass,
                },
                Some(at) => match plan.armed.remove(at).action {
                    Action::Fail(effect) => Hit::Fail(effect),
                    Action::Gate { entered, release } => Hit::Hold { entered, release },
                },
            };
            if let Hit::Fail(_) = hit {
                record.failed = true;
                plan.fired += 1;
            }
            if plan.records.len() < OPS_RECORDED_MAX {
                plan.records.push(record);
            }
            hit
        };
        match hit {
            Hit::Pass => Ok(index),
            Hit::Fail(Effect::Eio) => Err(io::Error::from_raw_os_error(EIO)),
            Hit::Fail(Effect::NoSpace) => Err(io::Error::from_raw_os_error(ENOSPC)),
            Hit::Fail(Effect::Panic) => {
                panic!("injected by FaultyStorage: a panic inside {op:?} on {path:?}")
            }
            Hit::Hold { entered, release } => {
                // The test may have dropped its gate: then nothing waits.
                let _ = entered.send(());
                let _ = release.recv();
                Ok(index)
            }
        }
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<bool> {
        let creates = !self.inner.exists(dir).unwrap_or(false);
        let index = self.begin(OpKind::CreateDirAll, dir, creates)?;
        self.finish(index, self.inner.create_dir_all(dir))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn StorageLock>>> {
        let index = self.begin(OpKind::TryLock, path, false)?;
        self.finish(index, self.inner.try_lock(path))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let index = self.begin(OpKind::Exists, path, false)?;
        self.finish(index, self.inner.exists(path))
    }

    fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let creates = mode == OpenMode::CreateReadWrite && !self.inner.exists(path).unwrap_or(true);
        let index = self.begin(OpKind::OpenFile, path, creates)?;
        let inner = self.finish(index, self.inner.open_file(path, mode))?;
        Ok(Box::new(FaultyFile {
            inner,
            path: path.to_path_buf(),
            storage: self.clone(),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let index = self.begin(OpKind::SyncDir, dir, false)?;
        self.finish(index, self.inner.sync_dir(dir))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let index = self.begin(OpKind::Rename, from, false)?;
        self.finish(index, self.inner.rename(from, to))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let index = self.begin(OpKind::RemoveFile, path, false)?;
        self.finish(index, self.inner.remove_file(path))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let index = self.begin(OpKind::ListDir, dir, false)?;
        self.finish(index, self.inner.list_dir(dir))
    }
}

/// A file opened through [`FaultyStorage`].
#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn StorageFile>,
    path: PathBuf,
    storage: FaultyStorage,
}

impl StorageFile for FaultyFile {
    fn size(&self) -> io::Result<u64> {
        let index = self.storage.begin(OpKind::Size, &self.path, false)?;
        self.storage.finish(index, self.inner.size())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let index = self.storage.begin(OpKind::ReadAt, &self.path, false)?;
        self.storage.finish(index, self.inner.read_at(offset, buf))
    }

    fn write_all_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let index = self.storage.begin(OpKind::WriteAt, &self.path, false)?;
        self.storage
            .finish(index, self.inner.write_all_at(offset, data))
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let index = self.storage.begin(OpKind::SyncData, &self.path, false)?;
        self.storage.finish(index, self.inner.sync_data())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let index = self.storage.begin(OpKind::SetLen, &self.path, false)?;
        self.storage.finish(index, self.inner.set_len(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (tempfile::TempDir, FaultyStorage) {
        (
            tempfile::tempdir().expect("a temporary directory"),
            FaultyStorage::default(),
        )
    }

    #[test]
    fn the_kth_matching_operation_fails_once_then_operations_pass() {
        let (dir, storage) = scratch();
        let path = dir.path().join("f");
        let mut file = storage.open_file(&path, OpenMode::CreateReadWrite).unwrap();
        storage.inject(Fault::after(Effect::NoSpace, 1).only(OpKind::WriteAt));
        assert!(file.write_all_at(0, b"a").is_ok());
        let error = file.write_all_at(1, b"b").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(ENOSPC));
        assert!(file.write_all_at(1, b"c").is_ok());
        assert_eq!(storage.fired(), 1);
        assert_eq!(std::fs::read(&path).unwrap(), b"ac");
        let described: Vec<String> = storage.ops().iter().map(OpRecord::describe).collect();
        assert_eq!(
            described,
            ["create f", "write f", "write f FAILED", "write f"]
        );
    }

    #[test]
    fn a_persistent_mutating_fault_fails_every_later_change_but_not_reads() {
        let (dir, storage) = scratch();
        let path = dir.path().join("f");
        let mut file = storage.open_file(&path, OpenMode::CreateReadWrite).unwrap();
        storage.inject(Fault::after(Effect::Eio, 0).mutating().persistent());
        assert!(file.write_all_at(0, b"a").is_err());
        assert!(file.sync_data().is_err());
        assert!(storage.sync_dir(dir.path()).is_err());
        assert!(file.size().is_ok());
        assert!(storage.exists(&path).unwrap());
        assert_eq!(storage.fired(), 3);
        storage.clear_faults();
        assert!(file.write_all_at(0, b"a").is_ok());
    }

    #[test]
    fn a_gate_holds_the_operation_until_released() {
        let (dir, storage) = scratch();
        let path = dir.path().join("f");
        let mut file = storage.open_file(&path, OpenMode::CreateReadWrite).unwrap();
        let gate = storage.gate(Ops::Only(OpKind::SyncData));
        let syncer = std::thread::spawn(move || file.sync_data());
        assert!(gate.entered_within(Duration::from_secs(10)));
        assert_eq!(storage.count(OpKind::SyncData), 1, "counted on entry");
        assert!(!syncer.is_finished(), "held until released");
        gate.release();
        assert!(syncer.join().unwrap().is_ok());
    }
}
