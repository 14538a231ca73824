//! `raft-node bench`: closed-loop producers against a cluster it starts
//! (or one already running), the crash report's workload: 128 producers,
//! 256-byte records, each producer with one request outstanding.
//!
//! The producers speak HTTP/JSON to the API or Kafka's protocol to the
//! Kafka listener (`--protocol http,kafka`), one record per request each
//! way; `kcat` instead runs librdkafka's producer (Debian's `kcat`) over a
//! fixed number of messages with its default batching, the lean path a
//! broker's producers take.
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
use crate::kafka::client::{ClientError as KafkaError, KafkaClient};
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
    /// What the producers speak.
    pub protocol: Protocol,
    /// Messages kcat produces (with [`Protocol::Kcat`]).
    pub kcat_messages: u64,
}

/// What the producers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// JSON over HTTP/1.1 to the API, `POST /v1/append`.
    Http,
    /// Kafka Produce (`acks=all`) to the Kafka listener, through the
    /// node's own `kafka-protocol` client.
    Kafka,
    /// kcat (librdkafka) producing `kcat_messages` messages with
    /// `acks=all` and librdkafka's default batching; no latency.
    Kcat,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Http => "http",
            Protocol::Kafka => "kafka",
            Protocol::Kcat => "kcat",
        })
    }
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
    /// What the producers spoke.
    pub protocol: String,
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
    /// Request latency percentiles, milliseconds (NaN for kcat, which
    /// reports none).
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
    let result = match opts.protocol {
        Protocol::Http => run(nodes.api(leader), &apis, &processes, opts).await,
        Protocol::Kafka => {
            let kafka = nodes
                .kafka(leader)
                .expect("plan gives every node a Kafka address");
            run(kafka, &apis, &processes, opts).await
        }
        Protocol::Kcat => {
            let kafka = nodes
                .kafka(leader)
                .expect("plan gives every node a Kafka address");
            run_kcat(kafka, (leader, nodes.api(leader)), &apis, &processes, opts).await
        }
    };
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

/// CPU seconds this process's waited-for children have used.
fn children_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        seconds(u.user_time()) + seconds(u.system_time())
    })
}

/// kcat produces `opts.kcat_messages` messages of `opts.record_bytes` to
/// `kafka` with `acks=all`, fed on its standard input one per line;
/// measured from its start until it has flushed and exited. The leader's
/// log must have grown by every message.
async fn run_kcat(
    kafka: SocketAddr,
    (leader, leader_api): (u64, SocketAddr),
    nodes: &[(u64, SocketAddr)],
    processes: &[(String, i32)],
    opts: &BenchOptions,
) -> Result<BenchResult, BenchError> {
    use tokio::io::AsyncWriteExt;
    let failed = |e: &dyn std::fmt::Display| BenchError::Cluster(format!("kcat: {e}"));
    let end_before = Client::connect(leader_api).await?.status().await?.records;
    let before = scrape(nodes).await?;
    let cpu_before = processes
        .iter()
        .map(cpu_seconds)
        .collect::<Result<Vec<_>, _>>()?;
    let children_before = children_cpu_seconds();
    let started = Instant::now();
    let mut kcat = tokio::process::Command::new("kcat")
        .args([
            "-P",
            "-b",
            &kafka.to_string(),
            "-t",
            crate::config::KafkaConfig::DEFAULT_TOPIC,
        ])
        .args(["-p", "0", "-X", "acks=all", "-q"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| failed(&e))?;
    let mut stdin = kcat.stdin.take().expect("piped");
    let line_bytes = opts.record_bytes + 1;
    let mut chunk = Vec::with_capacity(line_bytes * 4096);
    for seq in 0..opts.kcat_messages {
        let mut line = record(0, seq, opts.record_bytes).into_bytes();
        line.push(b'\n');
        chunk.extend_from_slice(&line);
        if chunk.len() >= line_bytes * 4096 {
            stdin.write_all(&chunk).await.map_err(|e| failed(&e))?;
            chunk.clear();
        }
    }
    stdin.write_all(&chunk).await.map_err(|e| failed(&e))?;
    drop(stdin);
    let status = kcat.wait().await.map_err(|e| failed(&e))?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(failed(&status));
    }
    let kcat_cpu = children_cpu_seconds() - children_before;
    let cpu_after = processes
        .iter()
        .map(cpu_seconds)
        .collect::<Result<Vec<_>, _>>()?;
    let after = scrape(nodes).await?;
    let records = Client::connect(leader_api).await?.status().await?.records - end_before;
    if records != opts.kcat_messages {
        return Err(failed(&format!(
            "node {leader} stored {records} of the {} messages",
            opts.kcat_messages
        )));
    }
    let mut cpu = vec![ProcessCpu {
        process: "kcat".into(),
        us_per_record: kcat_cpu * 1e6 / records.max(1) as f64,
    }];
    cpu.extend(per_record_cpu(processes, &cpu_before, &cpu_after, records));
    Ok(BenchResult {
        nodes: nodes.len(),
        protocol: Protocol::Kcat.to_string(),
        producers: 1,
        batch: 0,
        persist: opts.persist.to_string(),
        records,
        errors: 0,
        seconds,
        records_per_s: records as f64 / seconds,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        p999_ms: f64::NAN,
        disk: disk(&before, &after, seconds),
        peers: "as started".into(),
        cpu,
    })
}

