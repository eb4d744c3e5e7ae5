//! `SimStorage` itself: what survives a crash (synced data always; unsynced
//! writes none, all, a prefix, torn at bytes or sectors, or a subset of
//! sectors; created, renamed and removed names only after `sync_dir`), locks
//! and handles after a crash, determinism, every fault kind, damage at rest,
//! handle counting, and holding writes for a test.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ticketlog::storage::{
    Fault, FaultKind, OpKind, OpenMode, SECTOR_BYTES, SimStorage, Storage, StorageFile,
};

const DIR: &str = "/d";
const FILE: &str = "/d/f";

/// A disk with `/d/f` durable, holding `synced`.
fn disk_with(seed: u64, synced: &[u8]) -> (SimStorage, Box<dyn StorageFile>) {
    let sim = SimStorage::new(seed);
    assert!(sim.create_dir_all(Path::new(DIR)).unwrap());
    sim.sync_dir(Path::new("/")).unwrap();
    let mut file = sim
        .open_file(Path::new(FILE), OpenMode::CreateReadWrite)
        .unwrap();
    sim.sync_dir(Path::new(DIR)).unwrap();
    file.write_all_at(0, synced).unwrap();
    file.sync_data().unwrap();
    (sim, file)
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ salt | 1)
        .collect()
}

#[test]
fn a_crash_keeps_synced_bytes_and_none_all_a_torn_prefix_or_sectors_of_unsynced_ones() {
    let synced = pattern(700, 0x11);
    let unsynced = pattern(3000, 0x22);
    let mut outcomes = BTreeSet::new();
    for seed in 0..400 {
        let (sim, mut file) = disk_with(seed, &synced);
        file.write_all_at(synced.len() as u64, &unsynced).unwrap();
        assert_eq!(
            sim.file_contents(Path::new(FILE)).unwrap().len(),
            3700,
            "readers see unsynced writes"
        );
        sim.crash();
        let after = sim.file_contents(Path::new(FILE)).unwrap();
        assert_eq!(
            &after[..700],
            &synced[..],
            "seed {seed}: synced bytes changed"
        );
        assert!(after.len() <= 3700, "seed {seed}");
        let tail = &after[700..];
        // Every byte past the synced part is either the unsynced byte or a
        // zero of a hole left by a sector that was not written back.
        for (i, &byte) in tail.iter().enumerate() {
            assert!(
                byte == unsynced[i] || byte == 0,
                "seed {seed}: byte {}",
                700 + i
            );
        }
        let has_hole = tail
            .iter()
            .enumerate()
            .any(|(i, &b)| b == 0 && unsynced[i] != 0);
        outcomes.insert(match after.len() {
            700 => "none",
            3700 if !has_hole => "all",
            _ if has_hole => "sector subset",
            len if (len as u64).is_multiple_of(SECTOR_BYTES) => "torn at a sector",
            _ => "torn at a byte",
        });
    }
    assert_eq!(
        outcomes,
        BTreeSet::from([
            "none",
            "all",
            "sector subset",
            "torn at a sector",
            "torn at a byte"
        ])
    );
}

#[test]
fn a_crash_with_several_unsynced_writes_keeps_prefixes_and_subsets() {
    let mut kept_later_but_not_earlier = false;
    let mut kept_prefix = false;
    for seed in 0..300 {
        let (sim, mut file) = disk_with(seed, &pattern(64, 1));
        // Three small writes in three different sectors.
        file.write_all_at(600, &[0xAA; 8]).unwrap();
        file.write_all_at(1200, &[0xBB; 8]).unwrap();
        file.write_all_at(1800, &[0xCC; 8]).unwrap();
        sim.crash();
        let after = sim.file_contents(Path::new(FILE)).unwrap();
        let has = |at: usize, byte: u8| after.get(at..at + 8) == Some(&[byte; 8][..]);
        if has(1800, 0xCC) && !has(600, 0xAA) {
            kept_later_but_not_earlier = true;
        }
        if has(600, 0xAA) && !has(1200, 0xBB) && !has(1800, 0xCC) {
            kept_prefix = true;
        }
    }
    assert!(kept_later_but_not_earlier && kept_prefix);
}

