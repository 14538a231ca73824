//! `raft-node bench`: closed-loop producers against a cluster it starts
//! (or one already running), the crash report's workload: 128 producers,
//! 256-byte records, each producer with one request outstanding.
//!
//! Beside records per second and latency it reports CPU per record: the
//! user and system time each process (this client, every node it
//! started) spent in the measured window, from /proc, over the records
//! acknowledged in it. On a 2-core machine that is the unit that decides
//! throughput, and what a change such as TLS between peers costs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::client::Client;
use crate::cluster::{self, LocalCluster};
use crate::config::Persistence;
use crate::metrics::sample;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Concurrent producers, each with one request outstanding.
    pub producers: usize,
    /// Records per request.
    pub batch: usize,
    /// Bytes per record.
    pub record_bytes: usize,
    /// Measured time, after the warm-up.
    pub seconds: f64,
    /// Unmeasured time first.
    pub warmup_seconds: f64,
    /// Whether to draw a progress bar.
    pub progress: bool,
    /// How the nodes it starts persist.
    pub persist: Persistence,
    /// How the nodes it starts secure their peer connections.
    pub peers: PeerMode,
}

/// How a started cluster's peers connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PeerMode {
    /// Mutual TLS, from a throwaway CA.
    Tls,
    /// Plain TCP (`--insecure-peers`).
    Insecure,
}

impl std::fmt::Display for PeerMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerMode::Tls => "tls",
            PeerMode::Insecure => "insecure",
        })
    }
}

/// One process's CPU during the measured time.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    /// `client`, or `node <id>` with ` (leader)` for the leader.
    pub process: String,
    /// User and system CPU microseconds per acknowledged record.
    pub us_per_record: f64,
}

/// One node's disk work during the measured time.
#[derive(Debug, Clone, Serialize)]
pub struct NodeDisk {
    /// The node.
    pub id: u64,
    /// fdatasyncs per second.
    pub fsyncs_per_s: f64,
    /// Raft entries per fdatasync.
    pub entries_per_fsync: f64,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Producers.
    pub producers: usize,
    /// Records per request.
    pub batch: usize,
    /// How the nodes persisted (`sync` or `async`; for a running cluster,
    /// whatever it was started with).
    pub persist: String,
    /// Records acknowledged in the measured time.
    pub records: u64,
    /// Requests that failed (no leader, timeouts).
    pub errors: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Acknowledged records per second.
    pub records_per_s: f64,
    /// Request latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Per node fsyncs.
    pub disk: Vec<NodeDisk>,
    /// How the peers connected (`tls`, `insecure`; for a running cluster,
    /// whatever it was started with).
    pub peers: String,
    /// CPU per record of this client and of each node it started.
    pub cpu: Vec<ProcessCpu>,
}

impl BenchResult {
    /// CPU microseconds per record across every process measured.
    pub fn cpu_us_per_record(&self) -> f64 {
        self.cpu.iter().map(|c| c.us_per_record).sum()
    }
}

/// Why a bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The cluster did not start or elect a leader.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A node could not be reached.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// A process's CPU time could not be read (it exited mid-run).
    #[error("CPU time of {process}: {reason}")]
    Cpu {
        /// The process.
        process: String,
        /// Why.
        reason: String,
    },
}

/// Starts an `n`-node cluster of `binary` under `dir`, measures it, stops it.
///
/// # Errors
///
/// [`BenchError`].
pub async fn run_local(
    binary: &Path,
    n: u64,
    dir: &Path,
    opts: &BenchOptions,
) -> Result<BenchResult, BenchError> {
    let mut configs = cluster::plan(n, dir).map_err(|e| BenchError::Cluster(e.to_string()))?;
    if opts.peers == PeerMode::Insecure {
        for c in &mut configs {
            c.peer_tls = None;
            c.insecure_peers = true;
        }
    }
    let mut nodes =
        LocalCluster::start(binary, configs).map_err(|e| BenchError::Cluster(e.to_string()))?;
    let leader = nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .map_err(BenchError::Cluster)?;
    let apis: Vec<(u64, SocketAddr)> = nodes
        .ids()
        .into_iter()
        .map(|id| (id, nodes.api(id)))
        .collect();
    let processes: Vec<(String, i32)> = nodes
        .ids()
        .into_iter()
        .filter_map(|id| {
            let role = if id == leader { " (leader)" } else { "" };
            Some((format!("node {id}{role}"), nodes.pid(id)? as i32))
        })
        .collect();
    let result = run(nodes.api(leader), &apis, &processes, opts).await;
    nodes.stop(Duration::from_secs(5));
    let mut result = result?;
    result.peers = opts.peers.to_string();
    Ok(result)
}

