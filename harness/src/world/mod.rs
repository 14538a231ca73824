//! The simulated world: nodes with their disks, the network and the clock.
//!
//! Everything random is drawn from generators derived from the run's seed,
//! and every collection the simulation iterates is ordered, so one seed and
//! one engine give one trace. A tick advances the clock, ticks every node
//! that is up, then settles: messages due are delivered, every Ready is
//! handled (persist, send, apply, advance) and due syncs complete, until
//! nothing is left to do in that tick.

pub mod disk;
pub mod network;
pub mod node;
pub mod patch_log;
pub mod storage;
pub mod trace;

use std::cell::Ref;
use std::collections::{BTreeMap, BTreeSet};

use protobuf::Message as _;
use raft_proto::eraftpb::{
    ConfChangeTransition, ConfChangeV2, Entry, EntryType, Message, MessageType,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::engine::{Engine, EngineKind, NodeConfig, NodeStatus, ReadMode, ReadTaken, Role};
use disk::{Disk, WriteMode};
use network::{Network, Sent};
use node::{PendingSync, SimNode, StateMachine};
use storage::{NodeStorage, StorageKind};
use trace::{Compact, Trace};

/// When writes become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Durability {
    /// Each Ready is synced before `advance_append` (the plain loop).
    Sync,
    /// `advance_append_async`; the disk syncs 0 to `delay_ticks_max` ticks
    /// later and raft hears of it through `on_persist_ready`.
    Async {
        /// Longest sync delay.
        delay_ticks_max: u64,
    },
}

/// How the cluster is built.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorldConfig {
    /// Node ids, 1..=n.
    pub ids: Vec<u64>,
    /// When writes become durable.
    pub durability: Durability,
    /// How disks treat overwritten tails.
    #[serde(skip)]
    pub write_mode: WriteMode,
    /// What nodes store their log on.
    pub storage: StorageKind,
    /// Election timeouts are drawn from `[min, 2 * min)` ticks.
    pub election_ticks_min: usize,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: usize,
    /// `Config::pre_vote`.
    pub pre_vote: bool,
    /// `Config::check_quorum`.
    pub check_quorum: bool,
    /// `Config::read_only_option`.
    pub read_mode: ReadMode,
    /// `Config::priority` of each node, by id order; empty: all 0.
    pub priorities: Vec<i64>,
    /// Whether the transport calls `report_unreachable` for a message it
    /// could not deliver (dropped, cut or lost in flight), as TiKV's does.
    pub report_unreachable: bool,
    /// In a rolling upgrade, the engine nodes are switched to; they start
    /// on the other one. `None` in a world of one engine.
    #[serde(skip)]
    pub upgrade_to: Option<EngineKind>,
}

/// What happened in the world, for the workload and the checkers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node's state machine applied an entry (or a snapshot, which
    /// applies everything up to its index at once).
    Applied {
        /// The node.
        node: u64,
        /// The index applied up to.
        index: u64,
        /// The chain hash of everything applied.
        chain: u64,
        /// The client proposal the entry carries, if any.
        proposal: Option<u64>,
    },
    /// A node served a read: a `ReadState` for the request's context
    /// arrived and its state machine has applied up to the read index.
    ReadServed {
        /// The node.
        node: u64,
        /// The request's context.
        ctx: Vec<u8>,
        /// The `ReadState`'s index.
        read_index: u64,
        /// The state machine the read is served from.
        state: StateMachine,
        /// In a world that mixes engines, whether the read index came from
        /// a node running crates.io 0.7.0.
        answered_by_upstream: bool,
        /// With lease reads, where a leader sent it through a ReadIndex
        /// round rather than answering from its lease: ticks from then to
        /// its serving.
        round_ticks: Option<u64>,
    },
    /// A node went down, losing what its disk had not synced.
    Crashed(u64),
    /// A node came back up from its disk.
    Restarted(u64),
}

const PROPOSAL_TAG: &[u8; 8] = b"proposal";

/// The data of client proposal `id`, `bytes` long (at least 16).
pub fn proposal_data(id: u64, bytes: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(bytes.max(16));
    data.extend_from_slice(&id.to_le_bytes());
    data.extend_from_slice(PROPOSAL_TAG);
    data.resize(bytes.max(16), (id % 251) as u8);
    data
}

