//! Clients: batches of entries proposed to whoever leads, acknowledged when
//! the node proposed to applies them; and linearizable reads sent to any
//! node through `RawNode::read_index`, each with a context of its own that
//! every retry reuses, as real clients do.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::engine::Engine;
use crate::scenario::WorkloadOptions;
use crate::world::node::StateMachine;
use crate::world::{proposal_data, read_id, Event, World};

/// A read waiting for its answer.
#[derive(Debug, Clone, Copy)]
struct PendingRead {
    /// The node the client is talking to.
    node: u64,
    /// The highest index acknowledged to a writer when the read was first
    /// invoked: the read must reflect it.
    must_see: u64,
    /// When the client gives up waiting and sends the read again.
    retry_at: u64,
    /// When the client first sent it.
    invoked_at: u64,
}

/// A read a node served to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedRead {
    /// The client's read id (its context).
    pub read: u64,
    /// The node that served it.
    pub node: u64,
    /// The highest index acknowledged to a writer before the read was
    /// invoked.
    pub must_see: u64,
    /// The `ReadState` index it was served at.
    pub read_index: u64,
    /// The state machine it was served from.
    pub state: StateMachine,
    /// In a world that mixes engines, whether its read index came from a
    /// node running crates.io 0.7.0.
    pub answered_by_upstream: bool,
}

impl ServedRead {
    /// Whether it misses a write acknowledged before it was invoked.
    pub fn is_stale(&self) -> bool {
        self.state.applied < self.must_see
    }
}

/// How long a client waited for a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLatency {
    /// Ticks from its first sending to its serving, retries included.
    pub ticks: u64,
    /// With lease reads, where a leader sent it through a ReadIndex round
    /// rather than answering from its lease: ticks from then to its
    /// serving.
    pub round_ticks: Option<u64>,
}

/// What clients learned in a step.
#[derive(Debug, Default)]
pub struct Observed {
    /// Entries acknowledged to writers, as `(index, chain)`.
    pub acked: Vec<(u64, u64)>,
    /// Reads served.
    pub reads: Vec<ServedRead>,
}

/// The clients of a run.
pub struct Workload {
    opts: WorkloadOptions,
    rng: ChaCha8Rng,
    next_id: u64,
    /// Proposals not acknowledged yet, and the node each went to.
    pending: BTreeMap<u64, u64>,
    /// Proposals acknowledged so far.
    pub committed: u64,
    /// Ids of the liveness probes proposed so far.
    probes: Vec<u64>,
    /// Whether a liveness probe was acknowledged.
    pub probe_committed: bool,
    /// The highest index acknowledged to a writer.
    acked_index_max: u64,
    next_read: u64,
    /// Reads not served yet, by read id.
    reads: BTreeMap<u64, PendingRead>,
    /// Reads served so far.
    pub reads_served: u64,
    /// Each served read's latency.
    pub read_latencies: Vec<ReadLatency>,
}

impl Workload {
    /// Clients proposing as `opts` says.
    pub fn new(opts: WorkloadOptions, rng: ChaCha8Rng) -> Workload {
        Workload {
            opts,
            rng,
            next_id: 1,
            pending: BTreeMap::new(),
            committed: 0,
            probes: Vec::new(),
            probe_committed: false,
            acked_index_max: 0,
            next_read: 1,
            reads: BTreeMap::new(),
            reads_served: 0,
            read_latencies: Vec::new(),
        }
    }

    /// Maybe proposes a batch to the leader, maybe starts a read, and
    /// sends again the reads that timed out.
    pub fn tick<E: Engine>(&mut self, world: &mut World<E>) {
        if self.rng.gen_range(0..100) < self.opts.propose_pct {
            let batch = self
                .rng
                .gen_range(self.opts.batch_min..=self.opts.batch_max);
            if let Some(leader) = world.leader() {
                self.propose(world, leader, batch);
            }
        }
        if self.opts.read_pct > 0 && self.rng.gen_range(0..100) < self.opts.read_pct {
            self.start_read(world);
        }
        self.retry_reads(world);
    }

