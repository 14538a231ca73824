//! The engine adapter: the only code that names the two raft crates.
//!
//! [`Upstream`] is crates.io raft 0.7.0 and [`Fork`] is this repository's
//! `raft/`. One macro implements [`Engine`] for both, and makes the
//! simulated disk ([`SimStorage`]) each crate's `Storage`; [`Mixed`] runs
//! either per node, for rolling upgrades. Both crates use
//! the workspace's `raft-proto`, so messages and entries are one type.

use raft_proto::eraftpb::{
    ConfChangeV2, ConfState, Entry, HardState, Message, MessageType, Snapshot,
};

use crate::world::disk::ReadError;
use crate::world::storage::NodeStorage;

/// Which engine a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// crates.io raft 0.7.0.
    Upstream,
    /// This repository's raft.
    Fork,
}

impl EngineKind {
    /// Both engines, upstream first.
    pub const ALL: [EngineKind; 2] = [EngineKind::Upstream, EngineKind::Fork];

    /// The name the CLI and reports use.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Upstream => Upstream::NAME,
            EngineKind::Fork => Fork::NAME,
        }
    }

    /// The other engine.
    pub fn other(self) -> EngineKind {
        match self {
            EngineKind::Upstream => EngineKind::Fork,
            EngineKind::Fork => EngineKind::Upstream,
        }
    }
}

/// What a node is configured with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's id.
    pub id: u64,
    /// The engine the node runs, where the world mixes them ([`Mixed`]);
    /// `None` in a world of one engine.
    pub engine: Option<EngineKind>,
    /// Election timeouts are drawn from `[min, max)` ticks.
    pub election_ticks_min: usize,
    /// See `election_ticks_min`.
    pub election_ticks_max: usize,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: usize,
    /// The index the node's state machine has applied.
    pub applied: u64,
    /// `Config::max_size_per_msg`.
    pub max_size_per_msg_bytes: u64,
    /// `Config::max_inflight_msgs`.
    pub max_inflight_msgs: usize,
    /// `Config::pre_vote`.
    pub pre_vote: bool,
    /// `Config::check_quorum`.
    pub check_quorum: bool,
    /// `Config::read_only_option`.
    pub read_mode: ReadMode,
    /// `Config::priority`.
    pub priority: i64,
}

/// `ReadOnlyOption`, in the simulation's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ReadMode {
    /// `ReadOnlyOption::Safe`: the leader confirms it still leads with a
    /// round of heartbeats carrying the request's context.
    Safe,
    /// `ReadOnlyOption::LeaseBased`: the leader answers from its lease.
    LeaseBased,
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks for pre-votes.
    PreCandidate,
    /// Asks for votes.
    Candidate,
    /// Leads its term.
    Leader,
}

/// What the simulation reads of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStatus {
    /// Current term.
    pub term: u64,
    /// Current role.
    pub role: Role,
    /// The leader the node knows, 0 if none.
    pub leader_id: u64,
    /// The commit index.
    pub commit: u64,
    /// The last index of the node's log (storage and unstable).
    pub last_index: u64,
}

/// What a leader did with a read it was just given, as its public state
/// shows right after the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTaken {
    /// Answered in the same call: a `ReadState` for a local read, a
    /// `MsgReadIndexResp` for a forwarded one.
    AtOnce,
    /// Waiting for a ReadIndex round (`ReadOnly::pending_read_index`).
    Round,
    /// Neither: dropped, as before a leader commits in its term.
    Dropped,
}

/// The parts of a `Ready` the simulation acts on, in the order the
/// documented loop handles them.
#[derive(Debug, Default)]
pub struct ReadyParts {
    /// `Ready::number`.
    pub number: u64,
    /// Messages to send at once.
    pub messages: Vec<Message>,
    /// Answers to read requests: the request's context and the read index.
    pub read_states: Vec<(Vec<u8>, u64)>,
    /// A snapshot to apply to storage and the state machine.
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply.
    pub committed_entries: Vec<Entry>,
    /// Entries to append to storage.
    pub entries: Vec<Entry>,
    /// The hard state to write, if it changed.
    pub hard_state: Option<HardState>,
    /// Messages to send once the above is durable.
    pub persisted_messages: Vec<Message>,
}

/// The parts of a `LightReady`.
#[derive(Debug, Default)]
pub struct LightParts {
    /// The new commit index, if it changed.
    pub commit: Option<u64>,
    /// Committed entries to apply.
    pub committed_entries: Vec<Entry>,
    /// Messages to send.
    pub messages: Vec<Message>,
}

