//! The nemesis: a 3-node cluster of real processes under client load,
//! with faults injected at random from one seed ([`faults`]): SIGKILL and
//! restart of any node or of the leader, power loss of one node, of two at
//! once or of the whole cluster (each data directory on LazyFS,
//! [`power`]), SIGSTOP/SIGCONT pauses, partitions through a
//! [`proxy::LinkProxy`] on every directed peer link, leader transfers,
//! and membership changes (a voter removed, wiped and added back under a
//! new id). Every client operation goes into a [`history`], which is
//! checked against every node's final log once the faults are healed.
//!
//! The seed fixes the schedule (fault kinds, targets, durations) and the
//! clients' choices; the processes' timing is real, so a replay repeats
//! the schedule, not every interleaving.

mod clients;
pub mod faults;
pub mod history;
pub mod power;
pub mod proxy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::cluster::{self, LocalCluster};
use crate::config::Persistence;
pub use faults::Fault;
use faults::{Injected, Target};
use history::{Op, OpKind, Outcome, Violation};
use power::PowerMount;
use proxy::LinkProxy;

/// How long after a fault that takes the leader away an operation counts
/// as crossing the election.
const ELECTION_WINDOW_US: u64 = 3_000_000;

/// One nemesis run.
#[derive(Debug, Clone)]
pub struct NemesisOptions {
    /// Drives every random choice.
    pub seed: u64,
    /// Seconds of faults under load.
    pub seconds: f64,
    /// Concurrent clients.
    pub clients: usize,
    /// The `raft-node` binary.
    pub binary: PathBuf,
    /// Where the nodes keep their WALs and logs.
    pub dir: PathBuf,
    /// The LazyFS binary: with it, every data directory is a LazyFS mount
    /// and power loss is among the faults; without, it is not.
    pub lazyfs: Option<PathBuf>,
    /// Run the nodes with `--unsafe-no-fsync`, to show that power loss
    /// then loses acknowledged records.
    pub unsafe_no_fsync: bool,
    /// The faults to draw from; empty for all (power loss only with
    /// LazyFS).
    pub faults: Vec<Fault>,
}

/// Operations invoked within [`ELECTION_WINDOW_US`] of a fault that took
/// the leader away while the others could elect a new one: the latencies
/// of those acknowledged, in milliseconds, and how many were not.
#[derive(Debug, Clone)]
pub struct ElectionLatency {
    /// Acknowledged appends.
    pub appends: Histogram<u64>,
    /// Answered reads.
    pub reads: Histogram<u64>,
    /// Appends refused or unanswered, reads the same.
    pub not_acknowledged: [u64; 2],
}

impl Default for ElectionLatency {
    fn default() -> Self {
        let ms = || Histogram::new_with_bounds(1, 600_000, 3).expect("valid bounds");
        ElectionLatency {
            appends: ms(),
            reads: ms(),
            not_acknowledged: [0; 2],
        }
    }
}

impl ElectionLatency {
    fn of(history: &[Op], injected: &[Injected]) -> ElectionLatency {
        let mut latency = ElectionLatency::default();
        let starts: Vec<u64> = injected
            .iter()
            .filter(|i| i.deposed_leader)
            .map(|i| i.at_us)
            .collect();
        for op in history {
            let crosses = starts
                .iter()
                .any(|&s| op.invoke_us >= s && op.invoke_us < s + ELECTION_WINDOW_US);
            if !crosses {
                continue;
            }
            let ms = (op.complete_us.saturating_sub(op.invoke_us) / 1_000).max(1);
            let (histogram, slot, acknowledged) = match &op.kind {
                OpKind::Append { result, .. } => {
                    (&mut latency.appends, 0, matches!(result, Outcome::Ok(_)))
                }
                OpKind::Read { result, .. } => {
                    (&mut latency.reads, 1, matches!(result, Outcome::Ok(_)))
                }
            };
            if acknowledged {
                histogram.saturating_record(ms);
            } else {
                latency.not_acknowledged[slot] += 1;
            }
        }
        latency
    }

    fn add(&mut self, other: &ElectionLatency) {
        self.appends.add(&other.appends).expect("same bounds");
        self.reads.add(&other.reads).expect("same bounds");
        for i in 0..2 {
            self.not_acknowledged[i] += other.not_acknowledged[i];
        }
    }

