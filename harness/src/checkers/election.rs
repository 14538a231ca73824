//! Election safety: at most one leader per term, over the whole run.

use std::collections::BTreeMap;

use super::{ClusterView, Violation};
use crate::engine::Role;

/// Remembers the leader of every term seen.
#[derive(Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<u64, u64>,
}

impl ElectionSafety {
    /// Records the current leaders; fails on a second leader in a term.
    pub fn check(&mut self, view: &impl ClusterView) -> Result<(), Violation> {
        for &id in view.ids() {
            let Some(status) = view.status(id).filter(|s| s.role == Role::Leader) else {
                continue;
            };
            let leader = *self.leaders.entry(status.term).or_insert(id);
            if leader != id {
                return Err(Violation {
                    checker: "election safety",
                    message: format!("n{leader} and n{id} both led term {}", status.term),
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

    #[test]
    fn two_leaders_in_one_term_are_caught_even_at_different_times() {
        let mut cluster = FakeCluster::new(3);
        let mut checker = ElectionSafety::default();
        cluster.set(1, status(4, Role::Leader, 0));
        checker.check(&cluster).unwrap();
        cluster.set(1, status(4, Role::Follower, 0));
        cluster.set(2, status(5, Role::Leader, 0));
        checker.check(&cluster).unwrap();
        cluster.set(3, status(4, Role::Leader, 0));
        let v = checker.check(&cluster).unwrap_err();
        assert_eq!(v.message, "n1 and n3 both led term 4");
    }
}