#[test]
fn a_sync_makes_everything_written_so_far_survive_every_crash() {
    for seed in 0..100 {
        let (sim, mut file) = disk_with(seed, &pattern(100, 3));
        file.write_all_at(100, &pattern(900, 4)).unwrap();
        file.set_len(500).unwrap();
        file.sync_data().unwrap();
        let expected = sim.file_contents(Path::new(FILE)).unwrap();
        assert_eq!(
            sim.durable_contents(Path::new(FILE)),
            Some(expected.clone())
        );
        sim.crash();
        assert_eq!(sim.file_contents(Path::new(FILE)), Some(expected));
    }
}

#[test]
fn a_created_file_survives_a_crash_only_once_its_directory_is_synced() {
    let (mut lost, mut kept) = (0, 0);
    for seed in 0..100 {
        let sim = SimStorage::new(seed);
        sim.create_dir_all(Path::new(DIR)).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let mut file = sim
            .open_file(Path::new(FILE), OpenMode::CreateReadWrite)
            .unwrap();
        file.write_all_at(0, b"data").unwrap();
        file.sync_data().unwrap(); // the data, not the name
        sim.crash();
        if sim.exists(Path::new(FILE)).unwrap() {
            kept += 1;
            assert_eq!(sim.file_contents(Path::new(FILE)).unwrap(), b"data");
        } else {
            lost += 1;
        }

        let sim = SimStorage::new(seed);
        sim.create_dir_all(Path::new(DIR)).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let mut file = sim
            .open_file(Path::new(FILE), OpenMode::CreateReadWrite)
            .unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        file.write_all_at(0, b"data").unwrap();
        file.sync_data().unwrap();
        sim.crash();
        assert_eq!(sim.file_contents(Path::new(FILE)).unwrap(), b"data");
    }
    assert!(lost > 0 && kept > 0, "lost {lost}, kept {kept}");
}

#[test]
fn a_new_directory_survives_only_once_its_parent_is_synced() {
    let mut lost = 0;
    for seed in 0..50 {
        let sim = SimStorage::new(seed);
        assert!(sim.create_dir_all(Path::new("/a/b/c")).unwrap());
        assert!(!sim.create_dir_all(Path::new("/a/b/c")).unwrap());
        // Only the innermost entry is synced: /a and /a/b may vanish, and
        // everything under them with it.
        sim.sync_dir(Path::new("/a/b")).unwrap();
        sim.crash();
        if !sim.exists(Path::new("/a/b/c")).unwrap() {
            lost += 1;
        }

        let sim = SimStorage::new(seed);
        sim.create_dir_all(Path::new("/a/b/c")).unwrap();
        for dir in ["/", "/a", "/a/b"] {
            sim.sync_dir(Path::new(dir)).unwrap();
        }
        sim.crash();
        assert!(sim.exists(Path::new("/a/b/c")).unwrap());
    }
    assert!(lost > 0);
}

#[test]
fn a_rename_or_remove_is_atomic_and_durable_only_after_sync_dir() {
    let mut outcomes = BTreeSet::new();
    for seed in 0..100 {
        let (sim, file) = disk_with(seed, b"old");
        drop(file);
        sim.rename(Path::new(FILE), Path::new("/d/g")).unwrap();
        assert!(!sim.exists(Path::new(FILE)).unwrap());
        sim.crash();
        let old = sim.exists(Path::new(FILE)).unwrap();
        let new = sim.exists(Path::new("/d/g")).unwrap();
        assert!(old != new, "seed {seed}: a rename is all or nothing");
        outcomes.insert(new);

        let (sim, file) = disk_with(seed, b"old");
        drop(file);
        sim.rename(Path::new(FILE), Path::new("/d/g")).unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        sim.crash();
        assert_eq!(sim.file_contents(Path::new("/d/g")).unwrap(), b"old");
        assert!(!sim.exists(Path::new(FILE)).unwrap());

        let (sim, file) = disk_with(seed, b"old");
        drop(file);
        sim.remove_file(Path::new(FILE)).unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        sim.crash();
        assert!(!sim.exists(Path::new(FILE)).unwrap());
    }
    assert_eq!(outcomes, BTreeSet::from([false, true]));
}

