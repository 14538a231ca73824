//! `harness lease-cost`: what safe lease reads cost. The same schedules run
//! on both engines: lease reads with no faults at all (steady state), then
//! `lease-read` and `lease-transfer` as `compare` runs them. For each, the
//! share of reads a leader sent through a ReadIndex round instead of
//! answering from its lease, and how long clients waited for reads of each
//! kind, in ticks from the client's first sending to the read's serving.
//!
//! Upstream answers every lease read at once, so its rows are the baseline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::engine::EngineKind;
use crate::run::{run, RunOutcome};
use crate::scenario::{FaultRates, Options, Overrides, Scenario};
use crate::world::trace::TraceLevel;

/// The schedules measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// `lease-read`'s cluster and clients, with no fault of any kind: no
    /// partition, crash, transfer, membership change, loss or delay.
    Steady,
    /// The `lease-read` scenario.
    LeaseRead,
    /// The `lease-transfer` scenario.
    LeaseTransfer,
}

impl Schedule {
    /// Every schedule, in report order.
    pub const ALL: [Schedule; 3] = [
        Schedule::Steady,
        Schedule::LeaseRead,
        Schedule::LeaseTransfer,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Steady => "steady",
            Schedule::LeaseRead => "lease-read",
            Schedule::LeaseTransfer => "lease-transfer",
        }
    }

    /// The options of `seed`.
    pub fn options(self, seed: u64) -> Options {
        match self {
            Schedule::Steady => {
                let mut o = Options::derive(Scenario::LeaseRead, seed, Overrides::default());
                o.faults = FaultRates::default();
                o.links.clear();
                o
            }
            Schedule::LeaseRead => Options::derive(Scenario::LeaseRead, seed, Overrides::default()),
            Schedule::LeaseTransfer => {
                Options::derive(Scenario::LeaseTransfer, seed, Overrides::default())
            }
        }
    }
}

/// Read latencies of one kind, in ticks.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Latency {
    /// Reads measured.
    pub reads: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            reads: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// One schedule on one engine, over every seed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// The schedule.
    pub schedule: Schedule,
    /// The engine.
    pub engine: EngineKind,
    /// Lease reads a leader took.
    pub leader_reads: u64,
    /// Of those, the reads it sent through a ReadIndex round.
    pub through_round: u64,
    /// Reads served from a leader's lease (or, on upstream, all reads).
    pub from_lease: Latency,
    /// Reads served after a ReadIndex round.
    pub after_round: Latency,
    /// Those reads, from the leader's sending them through the round.
    pub round: Latency,
}

impl Row {
    /// `through_round` as a share of `leader_reads`.
    pub fn round_share(&self) -> f64 {
        self.through_round as f64 / self.leader_reads.max(1) as f64
    }
}

/// Accumulates one schedule and engine's runs.
struct Tally {
    leader_reads: u64,
    through_round: u64,
    from_lease: Histogram<u64>,
    after_round: Histogram<u64>,
    round: Histogram<u64>,
}

impl Tally {
    fn new() -> Tally {
        let histogram = || Histogram::new(3).expect("3 significant figures is valid");
        Tally {
            leader_reads: 0,
            through_round: 0,
            from_lease: histogram(),
            after_round: histogram(),
            round: histogram(),
        }
    }

    fn add(&mut self, outcome: &RunOutcome) {
        let count = |what: &str| outcome.counts.get(what).copied().unwrap_or(0);
        self.leader_reads += count("lease reads at a leader");
        self.through_round += count("lease reads through a ReadIndex round");
        for read in &outcome.read_latencies {
            let grows = "histograms grow to fit";
            match read.round_ticks {
                Some(round) => {
                    self.after_round.record(read.ticks).expect(grows);
                    self.round.record(round).expect(grows);
                }
                None => self.from_lease.record(read.ticks).expect(grows),
            }
        }
    }

    fn row(&self, schedule: Schedule, engine: EngineKind) -> Row {
        Row {
            schedule,
            engine,
            leader_reads: self.leader_reads,
            through_round: self.through_round,
            from_lease: Latency::of(&self.from_lease),
            after_round: Latency::of(&self.after_round),
            round: Latency::of(&self.round),
        }
    }
}

/// Runs seeds `0..seeds` of every schedule on both engines, on `threads`
/// threads; one row per schedule and engine.
pub fn lease_cost(seeds: u64, threads: usize) -> Vec<Row> {
    let jobs: Vec<(Schedule, EngineKind, u64)> = Schedule::ALL
        .iter()
        .flat_map(|&s| EngineKind::ALL.map(|e| (s, e)))
        .flat_map(|(s, e)| (0..seeds).map(move |seed| (s, e, seed)))
        .collect();
    let tallies: Vec<Mutex<Tally>> = (0..Schedule::ALL.len() * EngineKind::ALL.len())
        .map(|_| Mutex::new(Tally::new()))
        .collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(schedule, engine, seed)) = jobs.get(i) else {
                    break;
                };
                let outcome = run(engine, &schedule.options(seed), TraceLevel::Off);
                let slot = slot(schedule, engine);
                tallies[slot].lock().expect("no tally panics").add(&outcome);
            });
        }
    });
    Schedule::ALL
        .iter()
        .flat_map(|&s| EngineKind::ALL.map(|e| (s, e)))
        .map(|(s, e)| {
            tallies[slot(s, e)]
                .lock()
                .expect("no tally panics")
                .row(s, e)
        })
        .collect()
}

fn slot(schedule: Schedule, engine: EngineKind) -> usize {
    let s = Schedule::ALL
        .iter()
        .position(|&x| x == schedule)
        .expect("listed");
    s * EngineKind::ALL.len() + engine as usize
}

/// The table `lease-cost` prints.
pub fn render(rows: &[Row], seeds: u64) -> String {
    let mut out = format!(
        "{seeds} seeds per schedule and engine. Latencies in ticks (n p50/p99/max): for clients, from a read's first sending to its serving; for the round, from the leader's sending the read through it\n"
    );
    out += &format!(
        "{:<15} {:<9} {:>12} {:>13} {:>7}  {:>22}  {:>22}  {:>18}\n",
        "schedule",
        "engine",
        "leader reads",
        "through round",
        "share",
        "client, from lease",
        "client, after round",
        "round"
    );
    let latency = |l: &Latency| format!("{} {}/{}/{}", l.reads, l.p50, l.p99, l.max);
    for r in rows {
        out += &format!(
            "{:<15} {:<9} {:>12} {:>13} {:>6.2}%  {:>22}  {:>22}  {:>18}\n",
            r.schedule.name(),
            r.engine.name(),
            r.leader_reads,
            r.through_round,
            100.0 * r.round_share(),
            latency(&r.from_lease),
            latency(&r.after_round),
            latency(&r.round),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_answers_every_lease_read_at_once_and_the_fork_sometimes_does_not() {
        let rows = lease_cost(3, 2);
        for r in &rows {
            assert!(r.leader_reads > 0, "{r:?}");
            match r.engine {
                EngineKind::Upstream => assert_eq!((r.through_round, r.after_round.reads), (0, 0)),
                EngineKind::Fork => {
                    assert!(r.through_round > 0, "a new leader has no lease: {r:?}")
                }
            }
        }
        assert!(render(&rows, 3).contains("steady"));
    }
}