/// The client proposal an entry carries, if any.
pub fn proposal_of(entry: &Entry) -> Option<u64> {
    let data: &[u8] = &entry.data;
    (data.len() >= 16 && &data[8..16] == PROPOSAL_TAG)
        .then(|| u64::from_le_bytes(data[..8].try_into().unwrap()))
}

/// The read a request context names: the client's read id, 8 bytes.
pub fn read_id(ctx: &[u8]) -> u64 {
    ctx.try_into().map_or(0, u64::from_le_bytes)
}

/// Whether a read `raft` is given is a lease read at a leader.
fn lease_read_at_leader<E: Engine>(mode: ReadMode, raft: &E::Node) -> bool {
    mode == ReadMode::LeaseBased && E::status(raft).role == Role::Leader
}

/// The cluster, its network and its clock.
pub struct World<E: Engine> {
    /// The current tick.
    pub now: u64,
    config: WorldConfig,
    nodes: Vec<SimNode<E>>,
    network: Network,
    trace: Trace,
    timeouts: ChaCha8Rng,
    sync_delays: ChaCha8Rng,
    events: Vec<Event>,
    /// Messages the transport failed to deliver, as (from, to), reported
    /// to the sender at the next settling round.
    unreachable: Vec<(u64, u64)>,
    /// Nodes a rolling upgrade has switched to `upgrade_to`.
    upgraded: BTreeSet<u64>,
    /// Contexts of lease reads a leader sent through a ReadIndex round,
    /// and the tick it first did.
    lease_rounds: BTreeMap<Vec<u8>, u64>,
    /// How often the rarer things a scenario is about happened, by name.
    counts: BTreeMap<&'static str, u64>,
}

/// Settling rounds in one tick before giving up (each round delivers due
/// messages and handles every Ready); a cluster settles in a few.
const SETTLE_ROUNDS_MAX: usize = 1_000;

impl<E: Engine> World<E> {
    /// A cluster whose nodes start from `disks` (one per id).
    ///
    /// # Errors
    ///
    /// If a node cannot start from its disk.
    pub fn new(
        config: WorldConfig,
        storages: Vec<NodeStorage>,
        network: Network,
        trace: Trace,
        timeouts: ChaCha8Rng,
        sync_delays: ChaCha8Rng,
    ) -> Result<World<E>, String> {
        let nodes = config
            .ids
            .iter()
            .zip(storages)
            .map(|(&id, storage)| SimNode {
                id,
                storage,
                raft: None,
                sm: StateMachine::default(),
                pending: Default::default(),
                last_seen: None,
                unsynced_snapshot: None,
                read_states: Vec::new(),
                read_index_from: BTreeMap::new(),
            })
            .collect();
        let mut world = World {
            now: 0,
            config,
            nodes,
            network,
            trace,
            timeouts,
            sync_delays,
            events: Vec::new(),
            unreachable: Vec::new(),
            upgraded: BTreeSet::new(),
            lease_rounds: BTreeMap::new(),
            counts: BTreeMap::new(),
        };
        for id in world.config.ids.clone() {
            world.start(id)?;
        }
        Ok(world)
    }

    /// Node ids.
    pub fn ids(&self) -> &[u64] {
        &self.config.ids
    }