/// Seconds of user and system CPU the process `name` (`pid`) has used.
fn cpu_seconds((name, pid): &(String, i32)) -> Result<f64, BenchError> {
    procfs::process::Process::new(*pid)
        .and_then(|p| p.stat())
        .map(|s| (s.utime + s.stime) as f64 / procfs::ticks_per_second() as f64)
        .map_err(|e| BenchError::Cpu {
            process: name.clone(),
            reason: e.to_string(),
        })
}

/// Measures a running cluster: producers send to `target`; `nodes` are
/// scraped for their fsync counters; the CPU of this process and of
/// `processes` (named pids) is read from /proc.
///
/// # Errors
///
/// A node's metrics cannot be read.
pub async fn run(
    target: SocketAddr,
    nodes: &[(u64, SocketAddr)],
    processes: &[(String, i32)],
    opts: &BenchOptions,
) -> Result<BenchResult, BenchError> {
    let me = std::process::id() as i32;
    let processes: Vec<(String, i32)> = std::iter::once(("client".to_string(), me))
        .chain(processes.iter().cloned())
        .collect();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(opts.warmup_seconds);
    let stop_at = measure_from + Duration::from_secs_f64(opts.seconds);
    let acked = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(opts);
    let producers: Vec<_> = (0..opts.producers)
        .map(|p| {
            tokio::spawn(produce(
                target,
                p,
                opts.clone(),
                measure_from,
                stop_at,
                acked.clone(),
            ))
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let before = scrape(nodes).await?;
    let cpu_before = processes
        .iter()
        .map(cpu_seconds)
        .collect::<Result<Vec<_>, _>>()?;
    let measured_start = Instant::now();
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
        bar.set_position((measured_start.elapsed().as_secs_f64() * 10.0) as u64);
        bar.set_message(format!("{} records", acked.load(Ordering::Relaxed)));
    }
    let cpu_after = processes
        .iter()
        .map(cpu_seconds)
        .collect::<Result<Vec<_>, _>>()?;
    let after = scrape(nodes).await?;
    let seconds = measured_start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let (mut records, mut errors) = (0, 0);
    for p in producers {
        let outcome = p.await.expect("a producer does not panic");
        latency
            .add(&outcome.latency_us)
            .expect("same-precision histograms");
        records += outcome.records;
        errors += outcome.errors;
    }
    let ms = |q| latency.value_at_quantile(q) as f64 / 1000.0;
    let disk = before
        .iter()
        .zip(&after)
        .map(|((id, b), (_, a))| {
            let fsyncs = a.0 - b.0;
            NodeDisk {
                id: *id,
                fsyncs_per_s: fsyncs / seconds,
                entries_per_fsync: if fsyncs > 0.0 {
                    (a.1 - b.1) / fsyncs
                } else {
                    0.0
                },
            }
        })
        .collect();
    Ok(BenchResult {
        nodes: nodes.len(),
        producers: opts.producers,
        batch: opts.batch,
        persist: opts.persist.to_string(),
        records,
        errors,
        seconds,
        records_per_s: records as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        disk,
        peers: "as started".into(),
        cpu: processes
            .iter()
            .zip(cpu_before.iter().zip(&cpu_after))
            .map(|((process, _), (before, after))| ProcessCpu {
                process: process.clone(),
                us_per_record: (after - before) * 1e6 / records.max(1) as f64,
            })
            .collect(),
    })
}

fn progress_bar(opts: &BenchOptions) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new((opts.seconds * 10.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
            .expect("a valid template"),
    );
    bar
}

/// `(fsyncs, entries persisted)` of every node.
async fn scrape(nodes: &[(u64, SocketAddr)]) -> Result<Vec<(u64, (f64, f64))>, BenchError> {
    let mut out = Vec::new();
    for &(id, api) in nodes {
        let text = Client::connect(api).await?.metrics().await?;
        let fsyncs = sample(&text, "fsyncs_total").unwrap_or(0.0);
        let entries = sample(&text, "entries_persisted_total").unwrap_or(0.0);
        out.push((id, (fsyncs, entries)));
    }
    Ok(out)
}

struct ProducerOutcome {
    latency_us: Histogram<u64>,
    records: u64,
    errors: u64,
}

/// One closed-loop producer: one request outstanding, the next sent when
/// the previous is answered. Only requests sent after `measure_from`
/// count.
async fn produce(
    target: SocketAddr,
    producer: usize,
    opts: BenchOptions,
    measure_from: Instant,
    stop_at: Instant,
    acked: Arc<AtomicU64>,
) -> ProducerOutcome {
    let mut outcome = ProducerOutcome {
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        records: 0,
        errors: 0,
    };
    let mut client = None;
    let mut seq = 0u64;
    while Instant::now() < stop_at {
        let c = match client.as_mut() {
            Some(c) => c,
            None => match Client::connect(target).await {
                Ok(c) => client.insert(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let records = (0..opts.batch)
            .map(|_| {
                seq += 1;
                record(producer, seq, opts.record_bytes)
            })
            .collect();
        let sent = Instant::now();
        let answer = c.append(records).await;
        let counted = sent >= measure_from && Instant::now() <= stop_at;
        match answer {
            Ok(appended) if counted => {
                outcome.records += appended.count;
                acked.fetch_add(appended.count, Ordering::Relaxed);
                let us = sent.elapsed().as_micros() as u64;
                outcome.latency_us.saturating_record(us.max(1));
            }
            Ok(_) => {}
            Err(e) => {
                if counted {
                    outcome.errors += 1;
                }
                if e.status().is_none() {
                    client = None;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    outcome
}

/// A record of exactly `bytes` bytes naming its producer and sequence.
fn record(producer: usize, seq: u64, bytes: usize) -> String {
    let mut r = format!("p{producer}-{seq}-");
    r.truncate(bytes);
    while r.len() < bytes {
        r.push('x');
    }
    r
}

/// The table `raft-node bench` prints, with the 3-to-1 ratio when both ran.
pub fn render(results: &[BenchResult]) -> String {
    let mut out = String::from(
        "| nodes | peers | persist | batch | records/s | p50 ms | p99 ms | p99.9 ms | errors | fsyncs/s per node | entries per fsync per node | CPU µs/record | per process |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let fsyncs: Vec<String> = r
            .disk
            .iter()
            .map(|d| format!("{:.0}", d.fsyncs_per_s))
            .collect();
        let per: Vec<String> = r
            .disk
            .iter()
            .map(|d| format!("{:.1}", d.entries_per_fsync))
            .collect();
        let cpu: Vec<String> = r
            .cpu
            .iter()
            .map(|c| format!("{} {:.1}", c.process, c.us_per_record))
            .collect();
        out += &format!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {:.1} | {} |\n",
            r.nodes,
            r.peers,
            r.persist,
            r.batch,
            r.records_per_s,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.errors,
            fsyncs.join(" / "),
            per.join(" / "),
            r.cpu_us_per_record(),
            cpu.join(", ")
        );
    }
    for r in results.iter().filter(|r| r.nodes > 1) {
        if let Some(single) = results.iter().find(|s| {
            s.nodes == 1 && s.batch == r.batch && s.persist == r.persist && s.peers == r.peers
        }) {
            out += &format!(
                "\n{} nodes / 1 node ({} peers, {}, batch {}): {:.2}",
                r.nodes,
                r.peers,
                r.persist,
                r.batch,
                r.records_per_s / single.records_per_s
            );
        }
    }
    for r in results.iter().filter(|r| r.persist == "async") {
        if let Some(sync) = results.iter().find(|s| {
            s.nodes == r.nodes && s.batch == r.batch && s.persist == "sync" && s.peers == r.peers
        }) {
            out += &format!(
                "\nasync / sync ({} nodes, batch {}): {:.2}",
                r.nodes,
                r.batch,
                r.records_per_s / sync.records_per_s
            );
        }
    }
    for r in results.iter().filter(|r| r.peers == "tls") {
        if let Some(plain) = results.iter().find(|s| {
            s.nodes == r.nodes
                && s.batch == r.batch
                && s.persist == r.persist
                && s.peers == "insecure"
        }) {
            out += &format!(
                "\nTLS / insecure peers ({} nodes, {}): {:.2} of the records/s, {:+.1} µs of CPU per record",
                r.nodes,
                r.persist,
                r.records_per_s / plain.records_per_s,
                r.cpu_us_per_record() - plain.cpu_us_per_record()
            );
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_asked_size_and_are_unique() {
        assert_eq!(record(3, 17, 256).len(), 256);
        assert_ne!(record(3, 17, 256), record(3, 18, 256));
        assert_eq!(record(3, 17, 4), "p3-1");
    }
}
