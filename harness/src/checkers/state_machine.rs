//! State machine safety (every node applies the same entry at an index),
//! durability (an entry acknowledged to a client is never replaced or
//! lost) and leader completeness (a new leader holds every entry applied
//! before it won).

use std::collections::BTreeSet;

use super::{ClusterView, Violation};
use crate::engine::Role;
use crate::world::Event;

/// What has been applied anywhere, and what clients were told.
#[derive(Default)]
pub struct StateMachineSafety {
    /// `applied[i - 1]` is the chain hash of the log up to index `i`, as
    /// the first node to apply `i` applied it.
    applied: Vec<Option<u64>>,
    /// `acked[i - 1]`: entry `i` was acknowledged to a client.
    acked: Vec<bool>,
    /// The highest acknowledged index.
    acked_last: u64,
    /// `(term, node)` of every leader already checked for completeness.
    leaders_seen: BTreeSet<(u64, u64)>,
}

impl StateMachineSafety {
    /// Checks this step's applied entries, then records the acknowledged
    /// ones (`(index, chain)`, each applied by the node that acknowledged
    /// it in this step).
    pub fn check(&mut self, events: &[Event], acked: &[(u64, u64)]) -> Result<(), Violation> {
        for event in events {
            let Event::Applied {
                node, index, chain, ..
            } = *event
            else {
                continue;
            };
            let slot = (index - 1) as usize;
            if self.applied.len() <= slot {
                self.applied.resize(slot + 1, None);
            }
            match self.applied[slot] {
                Some(first) if first != chain && self.acked.get(slot) == Some(&true) => {
                    return Err(Violation {
                        checker: "durability",
                        message: format!("n{node} applied entry {index} other than the one acknowledged to the client"),
                    })
                }
                Some(first) if first != chain => {
                    return Err(Violation {
                        checker: "state machine safety",
                        message: format!("n{node} applied a different log up to entry {index} than another node"),
                    })
                }
                Some(_) => {}
                None => self.applied[slot] = Some(chain),
            }
        }
        for &(index, chain) in acked {
            let slot = (index - 1) as usize;
            if self.applied.get(slot) != Some(&Some(chain)) {
                return Err(Violation {
                    checker: "durability",
                    message: format!(
                        "entry {index} was acknowledged other than it was first applied"
                    ),
                });
            }
            if self.acked.len() <= slot {
                self.acked.resize(slot + 1, false);
            }
            self.acked[slot] = true;
            self.acked_last = self.acked_last.max(index);
        }
        Ok(())
    }

    /// Checks every node seen leading a term for the first time: its log
    /// must hold every entry applied before this step, as applied. Entries
    /// applied during the step may come from a later term already, so they
    /// wait for the next leader.
    pub fn check_leader_completeness(
        &mut self,
        view: &impl ClusterView,
        applied_before: usize,
    ) -> Result<(), Violation> {
        for &id in view.ids() {
            let Some(status) = view.status(id).filter(|s| s.role == Role::Leader) else {
                continue;
            };
            if !self.leaders_seen.insert((status.term, id)) {
                continue;
            }
            let Some((slot, chain)) = self.applied[..applied_before.min(self.applied.len())]
                .iter()
                .enumerate()
                .rev()
                .find_map(|(slot, c)| c.map(|c| (slot, c)))
            else {
                continue;
            };
            let index = slot as u64 + 1;
            let disk = view.disk(id);
            let missing = status.last_index < index
                || (index >= disk.snapshot_index()
                    && disk.chain_at(index).is_some_and(|c| c != chain));
            if missing {
                return Err(Violation {
                    checker: "leader completeness",
                    message: format!(
                        "n{id} leads term {} without entry {index}, applied before it won (its log ends at {})",
                        status.term, status.last_index
                    ),
                });
            }
        }
        Ok(())
    }

