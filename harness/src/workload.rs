//! Client proposals: batches of entries proposed to whoever leads, and the
//! acknowledgement a client gets when the node it proposed to applies its
//! entry.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::engine::Engine;
use crate::scenario::WorkloadOptions;
use crate::world::{proposal_data, Event, World};

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
        }
    }

    /// Maybe proposes a batch to the leader.
    pub fn tick<E: Engine>(&mut self, world: &mut World<E>) {
        if self.rng.gen_range(0..100) >= self.opts.propose_pct {
            return;
        }
        let batch = self
            .rng
            .gen_range(self.opts.batch_min..=self.opts.batch_max);
        if let Some(leader) = world.leader() {
            self.propose(world, leader, batch);
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

    /// Acknowledges the proposals whose node applied them; returns their
    /// `(index, chain)`.
    pub fn observe(&mut self, events: &[Event]) -> Vec<(u64, u64)> {
        let mut acked = Vec::new();
        for event in events {
            if let Event::Applied {
                node,
                index,
                chain,
                proposal: Some(id),
            } = *event
            {
                if self.pending.get(&id) == Some(&node) {
                    self.pending.remove(&id);
                    self.committed += 1;
                    self.probe_committed |= self.probes.contains(&id);
                    acked.push((index, chain));
                }
            }
        }
        acked
    }
}
