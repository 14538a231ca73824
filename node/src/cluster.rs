//! Several nodes as child processes on loopback: `raft-node cluster`, the
//! bench, the nemesis and the process tests start them through this.
//!
//! Every child is reaped: [`LocalCluster`]'s `Drop` kills what is still
//! running, so a failing test leaves no process behind.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::Rng;

use crate::client::{Client, ClientError};
use crate::cluster_id::ClusterId;
use crate::config::{KafkaConfig, NodeConfig};
use crate::tls::api::ApiCredentials;
use crate::tls::certs::ClusterCa;
use crate::tls::{TlsError, TlsFiles};

/// Every port [`free_addrs`] has handed out in this process. Two
/// clusters started side by side (tests of one binary run in parallel)
/// each pick ports that are free at that moment and bind them only when
/// their nodes start, so without this both could pick the same one.
static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Loopback addresses nobody listens on right now, not handed out before
/// by this process (see [`HANDED_OUT`]), below the kernel's ephemeral
/// port range: ports handed out for outgoing connections and
/// `bind(0)` (the nemesis's proxies, other tests' clients) come from that
/// range, so they cannot take a planned port between its choice and a node
/// binding it, or while a killed node is down.
///
/// # Panics
///
/// If no loopback port below the ephemeral range can be bound.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    let low = ephemeral_low.saturating_sub(12_000).max(1_024);
    let mut rng = rand::thread_rng();
    let mut listeners = Vec::with_capacity(n);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    // A long nemesis run starts thousands of clusters one after another:
    // once half the range is spent, the oldest picks are long released.
    if handed_out.len() > usize::from(ephemeral_low - low) / 2 {
        handed_out.clear();
    }
    for _ in 0..100_000 {
        if listeners.len() == n {
            break;
        }
        let port = rng.gen_range(low..ephemeral_low);
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            handed_out.insert(port);
            listeners.push(l);
        }
    }
    assert_eq!(
        listeners.len(),
        n,
        "free loopback ports in {low}..{ephemeral_low}"
    );
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound socket has an address"))
        .collect()
}

/// Configurations for `n` founding members under `dir`, on free ports,
/// with the default cluster name (so `serve --join` needs none), and
/// peer TLS from a throwaway CA in `dir/tls` ([`peer_tls`]).
///
/// # Errors
///
/// The certificates cannot be made or written.
pub fn plan(n: u64, dir: &Path) -> Result<Vec<NodeConfig>, TlsError> {
    let addrs = free_addrs(3 * n as usize);
    let peers: BTreeMap<u64, SocketAddr> = (1..=n).map(|id| (id, addrs[id as usize - 1])).collect();
    let brokers: BTreeMap<u64, SocketAddr> = (1..=n)
        .map(|id| (id, addrs[(2 * n + id) as usize - 1]))
        .collect();
    (1..=n)
        .map(|id| {
            let api = addrs[(n + id) as usize - 1];
            let mut config =
                NodeConfig::new(id, dir.join(format!("node-{id}")), api, peers.clone());
            config.peer_tls = Some(peer_tls(dir, &config.cluster_name, id)?);
            config.kafka = Some(KafkaConfig {
                listen: brokers[&id],
                topic: KafkaConfig::DEFAULT_TOPIC.into(),
                brokers: brokers.clone(),
            });
            Ok(config)
        })
        .collect()
}

/// Node `id`'s peer certificate for the cluster named `cluster_name`,
/// from the CA in `dir/tls` (made there first if missing): how a local
/// cluster's founders, and the nodes that join it later, get theirs.
///
/// # Errors
///
/// The certificates cannot be made or written.
pub fn peer_tls(dir: &Path, cluster_name: &str, id: u64) -> Result<TlsFiles, TlsError> {
    ClusterCa::open_or_create(&dir.join("tls"))?.issue_node(ClusterId::of_name(cluster_name), id)
}