/// A raft implementation the simulation can drive.
pub trait Engine {
    /// The name in reports.
    const NAME: &'static str;
    /// A `RawNode` over [`NodeStorage`], with whatever the adapter keeps.
    type Node;

    /// `RawNode::new`, logging to `logger`.
    fn new_node(
        config: &NodeConfig,
        storage: NodeStorage,
        logger: &slog::Logger,
    ) -> Result<Self::Node, String>;
    /// `RawNode::tick`.
    fn tick(node: &mut Self::Node);
    /// `RawNode::step`.
    fn step(node: &mut Self::Node, msg: Message) -> Result<(), String>;
    /// `RawNode::campaign`.
    fn campaign(node: &mut Self::Node) -> Result<(), String>;
    /// `RawNode::propose` with no context.
    fn propose(node: &mut Self::Node, data: Vec<u8>) -> Result<(), String>;
    /// `RawNode::propose_conf_change` with no context.
    fn propose_conf_change(node: &mut Self::Node, change: ConfChangeV2) -> Result<(), String>;
    /// `RawNode::apply_conf_change`.
    fn apply_conf_change(node: &mut Self::Node, change: &ConfChangeV2)
        -> Result<ConfState, String>;
    /// `RawNode::transfer_leader`.
    fn transfer_leader(node: &mut Self::Node, to: u64);
    /// `RawNode::read_index`.
    fn read_index(node: &mut Self::Node, ctx: Vec<u8>);
    /// `RawNode::report_unreachable`.
    fn report_unreachable(node: &mut Self::Node, to: u64);
    /// `RawNode::report_snapshot`: whether the snapshot sent to `to`
    /// arrived.
    fn report_snapshot(node: &mut Self::Node, to: u64, arrived: bool);
    /// `RawNode::has_ready`.
    fn has_ready(node: &Self::Node) -> bool;
    /// `RawNode::ready`; the adapter keeps the `Ready` for the advance call.
    fn ready(node: &mut Self::Node) -> ReadyParts;
    /// `RawNode::advance_append` on the kept `Ready`.
    fn advance_append(node: &mut Self::Node) -> LightParts;
    /// `RawNode::advance_append_async` on the kept `Ready`.
    fn advance_append_async(node: &mut Self::Node);
    /// `RawNode::on_persist_ready`.
    fn on_persist_ready(node: &mut Self::Node, number: u64);
    /// `RawNode::advance_apply_to`.
    fn advance_apply_to(node: &mut Self::Node, applied: u64);
    /// Term, role, leader, commit and last index.
    fn status(node: &Self::Node) -> NodeStatus;
    /// What the node, leading, did with the read of context `ctx` it was
    /// just given.
    fn read_taken(node: &Self::Node, ctx: &[u8]) -> ReadTaken;
    /// `Raft::set_randomized_election_timeout`: raft 0.7 draws the timeout
    /// from `thread_rng`, so the simulation overrides every draw with one
    /// from its seed.
    fn set_election_timeout(node: &mut Self::Node, ticks: usize);
}

/// crates.io raft 0.7.0.
pub struct Upstream;

/// This repository's raft.
pub struct Fork;