#[test]
fn a_crash_releases_locks_and_kills_every_handle_opened_before_it() {
    let (sim, mut file) = disk_with(7, b"hello");
    let lock_path = Path::new("/d/LOCK");
    let old_lock = sim.try_lock(lock_path).unwrap().expect("free");
    assert!(sim.try_lock(lock_path).unwrap().is_none(), "held");
    sim.crash();
    let new_lock = sim
        .try_lock(lock_path)
        .unwrap()
        .expect("the crash released it");
    // Dropping the dead lock does not release the new holder's.
    drop(old_lock);
    assert!(sim.try_lock(lock_path).unwrap().is_none());
    drop(new_lock);
    assert!(sim.try_lock(lock_path).unwrap().is_some());

    let mut buf = [0u8; 5];
    assert!(file.read_at(0, &mut buf).is_err());
    assert!(file.write_all_at(5, b"late").is_err());
    assert!(file.sync_data().is_err());
    assert!(file.set_len(0).is_err());
    assert!(file.size().is_err());
    assert_eq!(sim.file_contents(Path::new(FILE)).unwrap(), b"hello");
    let mut fresh = sim.open_file(Path::new(FILE), OpenMode::ReadWrite).unwrap();
    fresh.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
}

/// Runs a fixed sequence with crashes and returns what is left.
fn scripted(seed: u64) -> Vec<u8> {
    let (sim, mut file) = disk_with(seed, &pattern(1000, 9));
    for round in 0..5u64 {
        file.write_all_at(1000 + round * 700, &pattern(700, round as u8))
            .unwrap();
        file.write_all_at(round * 100, &pattern(50, 0x40)).unwrap();
        sim.crash();
        file = sim.open_file(Path::new(FILE), OpenMode::ReadWrite).unwrap();
    }
    sim.file_contents(Path::new(FILE)).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_crashes() {
    let mut distinct = BTreeSet::new();
    for seed in 0..20 {
        let first = scripted(seed);
        assert_eq!(first, scripted(seed), "seed {seed}");
        distinct.insert(first);
    }
    assert!(distinct.len() > 5, "seeds should matter");
}

fn open_rw(sim: &SimStorage) -> Box<dyn StorageFile> {
    sim.open_file(Path::new(FILE), OpenMode::ReadWrite).unwrap()
}

#[test]
fn a_fault_hits_the_chosen_operation_once_or_from_then_on() {
    let (sim, mut file) = disk_with(1, b"0123456789");
    let start = sim.op_count();
    sim.inject(Fault::after(FaultKind::Eio, 2));
    let mut buf = [0u8; 4];
    file.read_at(0, &mut buf).unwrap();
    file.size().unwrap();
    let error = file.read_at(0, &mut buf).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(5), "EIO");
    file.read_at(0, &mut buf).unwrap();
    let fired = sim.faults_fired();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].op_index, start + 2);
    assert_eq!(fired[0].op, OpKind::ReadAt);
    assert_eq!(fired[0].path, Path::new(FILE));

    sim.inject(
        Fault::after(FaultKind::NoSpace, 1)
            .only(OpKind::SyncData)
            .persistent(),
    );
    file.write_all_at(10, b"a").unwrap();
    file.sync_data().unwrap(); // the one let through
    for _ in 0..3 {
        file.write_all_at(11, b"b").unwrap();
        assert_eq!(
            file.sync_data().unwrap_err().raw_os_error(),
            Some(28),
            "ENOSPC"
        );
    }
    sim.clear_faults();
    file.sync_data().unwrap();
    assert_eq!(
        sim.durable_contents(Path::new(FILE)).unwrap(),
        b"0123456789ab"
    );
}

