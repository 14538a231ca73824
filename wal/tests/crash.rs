//! Crash safety with real processes: a child appends (and overwrites) and
//! syncs, reporting each operation before it writes and after it is
//! durable; the parent kills it with SIGKILL at a random moment, reopens
//! the WAL and checks that it holds every acknowledged operation, with
//! identical bytes, and nothing but what the operations after it wrote.
//!
//! `WAL_CRASH_KILLS=200 cargo test -p raft-wal-storage --release --test
//! crash` is the long mode; the default run kills 5 times.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use raft::{GetEntriesContext, Storage};
use raft_proto::eraftpb::Entry;
use raft_wal_storage::{WalOptions, WalStorage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHILD_DIR: &str = "WAL_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "WAL_CRASH_CHILD_SEED";
const ENTRY_BYTES: usize = 256;

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

/// The child: appends and overwrites until killed.
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
    loop {
        let op = if last > 0 && rng.gen_bool(0.2) {
            term += 1;
            let start = (last + 1)
                .saturating_sub(rng.gen_range(1..=8))
                .max(store.first_index().unwrap());
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
    // Terms of entries 1..=len, as last recovered.
    let mut log: Vec<u64> = Vec::new();
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

        // Operations in order, and how many were acknowledged.
        let mut ops = Vec::new();
        let mut acked = 0;
        for line in &lines {
            // The test harness's own "test ... " may start the first line.
            let words: Vec<&str> = line.split_whitespace().collect();
            let from = words
                .iter()
                .position(|w| *w == "begin" || *w == "ack")
                .unwrap_or(words.len());
            match &words[from..] {
                ["begin", s, e, t] => ops.push(Op {
                    start: s.parse().unwrap(),
                    end: e.parse().unwrap(),
                    term: t.parse().unwrap(),
                }),
                ["ack"] => acked = ops.len(),
                _ => {}
            }
        }
        acked_total += acked;

        let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
        let last = store.last_index().unwrap();
        let recovered: Vec<Entry> = store
            .entries(1, last + 1, None, GetEntriesContext::empty(false))
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
        assert!(
            candidates.contains(&recovered_terms),
            "round {round}: recovered {} entries, {} acknowledged ops of {}",
            recovered_terms.len(),
            acked,
            ops.len()
        );
        log = recovered_terms;
    }
    eprintln!(
        "{kills} kills, {acked_total} acknowledged operations, {} entries at the end",
        log.len()
    );
    assert!(
        acked_total as u64 > kills,
        "the child acknowledged {acked_total} operations"
    );
}
