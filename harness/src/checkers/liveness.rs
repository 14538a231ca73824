//! Liveness, checked once faults heal: one leader that every node follows,
//! and every node holding and having applied the same committed log.

use super::ClusterView;
use crate::engine::Role;

/// Whether the cluster has converged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Convergence {
    /// One leader, followed by all; all logs and state machines equal.
    Converged {
        /// The leader.
        leader: u64,
    },
    /// Not yet, and why.
    Waiting(String),
}

/// Checks the convergence condition now.
pub fn converged(view: &impl ClusterView) -> Convergence {
    let ids = view.ids();
    let leaders: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| view.status(id).is_some_and(|s| s.role == Role::Leader))
        .collect();
    let &[leader] = leaders.as_slice() else {
        return Convergence::Waiting(format!("leaders {leaders:?}"));
    };
    let lead = view.status(leader).unwrap();
    let lead_last = view.disk(leader).last_index();
    let lead_chain = view.disk(leader).chain_at(lead_last);
    for &id in ids {
        let Some(status) = view.status(id) else {
            return Convergence::Waiting(format!("n{id} is down"));
        };
        if status.leader_id != leader || status.term != lead.term {
            return Convergence::Waiting(format!(
                "n{id} follows n{} in term {}",
                status.leader_id, status.term
            ));
        }
        let disk = view.disk(id);
        if disk.last_index() != lead_last || disk.chain_at(lead_last) != lead_chain {
            return Convergence::Waiting(format!(
                "n{id} log ends at {}, leader's at {lead_last}",
                disk.last_index()
            ));
        }
        let applied = view.state_machine(id).applied;
        if status.commit != lead_last || applied != lead_last {
            return Convergence::Waiting(format!(
                "n{id} committed {} and applied {applied} of {lead_last}",
                status.commit
            ));
        }
    }
    Convergence::Converged { leader }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::fake::{status, FakeCluster};
    use crate::engine::NodeStatus;

    fn following(leader: u64, role: Role, last: u64) -> NodeStatus {
        NodeStatus {
            leader_id: leader,
            last_index: last,
            ..status(3, role, last)
        }
    }

    fn cluster_at(last_applied: [u64; 2]) -> FakeCluster {
        let mut c = FakeCluster::new(2);
        c.append(1, 1, &[1, 3], 1);
        c.append(2, 1, &[1, 3], 1);
        c.set(1, following(1, Role::Leader, 2));
        c.set(2, following(1, Role::Follower, 2));
        c.sms[0].applied = last_applied[0];
        c.sms[1].applied = last_applied[1];
        c
    }

    #[test]
    fn equal_logs_all_applied_under_one_leader_converge() {
        assert_eq!(
            converged(&cluster_at([2, 2])),
            Convergence::Converged { leader: 1 }
        );
    }

    #[test]
    fn a_lagging_state_machine_or_a_second_leader_does_not() {
        assert_eq!(
            converged(&cluster_at([2, 1])),
            Convergence::Waiting("n2 committed 2 and applied 1 of 2".into())
        );
        let mut c = cluster_at([2, 2]);
        c.set(2, following(2, Role::Leader, 2));
        assert_eq!(converged(&c), Convergence::Waiting("leaders [1, 2]".into()));
    }
}
