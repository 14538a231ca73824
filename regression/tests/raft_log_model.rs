//! The fork's `RaftLog` against a plain model log, over random sequences of
//! appends (matching, conflicting, past the log), writes that reach storage
//! outside the Ready loop, persists, commits, snapshots and compactions.
//! After every step both hold the same entries and the same bounds, and the
//! fork never panics or leaves a gap.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use raft::eraftpb::{Entry, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftLog, Storage};

/// The log as it should be: `terms[i]` is the term of index `first + i`.
#[derive(Debug)]
struct Model {
    first: u64,
    terms: Vec<u64>,
    committed: u64,
    /// The highest term seen, so a new leader's entries can exceed it.
    max_term: u64,
}

impl Model {
    fn last(&self) -> u64 {
        self.first + self.terms.len() as u64 - 1
    }

    fn term(&self, index: u64) -> Option<u64> {
        let offset = index.checked_sub(self.first)?;
        self.terms.get(offset as usize).copied()
    }

    /// Keeps `first..=last`, drops the rest.
    fn truncate_after(&mut self, last: u64) {
        self.terms.truncate((last + 1 - self.first) as usize);
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A follower's append: prev `back` entries below the last (not below
    /// the commit), then `keep` entries the log already has and `new`
    /// entries of a new leader's term; `wrong_prev_term` makes it miss.
    Append {
        back: u8,
        keep: u8,
        new: u8,
        wrong_prev_term: bool,
    },
    /// An append whose prev index lies `ahead` entries past the log.
    AppendPast { ahead: u8, log_term: u8 },
    /// `len` entries continuing the log reach storage outside the Ready loop
    /// (only while unstable holds nothing: the storage-ahead state).
    OutOfBand { len: u8, new_term: bool },
    /// The application persists the Ready: snapshot, then entries.
    Persist,
    /// Commit up to `back` entries below the last.
    Commit { back: u8 },
    /// A snapshot `ahead` (at least 1) entries past the commit index, of a
    /// new term, as a leader sends to a follower that fell behind.
    Snapshot { ahead: u8 },
    /// Storage compaction up to `back` entries below what is persisted.
    Compact { back: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6u8, 0..4u8, 0..5u8, any::<bool>()).prop_map(|(back, keep, new, wrong_prev_term)| {
            Op::Append { back, keep, new, wrong_prev_term }
        }),
        1 => (0..4u8, 0..3u8).prop_map(|(ahead, log_term)| Op::AppendPast { ahead, log_term }),
        3 => (1..5u8, any::<bool>()).prop_map(|(len, new_term)| Op::OutOfBand { len, new_term }),
        3 => Just(Op::Persist),
        2 => (0..4u8).prop_map(|back| Op::Commit { back }),
        1 => (1..4u8).prop_map(|ahead| Op::Snapshot { ahead }),
        1 => (0..4u8).prop_map(|back| Op::Compact { back }),
    ]
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Default::default()
    }
}

