//! `raft-node serve`: opens the WAL, checks it against the configuration,
//! and runs the Ready loop, the peer transport and the client API until
//! SIGINT or SIGTERM.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use raft::{Config, RawNode, ReadOnlyOption, Storage};
use raft_proto::eraftpb::{ConfState, Snapshot};
use raft_wal_storage::{SyncPolicy, WalOptions, WalStorage};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tracing::{info, Instrument};

use crate::api;
use crate::cluster_id::{ClusterId, IdentityError};
use crate::config::{NodeConfig, Persistence};
use crate::error::NodeError;
use crate::handle::NodeHandle;
use crate::kafka;
use crate::metrics::Metrics;
use crate::persister;
use crate::ready_loop::ReadyLoop;
use crate::state_machine::RecordLog;
use crate::tls::api::{read_token, TlsListener};
use crate::tls::peer::PeerTls;
use crate::transport::{self, Members, PeerSecurity, Peers};

/// Requests queued for the Ready loop before senders wait.
const INBOX_REQUESTS: usize = 16_384;
/// Readies handed to the persister before the loop waits for it.
const PERSIST_JOBS: usize = 1024;
/// How long a client request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the WAL and checks it against the configuration.
///
/// # Errors
///
/// The WAL's own errors ([`raft_wal_storage::WalError::Corrupt`] names the
/// file and offset) and a configuration that contradicts the stored
/// membership.
pub fn open_storage(config: &NodeConfig) -> Result<WalStorage, NodeError> {
    let mut opts = WalOptions::default();
    if config.unsafe_no_fsync {
        tracing::warn!("--unsafe-no-fsync: acknowledged records will be lost on power loss");
        opts.sync = SyncPolicy::UnsafeNever;
    }
    let store = WalStorage::open(&config.dir, opts)?;
    let stored = store.initial_state()?.conf_state;
    config.check_against_stored(&stored.voters, &stored.learners)?;
    Ok(store)
}

/// Whether the WAL holds nothing yet: no membership, no entries.
///
/// # Errors
///
/// The WAL cannot be read.
pub fn is_blank(store: &WalStorage) -> Result<bool, NodeError> {
    Ok(store.initial_state()?.conf_state.voters.is_empty() && store.last_index()? == 0)
}

/// Writes the founding configuration, `config.peers` as voters, as a
/// snapshot at index 1, which every founder writes alike. A node added
/// later (`join`) starts blank instead and receives that snapshot, or a
/// later one, from the leader.
///
/// # Errors
///
/// The WAL's errors.
pub fn found(config: &NodeConfig, store: &WalStorage) -> Result<(), NodeError> {
    let mut founding = Snapshot::default();
    let meta = founding.mut_metadata();
    meta.index = 1;
    meta.term = 1;
    meta.set_conf_state(ConfState::from((
        config.peers.keys().copied().collect::<Vec<_>>(),
        vec![],
    )));
    store.apply_snapshot(founding)?;
    store.sync()?;
    Ok(())
}

