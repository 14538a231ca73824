//! One simulated node: its disk, its `RawNode` while it is up, and the state
//! machine it applies committed entries to.

use std::collections::{BTreeMap, VecDeque};

use raft_proto::eraftpb::{Entry, Message, Snapshot};

use crate::engine::{Engine, Role};
use crate::world::disk::{chain, snapshot_chain};
use crate::world::storage::NodeStorage;

/// What the node's state machine has applied.
///
/// Invariant: `chain` is the chain hash of the log up to `applied`, so two
/// state machines with equal `(applied, chain)` applied the same sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateMachine {
    /// The index of the last applied entry.
    pub applied: u64,
    /// The chain hash of everything applied.
    pub chain: u64,
}

impl StateMachine {
    /// The state a snapshot restores.
    pub fn from_snapshot(snap: &Snapshot) -> StateMachine {
        StateMachine {
            applied: snap.get_metadata().index,
            chain: snapshot_chain(snap),
        }
    }

    /// Applies one entry; `false` if it does not follow the last one.
    pub fn apply(&mut self, entry: &Entry) -> bool {
        if entry.index != self.applied + 1 {
            return false;
        }
        self.chain = chain(self.chain, entry.term, &entry.data);
        self.applied = entry.index;
        true
    }
}

/// A Ready whose writes wait for the disk to sync (asynchronous
/// durability): raft hears of it through `on_persist_ready`, and its
/// persisted messages go out only then.
#[derive(Debug)]
pub struct PendingSync {
    /// The tick at which the sync completes.
    pub due: u64,
    /// `Ready::number`.
    pub number: u64,
    /// Messages waiting for the sync.
    pub messages: Vec<Message>,
}

/// A node of the cluster, up or down.
pub struct SimNode<E: Engine> {
    /// The node's id.
    pub id: u64,
    /// The node's storage; it outlives crashes.
    pub storage: NodeStorage,
    /// The running `RawNode`, `None` while the node is down.
    pub raft: Option<E::Node>,
    /// The state machine (rebuilt from the disk's snapshot on restart).
    pub sm: StateMachine,
    /// Syncs in progress, oldest first.
    pub pending: VecDeque<PendingSync>,
    /// Term and role after the last call into raft, to spot the resets that
    /// draw a new election timeout.
    pub last_seen: Option<(u64, Role)>,
    /// The number of a Ready whose snapshot the state machine applied but
    /// the disk has not synced: raft learns the applied index only after.
    pub unsynced_snapshot: Option<u64>,
    /// Answers to reads (context, read index, the node that gave the
    /// index) waiting for the state machine to reach their index.
    pub read_states: Vec<(Vec<u8>, u64, u64)>,
    /// For each read context, the leader whose `MsgReadIndexResp` this
    /// node received last, and the read index it carried.
    pub read_index_from: BTreeMap<Vec<u8>, (u64, u64)>,
}
