//! Safety checkers, run after every step of a run on both engines, and the
//! liveness condition checked once faults heal.
//!
//! Checkers read the cluster through [`ClusterView`], so tests can hand
//! them deliberately broken histories. The first violation ends a run.

mod election;
mod liveness;
mod log_matching;
mod monotonic;
mod reads;
mod state_machine;

use std::cell::Ref;

pub use liveness::{converged, Convergence};

use crate::engine::NodeStatus;
use crate::workload::Observed;
use crate::world::disk::Disk;
use crate::world::node::StateMachine;
use crate::world::Event;

/// What checkers can see of a cluster.
pub trait ClusterView {
    /// Node ids.
    fn ids(&self) -> &[u64];
    /// A node's status, if it is up.
    fn status(&self, id: u64) -> Option<NodeStatus>;
    /// A node's disk.
    fn disk(&self, id: u64) -> Ref<'_, Disk>;
    /// A node's state machine.
    fn state_machine(&self, id: u64) -> StateMachine;
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The checker that caught it.
    pub checker: &'static str,
    /// What it saw.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.checker, self.message)
    }
}

/// Every safety checker.
#[derive(Default)]
pub struct Checkers {
    election: election::ElectionSafety,
    log_matching: log_matching::LogMatching,
    monotonic: monotonic::Monotonic,
    state_machine: state_machine::StateMachineSafety,
}

impl Checkers {
    /// Checks the cluster after a step, given the step's events and what
    /// clients learned in it.
    pub fn check(
        &mut self,
        view: &impl ClusterView,
        events: &[Event],
        observed: &Observed,
    ) -> Result<(), Violation> {
        let applied_before = self.state_machine.applied_len();
        self.monotonic.check(view, events)?;
        self.state_machine.check(events, &observed.acked)?;
        reads::check(&observed.reads, &self.state_machine)?;
        self.election.check(view)?;
        self.log_matching.check(view)?;
        self.state_machine
            .check_leader_completeness(view, applied_before)
    }

    /// Durability at the end of a run: every node has applied every entry
    /// acknowledged to a client.
    pub fn check_acked_applied(&self, view: &impl ClusterView) -> Result<(), Violation> {
        self.state_machine.check_acked_applied(view)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A hand-built cluster for feeding checkers broken histories.

    use super::*;
    use crate::engine::Role;
    use crate::world::disk::{SimStorage, WriteMode};
    use raft_proto::eraftpb::Entry;

    pub struct FakeCluster {
        pub ids: Vec<u64>,
        pub statuses: Vec<Option<NodeStatus>>,
        pub disks: Vec<SimStorage>,
        pub sms: Vec<StateMachine>,
    }

    impl FakeCluster {
        /// `n` followers at term 1 with empty logs.
        pub fn new(n: u64) -> FakeCluster {
            let ids: Vec<u64> = (1..=n).collect();
            FakeCluster {
                statuses: ids
                    .iter()
                    .map(|_| Some(status(1, Role::Follower, 0)))
                    .collect(),
                disks: ids
                    .iter()
                    .map(|_| SimStorage::new(ids.clone(), WriteMode::Truncate))
                    .collect(),
                sms: ids.iter().map(|_| StateMachine::default()).collect(),
                ids,
            }
        }

        pub fn set(&mut self, id: u64, status: NodeStatus) {
            self.statuses[(id - 1) as usize] = Some(status);
        }

        /// Appends `(index, term)` entries with data `tag` to a node's disk.
        pub fn append(&self, id: u64, first: u64, terms: &[u64], tag: u8) {
            let ents: Vec<Entry> = terms
                .iter()
                .enumerate()
                .map(|(i, &term)| Entry {
                    index: first + i as u64,
                    term,
                    data: vec![tag].into(),
                    ..Default::default()
                })
                .collect();
            self.disks[(id - 1) as usize].wl().append(ents);
        }
    }

    pub fn status(term: u64, role: Role, commit: u64) -> NodeStatus {
        NodeStatus {
            term,
            role,
            leader_id: 0,
            commit,
            last_index: 0,
        }
    }

    impl ClusterView for FakeCluster {
        fn ids(&self) -> &[u64] {
            &self.ids
        }
        fn status(&self, id: u64) -> Option<NodeStatus> {
            self.statuses[(id - 1) as usize]
        }
        fn disk(&self, id: u64) -> Ref<'_, Disk> {
            self.disks[(id - 1) as usize].rl()
        }
        fn state_machine(&self, id: u64) -> StateMachine {
            self.sms[(id - 1) as usize]
        }
    }
}