/// Before a blank founding member founds the cluster: asks the other
/// founders how much log they hold, until a majority of the founders
/// (this node counting as one) has answered, and refuses if any holds
/// more than the founding entry: the cluster runs, and this node's data
/// is gone. Waiting for a majority, rather than founding when nobody
/// answers, keeps a blank node from founding the cluster again while the
/// others restart (after a power cut, say); their listeners answer before
/// their Ready loops run.
///
/// # Errors
///
/// [`IdentityError::ClusterExists`] naming the peer.
pub async fn refuse_if_cluster_exists(
    config: &NodeConfig,
    security: &PeerSecurity,
    cluster: ClusterId,
) -> Result<(), NodeError> {
    let majority = config.peers.len() / 2 + 1;
    let mut blank: Vec<u64> = vec![config.id];
    let mut waited = std::time::Instant::now();
    while blank.len() < majority {
        let asked = config
            .peers
            .iter()
            .filter(|(id, _)| !blank.contains(id))
            .map(|(&id, &addr)| async move {
                (
                    id,
                    transport::probe(addr, security, cluster, config.id, id).await,
                )
            });
        for (peer, held) in futures::future::join_all(asked).await {
            match held {
                Some(held) if held > 1 => {
                    return Err(IdentityError::ClusterExists {
                        me: config.id,
                        peer,
                        held,
                    }
                    .into())
                }
                Some(_) => blank.push(peer),
                None => {}
            }
        }
        if blank.len() < majority {
            if waited.elapsed() > Duration::from_secs(5) {
                info!(
                    "blank founding member: {} of the {majority} founders needed have answered; waiting for the rest",
                    blank.len()
                );
                waited = std::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// The raft node and the records as of the WAL's snapshot, from which the
/// committed entries after it are applied again.
///
/// Those entries include the membership changes made since the snapshot,
/// and each must be applied to the configuration it was made from. The
/// WAL's configuration is the latest applied one, so raft is started from
/// the snapshot's instead: replayed onto the latest, a change can fail
/// (adding as a learner a node already promoted demotes it, and if it was
/// the only voter raft refuses the change) or act twice. raft takes its
/// first configuration from the WAL only, so the snapshot's is written
/// there for `RawNode::new` and the latest written back right after: a
/// crash before the replay must not leave the boot check of the next start
/// facing a membership that no longer names this node.
///
/// # Errors
///
/// The WAL cannot be read or written, or its snapshot is not the record
/// log's.
pub fn restore(
    config: &NodeConfig,
    store: &WalStorage,
    logger: &slog::Logger,
) -> Result<(RawNode<WalStorage>, RecordLog), NodeError> {
    let snapshot = store.snapshot(0, config.id)?;
    let applied = snapshot.get_metadata().index;
    let mut log = RecordLog::new(config.retention());
    log.restore(applied, snapshot.get_data())?;
    let latest = store.initial_state()?.conf_state;
    store.set_conf_state(snapshot.get_metadata().get_conf_state().clone())?;
    let raft_config = Config {
        id: config.id,
        election_tick: config.election_ticks,
        heartbeat_tick: config.heartbeat_ticks,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        read_only_option: ReadOnlyOption::Safe,
        ..Config::default()
    };
    let raw = RawNode::new(&raft_config, store.clone(), logger);
    store.set_conf_state(latest)?;
    Ok((raw?, log))
}

/// Runs a node until `stop` is cancelled.
///
/// # Errors
///
/// Startup failures (configuration, WAL, sockets) and fatal loop errors.
pub async fn run(config: NodeConfig, stop: CancellationToken) -> Result<(), NodeError> {
    config.check()?;
    let id = config.id;
    let store = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open_storage(&config))
            .await
            .expect("opening the WAL returns errors, it does not panic")?
    };
    let cluster = ClusterId::of_name(&config.cluster_name);
    let security = Arc::new(peer_security(&config, cluster)?);
    // Admitted from the start: the stored configuration's members and the
    // peers named; `Peers` keeps it from then on.
    let stored = store.initial_state()?.conf_state;
    let named = config.peers.keys().copied().filter(|&peer| peer != id);
    let members = Members::new(
        transport::members_of(&stored, id)
            .unwrap_or_default()
            .into_iter()
            .chain(named),
    );
    let metrics = Arc::new(Metrics::new(id));
    let (inbox_tx, inbox) = mpsc::channel(INBOX_REQUESTS);
    let bind = |what, addr| move |source| NodeError::Bind { what, addr, source };
    let peer_listener = TcpListener::bind(config.listen())
        .await
        .map_err(bind("peer address", config.listen()))?;
    let api_listener = TcpListener::bind(config.api)
        .await
        .map_err(bind("API address", config.api))?;
    let api_listener = match &config.api_tls {
        Some(files) => Either::Left(TlsListener::new(api_listener, files)?),
        None => Either::Right(api_listener),
    };
    let kafka_listener = match &config.kafka {
        Some(kafka) => {
            let plain = TcpListener::bind(kafka.listen)
                .await
                .map_err(bind("Kafka address", kafka.listen))?;
            let tls_client_auth = config
                .api_tls
                .as_ref()
                .is_some_and(|t| t.client_ca.is_some());
            if !tls_client_auth && !kafka.listen.ip().is_loopback() {
                tracing::warn!(
                    "the Kafka listener on {} takes any client: give --api-cert, --api-key and \
                     --api-client-ca to require client certificates",
                    kafka.listen
                );
            }
            Some(match &config.api_tls {
                Some(files) => Either::Left(TlsListener::new(plain, files)?),
                None => Either::Right(plain),
            })
        }
        None => None,
    };
    let api_token = config
        .api_token_file
        .as_deref()
        .map(read_token)
        .transpose()?;
    if api_token.is_some() && config.api_tls.is_none() && !config.api.ip().is_loopback() {
        tracing::warn!(
            "the API token travels in plain HTTP on {}: give --api-cert and --api-key",
            config.api
        );
    }
    // Listening before founding: a blank founder waits for its peers'
    // answers, and they for its own. Messages queue until the loop runs.
    let identity = transport::Identity {
        me: id,
        cluster,
        store: store.clone(),
        security: security.clone(),
        members: members.clone(),
    };
    tokio::spawn(transport::serve(
        peer_listener,
        identity,
        inbox_tx.clone(),
        stop.clone(),
    ));
    if is_blank(&store)? && !config.join {
        refuse_if_cluster_exists(&config, &security, cluster).await?;
        found(&config, &store)?;
    }
    cluster.check_or_store(&config.dir)?;
    let (raw, log) = restore(&config, &store, &raft_logger(id))?;
    let applied = log.applied();

    let mut peers = Peers::new(
        id,
        cluster,
        (security, members),
        inbox_tx.clone(),
        metrics.clone(),
        stop.clone(),
    );
    for (&peer, &addr) in &config.peers {
        peers.connect(peer, addr);
    }
    peers.admit(&stored);
    let log = Arc::new(RwLock::new(log));
    let persist_jobs = match config.persist {
        Persistence::Sync => None,
        Persistence::Async => {
            let (jobs, queue) = mpsc::channel(PERSIST_JOBS);
            tokio::spawn(
                persister::run(queue, inbox_tx.clone(), metrics.clone()).in_current_span(),
            );
            Some(jobs)
        }
    };
    let ready_loop = ReadyLoop::new(
        raw,
        log.clone(),
        peers,
        metrics.clone(),
        (inbox_tx.clone(), inbox),
        &config,
        persist_jobs,
    )?;

    let node = NodeHandle::new(inbox_tx, REQUEST_TIMEOUT);
    if let (Some(listener), Some(kafka)) = (kafka_listener, &config.kafka) {
        let state = kafka::KafkaState {
            node: node.clone(),
            log: log.clone(),
            id,
            config: Arc::new(kafka.clone()),
            cluster_name: Arc::from(config.cluster_name.as_str()),
        };
        tokio::spawn(kafka::serve(listener, state, stop.clone()).in_current_span());
    }
    let state = api::ApiState {
        node,
        log,
        metrics,
        token: api_token.map(Arc::from),
    };
    match api_listener {
        Either::Left(tls) => tokio::spawn(api::serve(tls, state, stop.clone()).in_current_span()),
        Either::Right(plain) => {
            tokio::spawn(api::serve(plain, state, stop.clone()).in_current_span())
        }
    };
    info!(
        "node {id}: raft on {}, API on {}, WAL in {}, applied {applied}",
        config.listen(),
        config.api,
        config.dir.display()
    );
    let result = ready_loop.run(stop.clone()).await;
    stop.cancel();
    result
}

/// Peer TLS from the configured files, or plain TCP with a warning.
fn peer_security(config: &NodeConfig, cluster: ClusterId) -> Result<PeerSecurity, NodeError> {
    match &config.peer_tls {
        Some(files) => {
            let peers: Vec<u64> = config.peers.keys().copied().collect();
            let tls = PeerTls::load(files, cluster, config.id, &peers)?;
            Ok(PeerSecurity::Tls(tls))
        }
        None => {
            tracing::warn!(
                "--insecure-peers: the raft port takes plain TCP; anyone who reaches it can \
                 speak raft to this node as any member"
            );
            Ok(PeerSecurity::Insecure)
        }
    }
}

/// raft-rs's own log records, on stderr beside the node's, tagged with the
/// node id (raft adds `raft_id`).
fn raft_logger(id: u64) -> slog::Logger {
    use slog::Drain;
    let decorator = slog_term::PlainDecorator::new(std::io::stderr());
    let drain = slog_term::CompactFormat::new(decorator).build().fuse();
    let drain = slog_async::Async::new(drain).build().fuse();
    let drain = slog::LevelFilter::new(drain, slog::Level::Info).fuse();
    slog::Logger::root(drain, slog::o!("node" => id))
}