    /// A Markdown table: acknowledged operations' percentiles, and the
    /// count of the rest.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "| ops invoked within 3 s of losing the leader | acknowledged | p50 ms | p99 ms | p99.9 ms | max ms | refused or unanswered |\n|---|---|---|---|---|---|---|\n",
        );
        for (what, h, not) in [
            ("appends", &self.appends, self.not_acknowledged[0]),
            ("linearizable reads", &self.reads, self.not_acknowledged[1]),
        ] {
            out += &format!(
                "| {what} | {} | {} | {} | {} | {} | {not} |\n",
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        out
    }
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct NemesisReport {
    /// The seed.
    pub seed: u64,
    /// How each founding node persisted.
    pub persist: BTreeMap<u64, Persistence>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<Fault, u64>,
    /// Membership changes given up part-way (the leader kept moving).
    pub incomplete: u64,
    /// Appends: acknowledged, refused, unknown.
    pub appends: [u64; 3],
    /// Reads: answered, refused, unknown.
    pub reads: [u64; 3],
    /// Latencies across elections.
    pub election: ElectionLatency,
    /// Records in the final log.
    pub records: u64,
    /// What the checker found.
    pub violations: Vec<Violation>,
    /// Lines of node logs reporting a panic.
    pub panics: Vec<String>,
    /// Acknowledged appends missing from the final log.
    pub lost_acknowledged: u64,
}

impl NemesisReport {
    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.panics.is_empty()
    }
}

/// Why a run could not complete (as opposed to finding a violation).
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    /// Processes, proxies or mounts could not start, or LazyFS failed.
    #[error("setup: {0}")]
    Setup(#[from] std::io::Error),
    /// The cluster's certificates could not be made.
    #[error("setup: {0}")]
    Certificates(#[from] crate::tls::TlsError),
    /// The cluster did not converge once the faults were healed.
    #[error("no convergence after healing: {0}")]
    NoConvergence(String),
}

/// The command that replays a seed.
pub fn replay_command(opts: &NemesisOptions) -> String {
    let lazyfs = opts
        .lazyfs
        .as_ref()
        .map(|p| format!(" --lazyfs {}", p.display()))
        .unwrap_or_default();
    let no_fsync = if opts.unsafe_no_fsync {
        " --unsafe-no-fsync"
    } else {
        ""
    };
    format!(
        "cargo run --release -p raft-node -- nemesis --seed {} --seconds {} --clients {}{lazyfs}{no_fsync}",
        opts.seed, opts.seconds, opts.clients
    )
}

/// Runs one schedule.
///
/// # Errors
///
/// [`NemesisError`]: setup failed or the cluster did not converge (itself
/// a liveness failure worth the replay command).
pub async fn run(opts: &NemesisOptions) -> Result<NemesisReport, NemesisError> {
    let stop = CancellationToken::new();
    let _stop_proxies = stop.clone().drop_guard();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut configs = cluster::plan(3, &opts.dir)?;
    // Snapshots often enough that restarted nodes also catch up by one;
    // each node persists synchronously or asynchronously, by the seed.
    for c in &mut configs {
        c.snapshot_entries = 1_000;
        c.log_tail_entries = 200;
        c.persist = if rng.gen_bool(0.5) {
            Persistence::Async
        } else {
            Persistence::Sync
        };
        c.unsafe_no_fsync = opts.unsafe_no_fsync;
    }
    let persist = configs.iter().map(|c| (c.id, c.persist)).collect();
    // Declared before the nodes, so dropped after them: a mount cannot be
    // unmounted while a node holds files open on it.
    let mut mounts = BTreeMap::new();
    if let Some(lazyfs) = &opts.lazyfs {
        std::fs::create_dir_all(&opts.dir)?;
        for c in &configs {
            mounts.insert(c.id, PowerMount::start(lazyfs, &c.dir)?);
        }
    }
    let mut proxies = BTreeMap::new();
    for from in &configs {
        for to in &configs {
            if from.id != to.id {
                let proxy = LinkProxy::start(to.listen(), stop.clone()).await?;
                proxies.insert((from.id, to.id), proxy);
            }
        }
    }
    for c in &mut configs {
        for (&(from, to), proxy) in &proxies {
            if from == c.id {
                c.peers.insert(to, proxy.addr());
            }
        }
    }
    let apis: Vec<SocketAddr> = configs.iter().map(|c| c.api).collect();
    let next_id = configs.len() as u64 + 1;
    let mut nodes = LocalCluster::start(&opts.binary, configs)?;
    nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .map_err(NemesisError::NoConvergence)?;

    let t0 = Instant::now();
    let stop_at = t0 + Duration::from_secs_f64(opts.seconds);
    let history = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..opts.clients)
        .map(|c| {
            let rng =
                StdRng::seed_from_u64(opts.seed.wrapping_mul(1_000).wrapping_add(c as u64 + 1));
            tokio::spawn(clients::client_loop(
                c,
                apis.clone(),
                rng,
                history.clone(),
                t0,
                stop_at,
            ))
        })
        .collect();
    let mut target = Target {
        nodes: &mut nodes,
        proxies: &mut proxies,
        mounts: &mut mounts,
        next_id,
        stop: stop.clone(),
    };
    let injected = faults::inject(&mut target, &opts.faults, &mut rng, t0, stop_at).await;
    for c in clients {
        c.await.expect("a client does not panic");
    }
    let injected = injected?;
    let final_logs = converge(&mut nodes, &apis).await?;
    nodes.stop(Duration::from_secs(5));

    let history = std::mem::take(&mut *history.lock().expect("clients are done"));
    let mut violations = history::check(&history, &final_logs);
    let majority_down: Vec<(u64, u64)> =
        injected.iter().filter_map(|i| i.majority_down_us).collect();
    violations.extend(history::acknowledged_while_majority_down(
        &history,
        &majority_down,
    ));
    let lost_acknowledged = violations
        .iter()
        .filter(|v| matches!(v, Violation::Lost { .. }))
        .count() as u64;
    let mut faults = BTreeMap::new();
    for i in &injected {
        *faults.entry(i.fault).or_default() += 1;
    }
    let outcomes = |append: bool| {
        let mut counts = [0; 3];
        for op in &history {
            let slot = match &op.kind {
                OpKind::Append { result, .. } if append => outcome_slot(result),
                OpKind::Read { result, .. } if !append => outcome_slot(result),
                _ => continue,
            };
            counts[slot] += 1;
        }
        counts
    };
    Ok(NemesisReport {
        seed: opts.seed,
        persist,
        faults,
        incomplete: injected.iter().filter(|i| !i.completed).count() as u64,
        appends: outcomes(true),
        reads: outcomes(false),
        election: ElectionLatency::of(&history, &injected),
        records: final_logs.values().next().map_or(0, |l| l.len() as u64),
        violations,
        panics: panics_in_logs(&nodes),
        lost_acknowledged,
    })
}

