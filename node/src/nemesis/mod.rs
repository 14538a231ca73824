//! The nemesis: a 3-node cluster of real processes under client load,
//! with faults injected at random from one seed: SIGKILL and restart of
//! any node or of the leader, SIGSTOP/SIGCONT pauses, and partitions
//! through a [`proxy::LinkProxy`] on every directed peer link. Every client
//! operation goes into a [`history`], which is checked against every
//! node's final log once the faults are healed.
//!
//! The seed fixes the schedule (fault kinds, targets, durations) and the
//! clients' choices; the processes' timing is real, so a replay repeats
//! the schedule, not every interleaving.

pub mod history;
pub mod proxy;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::client::{Client, ClientError};
use crate::cluster::{self, LocalCluster};
use crate::config::Persistence;
use history::{Op, OpKind, Outcome, Violation};
use proxy::LinkProxy;

/// Client operations wait this long for an answer before counting as
/// unknown.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Records asked for by one read.
const READ_MAX: usize = 50;

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
}

/// The faults the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL a random node, restart it later.
    Kill,
    /// SIGKILL the leader, restart it later.
    KillLeader,
    /// SIGSTOP a random node, SIGCONT it later.
    Pause,
    /// Cut every link to and from one node.
    Isolate,
    /// Cut each directed link with probability 0.3.
    CutLinks,
}

const FAULTS: [Fault; 5] = [
    Fault::Kill,
    Fault::KillLeader,
    Fault::Pause,
    Fault::Isolate,
    Fault::CutLinks,
];

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct NemesisReport {
    /// The seed.
    pub seed: u64,
    /// How each node persisted.
    pub persist: BTreeMap<u64, Persistence>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<Fault, u64>,
    /// Appends: acknowledged, refused, unknown.
    pub appends: [u64; 3],
    /// Reads: answered, refused, unknown.
    pub reads: [u64; 3],
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
    /// Processes or proxies could not start.
    #[error("setup: {0}")]
    Setup(#[from] std::io::Error),
    /// The cluster did not converge once the faults were healed.
    #[error("no convergence after healing: {0}")]
    NoConvergence(String),
}

/// The command that replays a seed.
pub fn replay_command(opts: &NemesisOptions) -> String {
    format!(
        "cargo run --release -p raft-node -- nemesis --seed {} --seconds {} --clients {}",
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
    let mut configs = cluster::plan(3, &opts.dir);
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
    }
    let persist = configs.iter().map(|c| (c.id, c.persist)).collect();
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
            tokio::spawn(client_loop(
                c,
                apis.clone(),
                rng,
                history.clone(),
                t0,
                stop_at,
            ))
        })
        .collect();
    let faults = inject(&mut nodes, &proxies, &mut rng, stop_at).await;
    for c in clients {
        c.await.expect("a client does not panic");
    }
    let final_logs = converge(&mut nodes, &apis).await?;
    nodes.stop(Duration::from_secs(5));

    let history = std::mem::take(&mut *history.lock().expect("clients are done"));
    let violations = history::check(&history, &final_logs);
    let lost_acknowledged = violations
        .iter()
        .filter(|v| matches!(v, Violation::Lost { .. }))
        .count() as u64;
    let count = |append: bool, outcome: fn(&OpKind) -> bool| {
        history
            .iter()
            .filter(|op| matches!(op.kind, OpKind::Append { .. }) == append && outcome(&op.kind))
            .count() as u64
    };
    let ok = |k: &OpKind| {
        matches!(
            k,
            OpKind::Append {
                result: Outcome::Ok(_),
                ..
            } | OpKind::Read {
                result: Outcome::Ok(_),
                ..
            }
        )
    };
    let failed = |k: &OpKind| {
        matches!(
            k,
            OpKind::Append {
                result: Outcome::Failed,
                ..
            } | OpKind::Read {
                result: Outcome::Failed,
                ..
            }
        )
    };
    let unknown = |k: &OpKind| {
        matches!(
            k,
            OpKind::Append {
                result: Outcome::Unknown,
                ..
            } | OpKind::Read {
                result: Outcome::Unknown,
                ..
            }
        )
    };
    Ok(NemesisReport {
        seed: opts.seed,
        persist,
        faults,
        appends: [count(true, ok), count(true, failed), count(true, unknown)],
        reads: [
            count(false, ok),
            count(false, failed),
            count(false, unknown),
        ],
        records: final_logs.values().next().map_or(0, |l| l.len() as u64),
        violations,
        panics: panics_in_logs(&nodes),
        lost_acknowledged,
    })
}

/// Injects one fault at a time until `stop_at`, each reverted before the
/// next; returns how many of each kind.
async fn inject(
    nodes: &mut LocalCluster,
    proxies: &BTreeMap<(u64, u64), LinkProxy>,
    rng: &mut StdRng,
    stop_at: Instant,
) -> BTreeMap<Fault, u64> {
    let mut injected = BTreeMap::new();
    let ids = nodes.ids();
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1_000))).await;
        let fault = FAULTS[rng.gen_range(0..FAULTS.len())];
        let victim = ids[rng.gen_range(0..ids.len())];
        let hold = Duration::from_millis(rng.gen_range(300..2_500));
        match fault {
            Fault::Kill | Fault::KillLeader => {
                let target = if fault == Fault::KillLeader {
                    match leader(nodes).await {
                        Some(l) => l,
                        None => continue,
                    }
                } else {
                    victim
                };
                nodes.kill(target);
                tokio::time::sleep(hold).await;
                // A node that cannot be started again shows as not
                // running when the run fails to converge.
                let _ = nodes.restart(target);
            }
            Fault::Pause => {
                nodes.pause(victim);
                tokio::time::sleep(hold).await;
                nodes.resume(victim);
            }
            Fault::Isolate | Fault::CutLinks => {
                let cut: Vec<&LinkProxy> = proxies
                    .iter()
                    .filter(|((from, to), _)| match fault {
                        Fault::Isolate => *from == victim || *to == victim,
                        _ => rng.gen_bool(0.3),
                    })
                    .map(|(_, p)| p)
                    .collect();
                cut.iter().for_each(|p| p.set_cut(true));
                tokio::time::sleep(hold).await;
                cut.iter().for_each(|p| p.set_cut(false));
            }
        }
        *injected.entry(fault).or_default() += 1;
    }
    injected
}

