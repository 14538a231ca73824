//! Snapshot data in files of its own (`snap/`): segments carry only the
//! metadata, files go once no segment refers to them, and recovery checks
//! each file against its reference.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{data, entries};
use raft::Storage;
use raft_proto::eraftpb::{HardState, Snapshot};
use raft_wal_storage::internals::{encode, segment_header, Kind};
use raft_wal_storage::{WalError, WalOptions, WalStorage};

const STATE_BYTES: usize = 1 << 20;

fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes: 64 << 10,
        retention_entries: 5,
        ..WalOptions::default()
    }
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = index;
    snap.mut_metadata().term = term;
    snap.data = data(index, term, STATE_BYTES).into();
    snap
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    found.sort();
    found
}

/// A closed WAL of entries 1..=10 and a kept snapshot at `index`.
fn closed_with_snapshot(index: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = WalStorage::open(dir.path(), small_segments()).unwrap();
    store.append(&entries(1, 10, 1)).unwrap();
    store.set_snapshot(snapshot(index, 1)).unwrap();
    store.sync().unwrap();
    dir
}

/// Appends entries `from..` in batches of 20 until the WAL has started
/// `rotations` more segments; returns the next index.
fn append_until_rotated(store: &WalStorage, from: u64, rotations: usize) -> u64 {
    let target = store.segments() + rotations;
    let mut next = from;
    while store.segments() < target {
        store.append(&entries(next, next + 19, 1)).unwrap();
        next += 20;
    }
    store.sync().unwrap();
    next
}

#[test]
fn new_segments_carry_the_snapshot_metadata_not_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = WalStorage::open(dir.path(), small_segments()).unwrap();
    store.append(&entries(1, 10, 1)).unwrap();
    store.set_snapshot(snapshot(10, 1)).unwrap();
    append_until_rotated(&store, 11, 4);

    for segment in files(dir.path(), "wal") {
        let len = fs::metadata(&segment).unwrap().len();
        assert!(
            len < STATE_BYTES as u64 / 4,
            "{} holds {len} bytes: the state again",
            segment.display()
        );
    }
    let snaps = files(&dir.path().join("snap"), "snap");
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(fs::metadata(&snaps[0]).unwrap().len() > STATE_BYTES as u64);
}

#[test]
fn a_snapshot_file_goes_once_no_segment_refers_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = WalStorage::open(dir.path(), small_segments()).unwrap();
    store.append(&entries(1, 10, 1)).unwrap();
    store.set_snapshot(snapshot(10, 1)).unwrap();
    store.compact(11).unwrap();
    let next = append_until_rotated(&store, 11, 2);
    let old = files(&dir.path().join("snap"), "snap");

    let newer = snapshot(next - 1, 1);
    store.set_snapshot(newer.clone()).unwrap();
    let end = append_until_rotated(&store, next, 1);
    store.compact(end).unwrap();
    let left = files(&dir.path().join("snap"), "snap");
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        !left.contains(&old[0]),
        "the reclaimed snapshot's file stayed"
    );

    drop(store);
    let store = WalStorage::open(dir.path(), small_segments()).unwrap();
    assert_eq!(store.snapshot(0, 0).unwrap(), newer);
}

#[test]
fn a_damaged_or_missing_snapshot_file_fails_recovery_naming_it() {
    let dir = closed_with_snapshot(10);
    let file = files(&dir.path().join("snap"), "snap").remove(0);
    let intact = fs::read(&file).unwrap();

    let mut flipped = intact.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    fs::write(&file, flipped).unwrap();
    let e = WalStorage::open(dir.path(), small_segments())
        .err()
        .unwrap();
    assert!(matches!(e, WalError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");

    fs::remove_file(&file).unwrap();
    let e = WalStorage::open(dir.path(), small_segments())
        .err()
        .unwrap();
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");

    fs::write(&file, intact).unwrap();
    let store = WalStorage::open(dir.path(), small_segments()).unwrap();
    assert_eq!(store.snapshot(0, 0).unwrap(), snapshot(10, 1));
}

#[test]
fn files_no_segment_refers_to_are_removed_at_recovery() {
    let dir = closed_with_snapshot(5);
    let snap_dir = dir.path().join("snap");
    let kept = files(&snap_dir, "snap");
    // What a crash leaves: a file whose record never made it, and a
    // temporary file cut short.
    let stray = snap_dir.join("0000000000000009-0000000000000001-00000000.snap");
    fs::write(&stray, b"a file whose record was lost").unwrap();
    let torn = snap_dir.join("000000000000000a-0000000000000001-00000000.snap.tmp");
    fs::write(&torn, b"cut").unwrap();

    let store = WalStorage::open(dir.path(), small_segments()).unwrap();
    assert_eq!(files(&snap_dir, "snap"), kept);
    assert!(!torn.exists());
    assert_eq!(store.snapshot(0, 0).unwrap(), snapshot(5, 1));
}

/// A WAL written before snapshot files, with the state inline: its
/// snapshot is still served, and gets a file before a new segment's
/// checkpoint refers to it.
#[test]
fn an_inline_snapshot_of_an_older_wal_moves_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(7, 2);
    let mut segment = segment_header().to_vec();
    let hard_state = HardState {
        term: 2,
        commit: 7,
        ..Default::default()
    };
    encode(
        Kind::Snapshot,
        &protobuf::Message::write_to_bytes(&snap).unwrap(),
        &mut segment,
    );
    encode(
        Kind::HardState,
        &protobuf::Message::write_to_bytes(&hard_state).unwrap(),
        &mut segment,
    );
    encode(Kind::Sync, &1u64.to_le_bytes(), &mut segment);
    fs::write(dir.path().join("0000000000000001.wal"), segment).unwrap();

    let store = WalStorage::open(dir.path(), small_segments()).unwrap();
    assert_eq!(store.snapshot(7, 0).unwrap(), snap);
    assert_eq!(store.first_index().unwrap(), 8);
    append_until_rotated(&store, 8, 2);
    drop(store);
    let store = WalStorage::open(dir.path(), small_segments()).unwrap();
    assert_eq!(store.snapshot(7, 0).unwrap(), snap);
    assert_eq!(files(&dir.path().join("snap"), "snap").len(), 1);
}