fn per_record_cpu(
    processes: &[(String, i32)],
    before: &[f64],
    after: &[f64],
    records: u64,
) -> Vec<ProcessCpu> {
    processes
        .iter()
        .zip(before.iter().zip(after))
        .map(|((process, _), (before, after))| ProcessCpu {
            process: process.clone(),
            us_per_record: (after - before) * 1e6 / records.max(1) as f64,
        })
        .collect()
}

fn disk(before: &[(u64, (f64, f64))], after: &[(u64, (f64, f64))], seconds: f64) -> Vec<NodeDisk> {
    before
        .iter()
        .zip(after)
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
        .collect()
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
    Ok(BenchResult {
        nodes: nodes.len(),
        protocol: opts.protocol.to_string(),
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
        disk: disk(&before, &after, seconds),
        peers: "as started".into(),
        cpu: per_record_cpu(&processes, &cpu_before, &cpu_after, records),
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
    let mut connection = None;
    let mut seq = 0u64;
    while Instant::now() < stop_at {
        let c = match connection.as_mut() {
            Some(c) => c,
            None => match Connection::open(opts.protocol, target).await {
                Ok(c) => connection.insert(c),
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
            Ok(count) if counted => {
                outcome.records += count;
                acked.fetch_add(count, Ordering::Relaxed);
                let us = sent.elapsed().as_micros() as u64;
                outcome.latency_us.saturating_record(us.max(1));
            }
            Ok(_) => {}
            Err(keep) => {
                if counted {
                    outcome.errors += 1;
                }
                if !keep {
                    connection = None;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    outcome
}

/// A producer's connection, in the protocol measured.
enum Connection {
    Http(Client),
    Kafka(KafkaClient),
}

impl Connection {
    async fn open(protocol: Protocol, target: SocketAddr) -> Result<Connection, BenchError> {
        match protocol {
            Protocol::Http => Ok(Connection::Http(Client::connect(target).await?)),
            Protocol::Kafka | Protocol::Kcat => KafkaClient::connect(target)
                .await
                .map(Connection::Kafka)
                .map_err(|e| BenchError::Cluster(e.to_string())),
        }
    }

    /// Sends `records` as one request: how many were acknowledged, or
    /// whether the connection is still good after the failure.
    async fn append(&mut self, records: Vec<String>) -> Result<u64, bool> {
        match self {
            Connection::Http(client) => client
                .append(records)
                .await
                .map(|appended| appended.count)
                .map_err(|e| e.status().is_some()),
            Connection::Kafka(client) => {
                let values: Vec<bytes::Bytes> = records.into_iter().map(Into::into).collect();
                let count = values.len() as u64;
                client
                    .produce(crate::config::KafkaConfig::DEFAULT_TOPIC, &values, None)
                    .await
                    .map(|_| count)
                    .map_err(|e| matches!(e, KafkaError::Refused(_)))
            }
        }
    }
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

/// What a result was measured with, to find the one to compare it with.
#[derive(PartialEq, Eq)]
struct Key<'a> {
    nodes: usize,
    protocol: &'a str,
    batch: usize,
    persist: &'a str,
    peers: &'a str,
}

impl Key<'_> {
    fn of(r: &BenchResult) -> Key<'_> {
        Key {
            nodes: r.nodes,
            protocol: &r.protocol,
            batch: r.batch,
            persist: &r.persist,
            peers: &r.peers,
        }
    }
}

/// The table `raft-node bench` prints, with the 3-to-1 ratio when both ran.
pub fn render(results: &[BenchResult]) -> String {
    let mut out = String::from(
        "| nodes | protocol | peers | persist | batch | records/s | p50 ms | p99 ms | p99.9 ms | errors | fsyncs/s per node | entries per fsync per node | CPU µs/record | per process |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
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
        let ms = |v: f64| {
            if v.is_nan() {
                "-".to_string()
            } else {
                format!("{v:.2}")
            }
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            r.nodes,
            r.protocol,
            r.peers,
            r.persist,
            r.batch,
            r.records_per_s,
            ms(r.p50_ms),
            ms(r.p99_ms),
            ms(r.p999_ms),
            r.errors,
            fsyncs.join(" / "),
            per.join(" / "),
            r.cpu_us_per_record(),
            cpu.join(", ")
        );
    }
    // The result measured as `r` was, but for what `change` sets.
    let like = |r: &BenchResult, change: &dyn Fn(&mut Key)| {
        let mut key = Key::of(r);
        change(&mut key);
        results.iter().find(|s| Key::of(s) == key)
    };
    for r in results.iter().filter(|r| r.nodes > 1) {
        if let Some(single) = like(r, &|k| k.nodes = 1) {
            out += &format!(
                "\n{} nodes / 1 node ({}, {} peers, {}, batch {}): {:.2}",
                r.nodes,
                r.protocol,
                r.peers,
                r.persist,
                r.batch,
                r.records_per_s / single.records_per_s
            );
        }
    }
    for r in results.iter().filter(|r| r.persist == "async") {
        if let Some(sync) = like(r, &|k| k.persist = "sync") {
            out += &format!(
                "\nasync / sync ({} nodes, batch {}): {:.2}",
                r.nodes,
                r.batch,
                r.records_per_s / sync.records_per_s
            );
        }
    }
    let per_record = |what: String, r: &BenchResult, base: &BenchResult| {
        format!(
            "\n{what}: {:.2} of the records/s, {:+.1} µs of CPU per record",
            r.records_per_s / base.records_per_s,
            r.cpu_us_per_record() - base.cpu_us_per_record()
        )
    };
    for r in results.iter().filter(|r| r.peers == "tls") {
        if let Some(plain) = like(r, &|k| k.peers = "insecure") {
            out += &per_record(
                format!("TLS / insecure peers ({} nodes, {})", r.nodes, r.persist),
                r,
                plain,
            );
        }
    }
    for r in results.iter().filter(|r| r.protocol != "http") {
        // kcat batches on its own: compare with HTTP at any batch size.
        if let Some(http) = results.iter().find(|s| {
            Key {
                batch: 0,
                ..Key::of(s)
            } == Key {
                protocol: "http",
                batch: 0,
                ..Key::of(r)
            }
        }) {
            out += &per_record(
                format!("{} / http ({} nodes)", r.protocol, r.nodes),
                r,
                http,
            );
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(nodes: usize, protocol: &str, batch: usize, records_per_s: f64) -> BenchResult {
        BenchResult {
            nodes,
            protocol: protocol.into(),
            producers: 128,
            batch,
            persist: "async".into(),
            records: 0,
            errors: 0,
            seconds: 1.0,
            records_per_s,
            p50_ms: f64::NAN,
            p99_ms: 1.0,
            p999_ms: 2.0,
            disk: Vec::new(),
            peers: "tls".into(),
            cpu: vec![ProcessCpu {
                process: "client".into(),
                us_per_record: records_per_s / 1000.0,
            }],
        }
    }

    #[test]
    fn the_table_pairs_each_result_with_its_counterparts() {
        let table = render(&[
            result(1, "http", 1, 10_000.0),
            result(3, "http", 1, 5_000.0),
            result(3, "kafka", 1, 6_000.0),
            result(3, "kcat", 0, 50_000.0),
        ]);
        assert!(
            table.contains("| 3 | kcat | tls | async | 0 | 50000 | - | 1.00 | 2.00 |"),
            "{table}"
        );
        assert!(
            table.contains("3 nodes / 1 node (http, tls peers, async, batch 1): 0.50"),
            "{table}"
        );
        assert!(
            table.contains("kafka / http (3 nodes): 1.20 of the records/s, +1.0 µs"),
            "{table}"
        );
        assert!(
            table.contains("kcat / http (3 nodes): 10.00 of the records/s, +45.0 µs"),
            "{table}"
        );
        assert!(!table.contains("kafka / http (1 nodes)"), "{table}");
    }

    #[test]
    fn records_have_the_asked_size_and_are_unique() {
        assert_eq!(record(3, 17, 256).len(), 256);
        assert_ne!(record(3, 17, 256), record(3, 18, 256));
        assert_eq!(record(3, 17, 4), "p3-1");
    }
}
