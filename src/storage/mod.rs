//! The storage layer under the log: the handful of file-system operations the
//! store needs, behind a trait so that tests (and users) can put a
//! fault-injecting implementation underneath a real store.
//!
//! [`FileSystem`] is the real one and the default. Implementations must be
//! honest about durability: `sync_data` returns only once the bytes written so
//! far are on stable storage, and `sync_dir` once the directory's entries are.
//! This layer knows nothing about records or tickets.
//!
//! With the `sim` cargo feature, `SimStorage` is an in-memory disk that
//! models the page cache (durable bytes apart from unsynced writes), loses and
//! tears unsynced writes on a simulated power cut, and injects I/O errors and
//! damage, deterministically from a seed.

mod fs;
#[cfg(feature = "sim")]
mod sim;

use std::fmt;
use std::io;
use std::path::Path;

pub use fs::FileSystem;
#[cfg(feature = "sim")]
pub use sim::{Fault, FaultKind, FiredFault, HeldOp, HeldOps, SECTOR_BYTES, SimStorage};

/// The kinds of storage operation, one per trait method: what `SimStorage`
/// and `testing::FaultyStorage` count and aim faults at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// [`Storage::create_dir_all`].
    CreateDirAll,
    /// [`Storage::try_lock`].
    TryLock,
    /// [`Storage::exists`].
    Exists,
    /// [`Storage::open_file`].
    OpenFile,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::remove_file`].
    RemoveFile,
    /// [`Storage::list_dir`].
    ListDir,
    /// [`StorageFile::size`].
    Size,
    /// [`StorageFile::read_at`].
    ReadAt,
    /// [`StorageFile::write_all_at`].
    WriteAt,
    /// [`StorageFile::sync_data`].
    SyncData,
    /// [`StorageFile::set_len`].
    SetLen,
}

/// How [`Storage::open_file`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenMode {
    /// Read and write; create the file (owner-only) if it does not exist.
    CreateReadWrite,
    /// Read and write an existing file.
    ReadWrite,
    /// Read an existing file.
    ReadOnly,
}

/// The file-system operations the store uses.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Creates `dir` and its parents (owner-only) if missing; returns whether
    /// `dir` itself was created.
    fn create_dir_all(&self, dir: &Path) -> io::Result<bool>;

    /// Takes an exclusive lock on the file at `path` (creating it), held until
    /// the returned guard is dropped. `Ok(None)` when another holder has it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn StorageLock>>>;

    /// Whether a file exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Opens the file at `path`.
    fn open_file(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>>;

    /// Makes the directory's entries (created, renamed, removed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Renames the file `from` to `to`, replacing `to` if it exists. The new
    /// name is durable only after [`Self::sync_dir`] on the directories
    /// involved. (Snapshots are written to a temporary name and renamed.)
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file at `path`. The removal is durable only after
    /// [`Self::sync_dir`] on its directory. Handles already open keep working.
    /// (Compaction removes covered segments and old snapshots.)
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// The names of the entries in `dir` (files and directories, not `.` or
    /// `..`), in no particular order. A name that is not valid UTF-8 is
    /// skipped: the store never creates one. (Opening a store lists its
    /// directory to find log segments and snapshots.)
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
}

/// An open file. Offsets are absolute; there is no cursor.
pub trait StorageFile: Send + fmt::Debug {
    /// The file's current length in bytes.
    fn size(&self) -> io::Result<u64>;

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (0 only at or past the end of the file).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes all of `data` at `offset`, or fails.
    fn write_all_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Makes the file's data (and the metadata needed to read it) durable.
    fn sync_data(&mut self) -> io::Result<()>;

    /// Truncates or extends the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// A held lock; dropping it releases the lock.
pub trait StorageLock: Send + Sync + fmt::Debug {}

/// Reads exactly `buf.len()` bytes at `offset`, failing with `UnexpectedEof`
/// if the file ends first.
pub(crate) fn read_exact_at(
    file: &mut dyn StorageFile,
    mut offset: u64,
    mut buf: &mut [u8],
) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(offset, buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                // `read_at` never reports more bytes than the buffer holds.
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
