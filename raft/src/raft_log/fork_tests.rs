// Copyright 2026 The raft-rs fork authors. Licensed under Apache-2.0.

//! Tests of the fork's `RaftLog` patches: a storage ahead of
//! `unstable.offset` (0005), an append past the end of the log (0004), and
//! committed entries in such a storage counting as persisted (0009).
//! The numbers follow the crash report: a log of 619 committed entries.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::eraftpb::{Entry, Snapshot};
use crate::storage::{MemStorage, Storage};
use crate::{default_logger, GetEntriesContext, RaftLog};

fn entry(index: u64, term: u64) -> Entry {
    let mut e = Entry::default();
    e.index = index;
    e.term = term;
    e
}

/// Entries `first..=last`, all at `term`.
fn run(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last).map(|i| entry(i, term)).collect()
}

fn terms(entries: &[Entry]) -> Vec<(u64, u64)> {
    entries.iter().map(|e| (e.index, e.term)).collect()
}

fn all(log: &RaftLog<MemStorage>) -> Vec<(u64, u64)> {
    let first = log.first_index();
    let ents = log
        .slice(
            first,
            log.last_index() + 1,
            None,
            GetEntriesContext::empty(false),
        )
        .unwrap();
    terms(&ents)
}

/// A log created over storage `1..=619` at term 1, all committed, whose
/// storage then receives `620..=stored_last` at `term` behind the log's back,
/// as a WAL replicated by a side channel would write them. `unstable` stays
/// empty at offset 620.
fn storage_ahead(stored_last: u64, term: u64) -> RaftLog<MemStorage> {
    let store = MemStorage::new();
    store.wl().append(&run(1, 619, 1)).unwrap();
    let mut log = RaftLog::new(store, default_logger());
    log.committed = 619;
    log.store.wl().append(&run(620, stored_last, term)).unwrap();
    assert_eq!(log.unstable.offset, 620);
    assert!(log.unstable.entries.is_empty());
    log
}

/// What the application does with a Ready: write the unstable entries to
/// storage (truncating its conflicting tail), then advance.
fn persist(log: &mut RaftLog<MemStorage>) {
    let ents = log.unstable_entries().to_vec();
    let last = ents.last().expect("something to persist").clone();
    log.store.wl().append(&ents).unwrap();
    log.stable_entries(last.index, last.term);
    assert!(log.maybe_persist(last.index, last.term));
}

fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().unwrap().to_string(),
    }
}

#[test]
fn seed_overwrite_of_stored_tail_does_not_panic() {
    let mut log = storage_ahead(622, 1);
    assert_eq!(log.last_index(), 622);

    // The new leader at term 4: prev (621, 1), entries [622@4], commit 619.
    assert_eq!(
        log.maybe_append(621, 1, 619, &[entry(622, 4)]),
        Some((622, 622))
    );
    assert_eq!(log.unstable.offset, 622);
    assert_eq!(terms(log.unstable_entries()), vec![(622, 4)]);
    assert_eq!(log.committed, 619);

    persist(&mut log);
    let mut expected = terms(&run(1, 621, 1));
    expected.push((622, 4));
    assert_eq!(all(&log), expected);
    assert_eq!(
        terms(
            &log.store
                .entries(620, 623, None, GetEntriesContext::empty(false))
                .unwrap()
        ),
        expected[619..]
    );
    assert_eq!(log.persisted, 622);
}

#[test]
fn slice_reads_stored_entries_past_offset() {
    let log = storage_ahead(622, 1);
    let ctx = || GetEntriesContext::empty(false);
    assert_eq!(
        terms(&log.slice(618, 623, None, ctx()).unwrap()),
        terms(&run(618, 622, 1))
    );
    assert_eq!(
        terms(&log.slice(621, 622, None, ctx()).unwrap()),
        vec![(621, 1)]
    );
    assert_eq!(
        terms(&log.entries(620, None, ctx()).unwrap()),
        terms(&run(620, 622, 1))
    );
    // A size limit still returns at least one entry, and no more than fit.
    assert_eq!(log.slice(618, 623, 0, ctx()).unwrap().len(), 1);
}