    /// The chain hash of the log up to `index`, as the first node to apply
    /// it applied it.
    pub fn chain_at(&self, index: u64) -> Option<u64> {
        let slot = index.checked_sub(1)? as usize;
        self.applied.get(slot).copied().flatten()
    }

    /// How many indexes have been applied somewhere.
    pub fn applied_len(&self) -> usize {
        self.applied.len()
    }

    /// Durability once the cluster has converged: every node that is up
    /// has applied every acknowledged entry.
    pub fn check_acked_applied(&self, view: &impl ClusterView) -> Result<(), Violation> {
        let index = self.acked_last;
        if index == 0 {
            return Ok(());
        }
        for &id in view.ids() {
            let applied = view.state_machine(id).applied;
            if view.status(id).is_some() && applied < index {
                return Err(Violation {
                    checker: "durability",
                    message: format!(
                        "n{id} applied up to {applied}, but entry {index} was acknowledged"
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::fake::{status, FakeCluster};

    fn applied(node: u64, index: u64, chain: u64) -> Event {
        Event::Applied {
            node,
            index,
            chain,
            proposal: None,
        }
    }

    #[test]
    fn two_nodes_applying_different_entries_at_an_index_are_caught() {
        let mut c = StateMachineSafety::default();
        c.check(&[applied(1, 1, 10), applied(1, 2, 20)], &[])
            .unwrap();
        c.check(&[applied(2, 1, 10)], &[]).unwrap();
        let v = c.check(&[applied(2, 2, 21)], &[]).unwrap_err();
        assert_eq!(v.checker, "state machine safety");
    }

    #[test]
    fn replacing_an_acknowledged_entry_is_a_durability_violation() {
        let mut c = StateMachineSafety::default();
        c.check(&[applied(1, 1, 10)], &[(1, 10)]).unwrap();
        let v = c.check(&[applied(2, 1, 11)], &[]).unwrap_err();
        assert_eq!(v.checker, "durability");
    }

    #[test]
    fn a_node_behind_an_acknowledged_entry_at_the_end_is_caught() {
        let mut cluster = FakeCluster::new(2);
        let mut c = StateMachineSafety::default();
        c.check(&[applied(1, 1, 10)], &[(1, 10)]).unwrap();
        cluster.sms[0].applied = 1;
        assert_eq!(
            c.check_acked_applied(&cluster).unwrap_err().message,
            "n2 applied up to 0, but entry 1 was acknowledged"
        );
    }

    #[test]
    fn a_new_leader_missing_an_applied_entry_is_caught() {
        let mut cluster = FakeCluster::new(3);
        cluster.append(1, 1, &[1, 1], 7);
        let chain2 = cluster.disk(1).chain_at(2).unwrap();
        let mut c = StateMachineSafety::default();
        c.check(
            &[
                applied(1, 1, cluster.disk(1).chain_at(1).unwrap()),
                applied(1, 2, chain2),
            ],
            &[],
        )
        .unwrap();
        cluster.append(3, 1, &[1], 7);
        let mut leader = status(2, Role::Leader, 1);
        leader.last_index = 1;
        cluster.set(3, leader);
        let v = c
            .check_leader_completeness(&cluster, c.applied_len())
            .unwrap_err();
        assert_eq!(
            v.message,
            "n3 leads term 2 without entry 2, applied before it won (its log ends at 1)"
        );
    }

    #[test]
    fn a_new_leader_holding_everything_applied_passes() {
        let mut cluster = FakeCluster::new(3);
        cluster.append(1, 1, &[1, 1], 7);
        cluster.append(3, 1, &[1, 1, 2], 7);
        let mut c = StateMachineSafety::default();
        let chain2 = cluster.disk(1).chain_at(2).unwrap();
        c.check(&[applied(1, 2, chain2)], &[]).unwrap();
        let mut leader = status(2, Role::Leader, 2);
        leader.last_index = 3;
        cluster.set(3, leader);
        c.check_leader_completeness(&cluster, c.applied_len())
            .unwrap();
    }
}
