//! `raft-node`: run a node, a local cluster, the bench, membership changes
//! and the nemesis.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use raft_node::bench::{BenchOptions, PeerMode, Protocol};
use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};
use raft_node::config::{parse_peer, KafkaConfig, NodeConfig, Persistence};
use raft_node::handle::MembershipChange;
use raft_node::nemesis::NemesisOptions;
use raft_node::tls::api::{ApiCredentials, ApiTlsFiles};
use raft_node::tls::certs::ClusterCa;
use raft_node::tls::TlsFiles;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Parser)]
#[command(
    version,
    about = "A reference raft node on the maintained raft-rs 0.7 line and raft-wal-storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node in this process.
    Serve(Box<ServeArgs>),
    /// Start N nodes as child processes on loopback, with a throwaway CA
    /// for their peer TLS; Ctrl-C stops them.
    Cluster(ClusterArgs),
    /// Make (or extend) a cluster CA and certificates for nodes and API
    /// clients.
    Certs(CertsArgs),
    /// Change the membership through a node's API.
    Admin(AdminArgs),
    /// Closed-loop producers against a local cluster of each size given.
    Bench(BenchArgs),
    /// Faults (kills, power loss with --lazyfs, pauses, partitions, leader
    /// transfers, membership churn) under client load on a 3-node cluster,
    /// with the history checked at the end.
    Nemesis(NemesisArgs),
}

