//! `SimStorage`: an in-memory disk for crash and fault testing, seeded and
//! deterministic (behind the `sim` cargo feature).
//!
//! It models what a real disk under a page cache can do to a program:
//!
//! - **Durable and pending bytes are kept apart.** Each file has the bytes on
//!   stable storage and, on top, the writes and truncations made since its
//!   last `sync_data`. Readers see both; only a sync makes the pending ones
//!   durable.
//! - **Directory entries are durable only after `sync_dir`.** A created,
//!   renamed or removed file (and a created directory) may be undone by a
//!   crash until its directory is synced.
//! - **[`SimStorage::crash`] is a power cut.** Per file it keeps none, all, a
//!   prefix, or a random subset of the pending writes, tearing a write at a
//!   random byte or 512-byte sector boundary or keeping a random subset of its
//!   sectors; per directory it keeps the synced entries or, if the system got
//!   round to it, the current ones. Every lock is released, and every handle
//!   opened before the crash fails every later operation, so a store that is
//!   still running cannot write after the power is gone.
//! - **Faults** ([`Fault`]): fail the n-th operation (of any kind, or of one
//!   [`OpKind`]) once or from then on, with `EIO`, `ENOSPC` or a short write;
//!   drop a write (or a sync) while reporting success; or cut the power in the
//!   middle of the workload. Damage at rest: flip a bit, overwrite or zero a
//!   sector of durable data.
//!
//! These faults belong to the disk model: a short write leaves pending
//! bytes, a lying sync leaves them unsynced, a crash fault is a power cut
//! that the page-cache model turns into torn writes. Operation faults that
//! need no disk model — fail, hold (gate) or panic at the k-th operation of
//! any `Storage`, the real file system included — are the wrapper
//! `ticketlog::testing::FaultyStorage` (the `testing` feature); it can wrap a
//! `SimStorage` too.
//!
//! Every random choice comes from the seed given to [`SimStorage::new`]; the
//! same sequence of calls gives the same outcome. (Calls from several threads
//! are deterministic only if the threads' order is: see [`SimStorage::hold_file_writes`]
//! for a way to make a store's server thread take turns with a test.)
//!
//! Paths are plain keys: use absolute paths (`/sim/store`). `/`, `.` and the
//! empty path are the root, which always exists.
//!
//! This module must never panic on what a caller does: every misuse is an
//! `io::Error`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{OpKind, OpenMode, Storage, StorageFile, StorageLock};
use crate::rng::Rng;

/// The sector size crashes tear at, and [`SimStorage::zero_sector`] uses.
pub const SECTOR_BYTES: u64 = 512;

/// `EIO` on Linux and the BSDs.
const EIO: i32 = 5;
/// `ENOSPC` on Linux and the BSDs.
const ENOSPC: i32 = 28;
/// Pending operations per file, after which a write fails with `ENOSPC`
/// (a program that never syncs would otherwise grow without bound).
const PENDING_OPS_MAX: usize = 1 << 16;
/// Bytes per file; a write past this fails with `EFBIG`-like `ENOSPC`.
const FILE_BYTES_MAX: u64 = 1 << 32;

/// What an injected fault does to the operation it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// The operation fails with `EIO` and changes nothing.
    Eio,
    /// The operation fails with `ENOSPC` and changes nothing.
    NoSpace,
    /// A write stores a random strict prefix of its bytes (as pending data),
    /// then fails with `ENOSPC`. Any other operation fails with `EIO`.
    ShortWrite,
    /// A write reports success but stores nothing; a sync reports success but
    /// makes nothing durable (a lying disk). Other operations are unaffected.
    DropWrite,
    /// The power is cut just before the operation ([`SimStorage::crash`]),
    /// which then fails like every operation of the world before the crash.
    Crash,
}

/// A fault to inject with [`SimStorage::inject`].
///
/// ```
/// use ticketlog::storage::{Fault, FaultKind, OpKind};
/// // Fail the third `sync_data` from now with EIO, and every one after it.
/// let fault = Fault::after(FaultKind::Eio, 2).only(OpKind::SyncData).persistent();
/// # let _ = fault;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    kind: FaultKind,
    skip: u64,
    only: Option<OpKind>,
    persistent: bool,
}

impl Fault {
    /// A fault that lets `skip` matching operations pass after it is injected
    /// and hits the next one (`skip = 0`: the very next operation).
    pub fn after(kind: FaultKind, skip: u64) -> Fault {
        Fault {
            kind,
            skip,
            only: None,
            persistent: false,
        }
    }

    /// Counts and hits only operations of this kind.
    pub fn only(mut self, op: OpKind) -> Fault {
        self.only = Some(op);
        self
    }