    fn node(&self, id: u64) -> &SimNode<E> {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut SimNode<E> {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Records a trace event.
    pub fn trace(&mut self, args: std::fmt::Arguments<'_>) {
        self.trace.event(self.now, args);
    }

    /// How many events the trace holds so far (none if it is off).
    pub fn trace_events(&self) -> usize {
        self.trace.event_count()
    }

    /// The trace so far.
    pub fn trace_ref(&self) -> &Trace {
        &self.trace
    }

    /// Ends the world, returning its trace with every fork-patch record
    /// in it.
    pub fn into_trace(mut self) -> Trace {
        self.trace.flush_records(self.now);
        self.trace
    }

    /// Whether the node is up.
    pub fn is_up(&self, id: u64) -> bool {
        self.node(id).raft.is_some()
    }

    /// The node's status, if it is up.
    pub fn status(&self, id: u64) -> Option<NodeStatus> {
        self.node(id).raft.as_ref().map(E::status)
    }

    /// The node's disk.
    pub fn disk(&self, id: u64) -> Ref<'_, Disk> {
        self.node(id).storage.disk()
    }

    /// The node's storage, for faults that write behind raft's back.
    pub fn storage(&self, id: u64) -> &NodeStorage {
        &self.node(id).storage
    }

    /// The node's state machine.
    pub fn state_machine(&self, id: u64) -> StateMachine {
        self.node(id).sm
    }

    /// The up node that leads the highest term, if any.
    pub fn leader(&self) -> Option<u64> {
        self.ids()
            .iter()
            .filter_map(|&id| self.status(id).map(|s| (id, s)))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(id, s)| (s.term, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    /// Takes the events since the last call.
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Counts one occurrence of `what`.
    pub fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    /// What [`World::count`] counted.
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    /// The network, for faults.
    pub fn network(&mut self) -> &mut Network {
        &mut self.network
    }

    fn start(&mut self, id: u64) -> Result<(), String> {
        let node = self.node_mut(id);
        let snap = node
            .storage
            .disk()
            .snapshot(0)
            .map_err(|e| format!("{e:?}"))?;
        node.sm = StateMachine::from_snapshot(&snap);
        let engine = self.engine_of(id);
        let config = NodeConfig {
            id,
            engine,
            election_ticks_min: self.config.election_ticks_min,
            election_ticks_max: 2 * self.config.election_ticks_min,
            heartbeat_ticks: self.config.heartbeat_ticks,
            applied: self.node(id).sm.applied,
            max_size_per_msg_bytes: 1 << 20,
            max_inflight_msgs: 256,
            pre_vote: self.config.pre_vote,
            check_quorum: self.config.check_quorum,
            read_mode: self.config.read_mode,
            priority: self
                .config
                .priorities
                .get((id - 1) as usize)
                .copied()
                .unwrap_or(0),
        };
        let logger = self.trace.patch_sink().logger(id);
        let raft = E::new_node(&config, self.node(id).storage.clone(), &logger)?;
        let node = self.node_mut(id);
        node.raft = Some(raft);
        node.last_seen = None;
        node.pending.clear();
        node.unsynced_snapshot = None;
        node.read_states.clear();
        node.read_index_from.clear();
        self.after_call(id);
        Ok(())
    }

    /// Draws a new election timeout from the seed whenever raft reset its
    /// own (a change of term or role), so no draw of raft's `thread_rng`
    /// is ever used.
    fn after_call(&mut self, id: u64) {
        let Some(status) = self.status(id) else {
            return;
        };
        let now_seen = (status.term, status.role);
        if self.node(id).last_seen != Some(now_seen) {
            let min = self.config.election_ticks_min;
            let ticks = self.timeouts.gen_range(min..2 * min);
            let node = self.node_mut(id);
            node.last_seen = Some(now_seen);
            E::set_election_timeout(node.raft.as_mut().unwrap(), ticks);
            if self.trace.on() {
                self.trace(format_args!(
                    "n{id} {:?} t{} timeout {ticks}",
                    status.role, status.term
                ));
            }
        }
    }

    /// Advances the clock one tick and ticks every node that is up.
    pub fn tick(&mut self) {
        self.now += 1;
        for id in self.config.ids.clone() {
            if let Some(raft) = self.node_mut(id).raft.as_mut() {
                E::tick(raft);
                self.after_call(id);
            }
        }
    }

    /// Delivers messages, handles Readies and completes syncs until the
    /// tick has nothing left to do.
    pub fn settle(&mut self) {
        for _ in 0..SETTLE_ROUNDS_MAX {
            let mut busy = self.report_unreachable();
            let (arrived, lost) = self.network.deliver(self.now);
            for msg in lost {
                busy = true;
                self.lost(&msg);
            }
            for msg in arrived {
                busy = true;
                self.deliver(msg);
            }
            for id in self.config.ids.clone() {
                busy |= self.complete_syncs(id);
                while self.node(id).raft.as_ref().is_some_and(E::has_ready) {
                    busy = true;
                    self.handle_ready(id);
                }
            }
            if !busy {
                return;
            }
        }
        panic!(
            "harness: tick {} did not settle in {SETTLE_ROUNDS_MAX} rounds",
            self.now
        );
    }

    fn deliver(&mut self, msg: Message) {
        let (from, to) = (msg.from, msg.to);
        let snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
        if self.trace.on() {
            self.trace(format_args!("{}", Compact(&msg)));
        }
        if msg.get_msg_type() == MessageType::MsgReadIndexResp {
            if let Some(e) = msg.entries.first() {
                let ctx = e.data.to_vec();
                self.node_mut(to)
                    .read_index_from
                    .insert(ctx, (from, msg.index));
            }
        }
        let read_mode = self.config.read_mode;
        let Some(raft) = self.node_mut(to).raft.as_mut() else {
            if snapshot {
                self.report_snapshot(from, to, false);
            }
            return;
        };
        let lease_read = match (msg.get_msg_type(), msg.entries.first()) {
            (MessageType::MsgReadIndex, Some(e)) if lease_read_at_leader::<E>(read_mode, raft) => {
                Some(e.data.to_vec())
            }
            _ => None,
        };
        if let Err(e) = E::step(raft, msg) {
            self.trace(format_args!("n{to} step: {e}"));
        }
        if let Some(ctx) = lease_read {
            self.count_lease_read(to, ctx);
        }
        self.after_call(to);
        if snapshot {
            self.report_snapshot(from, to, true);
        }
    }

    /// A message the network lost in flight.
    fn lost(&mut self, msg: &Message) {
        if self.trace.on() {
            self.trace(format_args!("{} lost in flight", Compact(msg)));
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            self.report_snapshot(msg.from, msg.to, false);
        }
        self.undelivered(msg.from, msg.to);
    }

    /// Notes a message the transport could not deliver, for
    /// `report_unreachable` if the transport reports them.
    fn undelivered(&mut self, from: u64, to: u64) {
        if self.config.report_unreachable && !self.unreachable.contains(&(from, to)) {
            self.unreachable.push((from, to));
        }
    }

    /// Tells senders which peers were unreachable since the last round, as
    /// a transport does between Readies; whether it told any.
    fn report_unreachable(&mut self) -> bool {
        let reports = std::mem::take(&mut self.unreachable);
        for &(from, to) in &reports {
            if let Some(raft) = self.node_mut(from).raft.as_mut() {
                E::report_unreachable(raft, to);
                self.after_call(from);
                self.count("unreachable reports");
                self.trace(format_args!("n{from} reports n{to} unreachable"));
            }
        }
        !reports.is_empty()
    }

    /// Tells the sender of a snapshot whether it arrived, as a transport
    /// does; without it the leader would wait for that follower forever.
    fn report_snapshot(&mut self, from: u64, to: u64, arrived: bool) {
        if let Some(raft) = self.node_mut(from).raft.as_mut() {
            E::report_snapshot(raft, to, arrived);
            self.after_call(from);
        }
    }

    /// Sends messages from a node (or injected by a fault) into the network.
    pub fn send(&mut self, msgs: Vec<Message>) {
        for msg in msgs {
            let (from, to) = (msg.from, msg.to);
            let snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
            let line = self.trace.on().then(|| Compact(&msg).to_string());
            let outcome = self.network.send(self.now, msg);
            let plain = Sent::InFlight {
                at: self.now,
                duplicate: false,
            };
            if let Some(line) = line.filter(|_| outcome != plain) {
                self.trace(format_args!("{line} {outcome:?}"));
            }
            if matches!(outcome, Sent::Dropped | Sent::Cut) {
                if snapshot {
                    self.report_snapshot(from, to, false);
                }
                self.undelivered(from, to);
            }
        }
    }

    fn handle_ready(&mut self, id: u64) {
        let node = self.node_mut(id);
        let raft = node.raft.as_mut().unwrap();
        let rd = E::ready(raft);
        let node = self.node_mut(id);
        // A ReadState comes from the response that carried its index, or
        // else from the node itself, leading.
        let answered = rd.read_states.into_iter().map(|(ctx, index)| {
            let by = match node.read_index_from.remove(&ctx) {
                Some((from, at)) if at == index => from,
                _ => id,
            };
            (ctx, index, by)
        });
        node.read_states.extend(answered.collect::<Vec<_>>());
        self.send(rd.messages);
        if let Some(snap) = &rd.snapshot {
            let node = self.node_mut(id);
            node.storage.apply_snapshot(snap);
            node.sm = StateMachine::from_snapshot(snap);
            let (index, chain) = (node.sm.applied, node.sm.chain);
            self.events.push(Event::Applied {
                node: id,
                index,
                chain,
                proposal: None,
            });
            self.trace(format_args!("n{id} restore snapshot {index}"));
        }
        let applied_early = self.apply(id, &rd.committed_entries);
        let storage = &self.node(id).storage;
        storage.append(rd.entries);
        if let Some(hs) = rd.hard_state {
            storage.set_hard_state(hs);
        }
        match self.config.durability {
            Durability::Sync => {
                self.node(id).storage.sync();
                self.send(rd.persisted_messages);
                let light = E::advance_append(self.node_mut(id).raft.as_mut().unwrap());
                // A commit index needs no sync of its own: raft recovers a
                // lower one, and the next Ready's sync covers it.
                if let Some(commit) = light.commit {
                    self.node(id).storage.set_commit(commit);
                }
                self.send(light.messages);
                self.apply(id, &light.committed_entries);
                // Everything, a snapshot included, is durable now.
                let node = self.node_mut(id);
                let applied = node.sm.applied;
                E::advance_apply_to(node.raft.as_mut().unwrap(), applied);
            }
            Durability::Async { delay_ticks_max } => {
                let due = self.now + self.sync_delays.gen_range(0..=delay_ticks_max);
                let node = self.node_mut(id);
                if rd.snapshot.is_some() {
                    node.unsynced_snapshot = Some(rd.number);
                }
                E::advance_append_async(node.raft.as_mut().unwrap());
                node.pending.push_back(PendingSync {
                    due,
                    number: rd.number,
                    messages: rd.persisted_messages,
                });
                // Raft hands out only persisted entries to apply, but a
                // snapshot in this Ready is not persisted yet, so report the
                // entries alone.
                if let Some(applied) = applied_early {
                    E::advance_apply_to(node.raft.as_mut().unwrap(), applied);
                }
            }
        }
        self.serve_reads(id);
        self.after_call(id);
    }

    /// Serves the node's reads whose read index its state machine has
    /// reached.
    fn serve_reads(&mut self, id: u64) {
        let node = self.node_mut(id);
        let state = node.sm;
        let (ready, waiting) = std::mem::take(&mut node.read_states)
            .into_iter()
            .partition(|&(_, index, _)| index <= state.applied);
        node.read_states = waiting;
        for (ctx, read_index, answered_by) in ready {
            if self.trace.on() {
                self.trace(format_args!(
                    "n{id} serves read {} at read index {read_index}, applied {}",
                    read_id(&ctx),
                    state.applied
                ));
            }
            let answered_by_upstream = self.engine_of(answered_by) == Some(EngineKind::Upstream);
            let round_ticks = self.lease_rounds.remove(&ctx).map(|at| self.now - at);
            self.events.push(Event::ReadServed {
                node: id,
                ctx,
                read_index,
                state,
                answered_by_upstream,
                round_ticks,
            });
        }
    }

    /// Completes the node's syncs that are due; whether any did.
    fn complete_syncs(&mut self, id: u64) -> bool {
        let now = self.now;
        let node = self.node_mut(id);
        if node.raft.is_none() || node.pending.front().is_none_or(|p| p.due > now) {
            return false;
        }
        node.storage.sync();
        let mut messages = Vec::new();
        let mut number = 0;
        while node.pending.front().is_some_and(|p| p.due <= now) {
            let done = node.pending.pop_front().unwrap();
            number = done.number;
            messages.extend(done.messages);
        }
        // A sync makes every earlier write durable, so later Readies whose
        // writes are already on disk wait only for their own due tick.
        E::on_persist_ready(node.raft.as_mut().unwrap(), number);
        if node.unsynced_snapshot.is_some_and(|n| n <= number) {
            node.unsynced_snapshot = None;
            let applied = node.sm.applied;
            E::advance_apply_to(node.raft.as_mut().unwrap(), applied);
        }
        self.send(messages);
        self.after_call(id);
        true
    }

    /// Applies committed entries; returns the index of the last one.
    fn apply(&mut self, id: u64, entries: &[Entry]) -> Option<u64> {
        for entry in entries {
            let node = self.node_mut(id);
            if entry.index <= node.sm.applied {
                continue;
            }
            assert!(
                node.sm.apply(entry),
                "harness: n{id} was given entry {} to apply after {}",
                entry.index,
                node.sm.applied
            );
            if entry.get_entry_type() == EntryType::EntryConfChangeV2 {
                self.apply_conf_change(id, entry);
            }
            let node = self.node_mut(id);
            let (index, chain) = (node.sm.applied, node.sm.chain);
            self.events.push(Event::Applied {
                node: id,
                index,
                chain,
                proposal: proposal_of(entry),
            });
        }
        entries.last().map(|e| e.index)
    }

    /// Applies a committed configuration change and records the new
    /// configuration on the node's disk.
    fn apply_conf_change(&mut self, id: u64, entry: &Entry) {
        let change =
            ConfChangeV2::parse_from_bytes(&entry.data).expect("raft wrote a valid ConfChangeV2");
        let node = self.node_mut(id);
        match E::apply_conf_change(node.raft.as_mut().unwrap(), &change) {
            Ok(conf) => {
                node.storage.set_conf_state(entry.index, conf.clone());
                // The harness never proposes an empty change: raft appended
                // it to leave a joint configuration by itself.
                if change.changes.is_empty() {
                    self.count("automatic joint leaves applied");
                }
                if self.trace.on() {
                    self.trace(format_args!(
                        "n{id} conf {}: voters {:?} learners {:?} outgoing {:?}",
                        entry.index, conf.voters, conf.learners, conf.voters_outgoing
                    ));
                }
            }
            Err(e) => self.trace(format_args!(
                "n{id} conf change {} not applied: {e}",
                entry.index
            )),
        }
        self.after_call(id);
    }

    /// Proposes a configuration change at a node; `false` if raft refused.
    pub fn propose_conf_change(&mut self, id: u64, change: ConfChangeV2) -> bool {
        let line = self
            .trace
            .on()
            .then(|| format!("{:?} {:?}", change.get_transition(), change.changes));
        let Some(raft) = self.node_mut(id).raft.as_mut() else {
            return false;
        };
        let implicit = change.get_transition() == ConfChangeTransition::Implicit;
        let accepted = E::propose_conf_change(raft, change).is_ok();
        self.after_call(id);
        if accepted && implicit {
            self.count("implicit conf changes proposed");
        }
        if let Some(line) = line {
            self.trace(format_args!("n{id} propose conf change {line}: {accepted}"));
        }
        accepted
    }

    /// Asks a node for a linearizable read with context `ctx`; `false` if
    /// the node is down. The answer comes as [`Event::ReadServed`], or not
    /// at all (raft drops a read it cannot serve yet).
    pub fn read_index(&mut self, id: u64, ctx: Vec<u8>) -> bool {
        let line = self.trace.on().then(|| read_id(&ctx));
        let read_mode = self.config.read_mode;
        let Some(raft) = self.node_mut(id).raft.as_mut() else {
            return false;
        };
        let leading = lease_read_at_leader::<E>(read_mode, raft);
        E::read_index(raft, ctx.clone());
        if leading {
            self.count_lease_read(id, ctx);
        }
        self.after_call(id);
        if let Some(read) = line {
            self.trace(format_args!("n{id} read index {read}"));
        }
        true
    }

    /// Proposes client data at a node; `false` if raft dropped it.
    pub fn propose(&mut self, id: u64, data: Vec<u8>) -> bool {
        let Some(raft) = self.node_mut(id).raft.as_mut() else {
            return false;
        };
        let accepted = E::propose(raft, data).is_ok();
        self.after_call(id);
        accepted
    }

    /// Makes a node campaign now.
    pub fn campaign(&mut self, id: u64) {
        if let Some(raft) = self.node_mut(id).raft.as_mut() {
            let _ = E::campaign(raft);
            self.after_call(id);
            self.trace(format_args!("n{id} campaign"));
        }
    }

    /// Asks the leader `id` to hand leadership to `to`.
    pub fn transfer_leader(&mut self, id: u64, to: u64) {
        if let Some(raft) = self.node_mut(id).raft.as_mut() {
            E::transfer_leader(raft, to);
            self.after_call(id);
            self.trace(format_args!("n{id} transfer leader to n{to}"));
        }
    }

    /// Counts a lease read that leader `id` was just given (a client's
    /// retry counts again): answered at once, sent through a ReadIndex
    /// round (remembering since when, for the latency of its answer), or
    /// dropped.
    fn count_lease_read(&mut self, id: u64, ctx: Vec<u8>) {
        let taken = self
            .node(id)
            .raft
            .as_ref()
            .map(|raft| E::read_taken(raft, &ctx));
        match taken {
            Some(ReadTaken::AtOnce) => {
                self.count("lease reads at a leader");
                self.lease_rounds.remove(&ctx);
            }
            Some(ReadTaken::Round) => {
                self.count("lease reads at a leader");
                self.count("lease reads through a ReadIndex round");
                let now = self.now;
                self.lease_rounds.entry(ctx).or_insert(now);
            }
            Some(ReadTaken::Dropped) | None => self.count("lease reads a leader dropped"),
        }
    }

    /// The engine node `id` runs, in a world that mixes them.
    fn engine_of(&self, id: u64) -> Option<EngineKind> {
        self.config.upgrade_to.map(|to| {
            if self.upgraded.contains(&id) {
                to
            } else {
                to.other()
            }
        })
    }

    /// Takes the node down; its disk keeps what was synced, and with
    /// `torn_entries`, that many of the unsynced entries.
    pub fn crash(&mut self, id: u64, torn_entries: u64) {
        let node = self.node_mut(id);
        if node.raft.take().is_none() {
            return;
        }
        node.pending.clear();
        node.read_states.clear();
        node.read_index_from.clear();
        node.storage.crash(torn_entries);
        self.events.push(Event::Crashed(id));
        self.trace(format_args!("n{id} crash, torn {torn_entries}"));
    }

    /// Brings the node back up from its disk.
    ///
    /// # Errors
    ///
    /// If raft refuses to start from the disk.
    pub fn restart(&mut self, id: u64) -> Result<(), String> {
        if self.is_up(id) {
            return Ok(());
        }
        self.start(id)?;
        self.events.push(Event::Restarted(id));
        let last = self.disk(id).last_index();
        self.trace(format_args!("n{id} restart, disk last {last}"));
        Ok(())
    }

    /// Rolling upgrade: stops the node after a final sync, as a process
    /// shut down for an upgrade does, and starts it again on the other
    /// engine from the same storage. A node that is down starts on the
    /// other engine when it restarts.
    ///
    /// # Panics
    ///
    /// If the node cannot start from its storage on the other engine.
    pub fn switch_engine(&mut self, id: u64) {
        let Some(to) = self.config.upgrade_to else {
            return;
        };
        self.upgraded.insert(id);
        self.count("engine switches");
        self.trace(format_args!("n{id} switches to {}", to.name()));
        if self.is_up(id) {
            self.node(id).storage.sync();
            self.crash(id, 0);
            self.restart(id)
                .expect("a node restarts from its own storage on either engine");
        }
    }

    /// Snapshots the node's state machine at `index` (at most what it
    /// applied) and compacts its log up to there.
    pub fn compact(&mut self, id: u64, index: u64) {
        let applied = self.node(id).sm.applied;
        let index = index.min(applied);
        self.node(id).storage.compact(index);
        self.trace(format_args!("n{id} compact {index}"));
    }
}