#[derive(Args)]
struct NemesisArgs {
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seeds to run, from --seed on.
    #[arg(long, default_value_t = 1)]
    schedules: u64,
    /// Seconds of faults per schedule.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Where the nodes keep their WALs and logs (kept on failure; a
    /// temporary directory if unset).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The LazyFS binary (`../shared/lazyfs/build` prints it): each data
    /// directory becomes a LazyFS mount and power loss joins the faults.
    /// Needs root and /dev/fuse.
    #[arg(long, env = "RAFT_NODE_LAZYFS")]
    lazyfs: Option<PathBuf>,
    /// Only these faults; repeat. All of them if unset.
    #[arg(long = "fault", value_enum)]
    faults: Vec<raft_node::nemesis::Fault>,
    /// Run the nodes without fdatasync, to see power loss lose records.
    #[arg(long, hide = true)]
    unsafe_no_fsync: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Cluster sizes to start and measure, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    nodes: Vec<u64>,
    /// Measure a running cluster through this API address instead.
    #[arg(long, conflicts_with = "nodes")]
    target: Option<SocketAddr>,
    /// Concurrent producers, each with one request outstanding.
    #[arg(long, default_value_t = 128)]
    producers: usize,
    /// Records per request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Persistence modes of the nodes it starts, measured one after the
    /// other.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "async")]
    persist: Vec<Persistence>,
    /// How the nodes it starts connect to each other, measured one after
    /// the other for each cluster size (`tls,insecure` shows what TLS
    /// costs).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tls")]
    peers: Vec<PeerMode>,
    /// What the producers speak, measured one after the other for each
    /// cluster size: `http`, `kafka`, and `kcat` (librdkafka's producer
    /// with its default batching, over --kcat-messages messages).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "http")]
    protocol: Vec<Protocol>,
    /// Messages kcat produces.
    #[arg(long, default_value_t = 1_000_000)]
    kcat_messages: u64,
    /// Bytes per record.
    #[arg(long, default_value_t = 256)]
    record_bytes: usize,
    /// Measured seconds per cluster size.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 2.0)]
    warmup_seconds: f64,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Where the clusters keep their WALs (a temporary directory if unset).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML file with the keys of the flags below (`id`, `dir`, `api`,
    /// `[peers]`, ...), instead of the flags.
    #[arg(long, exclusive = true)]
    config: Option<PathBuf>,
    /// This node's raft id.
    #[arg(long, required_unless_present = "config")]
    id: Option<u64>,
    /// The WAL directory.
    #[arg(long, required_unless_present = "config")]
    dir: Option<PathBuf>,
    /// The client API address.
    #[arg(long, required_unless_present = "config")]
    api: Option<SocketAddr>,
    /// ID=HOST:PORT raft address of a member, this node included; repeat.
    #[arg(long = "peer", value_parser = parse_peer, required_unless_present = "config")]
    peers: Vec<(u64, SocketAddr)>,
    /// Start outside the configuration and wait to be added.
    #[arg(long)]
    join: bool,
    /// The cluster's name, the same on every member; its hash is the
    /// cluster id checked on every peer connection and stored in the WAL.
    #[arg(long, default_value = "raft-node")]
    cluster_name: String,
    #[arg(long, default_value_t = 50)]
    tick_ms: u64,
    #[arg(long, default_value_t = 10)]
    election_ticks: usize,
    #[arg(long, default_value_t = 2)]
    heartbeat_ticks: usize,
    #[arg(long, default_value_t = 50_000)]
    snapshot_entries: u64,
    #[arg(long, default_value_t = 5_000)]
    log_tail_entries: u64,
    /// Records the log keeps; older offsets are dropped.
    #[arg(long, default_value_t = 100_000)]
    retention_records: usize,
    /// Bytes of record data the log keeps; older records are dropped.
    #[arg(long, default_value_t = 32 << 20)]
    retention_bytes: usize,
    /// Wait for each Ready's fdatasync (sync), or go on while it runs (async).
    #[arg(long, value_enum, default_value_t = Persistence::Async)]
    persist: Persistence,
    /// Never fdatasync (loses acknowledged records on power loss): only
    /// for testing that the nemesis's power-loss fault can lose data.
    #[arg(long, hide = true)]
    unsafe_no_fsync: bool,
    /// The cluster CA's certificate (PEM): every peer's certificate must
    /// chain to it.
    #[arg(long, requires_all = ["peer_cert", "peer_key"])]
    peer_ca: Option<PathBuf>,
    /// This node's peer certificate (PEM), valid for
    /// `node-<id>.cluster-<cluster id>.raft` (`raft-node certs` makes it).
    #[arg(long, requires = "peer_ca")]
    peer_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "peer_ca")]
    peer_key: Option<PathBuf>,
    /// Plain TCP between members instead of mutual TLS: anyone who
    /// reaches the raft port can speak raft to this node as any member.
    #[arg(long, conflicts_with = "peer_ca")]
    insecure_peers: bool,
    /// Serve the API over TLS with this certificate (PEM).
    #[arg(long, requires = "api_key")]
    api_cert: Option<PathBuf>,
    /// The API certificate's private key (PEM).
    #[arg(long, requires = "api_cert")]
    api_key: Option<PathBuf>,
    /// Require API clients to present a certificate signed by this CA.
    #[arg(long, requires = "api_cert")]
    api_client_ca: Option<PathBuf>,
    /// Require `Authorization: Bearer <token>` on every API request; the
    /// file holds the token.
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// Apply this committed entry as empty although it does not decode
    /// (the way out the node names when it stops on one); repeat.
    #[arg(long = "skip-undecodable-entry")]
    skip_undecodable_entries: Vec<u64>,
    /// Serve Kafka clients here: the record log is one topic with one
    /// partition (TLS and client certificates as the API's).
    #[arg(long)]
    kafka: Option<SocketAddr>,
    /// The Kafka topic's name.
    #[arg(long, default_value = KafkaConfig::DEFAULT_TOPIC, requires = "kafka")]
    kafka_topic: String,
    /// ID=HOST:PORT Kafka address of another member, which Metadata lists
    /// as a broker; repeat.
    #[arg(long = "kafka-broker", value_parser = parse_peer, requires = "kafka")]
    kafka_brokers: Vec<(u64, SocketAddr)>,
}

impl ServeArgs {
    fn into_config(self) -> Result<NodeConfig, raft_node::config::ConfigError> {
        if let Some(path) = self.config {
            return NodeConfig::from_toml_file(&path);
        }
        let peers: BTreeMap<u64, SocketAddr> = self.peers.into_iter().collect();
        let mut config = NodeConfig::new(
            self.id.expect("clap requires --id"),
            self.dir.expect("clap requires --dir"),
            self.api.expect("clap requires --api"),
            peers,
        );
        config.join = self.join;
        config.cluster_name = self.cluster_name;
        config.tick_ms = self.tick_ms;
        config.election_ticks = self.election_ticks;
        config.heartbeat_ticks = self.heartbeat_ticks;
        config.snapshot_entries = self.snapshot_entries;
        config.log_tail_entries = self.log_tail_entries;
        config.persist = self.persist;
        config.retention_records = self.retention_records;
        config.retention_bytes = self.retention_bytes;
        config.unsafe_no_fsync = self.unsafe_no_fsync;
        config.peer_tls = match (self.peer_ca, self.peer_cert, self.peer_key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca, cert, key }),
            _ => None,
        };
        config.insecure_peers = self.insecure_peers;
        config.api_tls = match (self.api_cert, self.api_key) {
            (Some(cert), Some(key)) => Some(ApiTlsFiles {
                cert,
                key,
                client_ca: self.api_client_ca,
            }),
            _ => None,
        };
        config.api_token_file = self.api_token_file;
        config.skip_undecodable_entries = self.skip_undecodable_entries;
        config.kafka = self.kafka.map(|listen| KafkaConfig {
            listen,
            topic: self.kafka_topic,
            brokers: self.kafka_brokers.into_iter().collect(),
        });
        config.check()?;
        Ok(config)
    }
}

