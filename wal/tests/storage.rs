//! Each operation, and raft's `Storage` contract as `MemStorage`'s own tests
//! check it, on a real WAL directory; then reopening.

mod common;

use common::entries;
use raft::{GetEntriesContext, Storage, StorageError};
use raft_proto::eraftpb::{ConfState, HardState, Snapshot};
use raft_wal_storage::{WalError, WalOptions, WalStorage};

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

fn open(dir: &tempfile::TempDir) -> WalStorage {
    WalStorage::open(dir.path(), WalOptions::default()).unwrap()
}

fn terms(store: &WalStorage, low: u64, high: u64) -> Vec<(u64, u64)> {
    store
        .entries(low, high, None, ctx())
        .unwrap()
        .iter()
        .map(|e| (e.index, e.term))
        .collect()
}

/// A log with a snapshot at 3 (term 3) and entries 4, 5 at terms 4, 5, as
/// MemStorage's tests start from.
fn store_3_4_5() -> (tempfile::TempDir, WalStorage) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 3;
    snap.mut_metadata().term = 3;
    store.apply_snapshot(snap).unwrap();
    let mut ents = entries(4, 5, 4);
    ents[1].term = 5;
    store.append(&ents).unwrap();
    (dir, store)
}

fn store_error(e: StorageError) -> raft::Error {
    raft::Error::Store(e)
}

#[test]
fn term_answers_like_memstorage() {
    let (_dir, store) = store_3_4_5();
    assert_eq!(store.term(2), Err(store_error(StorageError::Compacted)));
    assert_eq!(store.term(3), Ok(3));
    assert_eq!(store.term(4), Ok(4));
    assert_eq!(store.term(5), Ok(5));
    assert_eq!(store.term(6), Err(store_error(StorageError::Unavailable)));
}

#[test]
fn entries_answer_like_memstorage() {
    let (_dir, store) = store_3_4_5();
    store.append(&entries(6, 6, 6)).unwrap();
    assert_eq!(
        store.entries(2, 6, None, ctx()),
        Err(store_error(StorageError::Compacted))
    );
    assert_eq!(
        store.entries(3, 4, None, ctx()),
        Err(store_error(StorageError::Compacted))
    );
    assert_eq!(terms(&store, 4, 5), vec![(4, 4)]);
    assert_eq!(terms(&store, 4, 7), vec![(4, 4), (5, 5), (6, 6)]);
    let one = store.entries(4, 7, 0, ctx()).unwrap();
    assert_eq!(one.len(), 1, "at least one entry, whatever the limit");
    let size = |n: usize| {
        store.entries(4, 7, None, ctx()).unwrap()[..n]
            .iter()
            .map(|e| u64::from(protobuf::Message::compute_size(e)))
            .sum::<u64>()
    };
    assert_eq!(store.entries(4, 7, size(2), ctx()).unwrap().len(), 2);
    assert_eq!(store.entries(4, 7, size(2) + 1, ctx()).unwrap().len(), 2);
    assert_eq!(store.entries(4, 7, size(3), ctx()).unwrap().len(), 3);
}

#[test]
fn first_and_last_index_follow_appends_snapshots_and_compaction() {
    let (_dir, store) = store_3_4_5();
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (4, 5)
    );
    store.append(&entries(6, 6, 5)).unwrap();
    assert_eq!(store.last_index().unwrap(), 6);
    store.compact(5).unwrap();
    assert_eq!(store.first_index().unwrap(), 5);
    assert_eq!(store.term(4), Err(store_error(StorageError::Compacted)));
    store.compact(4).unwrap();
    assert_eq!(
        store.first_index().unwrap(),
        5,
        "compaction never moves back"
    );
    assert!(matches!(store.compact(8), Err(WalError::Rejected(_))));
}

#[test]
fn append_truncates_a_conflicting_suffix() {
    let (_dir, store) = store_3_4_5();
    store.append(&entries(4, 6, 6)).unwrap();
    assert_eq!(terms(&store, 4, 7), vec![(4, 6), (5, 6), (6, 6)]);
    store.append(&entries(5, 5, 7)).unwrap();
    assert_eq!(terms(&store, 4, 6), vec![(4, 6), (5, 7)]);
    assert_eq!(store.last_index().unwrap(), 5);
}