    /// Hits every matching operation from the first one on, not just once.
    pub fn persistent(mut self) -> Fault {
        self.persistent = true;
        self
    }

    /// What the fault does.
    pub fn kind(&self) -> FaultKind {
        self.kind
    }
}

/// A fault that hit an operation, as recorded by [`SimStorage::faults_fired`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiredFault {
    /// The operation's index among every operation since the storage was created.
    pub op_index: u64,
    /// The operation it hit.
    pub op: OpKind,
    /// The file or directory it was about.
    pub path: PathBuf,
    /// What it did.
    pub kind: FaultKind,
}

/// A write or sync held by [`HeldOps`] after it was carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldOp {
    /// [`OpKind::WriteAt`] or [`OpKind::SyncData`].
    pub op: OpKind,
    /// The file.
    pub path: PathBuf,
    /// The operation's index among every operation since the storage was created.
    pub op_index: u64,
    /// What the operation returns to its caller once released: `None` for
    /// success, else the error's kind.
    pub error: Option<io::ErrorKind>,
}

/// Holds every file write and sync after it is carried out, until the test
/// releases it; see [`SimStorage::hold_file_writes`]. Dropping this stops
/// holding and releases an operation that is waiting.
pub struct HeldOps {
    shared: Arc<Shared>,
    events: Receiver<HeldOp>,
    release: Sender<()>,
}

impl fmt::Debug for HeldOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldOps").finish_non_exhaustive()
    }
}

impl HeldOps {
    /// Waits for the next held operation. Returns `None` if none is held within
    /// `limit` (a bound, so that a test whose expectation is wrong fails
    /// instead of hanging; it is not a synchronisation delay).
    pub fn next_within(&self, limit: Duration) -> Option<HeldOp> {
        self.events.recv_timeout(limit).ok()
    }

    /// A held operation that is already waiting, if any (never blocks).
    pub fn try_next(&self) -> Option<HeldOp> {
        self.events.try_recv().ok()
    }

    /// Lets the held operation return to its caller.
    pub fn release(&self) {
        // The receiver lives in `Shared` for as long as this holder is installed.
        let _ = self.release.send(());
    }
}

impl Drop for HeldOps {
    fn drop(&mut self) {
        *lock(&self.shared.hold) = None;
        // An operation waiting on the release channel sees it disconnect and
        // goes on; one that was about to wait finds `hold` empty.
    }
}

/// An in-memory disk that models the page cache, power cuts and faults.
/// Cheap to clone: clones share the same disk.
#[derive(Clone)]
pub struct SimStorage {
    shared: Arc<Shared>,
}

struct Shared {
    disk: Mutex<Disk>,
    hold: Mutex<Option<Hold>>,
}

struct Hold {
    events: Sender<HeldOp>,
    release: Arc<Mutex<Receiver<()>>>,
}

type InodeId = u64;

#[derive(Default)]
struct Inode {
    /// The bytes on stable storage.
    durable: Vec<u8>,
    /// What readers see: `durable` with `pending` applied.
    current: Vec<u8>,
    /// Writes and truncations since the last sync, in order.
    pending: Vec<Pending>,
}

#[derive(Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

struct ArmedFault {
    fault: Fault,
    /// Matching operations still to let pass.
    skip: u64,
}

struct Disk {
    /// Every random choice of the disk model (SplitMix64 from the raw seed).
    rng: Rng,
    /// Bumped by every crash; handles and locks from an older epoch are dead.
    epoch: u64,
    ops: u64,
    crashes: u64,
    faults: Vec<ArmedFault>,
    fired: Vec<FiredFault>,
    /// The namespace as the running system sees it.
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, InodeId>,
    /// The namespace on stable storage.
    durable_dirs: BTreeSet<PathBuf>,
    durable_files: BTreeMap<PathBuf, InodeId>,
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    locks: BTreeMap<PathBuf, u64>,
    next_lock: u64,
    open_files: u64,
    trace: Option<Vec<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here leaves the disk half-changed across a panic point, so a
    // poisoned lock's data is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_root(path: &Path) -> bool {
    path.as_os_str().is_empty() || path == Path::new("/") || path == Path::new(".")
}

/// The directory an entry lives in, with every spelling of the root as "".
fn parent_key(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !is_root(parent) => parent.to_path_buf(),
        _ => PathBuf::new(),
    }
}

fn dir_key(dir: &Path) -> PathBuf {
    if is_root(dir) {
        PathBuf::new()
    } else {
        dir.to_path_buf()
    }
}

