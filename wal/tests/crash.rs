//! Crash safety with real processes: a child appends (and overwrites),
//! now and then keeps a snapshot of its state (a file of its own) and
//! compacts the log behind it, and syncs, reporting each operation before
//! it writes and after it is durable; the parent kills it with SIGKILL at a
//! random moment, reopens the WAL and checks that it holds every
//! acknowledged operation, with identical bytes, and nothing but what the
//! operations after it wrote; and that the snapshot served is one the
//! child kept, no older than the last acknowledged, with its bytes.
//!
//! `WAL_CRASH_KILLS=200 cargo test -p raft-wal-storage --release --test
//! crash` is the long mode; the default run kills 5 times.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use raft::{GetEntriesContext, Storage};
use raft_proto::eraftpb::{Entry, Snapshot};
use raft_wal_storage::{WalOptions, WalStorage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHILD_DIR: &str = "WAL_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "WAL_CRASH_CHILD_SEED";
const ENTRY_BYTES: usize = 256;
const STATE_BYTES: usize = 64 << 10;
/// Entries kept before a snapshot when the log is compacted behind it.
const TAIL: u64 = 8;

/// One operation: entries `start..=end` at `term` replace whatever the log
/// held from `start` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Op {
    start: u64,
    end: u64,
    term: u64,
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: common::data(index, term, ENTRY_BYTES).into(),
        ..Default::default()
    }
}

/// The state kept at entry `index` of `term`.
fn snapshot(index: u64, term: u64) -> Snapshot {
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = index;
    snap.mut_metadata().term = term;
    snap.data = common::data(index, term, STATE_BYTES).into();
    snap
}

/// The child: appends, overwrites and snapshots until killed.
fn child(dir: &str, seed: u64) -> ! {
    let store = WalStorage::open(
        dir,
        WalOptions {
            segment_bytes: 256 << 10,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = std::io::stdout().lock();
    let mut last = store.last_index().unwrap();
    let mut term = if last == 0 {
        1
    } else {
        store.term(last).unwrap()
    };
    let mut kept = store.snapshot(0, 0).unwrap().get_metadata().index;
    loop {
        if last > kept && rng.gen_bool(0.1) {
            writeln!(out, "snapshot {last}").unwrap();
            out.flush().unwrap();
            store.set_snapshot(snapshot(last, term)).unwrap();
            store.compact(last.saturating_sub(TAIL).max(1)).unwrap();
            store.sync().unwrap();
            writeln!(out, "ack").unwrap();
            out.flush().unwrap();
            kept = last;
            continue;
        }
        let op = if last > kept + 1 && rng.gen_bool(0.2) {
            term += 1;
            // Like raft, never below what a snapshot holds.
            let start = (last + 1)
                .saturating_sub(rng.gen_range(1..=8))
                .max(kept + 1);
            Op {
                start,
                end: start + rng.gen_range(0..8),
                term,
            }
        } else {
            Op {
                start: last + 1,
                end: last + rng.gen_range(1..=32),
                term,
            }
        };
        writeln!(out, "begin {} {} {}", op.start, op.end, op.term).unwrap();
        out.flush().unwrap();
        let ents: Vec<Entry> = (op.start..=op.end).map(|i| entry(i, op.term)).collect();
        store.append(&ents).unwrap();
        store.sync().unwrap();
        writeln!(out, "ack").unwrap();
        out.flush().unwrap();
        last = op.end;
    }
}

fn apply(log: &mut Vec<u64>, op: Op, whole: bool) {
    log.truncate((op.start - 1) as usize);
    if whole {
        log.extend((op.start..=op.end).map(|_| op.term));
    }
}

#[test]
fn acknowledged_entries_survive_sigkill() {
    if let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_SEED)) {
        child(&dir, seed.parse().unwrap());
    }
    let kills: u64 = std::env::var("WAL_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(620);
    // Terms of entries 1..=len, as last recovered (those compacted away
    // included), and the index of the last snapshot acknowledged.
    let mut log: Vec<u64> = Vec::new();
    let mut snapshot_acked = 0;
    let mut acked_total = 0;
    for round in 0..kills {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "acknowledged_entries_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_SEED, (round + 1).to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        // Operations in order, and how many were acknowledged; snapshots
        // asked for, and the last acknowledged.
        let mut ops = Vec::new();
        let mut acked = 0;
        let mut snapshot_asked = 0;
        for line in &lines {
            // The test harness's own "test ... " may start the first line.
            let words: Vec<&str> = line.split_whitespace().collect();
            let from = words
                .iter()
                .position(|w| *w == "begin" || *w == "ack")
                .unwrap_or(words.len());
            let from = words.iter().position(|w| *w == "snapshot").unwrap_or(from);
            match &words[from..] {
                ["begin", s, e, t] => {
                    ops.push(Op {
                        start: s.parse().unwrap(),
                        end: e.parse().unwrap(),
                        term: t.parse().unwrap(),
                    });
                    snapshot_asked = 0;
                }
                ["snapshot", index] => snapshot_asked = index.parse().unwrap(),
                ["ack"] if snapshot_asked > 0 => snapshot_acked = snapshot_asked,
                ["ack"] => acked = ops.len(),
                _ => {}
            }
        }
        acked_total += acked;

        let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
        let (first, last) = (store.first_index().unwrap(), store.last_index().unwrap());
        let recovered: Vec<Entry> = store
            .entries(first, last + 1, None, GetEntriesContext::empty(false))
            .unwrap();
        let recovered_terms: Vec<u64> = recovered.iter().map(|e| e.term).collect();
        for e in &recovered {
            assert_eq!(
                e,
                &entry(e.index, e.term),
                "round {round}: entry {} has other bytes",
                e.index
            );
        }
        // Every acknowledged operation is there; after them, each later
        // operation either happened or not, or (for an overwrite) only its
        // truncation did.
        let mut expected = log.clone();
        for &op in &ops[..acked] {
            apply(&mut expected, op, true);
        }
        let mut candidates = vec![expected.clone()];
        for &op in &ops[acked..] {
            let mut cut = expected.clone();
            apply(&mut cut, op, false);
            candidates.push(cut);
            apply(&mut expected, op, true);
            candidates.push(expected.clone());
        }
        let kept = store.snapshot(0, 0).unwrap();
        let kept_at = kept.get_metadata().index;
        assert!(
            kept_at >= snapshot_acked,
            "round {round}: snapshot at {kept_at}, {snapshot_acked} was acknowledged"
        );
        if kept_at > 0 {
            assert_eq!(
                kept,
                snapshot(kept_at, kept.get_metadata().term),
                "round {round}: the snapshot at {kept_at} has other bytes"
            );
        }
        // The log from the first index on, and the snapshot's term at its
        // index, are those of one candidate.
        let matching = candidates.into_iter().find(|c| {
            c.len() as u64 == last
                && c[(first - 1) as usize..] == recovered_terms[..]
                && (kept_at == 0 || c[(kept_at - 1) as usize] == kept.get_metadata().term)
        });
        let Some(matching) = matching else {
            panic!(
                "round {round}: recovered entries {first}..={last}, {} acknowledged ops of {}",
                acked,
                ops.len()
            );
        };
        log = matching;
    }
    eprintln!(
        "{kills} kills, {acked_total} acknowledged operations, {} entries at the end, \
         the last snapshot acknowledged at {snapshot_acked}",
        log.len()
    );
    assert!(
        acked_total as u64 > kills && snapshot_acked > 0,
        "the child acknowledged {acked_total} operations, a snapshot at {snapshot_acked}"
    );
}