#[test]
fn slice_spans_storage_and_unstable_after_an_append() {
    let mut log = storage_ahead(622, 1);
    log.append(&[entry(623, 1), entry(624, 1)]);
    assert_eq!(log.unstable.offset, 623);
    let got = log
        .slice(619, 625, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(terms(&got), terms(&run(619, 624, 1)));
}

#[test]
fn conflicts_at_offset_offset_plus_one_and_last_index() {
    for conflict in [620, 621, 622] {
        let mut log = storage_ahead(622, 1);
        let appended = log.maybe_append(
            conflict - 1,
            1,
            619,
            &[entry(conflict, 4), entry(conflict + 1, 4)],
        );
        assert_eq!(
            appended,
            Some((conflict, conflict + 1)),
            "conflict at {conflict}"
        );
        assert_eq!(log.unstable.offset, conflict);
        assert_eq!(log.last_index(), conflict + 1);
        assert_eq!(log.term(conflict - 1), Ok(1));
        assert_eq!(log.term(conflict), Ok(4));

        persist(&mut log);
        let mut expected = terms(&run(1, conflict - 1, 1));
        expected.extend([(conflict, 4), (conflict + 1, 4)]);
        assert_eq!(all(&log), expected, "conflict at {conflict}");
    }
}

#[test]
fn matching_append_over_stored_entries_changes_nothing() {
    let mut log = storage_ahead(622, 1);
    assert_eq!(
        log.maybe_append(619, 1, 622, &run(620, 622, 1)),
        Some((0, 622))
    );
    assert!(log.unstable_entries().is_empty());
    assert_eq!(log.committed, 622);
    // 0009: the commit takes the stored entries as persisted.
    assert_eq!((log.persisted, log.unstable.offset), (622, 623));
}

#[test]
fn pending_snapshot_hides_stored_entries() {
    let mut log = storage_ahead(622, 1);
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 630;
    snap.mut_metadata().term = 2;
    log.restore(snap);
    assert_eq!((log.first_index(), log.last_index()), (631, 630));

    // Conflict at the offset: appends right after the snapshot.
    assert_eq!(
        log.maybe_append(630, 2, 630, &[entry(631, 3)]),
        Some((631, 631))
    );
    assert_eq!(log.unstable.offset, 631);
    assert_eq!(
        terms(
            &log.slice(631, 632, None, GetEntriesContext::empty(false))
                .unwrap()
        ),
        vec![(631, 3)]
    );
    // Stored entries under the snapshot are no longer the log.
    assert_eq!(log.maybe_append(621, 1, 630, &[entry(622, 4)]), None);
    // Past offset + 1 is past the log.
    assert_eq!(log.maybe_append(632, 3, 630, &[entry(633, 3)]), None);
}

#[test]
fn append_past_the_log_never_matches() {
    for log_term in [0, 1, 4] {
        let store = MemStorage::new();
        store.wl().append(&run(1, 619, 1)).unwrap();
        let mut log = RaftLog::new(store, default_logger());
        log.committed = 619;

        assert_eq!(
            log.maybe_append(700, log_term, 619, &[entry(701, 4)]),
            None,
            "log_term {log_term}"
        );
        assert_eq!(log.last_index(), 619);
        assert!(log.unstable_entries().is_empty());
        assert!(!log.match_term(700, log_term));
    }
}

#[test]
fn append_past_a_storage_ahead_log_never_matches() {
    let mut log = storage_ahead(622, 1);
    assert_eq!(log.maybe_append(623, 0, 619, &[entry(624, 4)]), None);
    assert_eq!(log.last_index(), 622);
    assert!(log.unstable_entries().is_empty());
}

#[test]
fn compacted_prev_index_never_matches() {
    let store = MemStorage::new();
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 100;
    snap.mut_metadata().term = 1;
    store.wl().apply_snapshot(snap).unwrap();
    store.wl().append(&run(101, 110, 1)).unwrap();
    let mut log = RaftLog::new(store, default_logger());
    log.committed = 105;

    for log_term in [0, 1] {
        assert_eq!(
            log.maybe_append(50, log_term, 105, &[entry(51, 1)]),
            None,
            "log_term {log_term}"
        );
    }
    // The snapshot's own index is the dummy entry and still matches.
    assert!(log.match_term(100, 1));
    assert_eq!(log.last_index(), 110);
}

#[test]
fn fresh_log_matches_index_zero() {
    let mut log = RaftLog::new(MemStorage::new(), default_logger());
    assert_eq!(log.maybe_append(0, 0, 0, &[entry(1, 1)]), Some((1, 1)));
}

#[test]
fn leader_appends_after_its_own_entries_written_outside_the_ready_loop() {
    let mut log = storage_ahead(622, 4);
    assert_eq!(log.last_term(), 4);
    // A proposal lands at last_index + 1.
    assert_eq!(log.append(&[entry(623, 4)]), 623);
    assert_eq!(log.unstable.offset, 623);
    let to_follower = log
        .entries(620, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(terms(&to_follower), terms(&run(620, 623, 4)));
    persist(&mut log);
    assert_eq!(all(&log).last(), Some(&(623, 4)));
}

#[test]
fn direct_append_with_a_gap_past_unstable_entries_or_a_snapshot_names_the_gap() {
    let msg = panic_message(|| {
        let mut log = RaftLog::new(MemStorage::new(), default_logger());
        log.append(&run(1, 3, 1));
        log.append(&[entry(5, 1)]);
    });
    assert!(
        msg.starts_with("appending entries from 5 would leave a gap after last index 3"),
        "{msg}"
    );

    let msg = panic_message(|| {
        let mut log = RaftLog::new(MemStorage::new(), default_logger());
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 10;
        snap.mut_metadata().term = 1;
        log.restore(snap);
        log.append(&[entry(12, 1)]);
    });
    assert!(
        msg.starts_with("appending entries from 12 would leave a gap after last index 10"),
        "{msg}"
    );
}

#[test]
fn direct_append_with_a_gap_names_the_gap() {
    let msg = panic_message(|| {
        let mut log = storage_ahead(622, 1);
        log.append(&[entry(624, 4)]);
    });
    assert!(
        msg.starts_with("appending entries from 624 would leave a gap after last index 622"),
        "{msg}"
    );

    let msg = panic_message(|| {
        let store = MemStorage::new();
        store.wl().append(&run(1, 619, 1)).unwrap();
        let mut log = RaftLog::new(store, default_logger());
        log.append(&[entry(701, 4)]);
    });
    assert!(
        msg.starts_with("appending entries from 701 would leave a gap after last index 619"),
        "{msg}"
    );
}

#[test]
fn committed_entries_storage_holds_past_offset_are_applied() {
    let mut log = storage_ahead(622, 1);
    log.applied = 619;
    assert_eq!(log.persisted, 619);
    log.commit_to(621);
    assert_eq!((log.persisted, log.unstable.offset), (621, 622));
    let ents = log.next_entries_since(619, None).expect("entries to apply");
    assert_eq!(terms(&ents), vec![(620, 1), (621, 1)]);
    // The uncommitted stored entry is still overwritten as 0005 does it.
    assert_eq!(
        log.maybe_append(621, 1, 621, &[entry(622, 4)]),
        Some((622, 622))
    );
    persist(&mut log);
    assert_eq!(all(&log)[619..], [(620, 1), (621, 1), (622, 4)]);
}

#[test]
fn commits_inside_the_known_log_leave_persisted_alone() {
    let store = MemStorage::new();
    store.wl().append(&run(1, 619, 1)).unwrap();
    let mut log = RaftLog::new(store, default_logger());
    log.committed = 619;
    log.append(&run(620, 622, 2));
    log.commit_to(621);
    assert_eq!((log.persisted, log.unstable.offset), (619, 620));
    persist(&mut log);
    log.commit_to(622);
    assert_eq!((log.persisted, log.unstable.offset), (622, 623));
}
