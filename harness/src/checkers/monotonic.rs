//! Monotonic term, commit index and applied index, per node, while it stays
//! up (a restart reads them back from its disk).

use std::collections::BTreeMap;

use super::{ClusterView, Violation};
use crate::world::Event;

/// The last `(term, commit, applied)` seen of each node that is up.
#[derive(Default)]
pub struct Monotonic {
    last: BTreeMap<u64, [u64; 3]>,
}

const NAMES: [&str; 3] = ["term", "commit", "applied"];

impl Monotonic {
    /// Fails if any of the three went down since the last step.
    pub fn check(&mut self, view: &impl ClusterView, events: &[Event]) -> Result<(), Violation> {
        for event in events {
            if let Event::Crashed(id) | Event::Restarted(id) = event {
                self.last.remove(id);
            }
        }
        for &id in view.ids() {
            let Some(status) = view.status(id) else {
                continue;
            };
            let now = [status.term, status.commit, view.state_machine(id).applied];
            if let Some(before) = self.last.insert(id, now) {
                for (i, name) in NAMES.iter().enumerate() {
                    if now[i] < before[i] {
                        return Err(Violation {
                            checker: "monotonic",
                            message: format!("n{id} {name} went from {} to {}", before[i], now[i]),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::fake::{status, FakeCluster};
    use crate::engine::Role;

    #[test]
    fn a_commit_index_going_back_is_caught_but_a_restart_resets() {
        let mut cluster = FakeCluster::new(1);
        let mut checker = Monotonic::default();
        cluster.set(1, status(2, Role::Follower, 10));
        checker.check(&cluster, &[]).unwrap();
        cluster.set(1, status(2, Role::Follower, 5));
        checker.check(&cluster, &[Event::Restarted(1)]).unwrap();
        cluster.set(1, status(2, Role::Follower, 4));
        assert_eq!(
            checker.check(&cluster, &[]).unwrap_err().message,
            "n1 commit went from 5 to 4"
        );
    }
}