#[test]
fn bad_appends_are_rejected_and_change_nothing() {
    let (_dir, store) = store_3_4_5();
    for (ents, why) in [
        (entries(2, 3, 9), "overwrite compacted"),
        (entries(7, 8, 9), "leave a gap"),
    ] {
        match store.append(&ents) {
            Err(WalError::Rejected(msg)) => assert!(msg.contains(why), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
    let mut holes = entries(6, 8, 9);
    holes.remove(1);
    assert!(matches!(store.append(&holes), Err(WalError::Rejected(_))));
    assert_eq!(terms(&store, 4, 6), vec![(4, 4), (5, 5)]);
}

#[test]
fn snapshots_reset_the_log_and_old_ones_are_rejected() {
    let (_dir, store) = store_3_4_5();
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 5;
    snap.mut_metadata().term = 5;
    snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    snap.data = b"state machine".to_vec().into();
    store.apply_snapshot(snap.clone()).unwrap();
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (6, 5)
    );
    assert_eq!(store.snapshot(5, 0).unwrap(), snap);
    assert_eq!(
        store.initial_state().unwrap().conf_state.voters,
        vec![1, 2, 3]
    );
    assert_eq!(store.initial_state().unwrap().hard_state.commit, 5);
    assert_eq!(
        store.snapshot(6, 0),
        Err(store_error(StorageError::SnapshotTemporarilyUnavailable))
    );
    let mut old = Snapshot::default();
    old.mut_metadata().index = 4;
    assert!(matches!(
        store.apply_snapshot(old),
        Err(WalError::Rejected(_))
    ));
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        store.append(&entries(1, 10, 1)).unwrap();
        store.set_hard_state(hs(2, 3, 7)).unwrap();
        store
            .set_conf_state(ConfState {
                voters: vec![1, 2, 3],
                learners: vec![4],
                ..Default::default()
            })
            .unwrap();
        store.compact(3).unwrap();
        store.sync().unwrap();
    }
    let store = open(&dir);
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (3, 10)
    );
    assert_eq!(
        store.entries(3, 11, None, ctx()).unwrap(),
        entries(3, 10, 1)
    );
    let state = store.initial_state().unwrap();
    assert_eq!(state.hard_state, hs(2, 3, 7));
    assert_eq!(
        (state.conf_state.voters, state.conf_state.learners),
        (vec![1, 2, 3], vec![4])
    );
}

#[test]
fn overwrite_with_fewer_entries_then_crash_never_brings_the_stale_tail_back() {
    // The seed project's store overwrote 5..=5 over 1..=10 and kept 6..=10.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        store.append(&entries(1, 10, 1)).unwrap();
        store.sync().unwrap();
        store.append(&entries(5, 5, 2)).unwrap();
        store.sync().unwrap();
        // Dropped without any shutdown: what is on disk is all there is.
    }
    let store = open(&dir);
    assert_eq!(store.last_index().unwrap(), 5);
    assert_eq!(
        store.entries(1, 6, None, ctx()).unwrap()[4],
        entries(5, 5, 2)[0]
    );
    assert_eq!(store.term(6), Err(store_error(StorageError::Unavailable)));
}

#[test]
fn old_entries_come_from_disk_and_equal_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        retention_entries: 10,
        ..WalOptions::default()
    };
    let store = WalStorage::open(dir.path(), opts).unwrap();
    for first in (1..=1000).step_by(100) {
        store.append(&entries(first, first + 99, 1)).unwrap();
    }
    assert_eq!(store.window_len(), 10);
    assert_eq!(
        store.entries(1, 1001, None, ctx()).unwrap(),
        entries(1, 1000, 1)
    );
    store.sync().unwrap();
    drop(store);
    let store = WalStorage::open(dir.path(), opts).unwrap();
    assert_eq!(store.window_len(), 10);
    assert_eq!(
        store.entries(1, 1001, None, ctx()).unwrap(),
        entries(1, 1000, 1)
    );
}

/// Segments of 8 KiB, so a few hundred entries span many.
fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes: 8 << 10,
        retention_entries: 5,
        ..WalOptions::default()
    }
}

