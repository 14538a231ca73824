//! `harness bench`: the same fault-free workload on both engines in one
//! process, interleaved (upstream, fork, upstream, fork, ...) so that drift
//! of the machine affects both alike.
//!
//! The workload: a healthy cluster, synchronous durability (one sync per
//! Ready, in memory or a real fdatasync on the WAL), the client proposing a
//! batch of entries to the leader every tick, every safety checker on, the
//! trace off. Nodes compact their logs as they go.

use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineKind, Fork, Upstream};
use crate::run::Simulation;
use crate::scenario::{Options, Overrides, Scenario};
use crate::world::storage::StorageKind;
use crate::world::trace::TraceLevel;
use crate::world::Durability;

/// What `bench` runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchWorkload {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Entries proposed per tick.
    pub batch: u64,
    /// Bytes per entry.
    pub entry_bytes: usize,
    /// Entries committed per run.
    pub entries_per_run: u64,
    /// Runs per engine.
    pub rounds: u32,
    /// What nodes store their log on.
    pub storage: StorageKind,
}

/// One engine's result.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct EngineRate {
    /// Committed (acknowledged) entries per second.
    pub entries_per_sec: f64,
}

/// Both engines' results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// The workload.
    pub workload: BenchWorkload,
    /// Per engine.
    pub engines: std::collections::BTreeMap<EngineKind, EngineRate>,
    /// fork / upstream.
    pub ratio: f64,
}

/// Ticks between compactions of every node's log.
const COMPACT_EVERY_TICKS: u64 = 64;

fn options(w: &BenchWorkload) -> Options {
    let overrides = Overrides {
        nodes: Some(w.nodes),
        steps: Some(0),
        storage: Some(w.storage),
    };
    let mut opts = Options::derive(Scenario::Chaos, 0, overrides);
    opts.links.clear();
    opts.faults = Default::default();
    opts.world.durability = Durability::Sync;
    opts.world.pre_vote = false;
    opts.workload.propose_pct = 100;
    opts.workload.batch_min = w.batch;
    opts.workload.batch_max = w.batch;
    opts.workload.entry_bytes = w.entry_bytes;
    opts
}

/// One timed run: entries committed and the time it took.
fn timed<E: Engine>(w: &BenchWorkload) -> (u64, Duration) {
    let opts = options(w);
    let mut sim = Simulation::<E>::new(&opts, TraceLevel::Off).expect("a fresh cluster starts");
    let started = Instant::now();
    let mut ticks = 0u64;
    while sim.committed() < w.entries_per_run {
        sim.step(false).expect("a fault-free run stays safe");
        ticks += 1;
        if ticks.is_multiple_of(COMPACT_EVERY_TICKS) {
            sim.compact_all();
        }
    }
    (sim.committed(), started.elapsed())
}

/// Runs the benchmark.
pub fn bench(w: BenchWorkload) -> BenchReport {
    let mut totals = [(0u64, Duration::ZERO); 2];
    for _ in 0..w.rounds {
        for (i, engine) in EngineKind::ALL.into_iter().enumerate() {
            let (entries, took) = match engine {
                EngineKind::Upstream => timed::<Upstream>(&w),
                EngineKind::Fork => timed::<Fork>(&w),
            };
            totals[i].0 += entries;
            totals[i].1 += took;
        }
    }
    let rate = |(entries, took): (u64, Duration)| EngineRate {
        entries_per_sec: entries as f64 / took.as_secs_f64(),
    };
    let (up, fork) = (rate(totals[0]), rate(totals[1]));
    BenchReport {
        workload: w,
        engines: [(EngineKind::Upstream, up), (EngineKind::Fork, fork)].into(),
        ratio: fork.entries_per_sec / up.entries_per_sec,
    }
}