fn power_lost() -> io::Error {
    io::Error::other("simulated power loss: this handle was opened before SimStorage::crash")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

/// Applies one pending operation to `bytes`.
fn apply(bytes: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => write_into(bytes, *offset, data),
        Pending::SetLen(len) => resize(bytes, *len),
    }
}

fn resize(bytes: &mut Vec<u8>, len: u64) {
    // Lengths are bounded by FILE_BYTES_MAX before they get here.
    bytes.resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
}

fn write_into(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset + data.len() as u64;
    if (bytes.len() as u64) < end {
        resize(bytes, end);
    }
    // Bounded by FILE_BYTES_MAX, so these fit in usize on 64-bit targets.
    let start = offset as usize;
    bytes[start..start + data.len()].copy_from_slice(data);
}

impl Disk {
    fn new(seed: u64) -> Disk {
        Disk {
            rng: Rng::new(seed),
            epoch: 0,
            ops: 0,
            crashes: 0,
            faults: Vec::new(),
            fired: Vec::new(),
            dirs: BTreeSet::new(),
            files: BTreeMap::new(),
            durable_dirs: BTreeSet::new(),
            durable_files: BTreeMap::new(),
            inodes: BTreeMap::new(),
            next_inode: 1,
            locks: BTreeMap::new(),
            next_lock: 1,
            open_files: 0,
            trace: None,
        }
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(line());
        }
    }

    /// Counts an operation and returns the fault that hits it, if any.
    fn begin(&mut self, op: OpKind, path: &Path) -> Option<FaultKind> {
        let index = self.ops;
        self.ops += 1;
        // Every matching fault counts the operation; the first one armed
        // whose count has run out decides it.
        let mut hit = None;
        for (position, armed) in self.faults.iter_mut().enumerate() {
            if armed.fault.only.is_some_and(|only| only != op) {
                continue;
            }
            if armed.skip > 0 {
                armed.skip -= 1;
            } else if hit.is_none() {
                hit = Some(position);
            }
        }
        let hit = hit.map(|position| {
            let kind = self.faults[position].fault.kind;
            if !self.faults[position].fault.persistent {
                self.faults.remove(position);
            }
            kind
        });
        if let Some(kind) = hit {
            self.fired.push(FiredFault {
                op_index: index,
                op,
                path: path.to_path_buf(),
                kind,
            });
            self.trace(|| format!("op {index} {op:?} {}: fault {kind:?}", path.display()));
            if kind == FaultKind::Crash {
                self.crash();
            }
        } else {
            self.trace(|| format!("op {index} {op:?} {}", path.display()));
        }
        hit
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        is_root(dir) || self.dirs.contains(dir)
    }

    fn parent_exists(&self, path: &Path) -> bool {
        let parent = parent_key(path);
        parent.as_os_str().is_empty() || self.dirs.contains(&parent)
    }

    fn create_file(&mut self, path: &Path) -> io::Result<InodeId> {
        if let Some(&inode) = self.files.get(path) {
            return Ok(inode);
        }
        if self.dir_exists(path) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        }
        if !self.parent_exists(path) {
            return Err(not_found(path));
        }
        let inode = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(inode, Inode::default());
        self.files.insert(path.to_path_buf(), inode);
        Ok(inode)
    }

    /// Makes the entries of the directory `key` durable as they are now.
    fn sync_entries(&mut self, key: &Path) {
        let in_dir = |path: &Path| parent_key(path) == key;
        for (path, inode) in &self.files {
            if in_dir(path) {
                self.durable_files.insert(path.clone(), *inode);
            }
        }
        let files = &self.files;
        self.durable_files
            .retain(|path, _| !in_dir(path) || files.contains_key(path));
        for dir in &self.dirs {
            if in_dir(dir) {
                self.durable_dirs.insert(dir.clone());
            }
        }
        let dirs = &self.dirs;
        self.durable_dirs
            .retain(|dir| !in_dir(dir) || dirs.contains(dir));
    }

    fn entries_differ(&self, key: &Path) -> bool {
        let in_dir = |path: &&PathBuf| parent_key(path) == key;
        let current: Vec<_> = self.files.iter().filter(|(p, _)| in_dir(p)).collect();
        let durable: Vec<_> = self
            .durable_files
            .iter()
            .filter(|(p, _)| in_dir(p))
            .collect();
        let current_dirs: Vec<_> = self.dirs.iter().filter(in_dir).collect();
        let durable_dirs: Vec<_> = self.durable_dirs.iter().filter(in_dir).collect();
        current != durable || current_dirs != durable_dirs
    }

    /// The power cut. See the module docs for what survives.
    fn crash(&mut self) {
        self.epoch += 1;
        self.crashes += 1;
        self.locks.clear();
        let crash_number = self.crashes;
        self.trace(|| format!("crash {crash_number}"));

        let inode_ids: Vec<InodeId> = self.inodes.keys().copied().collect();
        for id in inode_ids {
            let pending = match self.inodes.get_mut(&id) {
                Some(inode) => std::mem::take(&mut inode.pending),
                None => continue,
            };
            if pending.is_empty() {
                continue;
            }
            let kept = self.choose_survivors(&pending);
            let summary = format!(
                "inode {id}: {} pending ops, kept {}",
                pending.len(),
                kept.len()
            );
            self.trace(|| summary);
            if let Some(inode) = self.inodes.get_mut(&id) {
                for op in &kept {
                    apply(&mut inode.durable, op);
                }
                inode.current = inode.durable.clone();
            }
        }

        // Directories the system may have written back on its own.
        let keys: BTreeSet<PathBuf> = self
            .files
            .keys()
            .chain(self.durable_files.keys())
            .chain(self.dirs.iter())
            .chain(self.durable_dirs.iter())
            .map(|path| parent_key(path))
            .collect();
        for key in keys {
            if self.entries_differ(&key) && self.dir_exists(&key) && self.rng.coin() {
                self.trace(|| format!("directory {:?}: unsynced entries kept", key));
                self.sync_entries(&key);
            }
        }

        // Reboot into what is durable, dropping whatever is unreachable.
        let mut dirs = BTreeSet::new();
        // Sorted order puts every directory after its parent.
        for dir in &self.durable_dirs {
            let parent = parent_key(dir);
            if parent.as_os_str().is_empty() || dirs.contains(&parent) {
                dirs.insert(dir.clone());
            }
        }
        let files: BTreeMap<PathBuf, InodeId> = self
            .durable_files
            .iter()
            .filter(|(path, _)| {
                let parent = parent_key(path);
                parent.as_os_str().is_empty() || dirs.contains(&parent)
            })
            .map(|(path, inode)| (path.clone(), *inode))
            .collect();
        let live: BTreeSet<InodeId> = files.values().copied().collect();
        self.inodes.retain(|id, _| live.contains(id));
        self.dirs = dirs.clone();
        self.durable_dirs = dirs;
        self.files = files.clone();
        self.durable_files = files;
    }

    /// Which pending operations of one file reach the disk, possibly torn.
    fn choose_survivors(&mut self, pending: &[Pending]) -> Vec<Pending> {
        match self.rng.below(5) {
            // Nothing was written back.
            0 => Vec::new(),
            // Everything was.
            1 => pending.to_vec(),
            // A prefix, the last one torn.
            2 => {
                let whole = self.rng.below(pending.len() as u64 + 1) as usize;
                let mut kept = pending[..whole].to_vec();
                if let Some(next) = pending.get(whole)
                    && let Some(torn) = self.tear(next)
                {
                    kept.push(torn);
                }
                kept
            }
            // Each one kept, dropped or torn on its own.
            3 => {
                let mut kept = Vec::new();
                for op in pending {
                    match self.rng.below(4) {
                        0 => {}
                        1 => kept.push(op.clone()),
                        2 => kept.extend(self.tear(op)),
                        _ => kept.extend(self.sector_subset(op)),
                    }
                }
                kept
            }
            // Pages written back in any order: a random subset of every write's sectors.
            _ => {
                let mut kept = Vec::new();
                for op in pending {
                    match op {
                        Pending::SetLen(_) => {
                            if self.rng.coin() {
                                kept.push(op.clone());
                            }
                        }
                        Pending::Write { .. } => kept.extend(self.sector_subset(op)),
                    }
                }
                kept
            }
        }
    }

    /// A prefix of a write, cut at a random byte or sector boundary; a
    /// truncation either happens or not.
    fn tear(&mut self, op: &Pending) -> Option<Pending> {
        match op {
            Pending::SetLen(_) => self.rng.coin().then(|| op.clone()),
            Pending::Write { offset, data } => {
                let len = data.len() as u64;
                let cut = if self.rng.coin() {
                    self.rng.below(len + 1)
                } else {
                    // Sector boundaries strictly inside the write, or its start.
                    let first = offset.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
                    let last = offset + len;
                    let boundaries = if first < last {
                        (last - 1 - first) / SECTOR_BYTES + 1
                    } else {
                        0
                    };
                    if boundaries == 0 {
                        0
                    } else {
                        first + self.rng.below(boundaries) * SECTOR_BYTES - offset
                    }
                };
                (cut > 0).then(|| Pending::Write {
                    offset: *offset,
                    data: data[..cut as usize].to_vec(),
                })
            }
        }
    }

    /// A random subset of the write's sectors (split at absolute 512-byte
    /// boundaries), each kept with probability one half.
    fn sector_subset(&mut self, op: &Pending) -> Vec<Pending> {
        let Pending::Write { offset, data } = op else {
            return self.tear(op).into_iter().collect();
        };
        let mut kept = Vec::new();
        let mut start = *offset;
        let end = offset + data.len() as u64;
        while start < end {
            let piece_end = ((start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
            if self.rng.coin() {
                let from = (start - offset) as usize;
                let to = (piece_end - offset) as usize;
                kept.push(Pending::Write {
                    offset: start,
                    data: data[from..to].to_vec(),
                });
            }
            start = piece_end;
        }
        kept
    }

    fn inode_at(&mut self, path: &Path) -> io::Result<&mut Inode> {
        let id = *self.files.get(path).ok_or_else(|| not_found(path))?;
        self.inodes.get_mut(&id).ok_or_else(|| not_found(path))
    }
}

fn fault_error(kind: FaultKind) -> Option<io::Error> {
    match kind {
        FaultKind::Eio | FaultKind::ShortWrite => Some(io::Error::from_raw_os_error(EIO)),
        FaultKind::NoSpace => Some(io::Error::from_raw_os_error(ENOSPC)),
        FaultKind::Crash => Some(power_lost()),
        FaultKind::DropWrite => None,
    }
}

impl SimStorage {
    /// An empty disk whose crashes are decided by `seed`.
    pub fn new(seed: u64) -> SimStorage {
        SimStorage {
            shared: Arc::new(Shared {
                disk: Mutex::new(Disk::new(seed)),
                hold: Mutex::new(None),
            }),
        }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        lock(&self.shared.disk)
    }

    /// Cuts the power: keeps a random part of every file's pending writes and
    /// of every directory's unsynced entries, releases every lock, and kills
    /// every handle opened before now. The disk is usable again at once, as
    /// after a reboot.
    pub fn crash(&self) {
        self.disk().crash();
    }

    /// Arms a fault. Several can be armed; when more than one matches an
    /// operation, the one armed first decides.
    pub fn inject(&self, fault: Fault) {
        let mut disk = self.disk();
        let skip = fault.skip;
        disk.faults.push(ArmedFault { fault, skip });
    }

    /// Disarms every fault (a replaced disk, a freed-up volume).
    pub fn clear_faults(&self) {
        self.disk().faults.clear();
    }

    /// Every fault that has hit an operation so far, in order.
    pub fn faults_fired(&self) -> Vec<FiredFault> {
        self.disk().fired.clone()
    }

    /// Operations carried out (or attempted) so far, of every kind.
    pub fn op_count(&self) -> u64 {
        self.disk().ops
    }

    /// Crashes so far, counting those caused by [`FaultKind::Crash`].
    pub fn crash_count(&self) -> u64 {
        self.disk().crashes
    }

    /// Open file handles, counting dead ones from before a crash that have not
    /// been dropped yet (for leak checks).
    pub fn open_file_count(&self) -> u64 {
        self.disk().open_files
    }

    /// Locks currently held.
    pub fn held_lock_count(&self) -> usize {
        self.disk().locks.len()
    }

    /// Starts (or stops, with `false`) recording one line per operation,
    /// fault and crash decision, for replaying a failure by eye.
    pub fn record_trace(&self, on: bool) {
        self.disk().trace = on.then(Vec::new);
    }

    /// The recorded trace so far (emptied).
    pub fn take_trace(&self) -> Vec<String> {
        self.disk()
            .trace
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The file's bytes as a reader sees them now (pending writes included).
    pub fn file_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let mut disk = self.disk();
        disk.inode_at(path).ok().map(|inode| inode.current.clone())
    }

    /// The file's bytes on stable storage (what a crash that keeps no pending
    /// write would leave, provided its directory entry is durable).
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let mut disk = self.disk();
        disk.inode_at(path).ok().map(|inode| inode.durable.clone())
    }

    /// Whether the file exists on stable storage under this name.
    pub fn is_durable(&self, path: &Path) -> bool {
        let disk = self.disk();
        disk.durable_files.contains_key(path)
            && disk.files.get(path) == disk.durable_files.get(path)
    }

    /// Creates (or replaces) the file at `path` with `bytes`, durably,
    /// creating its directories durably too: a disk as a previous run left it.
    pub fn put_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk();
        if let Some(parent) = path.parent() {
            let mut ancestors: Vec<&Path> = parent.ancestors().filter(|a| !is_root(a)).collect();
            ancestors.reverse();
            for dir in ancestors {
                if disk.files.contains_key(dir) {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} is a file", dir.display()),
                    ));
                }
                disk.dirs.insert(dir.to_path_buf());
                disk.durable_dirs.insert(dir.to_path_buf());
            }
        }
        if bytes.len() as u64 > FILE_BYTES_MAX {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        let id = disk.create_file(path)?;
        disk.durable_files.insert(path.to_path_buf(), id);
        let inode = disk.inodes.entry(id).or_default();
        inode.durable = bytes.to_vec();
        inode.current = bytes.to_vec();
        inode.pending.clear();
        Ok(())
    }

    /// Flips one bit of the file's durable bytes (bit `bit % 8` of byte `bit / 8`),
    /// as a medium error would. Pending writes stay on top.
    pub fn flip_bit(&self, path: &Path, bit: u64) -> io::Result<()> {
        self.damage(path, bit / 8, |byte| byte[0] ^= 1 << (bit % 8), 1)
    }

    /// Overwrites durable bytes at `offset` (which must lie within the durable
    /// file) with `bytes`.
    pub fn overwrite(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.damage(
            path,
            offset,
            |range| range.copy_from_slice(bytes),
            bytes.len() as u64,
        )
    }

    /// Zeroes the 512-byte sector `sector` of the file's durable bytes (the
    /// part of it that lies within the file).
    pub fn zero_sector(&self, path: &Path, sector: u64) -> io::Result<()> {
        let len = self
            .durable_contents(path)
            .ok_or_else(|| not_found(path))?
            .len() as u64;
        let start = sector.saturating_mul(SECTOR_BYTES);
        if start >= len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sector {sector} is past the end of {}", path.display()),
            ));
        }
        let end = (start + SECTOR_BYTES).min(len);
        self.damage(path, start, |range| range.fill(0), end - start)
    }

    fn damage(
        &self,
        path: &Path,
        offset: u64,
        change: impl FnOnce(&mut [u8]),
        len: u64,
    ) -> io::Result<()> {
        let mut disk = self.disk();
        let inode = disk.inode_at(path)?;
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= inode.durable.len() as u64);
        let Some(end) = end else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "bytes {offset}..{offset}+{len} are not within the {} durable bytes of {}",
                    inode.durable.len(),
                    path.display()
                ),
            ));
        };
        change(&mut inode.durable[offset as usize..end as usize]);
        let mut current = inode.durable.clone();
        for op in &inode.pending {
            apply(&mut current, op);
        }
        inode.current = current;
        Ok(())
    }

    /// From now on, every file write and sync, once carried out, waits until
    /// the returned [`HeldOps`] releases it (at most one holder at a time; a
    /// new one replaces the old).
    ///
    /// This lets a test take turns with a store's server thread: while the
    /// server waits inside a flush, requests the test sends pile up in the
    /// channel and form the next batch, so batches, operation indexes and
    /// crash points are the same on every run. Operations through handles
    /// from before a crash are not held (they fail at once).
    pub fn hold_file_writes(&self) -> HeldOps {
        let (events, events_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        *lock(&self.shared.hold) = Some(Hold {
            events,
            release: Arc::new(Mutex::new(release_rx)),
        });
        HeldOps {
            shared: Arc::clone(&self.shared),
            events: events_rx,
            release,
        }
    }

    fn held(&self, op: HeldOp) {
        let hold = lock(&self.shared.hold)
            .as_ref()
            .map(|hold| (hold.events.clone(), Arc::clone(&hold.release)));
        let Some((events, release)) = hold else {
            return;
        };
        if events.send(op).is_ok() {
            // Returns on release, or when the holder is dropped.
            let _ = lock(&release).recv();
        }
    }

    fn file(&self, path: &Path, inode: InodeId, mode: OpenMode, epoch: u64) -> SimFile {
        SimFile {
            storage: self.clone(),
            path: path.to_path_buf(),
            inode,
            writable: mode != OpenMode::ReadOnly,
            epoch,
        }
    }
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let disk = self.disk();
        f.debug_struct("SimStorage")
            .field("ops", &disk.ops)
            .field("crashes", &disk.crashes)
            .field("files", &disk.files.len())
            .field("open_files", &disk.open_files)
            .finish_non_exhaustive()
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<bool> {
        let mut disk = self.disk();
        if let Some(kind) = disk.begin(OpKind::CreateDirAll, dir)
            && let Some(error) = fault_error(kind)
        {
            return Err(error);
        }
        if disk.dir_exists(dir) {
            return Ok(false);
        }
        let mut ancestors: Vec<&Path> = dir.ancestors().filter(|a| !is_root(a)).collect();
        ancestors.reverse();
        for ancestor in &ancestors {
            if disk.files.contains_key(*ancestor) {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is a file", ancestor.display()),
                ));
            }
        }
        for ancestor in ancestors {
            disk.dirs.insert(ancestor.to_path_buf());
        }
        Ok(true)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn StorageLock>>> {
        let mut disk = self.disk();
        if let Some(kind) = disk.begin(OpKind::TryLock, path)
            && let Some(error) = fault_error(kind)
        {
            return Err(error);
        }
        disk.create_file(path)?;
        if disk.locks.contains_key(path) {
            return Ok(None);
        }
        let id = disk.next_lock;
        disk.next_lock += 1;
        disk.locks.insert(path.to_path_buf(), id);
        Ok(Some(Box::new(SimLock {
            storage: self.clone(),
            path: path.to_path_buf(),
            id,
        })))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut disk = self.disk();
        if let Some(kind) = disk.begin(OpKind::Exists, path)
            && let Some(error) = fault_error(kind)
        {
            return Err(error);
        }
        Ok(disk.files.contains_key(path) || disk.dir_exists(path))
    }

    fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut disk = self.disk();
        if let Some(kind) = disk.begin(OpKind::OpenFile, path)
            && let Some(error) = fault_error(kind)
        {
            return Err(error);
        }
        let inode = match mode {
            OpenMode::CreateReadWrite => disk.create_file(path)?,
            OpenMode::ReadWrite | OpenMode::ReadOnly => {
                *disk.files.get(path).ok_or_else(|| not_found(path))?
            }
        };
        disk.open_files += 1;
        let epoch = disk.epoch;
        drop(disk);
        Ok(Box::new(self.file(path, inode, mode, epoch)))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        if let Some(kind) = disk.begin(OpKind::SyncDir, dir) {
            match fault_error(kind) {
                Some(error) => return Err(error),
                // A lying sync: reports success, makes nothing durable.
                None => return Ok(()),
            }
        }
        if !disk.dir_exists(dir) {
            return Err(not_found(dir));
        }
        disk.sync_entries(&dir_key(dir));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        if let Some(kind) = disk.begin(OpKind::Rename, from)
            && let Some(error) = fault_error(kind)
        {
            return Err(error);
        }
        let inode = *disk.files.get(from).ok_or_else(|| not_found(from))?;
        if disk.dir_exists(to) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", to.display()),
            ));
        }
        if !disk.parent_exists(to) {
            return Err(not_found(to));
        }
        disk.files.remove(from);
        disk.files.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        if let Some(kind) = disk.begin(OpKind::RemoveFile, path)
            && let Some(error) = fault_error(kind)
        {
            return Err(error);
        }
        disk.files.remove(path).ok_or_else(|| not_found(path))?;
        // The inode lives on while handles or the durable namespace refer to
        // it; a crash collects it.
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut disk = self.disk();
        if let Some(kind) = disk.begin(OpKind::ListDir, dir)
            && let Some(error) = fault_error(kind)
        {
            return Err(error);
        }
        if !disk.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let key = dir_key(dir);
        let names = disk
            .files
            .keys()
            .chain(disk.dirs.iter())
            .filter(|path| parent_key(path) == key)
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names)
    }
}