#[test]
fn compaction_reclaims_whole_segments_and_recovery_starts_from_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments();
    let store = WalStorage::open(dir.path(), opts).unwrap();
    store
        .set_conf_state(ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        })
        .unwrap();
    store.set_hard_state(hs(1, 1, 0)).unwrap();
    for first in (1..=600).step_by(20) {
        store.append(&entries(first, first + 19, 1)).unwrap();
        store.set_hard_state(hs(1, 1, first + 19)).unwrap();
    }
    store.sync().unwrap();
    let before = store.segments();
    assert!(before > 5, "{before} segments");
    store.compact(550).unwrap();
    assert!(
        store.segments() < before / 2,
        "{} of {before} segments left",
        store.segments()
    );
    drop(store);
    let store = WalStorage::open(dir.path(), opts).unwrap();
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (550, 600)
    );
    assert_eq!(
        store.entries(550, 601, None, ctx()).unwrap(),
        entries(550, 600, 1)
    );
    let state = store.initial_state().unwrap();
    assert_eq!(
        (state.hard_state.commit, state.conf_state.voters),
        (600, vec![1, 2, 3])
    );
}

#[test]
fn segments_are_deleted_only_once_the_compaction_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments();
    let store = WalStorage::open(dir.path(), opts).unwrap();
    store.set_hard_state(hs(1, 1, 0)).unwrap();
    for first in (1..=600).step_by(20) {
        store.append(&entries(first, first + 19, 1)).unwrap();
        store.set_hard_state(hs(1, 1, first + 19)).unwrap();
    }
    let before = store.segments();
    store.compact(550).unwrap();
    assert!(store.segments() < before, "nothing reclaimed");
    let (active, durable) = store.durable_position();
    assert_eq!(
        durable,
        std::fs::metadata(&active).unwrap().len(),
        "segments were deleted while the Compact record was not yet synced"
    );
}

/// Appends entries at term 1 until the WAL starts a second segment;
/// returns the last index.
fn fill_first_segment(store: &WalStorage) -> u64 {
    let mut last = 0;
    while store.segments() < 2 {
        store.append(&entries(last + 1, last + 20, 1)).unwrap();
        last += 20;
    }
    last
}

/// Syncs, checks that compaction reclaimed every segment but the active
/// one, and opens the WAL again: recovery starts at that segment.
fn reopen_after_reclaim(dir: &tempfile::TempDir, store: WalStorage) -> WalStorage {
    store.sync().unwrap();
    assert_eq!(store.segments(), 1, "the first segment was not reclaimed");
    drop(store);
    WalStorage::open(dir.path(), small_segments()).unwrap()
}

/// Two overwrites in a new segment, the second reaching further back into
/// the previous segment's entries, then compaction past them, which
/// reclaims that segment: recovery starts at the overwrites' segment,
/// whose second Entries record starts below the first one's.
#[test]
fn an_overwrite_into_a_reclaimed_segment_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments();
    let store = WalStorage::open(dir.path(), opts).unwrap();
    let last = fill_first_segment(&store);
    store.append(&entries(last - 1, last + 5, 2)).unwrap();
    store.append(&entries(last - 3, last + 5, 3)).unwrap();
    store.compact(last - 2).unwrap();
    let store = reopen_after_reclaim(&dir, store);
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (last - 2, last + 5)
    );
    assert_eq!(
        store.entries(last - 2, last + 6, None, ctx()).unwrap(),
        entries(last - 2, last + 5, 3)
    );
}

/// A Compact whose index lies below the first entry recovery sees in the
/// oldest segment (the entries before it were in the reclaimed one), then
/// an overwrite between the two: the log restarts at the overwrite, which
/// is above the Compact's index, so recovery takes it.
#[test]
fn an_overwrite_above_a_compaction_that_recovery_cannot_see_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments();
    let store = WalStorage::open(dir.path(), opts).unwrap();
    let last = fill_first_segment(&store);
    store.append(&entries(last + 1, last + 5, 1)).unwrap();
    store.compact(last - 5).unwrap();
    store.append(&entries(last - 2, last + 5, 2)).unwrap();
    store.compact(last - 2).unwrap();
    let store = reopen_after_reclaim(&dir, store);
    assert_eq!(
        store.entries(last - 2, last + 6, None, ctx()).unwrap(),
        entries(last - 2, last + 5, 2)
    );
}