#[derive(Args)]
struct ClusterArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Where the nodes keep their WALs and logs.
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Args)]
struct CertsArgs {
    /// The CA's directory: `ca.pem` and `ca.key` are made there unless
    /// present, and each certificate goes beside them.
    #[arg(long)]
    dir: PathBuf,
    /// The cluster's name (its hash goes into each node's peer name).
    #[arg(long, default_value = "raft-node")]
    cluster_name: String,
    /// Node ids to issue peer certificates for.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<u64>,
    /// API client names to issue client certificates for.
    #[arg(long = "client", value_delimiter = ',')]
    clients: Vec<String>,
}

#[derive(Args)]
struct AdminArgs {
    /// Any node's API address (a follower forwards to the leader).
    #[arg(long)]
    api: SocketAddr,
    #[command(flatten)]
    credentials: CredentialArgs,
    #[command(subcommand)]
    change: AdminChange,
}

/// What an API client presents.
#[derive(Args)]
struct CredentialArgs {
    /// Speak TLS, trusting the node's API certificate to this CA.
    #[arg(long)]
    api_ca: Option<PathBuf>,
    /// A client certificate to present (PEM), with --api-client-key.
    #[arg(long, requires_all = ["api_ca", "api_client_key"])]
    api_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "api_client_cert")]
    api_client_key: Option<PathBuf>,
    /// A file holding the bearer token to send.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl CredentialArgs {
    fn load(&self) -> Result<ApiCredentials, raft_node::tls::TlsError> {
        let client = self
            .api_client_cert
            .as_deref()
            .zip(self.api_client_key.as_deref());
        ApiCredentials::load(self.api_ca.as_deref(), client, self.token_file.as_deref())
    }
}