/// The `raft-node serve` flags for a configuration.
pub fn serve_args(config: &NodeConfig) -> Vec<String> {
    let mut args = vec![
        "serve".to_string(),
        format!("--id={}", config.id),
        format!("--dir={}", config.dir.display()),
        format!("--api={}", config.api),
        format!("--tick-ms={}", config.tick_ms),
        format!("--election-ticks={}", config.election_ticks),
        format!("--heartbeat-ticks={}", config.heartbeat_ticks),
        format!("--snapshot-entries={}", config.snapshot_entries),
        format!("--log-tail-entries={}", config.log_tail_entries),
        format!("--retention-records={}", config.retention_records),
        format!("--retention-bytes={}", config.retention_bytes),
        format!("--persist={}", config.persist),
        format!("--cluster-name={}", config.cluster_name),
    ];
    args.extend(
        config
            .peers
            .iter()
            .map(|(id, addr)| format!("--peer={id}={addr}")),
    );
    if config.join {
        args.push("--join".into());
    }
    if config.unsafe_no_fsync {
        args.push("--unsafe-no-fsync".into());
    }
    if let Some(tls) = &config.peer_tls {
        args.push(format!("--peer-ca={}", tls.ca.display()));
        args.push(format!("--peer-cert={}", tls.cert.display()));
        args.push(format!("--peer-key={}", tls.key.display()));
    }
    if config.insecure_peers {
        args.push("--insecure-peers".into());
    }
    if let Some(tls) = &config.api_tls {
        args.push(format!("--api-cert={}", tls.cert.display()));
        args.push(format!("--api-key={}", tls.key.display()));
        if let Some(ca) = &tls.client_ca {
            args.push(format!("--api-client-ca={}", ca.display()));
        }
    }
    if let Some(token) = &config.api_token_file {
        args.push(format!("--api-token-file={}", token.display()));
    }
    for index in &config.skip_undecodable_entries {
        args.push(format!("--skip-undecodable-entry={index}"));
    }
    if let Some(kafka) = &config.kafka {
        args.push(format!("--kafka={}", kafka.listen));
        args.push(format!("--kafka-topic={}", kafka.topic));
        args.extend(
            kafka
                .brokers
                .iter()
                .filter(|(&id, _)| id != config.id)
                .map(|(id, addr)| format!("--kafka-broker={id}={addr}")),
        );
    }
    args
}

struct NodeProcess {
    config: NodeConfig,
    log: PathBuf,
    child: Option<Child>,
}

/// Nodes running as child processes of this one.
pub struct LocalCluster {
    binary: PathBuf,
    nodes: BTreeMap<u64, NodeProcess>,
    /// What this process presents to the nodes' APIs.
    credentials: ApiCredentials,
}

impl LocalCluster {
    /// Starts one process per configuration; each logs to `<dir>.log`
    /// beside its WAL directory.
    ///
    /// # Errors
    ///
    /// A process could not be started.
    pub fn start(binary: &Path, configs: Vec<NodeConfig>) -> std::io::Result<LocalCluster> {
        let mut cluster = LocalCluster {
            binary: binary.to_owned(),
            nodes: BTreeMap::new(),
            credentials: ApiCredentials::default(),
        };
        for config in configs {
            cluster.add(config)?;
        }
        Ok(cluster)
    }

    /// Starts one process per configuration and waits up to 20 s for them
    /// to agree on a leader; returns the cluster and its leader.
    ///
    /// # Errors
    ///
    /// A process could not be started, or no leader was agreed on.
    pub async fn start_led(
        binary: &Path,
        configs: Vec<NodeConfig>,
    ) -> Result<(LocalCluster, u64), String> {
        let mut nodes = LocalCluster::start(binary, configs).map_err(|e| e.to_string())?;
        let leader = nodes.wait_for_leader(Duration::from_secs(20)).await?;
        Ok((nodes, leader))
    }

    /// Starts one more node.
    ///
    /// # Errors
    ///
    /// The process could not be started.
    pub fn add(&mut self, config: NodeConfig) -> std::io::Result<()> {
        let log = config.dir.with_extension("log");
        let id = config.id;
        self.nodes.insert(
            id,
            NodeProcess {
                config,
                log,
                child: None,
            },
        );
        self.restart(id)
    }

    /// The node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// A node's configuration.
    ///
    /// # Panics
    ///
    /// For an id the cluster does not have.
    pub fn config(&self, id: u64) -> &NodeConfig {
        &self.nodes[&id].config
    }

    /// A node's configuration, to change before its next restart (an
    /// operator adding a new member's address, say).
    ///
    /// # Panics
    ///
    /// For an id the cluster does not have.
    pub fn config_mut(&mut self, id: u64) -> &mut NodeConfig {
        &mut self.nodes.get_mut(&id).expect("a known node").config
    }