#[test]
fn a_failed_write_or_sync_changes_nothing_durable() {
    let (sim, mut file) = disk_with(2, b"base");
    sim.inject(Fault::after(FaultKind::Eio, 0).only(OpKind::WriteAt));
    assert!(file.write_all_at(4, b"lost").is_err());
    assert_eq!(sim.file_contents(Path::new(FILE)).unwrap(), b"base");

    file.write_all_at(4, b"kept?").unwrap();
    sim.inject(Fault::after(FaultKind::Eio, 0).only(OpKind::SyncData));
    assert!(file.sync_data().is_err());
    assert_eq!(sim.durable_contents(Path::new(FILE)).unwrap(), b"base");
}

#[test]
fn a_short_write_stores_a_strict_prefix_and_fails() {
    let mut prefixes = BTreeSet::new();
    for seed in 0..50 {
        let (sim, mut file) = disk_with(seed, b"");
        sim.inject(Fault::after(FaultKind::ShortWrite, 0));
        let error = file.write_all_at(0, &pattern(100, 5)).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(28));
        let now = sim.file_contents(Path::new(FILE)).unwrap();
        assert!(now.len() < 100);
        assert_eq!(now, pattern(100, 5)[..now.len()]);
        prefixes.insert(now.len());
    }
    assert!(prefixes.len() > 10);
}

#[test]
fn a_dropped_write_or_sync_reports_success_and_does_nothing() {
    let (sim, mut file) = disk_with(3, b"base");
    sim.inject(Fault::after(FaultKind::DropWrite, 0));
    file.write_all_at(4, b"gone").unwrap();
    assert_eq!(sim.file_contents(Path::new(FILE)).unwrap(), b"base");

    file.write_all_at(4, b"here").unwrap();
    sim.inject(Fault::after(FaultKind::DropWrite, 0).only(OpKind::SyncData));
    file.sync_data().unwrap();
    assert_eq!(sim.durable_contents(Path::new(FILE)).unwrap(), b"base");
    assert_eq!(sim.file_contents(Path::new(FILE)).unwrap(), b"basehere");
}

#[test]
fn a_crash_fault_cuts_the_power_at_that_operation() {
    let (sim, mut file) = disk_with(4, b"synced");
    file.write_all_at(6, b"pending").unwrap();
    sim.inject(Fault::after(FaultKind::Crash, 0).only(OpKind::SyncData));
    assert!(file.sync_data().is_err());
    assert_eq!(sim.crash_count(), 1);
    assert!(file.write_all_at(0, b"x").is_err(), "the handle died");
    let after = sim.file_contents(Path::new(FILE)).unwrap();
    assert!(after.starts_with(b"synced") && after.len() <= 13);
}

#[test]
fn damage_changes_durable_bytes_and_stays_under_pending_writes() {
    let (sim, mut file) = disk_with(5, &[0u8; 1500]);
    sim.flip_bit(Path::new(FILE), 8 * 3 + 2).unwrap();
    assert_eq!(sim.durable_contents(Path::new(FILE)).unwrap()[3], 0b100);
    sim.overwrite(Path::new(FILE), 600, &[0xFF; 4]).unwrap();
    file.write_all_at(601, &[7]).unwrap();
    let now = sim.file_contents(Path::new(FILE)).unwrap();
    assert_eq!(&now[600..604], &[0xFF, 7, 0xFF, 0xFF]);
    assert_eq!(now[3], 0b100);

    sim.overwrite(Path::new(FILE), 1024, &[9; 476]).unwrap();
    sim.zero_sector(Path::new(FILE), 2).unwrap();
    assert!(
        sim.durable_contents(Path::new(FILE)).unwrap()[1024..]
            .iter()
            .all(|&b| b == 0)
    );

    assert!(sim.flip_bit(Path::new(FILE), 1500 * 8).is_err());
    assert!(sim.overwrite(Path::new(FILE), 1499, &[1, 2]).is_err());
    assert!(sim.zero_sector(Path::new(FILE), 3).is_err());
    assert!(sim.flip_bit(Path::new("/d/none"), 0).is_err());
}