#[derive(Subcommand)]
enum AdminChange {
    /// Add a node as a learner (start it first with `serve --join`).
    AddLearner {
        id: u64,
        /// Its raft address.
        addr: SocketAddr,
    },
    /// Make a learner a voter.
    Promote { id: u64 },
    /// Remove a node.
    Remove { id: u64 },
    /// Print the node's status.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Cluster(args) => run_cluster(args).await,
            Command::Certs(args) => certs(args),
            Command::Admin(args) => admin(args).await,
            Command::Bench(args) => bench(args).await,
            Command::Nemesis(args) => nemesis(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e.downcast_ref::<raft_node::error::NodeError>() {
                Some(raft_node::error::NodeError::Undecodable(_)) => {
                    ExitCode::from(raft_node::entry::UNDECODABLE_EXIT_STATUS)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

/// Cancelled on SIGINT or SIGTERM.
fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        token.cancel();
    });
    stop
}

async fn serve(args: ServeArgs) -> Result<(), AnyError> {
    let config = args.into_config()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let span = tracing::info_span!("node", id = config.id);
    raft_node::serve::run(config, stop_on_signal())
        .instrument(span)
        .await?;
    Ok(())
}

async fn run_cluster(args: ClusterArgs) -> Result<(), AnyError> {
    std::fs::create_dir_all(&args.dir)?;
    let configs = cluster::plan(args.nodes, &args.dir)?;
    let mut nodes = LocalCluster::start(&std::env::current_exe()?, configs)?;
    for id in nodes.ids() {
        let c = nodes.config(id);
        let kafka = c.kafka.as_ref().map(|k| k.listen.to_string());
        println!(
            "node {id}: api http://{} kafka {} raft {} log {}",
            c.api,
            kafka.unwrap_or_default(),
            c.listen(),
            nodes.log_path(id).display()
        );
    }
    let leader = nodes.wait_for_leader(Duration::from_secs(20)).await?;
    println!("leader: node {leader}; Ctrl-C stops the cluster");
    stop_on_signal().cancelled().await;
    nodes.stop(Duration::from_secs(5));
    println!("stopped");
    Ok(())
}

fn certs(args: CertsArgs) -> Result<(), AnyError> {
    let ca = ClusterCa::open_or_create(&args.dir)?;
    println!("CA: {}", ca.ca_path().display());
    let cluster = raft_node::cluster_id::ClusterId::of_name(&args.cluster_name);
    for id in args.nodes {
        let files = ca.issue_node(cluster, id)?;
        println!(
            "node {id}: --peer-ca {} --peer-cert {} --peer-key {}",
            files.ca.display(),
            files.cert.display(),
            files.key.display()
        );
    }
    for name in args.clients {
        let files = ca.issue_client(&name)?;
        println!(
            "client {name}: --api-client-cert {} --api-client-key {}",
            files.cert.display(),
            files.key.display()
        );
    }
    Ok(())
}

async fn admin(args: AdminArgs) -> Result<(), AnyError> {
    let mut client = Client::connect_with(args.api, &args.credentials.load()?).await?;
    let change = match args.change {
        AdminChange::Status => {
            println!("{}", serde_json::to_string_pretty(&client.status().await?)?);
            return Ok(());
        }
        AdminChange::AddLearner { id, addr } => MembershipChange::AddLearner { id, addr },
        AdminChange::Promote { id } => MembershipChange::Promote { id },
        AdminChange::Remove { id } => MembershipChange::Remove { id },
    };
    let membership = client.change_membership(&change).await?;
    println!("{}", serde_json::to_string(&membership)?);
    Ok(())
}

async fn bench(args: BenchArgs) -> Result<(), AnyError> {
    let opts = BenchOptions {
        producers: args.producers,
        batch: args.batch,
        record_bytes: args.record_bytes,
        seconds: args.seconds,
        warmup_seconds: args.warmup_seconds,
        progress: !args.json,
        persist: Persistence::default(),
        peers: PeerMode::Tls,
        protocol: Protocol::Http,
        kcat_messages: args.kcat_messages,
    };
    let mut results = Vec::new();
    if let Some(target) = args.target {
        if args.protocol != [Protocol::Http] {
            return Err("--target measures a running cluster's API over HTTP only".into());
        }
        let status = Client::connect(target).await?.status().await?;
        eprintln!(
            "measuring the running cluster at {target}; fsyncs are counted at node {} only",
            status.id
        );
        let mut result = raft_node::bench::run(target, &[(status.id, target)], &[], &opts).await?;
        result.persist = "as started".into();
        results.push(result);
    } else {
        let scratch = tempfile::tempdir()?;
        let root = args.dir.unwrap_or_else(|| scratch.path().to_owned());
        for persist in args.persist {
            for &n in &args.nodes {
                for &peers in &args.peers {
                    for &protocol in &args.protocol {
                        let opts = BenchOptions {
                            persist,
                            peers,
                            protocol,
                            ..opts.clone()
                        };
                        eprintln!(
                            "{n} node(s), {protocol}, persist {persist}, {peers} peers: {} producers, batch {}, {} s",
                            opts.producers, opts.batch, opts.seconds
                        );
                        let dir =
                            root.join(format!("bench-{n}-nodes-{persist}-{peers}-{protocol}"));
                        results.push(
                            raft_node::bench::run_local(&std::env::current_exe()?, n, &dir, &opts)
                                .await?,
                        );
                    }
                }
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", raft_node::bench::render(&results));
    }
    Ok(())
}

async fn nemesis(args: NemesisArgs) -> Result<(), AnyError> {
    let scratch = tempfile::tempdir()?;
    let opts = NemesisOptions {
        seed: args.seed,
        seconds: args.seconds,
        clients: args.clients,
        binary: std::env::current_exe()?,
        dir: args.dir.unwrap_or_else(|| scratch.path().to_owned()),
        lazyfs: args.lazyfs,
        unsafe_no_fsync: args.unsafe_no_fsync,
        faults: args.faults,
    };
    let totals =
        raft_node::nemesis::run_schedules(&opts, args.schedules, |line| println!("{line}")).await;
    println!("{}", totals.render());
    if totals.failures.is_empty() {
        return Ok(());
    }
    let kept = scratch.keep();
    for failure in &totals.failures {
        println!("{failure}");
    }
    Err(format!(
        "{} failed seed(s); node logs kept under {}",
        totals.failures.len(),
        kept.display()
    )
    .into())
}