    /// Kills a node and forgets it: it is no member any more.
    pub fn remove(&mut self, id: u64) {
        self.kill(id);
        self.nodes.remove(&id);
    }

    /// Node `id`'s Kafka address, if it serves Kafka clients.
    ///
    /// # Panics
    ///
    /// For an id the cluster does not have.
    pub fn kafka(&self, id: u64) -> Option<SocketAddr> {
        self.config(id).kafka.as_ref().map(|k| k.listen)
    }

    /// Node `id`'s API address.
    pub fn api(&self, id: u64) -> SocketAddr {
        self.config(id).api
    }

    /// What this process presents to the nodes' APIs, when they are
    /// started with TLS or a token (plain HTTP by default).
    pub fn set_credentials(&mut self, credentials: ApiCredentials) {
        self.credentials = credentials;
    }

    /// A client of node `id`'s API, with the cluster's credentials.
    ///
    /// # Errors
    ///
    /// The connection failed.
    pub async fn client(&self, id: u64) -> Result<Client, ClientError> {
        Client::connect_with(self.api(id), &self.credentials).await
    }

    /// A node's log file.
    pub fn log_path(&self, id: u64) -> &Path {
        &self.nodes[&id].log
    }

    /// The node's process id, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.nodes[&id].child.as_ref().map(Child::id)
    }

    /// The exit code of the node's process, once it has exited by itself.
    pub fn exit_code(&mut self, id: u64) -> Option<i32> {
        let node = self.nodes.get_mut(&id).expect("a known node");
        node.child.as_mut()?.try_wait().ok()??.code()
    }

    /// Whether the node's process is running (not killed, not exited).
    pub fn is_up(&mut self, id: u64) -> bool {
        let node = self.nodes.get_mut(&id).expect("a known node");
        match node.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the node's process again (or for the first time).
    ///
    /// # Errors
    ///
    /// The process could not be started.
    pub fn restart(&mut self, id: u64) -> std::io::Result<()> {
        let node = self.nodes.get_mut(&id).expect("a known node");
        if let Some(mut old) = node.child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        if let Some(parent) = node.log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let child = Command::new(&self.binary)
            .args(serve_args(&node.config))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        node.child = Some(child);
        Ok(())
    }

    /// Sends a signal to a running node.
    fn signal(&mut self, id: u64, signal: Signal) {
        if let Some(child) = self.nodes.get_mut(&id).and_then(|n| n.child.as_mut()) {
            let _ = kill(Pid::from_raw(child.id() as i32), signal);
        }
    }

    /// SIGKILL: the process dies at once, with whatever it had not synced.
    pub fn kill(&mut self, id: u64) {
        self.signal(id, Signal::SIGKILL);
        if let Some(mut child) = self.nodes.get_mut(&id).and_then(|n| n.child.take()) {
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process freezes, sockets open, like a long GC pause.
    pub fn pause(&mut self, id: u64) {
        self.signal(id, Signal::SIGSTOP);
    }

    /// SIGCONT after [`LocalCluster::pause`].
    pub fn resume(&mut self, id: u64) {
        self.signal(id, Signal::SIGCONT);
    }

    /// SIGTERM to every node, then waits up to `grace` before SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        let ids = self.ids();
        for &id in &ids {
            self.resume(id);
            self.signal(id, Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        for id in ids {
            if let Some(mut child) = self.nodes.get_mut(&id).and_then(|n| n.child.take()) {
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Waits until every running node names the same leader, which is
    /// itself running; returns it.
    ///
    /// # Errors
    ///
    /// No agreement within `timeout`: the statuses seen last.
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let up: Vec<u64> = self
                .ids()
                .into_iter()
                .filter(|&id| self.is_up(id))
                .collect();
            let mut leaders = Vec::new();
            for &id in &up {
                let status = async { self.client(id).await?.status().await };
                match status.await {
                    Ok(s) => leaders.push(s.leader),
                    Err(e) => last = e.to_string(),
                }
            }
            if leaders.len() == up.len() && !leaders.is_empty() {
                let leader = leaders[0];
                if leader != 0 && leaders.iter().all(|&l| l == leader) && up.contains(&leader) {
                    return Ok(leader);
                }
                last = format!("nodes {up:?} name leaders {leaders:?}");
            }
            if Instant::now() > deadline {
                return Err(format!("no agreed leader within {timeout:?}: {last}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