macro_rules! engine {
    ($engine:ident, $node:ident, $name:literal, $raft:ident) => {
        impl $raft::Storage for NodeStorage {
            fn initial_state(&self) -> $raft::Result<$raft::RaftState> {
                let (hard_state, conf_state) = self.disk().initial_state();
                Ok($raft::RaftState {
                    hard_state,
                    conf_state,
                })
            }

            fn entries(
                &self,
                low: u64,
                high: u64,
                max_size: impl Into<Option<u64>>,
                _context: $raft::GetEntriesContext,
            ) -> $raft::Result<Vec<Entry>> {
                let max_size = max_size.into();
                let entries = match self.wal() {
                    Some(wal) => wal_reads::entries(&wal, low, high, max_size),
                    None => self.disk().entries(low, high, max_size),
                };
                entries.map_err(|e| $raft::Error::Store(storage_error!($raft, e)))
            }

            fn term(&self, idx: u64) -> $raft::Result<u64> {
                let term = match self.wal() {
                    Some(wal) => wal_reads::term(&wal, idx),
                    None => self.disk().term(idx),
                };
                term.map_err(|e| $raft::Error::Store(storage_error!($raft, e)))
            }

            fn first_index(&self) -> $raft::Result<u64> {
                Ok(match self.wal() {
                    Some(wal) => wal_reads::first_index(&wal),
                    None => self.disk().first_index(),
                })
            }

            fn last_index(&self) -> $raft::Result<u64> {
                Ok(match self.wal() {
                    Some(wal) => wal_reads::last_index(&wal),
                    None => self.disk().last_index(),
                })
            }

            fn snapshot(&self, request_index: u64, _to: u64) -> $raft::Result<Snapshot> {
                let snap = match self.wal() {
                    Some(wal) => wal_reads::snapshot(&wal, request_index),
                    None => self.disk().snapshot(request_index),
                };
                snap.map_err(|e| $raft::Error::Store(storage_error!($raft, e)))
            }
        }

        /// A `RawNode` of this engine, and the `Ready` being handled.
        pub struct $node {
            raw: $raft::RawNode<NodeStorage>,
            ready: Option<$raft::Ready>,
        }

        impl Engine for $engine {
            const NAME: &'static str = $name;
            type Node = $node;

            fn new_node(
                config: &NodeConfig,
                storage: NodeStorage,
                logger: &slog::Logger,
            ) -> Result<$node, String> {
                let raft_config = $raft::Config {
                    id: config.id,
                    election_tick: config.election_ticks_min,
                    min_election_tick: config.election_ticks_min,
                    max_election_tick: config.election_ticks_max,
                    heartbeat_tick: config.heartbeat_ticks,
                    applied: config.applied,
                    max_size_per_msg: config.max_size_per_msg_bytes,
                    max_inflight_msgs: config.max_inflight_msgs,
                    pre_vote: config.pre_vote,
                    check_quorum: config.check_quorum,
                    read_only_option: match config.read_mode {
                        ReadMode::Safe => $raft::ReadOnlyOption::Safe,
                        ReadMode::LeaseBased => $raft::ReadOnlyOption::LeaseBased,
                    },
                    priority: config.priority,
                    ..Default::default()
                };
                let raw = $raft::RawNode::new(&raft_config, storage, logger)
                    .map_err(|e| e.to_string())?;
                Ok($node { raw, ready: None })
            }

            fn tick(node: &mut $node) {
                node.raw.tick();
            }

            fn step(node: &mut $node, msg: Message) -> Result<(), String> {
                node.raw.step(msg).map_err(|e| e.to_string())
            }

            fn campaign(node: &mut $node) -> Result<(), String> {
                node.raw.campaign().map_err(|e| e.to_string())
            }

            fn propose(node: &mut $node, data: Vec<u8>) -> Result<(), String> {
                node.raw
                    .propose(Vec::new(), data)
                    .map_err(|e| e.to_string())
            }

            fn propose_conf_change(node: &mut $node, change: ConfChangeV2) -> Result<(), String> {
                node.raw
                    .propose_conf_change(Vec::new(), change)
                    .map_err(|e| e.to_string())
            }

            fn apply_conf_change(
                node: &mut $node,
                change: &ConfChangeV2,
            ) -> Result<ConfState, String> {
                node.raw
                    .apply_conf_change(change)
                    .map_err(|e| e.to_string())
            }

            fn transfer_leader(node: &mut $node, to: u64) {
                node.raw.transfer_leader(to);
            }

            fn read_index(node: &mut $node, ctx: Vec<u8>) {
                node.raw.read_index(ctx);
            }

            fn read_taken(node: &$node, ctx: &[u8]) -> ReadTaken {
                let raft = &node.raw.raft;
                let answered = raft.read_states.iter().any(|rs| rs.request_ctx == ctx)
                    || raft.msgs.iter().any(|m| {
                        m.get_msg_type() == MessageType::MsgReadIndexResp
                            && m.entries.first().is_some_and(|e| e.data.as_ref() == ctx)
                    });
                if raft.read_only.pending_read_index.contains_key(ctx) {
                    ReadTaken::Round
                } else if answered {
                    ReadTaken::AtOnce
                } else {
                    ReadTaken::Dropped
                }
            }

            fn report_unreachable(node: &mut $node, to: u64) {
                node.raw.report_unreachable(to);
            }

            fn report_snapshot(node: &mut $node, to: u64, arrived: bool) {
                let status = if arrived {
                    $raft::SnapshotStatus::Finish
                } else {
                    $raft::SnapshotStatus::Failure
                };
                node.raw.report_snapshot(to, status);
            }

            fn has_ready(node: &$node) -> bool {
                node.raw.has_ready()
            }

            fn ready(node: &mut $node) -> ReadyParts {
                let mut rd = node.raw.ready();
                let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().clone());
                let parts = ReadyParts {
                    number: rd.number(),
                    messages: rd.take_messages(),
                    read_states: rd
                        .take_read_states()
                        .into_iter()
                        .map(|rs| (rs.request_ctx, rs.index))
                        .collect(),
                    snapshot,
                    committed_entries: rd.take_committed_entries(),
                    entries: rd.take_entries(),
                    hard_state: rd.hs().cloned(),
                    persisted_messages: rd.take_persisted_messages(),
                };
                node.ready = Some(rd);
                parts
            }

            fn advance_append(node: &mut $node) -> LightParts {
                let rd = node.ready.take().expect("advance without a Ready");
                let mut light = node.raw.advance_append(rd);
                LightParts {
                    commit: light.commit_index(),
                    committed_entries: light.take_committed_entries(),
                    messages: light.take_messages(),
                }
            }

            fn advance_append_async(node: &mut $node) {
                let rd = node.ready.take().expect("advance without a Ready");
                node.raw.advance_append_async(rd);
            }

            fn on_persist_ready(node: &mut $node, number: u64) {
                node.raw.on_persist_ready(number);
            }

            fn advance_apply_to(node: &mut $node, applied: u64) {
                node.raw.advance_apply_to(applied);
            }

            fn status(node: &$node) -> NodeStatus {
                let raft = &node.raw.raft;
                NodeStatus {
                    term: raft.term,
                    role: match raft.state {
                        $raft::StateRole::Follower => Role::Follower,
                        $raft::StateRole::PreCandidate => Role::PreCandidate,
                        $raft::StateRole::Candidate => Role::Candidate,
                        $raft::StateRole::Leader => Role::Leader,
                    },
                    leader_id: raft.leader_id,
                    commit: raft.raft_log.committed,
                    last_index: raft.raft_log.last_index(),
                }
            }

            fn set_election_timeout(node: &mut $node, ticks: usize) {
                node.raw.raft.set_randomized_election_timeout(ticks);
            }
        }
    };
}