    fn pick_up_node<E: Engine>(&mut self, world: &World<E>) -> Option<u64> {
        let up: Vec<u64> = world
            .ids()
            .iter()
            .copied()
            .filter(|&id| world.is_up(id))
            .collect();
        up.choose(&mut self.rng).copied()
    }

    /// Sends a new read to a node that is up.
    fn start_read<E: Engine>(&mut self, world: &mut World<E>) {
        let Some(node) = self.pick_up_node(world) else {
            return;
        };
        let read = self.next_read;
        self.next_read += 1;
        world.read_index(node, read.to_le_bytes().to_vec());
        self.reads.insert(
            read,
            PendingRead {
                node,
                must_see: self.acked_index_max,
                retry_at: world.now + self.opts.read_timeout_ticks,
                invoked_at: world.now,
            },
        );
    }

    /// Sends every read that timed out again, with the same context: to
    /// the same node while it is up, else to another.
    fn retry_reads<E: Engine>(&mut self, world: &mut World<E>) {
        let now = world.now;
        let due: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.retry_at <= now)
            .map(|(&read, _)| read)
            .collect();
        for read in due {
            let mut node = self.reads[&read].node;
            if !world.is_up(node) {
                match self.pick_up_node(world) {
                    Some(other) => node = other,
                    None => continue,
                }
            }
            world.read_index(node, read.to_le_bytes().to_vec());
            let pending = self.reads.get_mut(&read).unwrap();
            pending.node = node;
            pending.retry_at = now + self.opts.read_timeout_ticks;
        }
    }

    /// Proposes `count` entries at `node`; returns how many raft took.
    pub fn propose<E: Engine>(&mut self, world: &mut World<E>, node: u64, count: u64) -> u64 {
        let first = self.next_id;
        let mut accepted = 0;
        for _ in 0..count {
            let id = self.next_id;
            self.next_id += 1;
            if world.propose(node, proposal_data(id, self.opts.entry_bytes)) {
                self.pending.insert(id, node);
                accepted += 1;
            }
        }
        if world.trace_ref().on() {
            world.trace(format_args!(
                "n{node} propose {first}..{} ({accepted} taken)",
                self.next_id
            ));
        }
        accepted
    }

    /// Proposes one liveness probe at `node`; whether raft took it.
    pub fn propose_probe<E: Engine>(&mut self, world: &mut World<E>, node: u64) -> bool {
        self.probes.push(self.next_id);
        self.propose(world, node, 1) == 1
    }

    /// Acknowledges the proposals whose node applied them, and the reads
    /// the node their client talks to served.
    pub fn observe(&mut self, now: u64, events: &[Event]) -> Observed {
        let mut observed = Observed::default();
        for event in events {
            match *event {
                Event::Applied {
                    node,
                    index,
                    chain,
                    proposal: Some(id),
                } if self.pending.get(&id) == Some(&node) => {
                    self.pending.remove(&id);
                    self.committed += 1;
                    self.probe_committed |= self.probes.contains(&id);
                    self.acked_index_max = self.acked_index_max.max(index);
                    observed.acked.push((index, chain));
                }
                Event::ReadServed {
                    node,
                    ref ctx,
                    read_index,
                    state,
                    answered_by_upstream,
                    round_ticks,
                } => {
                    let read = read_id(ctx);
                    let Some(pending) = self.reads.get(&read).filter(|r| r.node == node) else {
                        continue;
                    };
                    observed.reads.push(ServedRead {
                        read,
                        node,
                        must_see: pending.must_see,
                        read_index,
                        state,
                        answered_by_upstream,
                    });
                    self.read_latencies.push(ReadLatency {
                        ticks: now - pending.invoked_at,
                        round_ticks,
                    });
                    self.reads.remove(&read);
                    self.reads_served += 1;
                }
                _ => {}
            }
        }
        observed
    }
}
