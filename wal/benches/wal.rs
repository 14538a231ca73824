//! WAL benchmarks, each side by side with what it is judged against:
//!
//! - `append_sync/{wal,raw}/N`: N entries of 256 bytes appended and
//!   fdatasynced, against a raw write of the same entry bytes plus
//!   fdatasync on the same disk;
//! - `read/{window,disk}`: 100 entries from inside and outside the window;
//! - `recovery`: opening a WAL of `WAL_BENCH_RECOVERY_MB` MiB (default 256),
//!   reported as bytes per second.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft::{GetEntriesContext, Storage};
use raft_proto::eraftpb::Entry;
use raft_wal_storage::{WalOptions, WalStorage};

const ENTRY_BYTES: usize = 256;
/// Entries kept when the benchmark compacts, so its disk use stays bounded.
const KEEP_ENTRIES: u64 = 10_000;

fn batch(first: u64, n: u64) -> Vec<Entry> {
    (first..first + n)
        .map(|index| Entry {
            index,
            term: 1,
            data: vec![(index % 251) as u8; ENTRY_BYTES].into(),
            ..Default::default()
        })
        .collect()
}

fn append_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_sync");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for n in [1u64, 16, 256] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("wal", n), &n, |b, &n| {
            let dir = tempfile::tempdir().unwrap();
            let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
            let mut next = 1;
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let ents = batch(next, n);
                    let start = Instant::now();
                    store.append(&ents).unwrap();
                    store.sync().unwrap();
                    took += start.elapsed();
                    next += n;
                    if next > 2 * KEEP_ENTRIES {
                        store.compact(next - KEEP_ENTRIES).unwrap();
                    }
                }
                took
            });
        });
        group.bench_with_input(BenchmarkId::new("raw", n), &n, |b, &n| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("raw");
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            let mut written = 0u64;
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let bytes: Vec<u8> = batch(1, n).iter().flat_map(|e| e.data.to_vec()).collect();
                    let start = Instant::now();
                    file.write_all(&bytes).unwrap();
                    file.sync_data().unwrap();
                    took += start.elapsed();
                    written += bytes.len() as u64;
                    if written > 64 << 20 {
                        file = File::create(&path).unwrap();
                        written = 0;
                    }
                }
                took
            });
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
    for first in (1..=100_000).step_by(1_000) {
        store.append(&batch(first, 1_000)).unwrap();
    }
    store.sync().unwrap();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(100));
    let ctx = || GetEntriesContext::empty(false);
    group.bench_function("window", |b| {
        b.iter(|| store.entries(99_801, 99_901, None, ctx()).unwrap())
    });
    group.bench_function("disk", |b| {
        b.iter(|| store.entries(50_001, 50_101, None, ctx()).unwrap())
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let mib: u64 = std::env::var("WAL_BENCH_RECOVERY_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().unwrap();
    {
        let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
        let entries = (mib << 20) / ENTRY_BYTES as u64;
        for first in (1..=entries).step_by(4_096) {
            store
                .append(&batch(first, 4_096.min(entries + 1 - first)))
                .unwrap();
        }
        store.sync().unwrap();
    }
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10).throughput(Throughput::Bytes(bytes));
    group.bench_function(format!("{mib}MiB"), |b| {
        b.iter(|| {
            WalStorage::open(dir.path(), WalOptions::default())
                .unwrap()
                .last_index()
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, append_sync, read, recovery);
criterion_main!(benches);