#[test]
fn open_handles_are_counted_until_dropped() {
    let (sim, file) = disk_with(6, b"x");
    assert_eq!(sim.open_file_count(), 1);
    let second = open_rw(&sim);
    assert_eq!(sim.open_file_count(), 2);
    sim.crash();
    assert_eq!(sim.open_file_count(), 2, "dead handles count until dropped");
    drop(file);
    drop(second);
    assert_eq!(sim.open_file_count(), 0);
    assert!(
        sim.open_file(Path::new("/d/missing"), OpenMode::ReadOnly)
            .is_err()
    );
    assert_eq!(sim.open_file_count(), 0);
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let sim = SimStorage::new(0);
    let p = Path::new;
    assert_eq!(
        sim.open_file(p("/nodir/f"), OpenMode::CreateReadWrite)
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
    assert!(sim.sync_dir(p("/nodir")).is_err());
    sim.create_dir_all(p("/d")).unwrap();
    assert!(sim.open_file(p("/d"), OpenMode::CreateReadWrite).is_err());
    let mut read_only = {
        sim.open_file(p("/d/f"), OpenMode::CreateReadWrite).unwrap();
        sim.open_file(p("/d/f"), OpenMode::ReadOnly).unwrap()
    };
    assert!(read_only.write_all_at(0, b"no").is_err());
    assert!(read_only.write_all_at(u64::MAX - 1, b"no").is_err());
    assert!(sim.rename(p("/d/none"), p("/d/g")).is_err());
    assert!(sim.remove_file(p("/d/none")).is_err());
    assert!(sim.create_dir_all(p("/d/f/sub")).is_err());
    let mut file = sim.open_file(p("/d/f"), OpenMode::ReadWrite).unwrap();
    assert!(file.write_all_at(u64::MAX - 1, b"no").is_err());
    assert!(file.set_len(u64::MAX).is_err());
    let mut buf = [0u8; 4];
    assert_eq!(file.read_at(1 << 40, &mut buf).unwrap(), 0);
}

#[test]
fn held_writes_wait_for_the_test_and_report_their_result() {
    let (sim, file) = disk_with(8, b"");
    let holds = sim.hold_file_writes();
    let (done_tx, done_rx) = mpsc::channel();
    let writer = thread::spawn(move || {
        let mut file = file;
        let written = file.write_all_at(0, b"abc");
        done_tx.send("write returned").unwrap();
        let synced = file.sync_data();
        done_tx.send("sync returned").unwrap();
        (written, synced)
    });
    let held = holds
        .next_within(Duration::from_secs(30))
        .expect("the write is held");
    assert_eq!(held.op, OpKind::WriteAt);
    assert_eq!(held.error, None);
    // Carried out, but not returned to the writer yet.
    assert_eq!(sim.file_contents(Path::new(FILE)).unwrap(), b"abc");
    assert!(done_rx.try_recv().is_err());
    holds.release();
    assert_eq!(done_rx.recv().unwrap(), "write returned");

    let held = holds
        .next_within(Duration::from_secs(30))
        .expect("the sync is held");
    assert_eq!(held.op, OpKind::SyncData);
    assert!(done_rx.try_recv().is_err());
    drop(holds); // stops holding and lets the sync return
    assert_eq!(done_rx.recv().unwrap(), "sync returned");
    let (written, synced) = writer.join().unwrap();
    written.unwrap();
    synced.unwrap();
    assert_eq!(sim.durable_contents(Path::new(FILE)).unwrap(), b"abc");
}
