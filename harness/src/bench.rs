//! `harness bench`: the same fault-free workload on both engines in one
//! process. Each round runs both engines back to back, in ABBA order
//! (upstream first in even rounds, the fork first in odd ones), so neither
//! engine always gets the warmer or the cooler second slot; each round's
//! ratio is reported, and their median and spread.
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

/// One round: both engines, in the order they ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Round {
    /// The engine that ran first.
    pub first: EngineKind,
    /// Upstream's rate.
    pub upstream: EngineRate,
    /// The fork's rate.
    pub fork: EngineRate,
    /// fork / upstream in this round.
    pub ratio: f64,
}

/// Both engines' results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// The workload.
    pub workload: BenchWorkload,
    /// Every round.
    pub rounds: Vec<Round>,
    /// Per engine, over all rounds.
    pub engines: std::collections::BTreeMap<EngineKind, EngineRate>,
    /// The median of the rounds' fork / upstream ratios.
    pub ratio: f64,
    /// The lowest and highest round ratio.
    pub ratio_range: (f64, f64),
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
    opts.workload.read_pct = 0;
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

fn rate((entries, took): (u64, Duration)) -> EngineRate {
    EngineRate {
        entries_per_sec: entries as f64 / took.as_secs_f64(),
    }
}

/// The order of round `round`: ABBA.
fn order(round: u32) -> [EngineKind; 2] {
    let [a, b] = EngineKind::ALL;
    if round.is_multiple_of(2) {
        [a, b]
    } else {
        [b, a]
    }
}

/// Runs the benchmark.
pub fn bench(w: BenchWorkload) -> BenchReport {
    let mut totals = [(0u64, Duration::ZERO); 2];
    let mut rounds = Vec::new();
    for round in 0..w.rounds {
        let mut this = [(0u64, Duration::ZERO); 2];
        for engine in order(round) {
            let slot = engine as usize;
            this[slot] = match engine {
                EngineKind::Upstream => timed::<Upstream>(&w),
                EngineKind::Fork => timed::<Fork>(&w),
            };
            totals[slot].0 += this[slot].0;
            totals[slot].1 += this[slot].1;
        }
        let (upstream, fork) = (rate(this[0]), rate(this[1]));
        rounds.push(Round {
            first: order(round)[0],
            upstream,
            fork,
            ratio: fork.entries_per_sec / upstream.entries_per_sec,
        });
    }
    let mut ratios: Vec<f64> = rounds.iter().map(|r| r.ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let median = match ratios.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => ratios[n / 2],
        n => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
    };
    BenchReport {
        workload: w,
        rounds,
        engines: [
            (EngineKind::Upstream, rate(totals[0])),
            (EngineKind::Fork, rate(totals[1])),
        ]
        .into(),
        ratio: median,
        ratio_range: (
            ratios.first().copied().unwrap_or(f64::NAN),
            ratios.last().copied().unwrap_or(f64::NAN),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_run_the_engines_in_abba_order() {
        use EngineKind::{Fork, Upstream};
        let runs: Vec<EngineKind> = (0..4).flat_map(order).collect();
        assert_eq!(
            runs,
            [Upstream, Fork, Fork, Upstream, Upstream, Fork, Fork, Upstream]
        );
    }
}