macro_rules! storage_error {
    ($raft:ident, $e:expr) => {
        match $e {
            ReadError::Compacted => $raft::StorageError::Compacted,
            ReadError::Unavailable => $raft::StorageError::Unavailable,
            ReadError::SnapshotTemporarilyUnavailable => {
                $raft::StorageError::SnapshotTemporarilyUnavailable
            }
        }
    };
}

/// Reads from a [`WalStorage`](raft_wal_storage::WalStorage), which
/// implements the fork's `Storage`, in the world's terms. Both engines'
/// storage reads, and the world's check of a recovered WAL, go through here.
pub mod wal_reads {
    use raft::{GetEntriesContext, Storage, StorageError};
    use raft_proto::eraftpb::{Entry, Snapshot};
    use raft_wal_storage::WalStorage;

    use crate::world::disk::ReadError;

    fn read_error(e: raft::Error) -> ReadError {
        match e {
            raft::Error::Store(StorageError::Compacted) => ReadError::Compacted,
            raft::Error::Store(StorageError::Unavailable) => ReadError::Unavailable,
            raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable) => {
                ReadError::SnapshotTemporarilyUnavailable
            }
            e => panic!("harness: WAL read failed: {e}"),
        }
    }

    /// `Storage::entries`.
    pub fn entries(
        wal: &WalStorage,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> Result<Vec<Entry>, ReadError> {
        wal.entries(low, high, max_size, GetEntriesContext::empty(false))
            .map_err(read_error)
    }

    /// `Storage::term`.
    pub fn term(wal: &WalStorage, index: u64) -> Result<u64, ReadError> {
        wal.term(index).map_err(read_error)
    }

    /// `Storage::first_index`.
    pub fn first_index(wal: &WalStorage) -> u64 {
        wal.first_index().expect("the WAL answers from memory")
    }

    /// `Storage::last_index`.
    pub fn last_index(wal: &WalStorage) -> u64 {
        wal.last_index().expect("the WAL answers from memory")
    }

    /// `Storage::snapshot`.
    pub fn snapshot(wal: &WalStorage, request_index: u64) -> Result<Snapshot, ReadError> {
        wal.snapshot(request_index, 0).map_err(read_error)
    }
}

