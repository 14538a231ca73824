//! Writes a log of N entries (default 1,000,000) of 256 bytes, reopens it
//! in a fresh process state, and prints the resident memory: the index and
//! the window, not the log.
//!
//!     cargo run --release -p raft-wal-storage --example resident [N]

use raft::Storage;
use raft_proto::eraftpb::Entry;
use raft_wal_storage::{WalOptions, WalStorage};

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let entries: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("a count"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
        for first in (1..=entries).step_by(1_000) {
            let batch: Vec<Entry> = (first..first + 1_000.min(entries + 1 - first))
                .map(|index| Entry {
                    index,
                    term: 1,
                    data: vec![7u8; 256].into(),
                    ..Default::default()
                })
                .collect();
            store.append(&batch).unwrap();
        }
        store.sync().unwrap();
    }
    let log_bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let before = resident_kib();
    let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
    let after = resident_kib();
    println!(
        "{} entries, log {} MiB on disk in {} segments; resident {} MiB before open, {} MiB after (window {} entries)",
        store.last_index().unwrap(),
        log_bytes >> 20,
        store.segments(),
        before >> 10,
        after >> 10,
        store.window_len()
    );
}