/// An open file of a [`SimStorage`].
struct SimFile {
    storage: SimStorage,
    path: PathBuf,
    inode: InodeId,
    writable: bool,
    epoch: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl SimFile {
    /// Starts an operation: counts it, and fails it if the handle is from
    /// before a crash (including one the operation's own fault caused).
    /// Returns the fault that hits it, if any.
    fn begin(&self, disk: &mut Disk, op: OpKind) -> io::Result<Option<FaultKind>> {
        let fault = disk.begin(op, &self.path);
        if disk.epoch != self.epoch {
            return Err(power_lost());
        }
        Ok(fault)
    }

    /// Whether the handle was alive when the operation started: only such
    /// operations are held (one a crash fault kills is, so a holder sees it).
    fn alive(&self, disk: &Disk) -> bool {
        disk.epoch == self.epoch
    }

    fn inode<'d>(&self, disk: &'d mut Disk) -> io::Result<&'d mut Inode> {
        disk.inodes
            .get_mut(&self.inode)
            .ok_or_else(|| not_found(&self.path))
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} was opened read-only", self.path.display()),
            ))
        }
    }

    fn hold(&self, op: OpKind, op_index: u64, result: &io::Result<()>) {
        self.storage.held(HeldOp {
            op,
            path: self.path.clone(),
            op_index,
            error: result.as_ref().err().map(io::Error::kind),
        });
    }

    fn write(&self, offset: u64, data: &[u8]) -> (u64, bool, io::Result<()>) {
        let mut disk = self.storage.disk();
        let index = disk.ops;
        let live = self.alive(&disk);
        let fault = match self.begin(&mut disk, OpKind::WriteAt) {
            Ok(fault) => fault,
            Err(error) => return (index, live, Err(error)),
        };
        if let Err(error) = self.check_writable() {
            return (index, live, Err(error));
        }
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > FILE_BYTES_MAX) {
            return (index, live, Err(io::Error::from_raw_os_error(ENOSPC)));
        }
        let data = match fault {
            Some(FaultKind::DropWrite) => return (index, live, Ok(())),
            Some(FaultKind::ShortWrite) => {
                let keep = disk.rng.below(data.len() as u64) as usize;
                &data[..keep]
            }
            Some(kind) => {
                let error = fault_error(kind).unwrap_or_else(|| io::Error::from_raw_os_error(EIO));
                return (index, live, Err(error));
            }
            None => data,
        };
        let inode = match self.inode(&mut disk) {
            Ok(inode) => inode,
            Err(error) => return (index, live, Err(error)),
        };
        if inode.pending.len() >= PENDING_OPS_MAX {
            return (index, live, Err(io::Error::from_raw_os_error(ENOSPC)));
        }
        if !data.is_empty() {
            write_into(&mut inode.current, offset, data);
            inode.pending.push(Pending::Write {
                offset,
                data: data.to_vec(),
            });
        }
        let result = if fault == Some(FaultKind::ShortWrite) {
            Err(io::Error::from_raw_os_error(ENOSPC))
        } else {
            Ok(())
        };
        (index, live, result)
    }

    fn sync(&self) -> (u64, bool, io::Result<()>) {
        let mut disk = self.storage.disk();
        let index = disk.ops;
        let live = self.alive(&disk);
        let fault = match self.begin(&mut disk, OpKind::SyncData) {
            Ok(fault) => fault,
            Err(error) => return (index, live, Err(error)),
        };
        match fault {
            Some(FaultKind::DropWrite) => return (index, live, Ok(())),
            Some(kind) => {
                let error = fault_error(kind).unwrap_or_else(|| io::Error::from_raw_os_error(EIO));
                return (index, live, Err(error));
            }
            None => {}
        }
        let inode = match self.inode(&mut disk) {
            Ok(inode) => inode,
            Err(error) => return (index, live, Err(error)),
        };
        let pending = std::mem::take(&mut inode.pending);
        for op in &pending {
            apply(&mut inode.durable, op);
        }
        debug_assert_eq!(
            inode.durable, inode.current,
            "a sync makes what readers see durable"
        );
        (index, true, Ok(()))
    }
}