engine!(Upstream, UpstreamNode, "upstream", upstream);
engine!(Fork, ForkNode, "fork", raft);

/// Both engines in one cluster, chosen per node each time it starts
/// ([`NodeConfig::engine`]): a cluster in the middle of a rolling upgrade.
pub struct Mixed;

/// A node of either engine.
pub enum MixedNode {
    /// On crates.io raft 0.7.0.
    Upstream(UpstreamNode),
    /// On the fork.
    Fork(ForkNode),
}

/// Runs `$body` with `$engine` the node's engine and `$n` its node.
macro_rules! either {
    ($node:expr, |$engine:ident, $n:ident| $body:expr) => {
        match $node {
            MixedNode::Upstream($n) => {
                type $engine = Upstream;
                $body
            }
            MixedNode::Fork($n) => {
                type $engine = Fork;
                $body
            }
        }
    };
}

impl Engine for Mixed {
    const NAME: &'static str = "mixed";
    type Node = MixedNode;

    fn new_node(
        config: &NodeConfig,
        storage: NodeStorage,
        logger: &slog::Logger,
    ) -> Result<MixedNode, String> {
        match config.engine {
            Some(EngineKind::Upstream) => {
                Upstream::new_node(config, storage, logger).map(MixedNode::Upstream)
            }
            Some(EngineKind::Fork) => Fork::new_node(config, storage, logger).map(MixedNode::Fork),
            None => Err("a mixed cluster names each node's engine".into()),
        }
    }
    fn tick(node: &mut MixedNode) {
        either!(node, |E, n| E::tick(n))
    }
    fn step(node: &mut MixedNode, msg: Message) -> Result<(), String> {
        either!(node, |E, n| E::step(n, msg))
    }
    fn campaign(node: &mut MixedNode) -> Result<(), String> {
        either!(node, |E, n| E::campaign(n))
    }
    fn propose(node: &mut MixedNode, data: Vec<u8>) -> Result<(), String> {
        either!(node, |E, n| E::propose(n, data))
    }
    fn propose_conf_change(node: &mut MixedNode, change: ConfChangeV2) -> Result<(), String> {
        either!(node, |E, n| E::propose_conf_change(n, change))
    }
    fn apply_conf_change(node: &mut MixedNode, change: &ConfChangeV2) -> Result<ConfState, String> {
        either!(node, |E, n| E::apply_conf_change(n, change))
    }
    fn transfer_leader(node: &mut MixedNode, to: u64) {
        either!(node, |E, n| E::transfer_leader(n, to))
    }
    fn read_index(node: &mut MixedNode, ctx: Vec<u8>) {
        either!(node, |E, n| E::read_index(n, ctx))
    }
    fn read_taken(node: &MixedNode, ctx: &[u8]) -> ReadTaken {
        either!(node, |E, n| E::read_taken(n, ctx))
    }
    fn report_unreachable(node: &mut MixedNode, to: u64) {
        either!(node, |E, n| E::report_unreachable(n, to))
    }
    fn report_snapshot(node: &mut MixedNode, to: u64, arrived: bool) {
        either!(node, |E, n| E::report_snapshot(n, to, arrived))
    }
    fn has_ready(node: &MixedNode) -> bool {
        either!(node, |E, n| E::has_ready(n))
    }
    fn ready(node: &mut MixedNode) -> ReadyParts {
        either!(node, |E, n| E::ready(n))
    }
    fn advance_append(node: &mut MixedNode) -> LightParts {
        either!(node, |E, n| E::advance_append(n))
    }
    fn advance_append_async(node: &mut MixedNode) {
        either!(node, |E, n| E::advance_append_async(n))
    }
    fn on_persist_ready(node: &mut MixedNode, number: u64) {
        either!(node, |E, n| E::on_persist_ready(n, number))
    }
    fn advance_apply_to(node: &mut MixedNode, applied: u64) {
        either!(node, |E, n| E::advance_apply_to(n, applied))
    }
    fn status(node: &MixedNode) -> NodeStatus {
        either!(node, |E, n| E::status(n))
    }
    fn set_election_timeout(node: &mut MixedNode, ticks: usize) {
        either!(node, |E, n| E::set_election_timeout(n, ticks))
    }
}