fn apply(log: &mut RaftLog<MemStorage>, model: &mut Model, op: &Op) {
    match *op {
        Op::Append {
            back,
            keep,
            new,
            wrong_prev_term,
        } => {
            let prev = model
                .last()
                .saturating_sub(u64::from(back))
                .max(model.committed)
                .max(model.first - 1);
            let prev_term = if prev < model.first {
                log.term(prev).unwrap()
            } else {
                model.term(prev).unwrap()
            };
            let kept = u64::from(keep).min(model.last() - prev);
            let term = model.max_term + 1;
            let mut ents: Vec<Entry> = (prev + 1..=prev + kept)
                .map(|i| entry(i, model.term(i).unwrap()))
                .collect();
            ents.extend((1..=u64::from(new)).map(|k| entry(prev + kept + k, term)));
            let sent_term = if wrong_prev_term {
                prev_term + 1
            } else {
                prev_term
            };

            let got = log.maybe_append(prev, sent_term, model.committed, &ents);
            if wrong_prev_term {
                assert_eq!(got, None);
                return;
            }
            let conflict = ents
                .iter()
                .find(|e| model.term(e.index) != Some(e.term))
                .map_or(0, |e| e.index);
            if conflict != 0 {
                model.truncate_after(conflict - 1);
                model.terms.extend(
                    ents[(conflict - prev - 1) as usize..]
                        .iter()
                        .map(|e| e.term),
                );
                model.max_term = term;
            }
            assert_eq!(got, Some((conflict, prev + ents.len() as u64)));
        }
        Op::AppendPast { ahead, log_term } => {
            let prev = model.last() + 1 + u64::from(ahead);
            let ents = [entry(prev + 1, model.max_term + 1)];
            assert_eq!(
                log.maybe_append(prev, u64::from(log_term), model.committed, &ents),
                None
            );
        }
        Op::OutOfBand { len, new_term } => {
            if !log.unstable_entries().is_empty() || log.unstable_snapshot().is_some() {
                return;
            }
            if new_term {
                model.max_term += 1;
            }
            let last = model.last();
            let term = if new_term {
                model.max_term
            } else {
                log.last_term()
            };
            let ents: Vec<Entry> = (1..=u64::from(len))
                .map(|k| entry(last + k, term))
                .collect();
            log.store.wl().append(&ents).unwrap();
            model.terms.extend(ents.iter().map(|e| e.term));
        }
        Op::Persist => {
            if let Some(snap) = log.unstable_snapshot().clone() {
                let index = snap.get_metadata().index;
                log.store.wl().apply_snapshot(snap).unwrap();
                log.stable_snap(index);
            }
            if let Some(last) = log.unstable_entries().last().cloned() {
                let ents = log.unstable_entries().to_vec();
                log.store.wl().append(&ents).unwrap();
                log.stable_entries(last.index, last.term);
                log.maybe_persist(last.index, last.term);
            }
        }
        Op::Commit { back } => {
            let to = model.last().saturating_sub(u64::from(back));
            if to > model.committed {
                log.commit_to(to);
                model.committed = to;
            }
        }
        Op::Snapshot { ahead } => {
            let index = model.committed + u64::from(ahead);
            model.max_term += 1;
            let mut snap = Snapshot::default();
            snap.mut_metadata().index = index;
            snap.mut_metadata().term = model.max_term;
            snap.mut_metadata().mut_conf_state().voters = vec![1];
            log.restore(snap);
            model.first = index + 1;
            model.terms.clear();
            model.committed = index;
        }
        Op::Compact { back } => {
            if log.unstable_snapshot().is_some() {
                return;
            }
            let at = log
                .persisted
                .min(model.committed)
                .saturating_sub(u64::from(back));
            if at > model.first {
                log.store.wl().compact(at).unwrap();
                model.terms.drain(..(at - model.first) as usize);
                model.first = at;
            }
        }
    }
}

fn check(log: &RaftLog<MemStorage>, model: &Model) {
    assert_eq!(log.first_index(), model.first, "first index");
    assert_eq!(log.last_index(), model.last(), "last index");
    assert_eq!(log.committed, model.committed, "committed");
    for index in model.first..=model.last() {
        assert_eq!(
            log.term(index),
            Ok(model.term(index).unwrap()),
            "term({index})"
        );
    }
    let all = log
        .slice(
            model.first,
            model.last() + 1,
            None,
            GetEntriesContext::empty(false),
        )
        .unwrap();
    let got: Vec<(u64, u64)> = all.iter().map(|e| (e.index, e.term)).collect();
    let want: Vec<(u64, u64)> = (model.first..=model.last())
        .map(|i| (i, model.term(i).unwrap()))
        .collect();
    assert_eq!(got, want, "entries");

    // Once nothing is unstable, storage holds exactly the log.
    if log.unstable_entries().is_empty() && log.unstable_snapshot().is_none() {
        let store = log.store();
        assert_eq!(
            store.last_index().unwrap(),
            model.last(),
            "storage last index"
        );
        if !want.is_empty() {
            let stored = store
                .entries(
                    model.first,
                    model.last() + 1,
                    None,
                    GetEntriesContext::empty(false),
                )
                .unwrap();
            let stored: Vec<(u64, u64)> = stored.iter().map(|e| (e.index, e.term)).collect();
            assert_eq!(stored, want, "storage entries");
        }
    }
}

proptest! {
    // A fixed seed: every run explores the same cases, and a failure
    // replays with plain `cargo test`.
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(620),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fork_raft_log_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        let store = MemStorage::new();
        store.wl().append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>()).unwrap();
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut log = RaftLog::new(store, logger);
        log.commit_to(2);
        let mut model = Model { first: 1, terms: vec![1; 5], committed: 2, max_term: 1 };
        check(&log, &model);
        for op in &ops {
            apply(&mut log, &mut model, op);
            check(&log, &model);
        }
    }
}