impl StorageFile for SimFile {
    fn size(&self) -> io::Result<u64> {
        let mut disk = self.storage.disk();
        if let Some(kind) = self.begin(&mut disk, OpKind::Size)?
            && let Some(error) = fault_error(kind)
        {
            return Err(error);
        }
        Ok(self.inode(&mut disk)?.current.len() as u64)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut disk = self.storage.disk();
        if let Some(kind) = self.begin(&mut disk, OpKind::ReadAt)?
            && let Some(error) = fault_error(kind)
        {
            return Err(error);
        }
        let current = &self.inode(&mut disk)?.current;
        let len = current.len() as u64;
        if offset >= len {
            return Ok(0);
        }
        let n = (len - offset).min(buf.len() as u64) as usize;
        let start = offset as usize;
        buf[..n].copy_from_slice(&current[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let (index, live, result) = self.write(offset, data);
        if live {
            self.hold(OpKind::WriteAt, index, &result);
        }
        result
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let (index, live, result) = self.sync();
        if live {
            self.hold(OpKind::SyncData, index, &result);
        }
        result
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut disk = self.storage.disk();
        if let Some(kind) = self.begin(&mut disk, OpKind::SetLen)? {
            match fault_error(kind) {
                Some(error) => return Err(error),
                None => return Ok(()),
            }
        }
        self.check_writable()?;
        if len > FILE_BYTES_MAX {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        let inode = self.inode(&mut disk)?;
        if inode.pending.len() >= PENDING_OPS_MAX {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        resize(&mut inode.current, len);
        inode.pending.push(Pending::SetLen(len));
        Ok(())
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut disk = self.storage.disk();
        disk.open_files = disk.open_files.saturating_sub(1);
    }
}

/// A lock held on a [`SimStorage`]; a crash releases it.
struct SimLock {
    storage: SimStorage,
    path: PathBuf,
    id: u64,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock").field("path", &self.path).finish()
    }
}

impl StorageLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut disk = self.storage.disk();
        // After a crash the lock is gone, and the path may be locked by
        // someone else: release only our own.
        if disk.locks.get(&self.path) == Some(&self.id) {
            disk.locks.remove(&self.path);
        }
    }
}