/// 0 acknowledged, 1 refused, 2 unknown.
fn outcome_slot<T>(outcome: &Outcome<T>) -> usize {
    match outcome {
        Outcome::Ok(_) => 0,
        Outcome::Failed => 1,
        Outcome::Unknown => 2,
    }
}

/// Waits until every node has applied the same log, then reads it from
/// each.
async fn converge(
    nodes: &mut LocalCluster,
    apis: &[SocketAddr],
) -> Result<BTreeMap<u64, Vec<String>>, NemesisError> {
    let leader = nodes
        .wait_for_leader(Duration::from_secs(30))
        .await
        .map_err(NemesisError::NoConvergence)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut states = Vec::new();
        for &api in apis {
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), async {
                Client::connect(api).await?.status().await
            })
            .await
            {
                states.push((s.commit, s.applied, s.records));
            }
        }
        if states.len() == apis.len() && states.iter().all(|s| *s == states[0] && s.0 == s.1) {
            break;
        }
        if Instant::now() > deadline {
            let down: Vec<u64> = nodes
                .ids()
                .into_iter()
                .filter(|&id| !nodes.is_up(id))
                .collect();
            return Err(NemesisError::NoConvergence(format!(
                "leader {leader}; (commit, applied, records) of the nodes that answered: {states:?}; \
                 processes not running: {down:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut logs = BTreeMap::new();
    for id in nodes.ids() {
        let api = nodes.api(id);
        let read = async { Client::connect(api).await?.read_all().await };
        let (first, log) = read
            .await
            .map_err(|e| NemesisError::NoConvergence(e.to_string()))?;
        if first != 0 {
            return Err(NemesisError::NoConvergence(format!(
                "node {id} keeps offsets from {first} only: the run outgrew retention_records"
            )));
        }
        logs.insert(id, log);
    }
    Ok(logs)
}

fn panics_in_logs(nodes: &LocalCluster) -> Vec<String> {
    nodes
        .ids()
        .into_iter()
        .flat_map(|id| {
            let text = std::fs::read_to_string(nodes.log_path(id)).unwrap_or_default();
            text.lines()
                .filter(|l| l.contains("panicked"))
                .map(|l| format!("node {id}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A one-paragraph account of a run.
pub fn render(report: &NemesisReport, dir: &Path) -> String {
    format!(
        "seed {} (persist {:?}): faults {:?} ({} membership changes given up); \
         appends ok/refused/unknown {:?}; reads ok/refused/unknown {:?}; \
         final log {} records; violations {}; acknowledged records lost {}; panics {}; logs in {}",
        report.seed,
        report.persist,
        report.faults,
        report.incomplete,
        report.appends,
        report.reads,
        report.records,
        report.violations.len(),
        report.lost_acknowledged,
        report.panics.len(),
        dir.display()
    ) + &first_violations(report)
}

/// The first few violations, on a line of their own, if any.
fn first_violations(report: &NemesisReport) -> String {
    if report.violations.is_empty() {
        return String::new();
    }
    let first: Vec<String> = report
        .violations
        .iter()
        .take(3)
        .map(|v| format!("{v:?}"))
        .collect();
    format!("\n  first violations: {}", first.join("; "))
}

/// Totals over several schedules.
#[derive(Debug, Default)]
pub struct Totals {
    /// Schedules run.
    pub schedules: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<Fault, u64>,
    /// Membership changes given up part-way.
    pub incomplete: u64,
    /// Appends: acknowledged, refused, unknown.
    pub appends: [u64; 3],
    /// Reads: answered, refused, unknown.
    pub reads: [u64; 3],
    /// Latencies across elections.
    pub election: ElectionLatency,
    /// Checker violations.
    pub violations: u64,
    /// Acknowledged records lost.
    pub lost_acknowledged: u64,
    /// Seeds that failed, with why and the replay command.
    pub failures: Vec<String>,
}

impl Totals {
    /// The totals as a Markdown table, then the failed seeds' count.
    pub fn render(&self) -> String {
        let mut out = String::from("| | count |\n|---|---|\n");
        out += &format!("| schedules | {} |\n", self.schedules);
        for (fault, n) in &self.faults {
            out += &format!("| fault: {fault:?} | {n} |\n");
        }
        out += &format!("| membership changes given up | {} |\n", self.incomplete);
        for (what, counts) in [("appends", self.appends), ("reads", self.reads)] {
            for (outcome, n) in ["acknowledged", "refused (503)", "unknown"]
                .iter()
                .zip(counts)
            {
                out += &format!("| {what} {outcome} | {n} |\n");
            }
        }
        out += &format!("| violations | {} |\n", self.violations);
        out += &format!(
            "| acknowledged records lost | {} |\n",
            self.lost_acknowledged
        );
        out += &format!(
            "\n{}\nfailed seeds: {}",
            self.election.render(),
            self.failures.len()
        );
        out
    }
}

/// Runs `schedules` seeds from `base.seed` on, each in its own directory
/// under `base.dir`; `progress` gets a line per schedule.
pub async fn run_schedules(
    base: &NemesisOptions,
    schedules: u64,
    mut progress: impl FnMut(&str),
) -> Totals {
    let mut totals = Totals::default();
    for seed in base.seed..base.seed + schedules {
        let opts = NemesisOptions {
            seed,
            dir: base.dir.join(format!("seed-{seed}")),
            ..base.clone()
        };
        totals.schedules += 1;
        match run(&opts).await {
            Ok(report) => {
                progress(&render(&report, &opts.dir));
                for (fault, n) in &report.faults {
                    *totals.faults.entry(*fault).or_default() += n;
                }
                totals.incomplete += report.incomplete;
                totals.election.add(&report.election);
                for i in 0..3 {
                    totals.appends[i] += report.appends[i];
                    totals.reads[i] += report.reads[i];
                }
                totals.violations += report.violations.len() as u64;
                totals.lost_acknowledged += report.lost_acknowledged;
                if !report.passed() {
                    let first: Vec<String> = report
                        .violations
                        .iter()
                        .map(|v| format!("{v:?}"))
                        .chain(report.panics.iter().cloned())
                        .take(5)
                        .collect();
                    totals.failures.push(format!(
                        "seed {seed}: {}\n  replay: {}",
                        first.join("; "),
                        replay_command(&opts)
                    ));
                }
            }
            Err(e) => {
                progress(&format!("seed {seed}: {e}"));
                totals.failures.push(format!(
                    "seed {seed}: {e}\n  replay: {}",
                    replay_command(&opts)
                ));
            }
        }
    }
    totals
}