/// The oldest segment left restarts the log below what its checkpoint's
/// Compact dropped: not a WAL this code writes, so recovery refuses it.
#[test]
fn a_restart_below_the_compacted_index_is_corruption() {
    use protobuf::Message as _;
    use raft_wal_storage::internals::{encode, segment_header, Kind};
    let dir = tempfile::tempdir().unwrap();
    let mut segment = segment_header().to_vec();
    encode(Kind::Compact, &100u64.to_le_bytes(), &mut segment);
    encode(Kind::Sync, &1u64.to_le_bytes(), &mut segment);
    let entry = &entries(50, 50, 1)[0];
    let bytes = entry.write_to_bytes().unwrap();
    let mut payload = Vec::new();
    payload.extend_from_slice(&50u64.to_le_bytes());
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&1u64.to_le_bytes());
    payload.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    payload.extend_from_slice(&bytes);
    encode(Kind::Entries, &payload, &mut segment);
    std::fs::write(dir.path().join("0000000000000002.wal"), segment).unwrap();

    let e = WalStorage::open(dir.path(), small_segments())
        .err()
        .unwrap();
    assert!(e.to_string().contains("below 100"), "{e}");
}

#[test]
fn storage_is_clone_send_and_sync() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<WalStorage>();
}

#[test]
fn a_kept_snapshot_is_served_and_survives_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.append(&entries(1, 10, 2)).unwrap();
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 6;
    snap.mut_metadata().term = 2;
    snap.data = b"state at 6".to_vec().into();
    store.set_snapshot(snap.clone()).unwrap();
    store.compact(7).unwrap();
    assert_eq!((store.first_index().unwrap(), store.term(6)), (7, Ok(2)));
    assert_eq!(store.snapshot(6, 0).unwrap(), snap);
    let mut wrong_term = snap.clone();
    wrong_term.mut_metadata().index = 8;
    wrong_term.mut_metadata().term = 1;
    assert!(matches!(
        store.set_snapshot(wrong_term),
        Err(WalError::Rejected(_))
    ));
    store.sync().unwrap();
    drop(store);
    let store = open(&dir);
    assert_eq!(store.snapshot(6, 0).unwrap(), snap);
    assert_eq!(
        store.entries(7, 11, None, ctx()).unwrap(),
        entries(7, 10, 2)
    );
}

#[test]
fn cutting_the_active_segment_at_the_durable_position_keeps_exactly_what_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.append(&entries(1, 10, 1)).unwrap();
    store.sync().unwrap();
    store.append(&entries(11, 20, 1)).unwrap();
    store.append(&entries(15, 16, 2)).unwrap();
    let (segment, len) = store.durable_position();
    drop(store);
    std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap()
        .set_len(len)
        .unwrap();
    let store = open(&dir);
    assert_eq!(
        store.entries(1, 11, None, ctx()).unwrap(),
        entries(1, 10, 1)
    );
    assert_eq!(store.last_index().unwrap(), 10);
}

#[test]
fn a_detached_sync_lets_writes_go_on_and_covers_what_came_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.append(&entries(1, 3, 1)).unwrap();
    let pending = store
        .sync_detached()
        .unwrap()
        .expect("there are writes to sync");
    // The WAL's lock is free while the sync is pending: reads and writes
    // go on (a held lock would deadlock this single thread).
    store.append(&entries(4, 5, 1)).unwrap();
    assert_eq!(store.last_index().unwrap(), 5);
    let (segment, durable_before) = store.durable_position();
    pending.wait().unwrap();
    let (_, durable_after) = store.durable_position();
    let written = std::fs::metadata(&segment).unwrap().len();
    assert!(
        durable_before < durable_after && durable_after < written,
        "covers 1..=3, not 4..=5"
    );
    assert_eq!(store.syncs(), 1);

    store.sync().unwrap();
    let written = std::fs::metadata(&segment).unwrap().len();
    assert_eq!(
        store.durable_position().1,
        written,
        "a full sync covers everything"
    );
    assert!(
        store.sync_detached().unwrap().is_none(),
        "nothing left to sync"
    );
    drop(store);
    assert_eq!(
        terms(&open(&dir), 1, 6),
        (1..=5).map(|i| (i, 1)).collect::<Vec<_>>()
    );
}
