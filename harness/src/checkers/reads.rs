//! Linearizable reads: a read reflects every write acknowledged before it
//! was invoked (real-time order), and is served from a state the committed
//! log passes through.
//!
//! A read's result is the serving node's state machine (applied index and
//! chain hash) when it served the read. Writes are entries, so "reflects
//! the write at index i" is "applied at least up to i"; and the state is a
//! prefix of the committed log when its chain hash is the one every node
//! applied at that index.
//!
//! Where a run mixes engines, a read whose index a crates.io 0.7.0 node
//! gave is 0.7.0's answer, not the fork's: the simulation counts those that
//! are stale (see `Simulation::check`) and this checker passes them over.

use super::state_machine::StateMachineSafety;
use super::Violation;
use crate::workload::ServedRead;

/// Checks the reads served in a step against what was applied anywhere.
pub fn check(reads: &[ServedRead], applied: &StateMachineSafety) -> Result<(), Violation> {
    for r in reads.iter().filter(|r| !r.answered_by_upstream) {
        if r.is_stale() {
            return Err(Violation {
                checker: "linearizable reads",
                message: format!(
                    "stale read: n{} served read {} at read index {} from state {}, but entry {} was acknowledged before the read was invoked",
                    r.node, r.read, r.read_index, r.state.applied, r.must_see
                ),
            });
        }
        if r.state.applied > 0 && applied.chain_at(r.state.applied) != Some(r.state.chain) {
            return Err(Violation {
                checker: "linearizable reads",
                message: format!(
                    "n{} served read {} from state {} that is not a prefix of the committed log",
                    r.node, r.read, r.state.applied
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::node::StateMachine;
    use crate::world::Event;

    fn history() -> StateMachineSafety {
        let mut applied = StateMachineSafety::default();
        let events: Vec<Event> = (1..=5)
            .map(|index| Event::Applied {
                node: 1,
                index,
                chain: index * 10,
                proposal: None,
            })
            .collect();
        applied.check(&events, &[]).unwrap();
        applied
    }

    fn read(must_see: u64, applied: u64, chain: u64) -> ServedRead {
        ServedRead {
            read: 7,
            node: 2,
            must_see,
            read_index: applied,
            state: StateMachine { applied, chain },
            answered_by_upstream: false,
        }
    }

    #[test]
    fn reads_reflecting_every_earlier_write_pass() {
        let applied = history();
        check(&[read(3, 3, 30), read(3, 5, 50), read(0, 0, 0)], &applied).unwrap();
    }

    #[test]
    fn a_read_missing_a_write_acknowledged_before_it_is_stale() {
        let v = check(&[read(4, 3, 30)], &history()).unwrap_err();
        assert_eq!(
            v.message,
            "stale read: n2 served read 7 at read index 3 from state 3, but entry 4 was acknowledged before the read was invoked"
        );
    }

    #[test]
    fn a_stale_read_a_0_7_0_node_answered_in_a_mixed_world_is_not_the_forks() {
        let answered_by_upstream = ServedRead {
            answered_by_upstream: true,
            ..read(4, 3, 30)
        };
        assert!(answered_by_upstream.is_stale());
        check(&[answered_by_upstream], &history()).unwrap();
    }

    #[test]
    fn a_read_from_a_state_off_the_committed_log_is_caught() {
        let v = check(&[read(3, 4, 41)], &history()).unwrap_err();
        assert!(
            v.message.contains("not a prefix of the committed log"),
            "{v}"
        );
    }
}