async fn leader(nodes: &mut LocalCluster) -> Option<u64> {
    for id in nodes.ids() {
        let status = tokio::time::timeout(Duration::from_millis(500), async {
            Client::connect(nodes.api(id)).await?.status().await
        })
        .await;
        if let Ok(Ok(s)) = status {
            if s.leader != 0 {
                return Some(s.leader);
            }
        }
    }
    None
}

/// One client: appends (70%) and linearizable reads (30%) to random nodes,
/// one at a time, each recorded with its invocation and completion.
async fn client_loop(
    client: usize,
    apis: Vec<SocketAddr>,
    mut rng: StdRng,
    history: Arc<Mutex<Vec<Op>>>,
    t0: Instant,
    stop_at: Instant,
) {
    let mut connections: BTreeMap<SocketAddr, Client> = BTreeMap::new();
    let mut seen_end = 0;
    let mut n = 0;
    while Instant::now() < stop_at {
        let api = apis[rng.gen_range(0..apis.len())];
        let invoke_us = t0.elapsed().as_micros() as u64;
        let kind = if rng.gen_bool(0.7) {
            let value = format!("c{client}-{n}");
            n += 1;
            let records = vec![value.clone()];
            let answer = tokio::time::timeout(CLIENT_TIMEOUT, async {
                connection(&mut connections, api)
                    .await?
                    .append(records)
                    .await
            })
            .await;
            let result = classify(answer, &mut connections, api).map(|a| a.offset);
            OpKind::Append { value, result }
        } else {
            let from = rng.gen_range(0..=seen_end);
            let answer = tokio::time::timeout(CLIENT_TIMEOUT, async {
                connection(&mut connections, api)
                    .await?
                    .read(from, READ_MAX, true)
                    .await
            })
            .await;
            let result = classify(answer, &mut connections, api);
            if let Outcome::Ok(read) = &result {
                seen_end = seen_end.max(read.end);
            }
            OpKind::Read { from, result }
        };
        let complete_us = t0.elapsed().as_micros() as u64;
        let answered = matches!(
            kind,
            OpKind::Append {
                result: Outcome::Ok(_),
                ..
            } | OpKind::Read {
                result: Outcome::Ok(_),
                ..
            }
        );
        history
            .lock()
            .expect("no client panics holding it")
            .push(Op {
                invoke_us,
                complete_us,
                kind,
            });
        if !answered {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn connection(
    connections: &mut BTreeMap<SocketAddr, Client>,
    api: SocketAddr,
) -> Result<&mut Client, ClientError> {
    Ok(match connections.entry(api) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(Client::connect(api).await?),
    })
}

/// A refusal for want of a leader is definite (raft never saw the
/// request); anything else without an answer may have taken effect. A
/// broken or timed-out connection is dropped.
fn classify<T>(
    answer: Result<Result<T, ClientError>, tokio::time::error::Elapsed>,
    connections: &mut BTreeMap<SocketAddr, Client>,
    api: SocketAddr,
) -> Outcome<T> {
    match answer {
        Ok(Ok(answer)) => Outcome::Ok(answer),
        Ok(Err(e))
            if e.status().is_some_and(|s| s.as_u16() == 503)
                && e.to_string().contains("no leader") =>
        {
            Outcome::Failed
        }
        Ok(Err(e)) => {
            if e.status().is_none() {
                connections.remove(&api);
            }
            Outcome::Unknown
        }
        Err(_) => {
            connections.remove(&api);
            Outcome::Unknown
        }
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
        "seed {} (persist {:?}): faults {:?}; appends ok/refused/unknown {:?}; reads ok/refused/unknown {:?}; \
         final log {} records; violations {}; acknowledged records lost {}; panics {}; logs in {}",
        report.seed,
        report.persist,
        report.faults,
        report.appends,
        report.reads,
        report.records,
        report.violations.len(),
        report.lost_acknowledged,
        report.panics.len(),
        dir.display()
    )
}

/// Totals over several schedules.
#[derive(Debug, Default)]
pub struct Totals {
    /// Schedules run.
    pub schedules: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<Fault, u64>,
    /// Appends: acknowledged, refused, unknown.
    pub appends: [u64; 3],
    /// Reads: answered, refused, unknown.
    pub reads: [u64; 3],
    /// Checker violations.
    pub violations: u64,
    /// Acknowledged records lost.
    pub lost_acknowledged: u64,
    /// Seeds that failed, with why and the replay command.
    pub failures: Vec<String>,
}

impl Totals {
    /// One line per total.
    pub fn render(&self) -> String {
        let faults: u64 = self.faults.values().sum();
        format!(
            "schedules {}; faults {} {:?}; appends ok/refused/unknown {:?}; reads ok/refused/unknown {:?}; \
             violations {}; acknowledged records lost {}; failed seeds {}",
            self.schedules,
            faults,
            self.faults,
            self.appends,
            self.reads,
            self.violations,
            self.lost_acknowledged,
            self.failures.len()
        )
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
