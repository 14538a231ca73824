//! Where the fork parts from upstream, and whether a fork patch explains it.
//!
//! Both engines run the same schedule, so their traces agree event for
//! event until one engine takes a different branch. A fork patch that takes
//! a branch upstream would not logs a record naming itself (see
//! [`patch_log`](crate::world::patch_log)), which enters the fork's trace as
//! an event. A seed is explained when the fork's first such record comes at
//! or before the first event where the traces differ; any earlier
//! difference is the fork behaving differently for no stated reason.

use crate::run::RunOutcome;

/// How a seed's fork run relates to its upstream run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// The same events, in the same order.
    Identical,
    /// The traces differ from `event` on, and the fork's first patch record
    /// comes at or before it: that patch took a branch upstream would not.
    Explained {
        /// The first differing event.
        event: usize,
        /// The patch of the fork's first record, e.g. `0005`.
        patch: String,
    },
    /// The traces differ from `event` on, and no fork patch said it acted
    /// by then.
    Unexplained {
        /// The first differing event.
        event: usize,
    },
}

/// The first event where two traces differ, if they do: the first unequal
/// event hash, or the end of the shorter trace.
pub fn first_difference(a: &[u64], b: &[u64]) -> Option<usize> {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(event) => Some(event),
        None if a.len() == b.len() => None,
        None => Some(a.len().min(b.len())),
    }
}

/// Classifies a seed from its two runs.
pub fn classify(upstream: &RunOutcome, fork: &RunOutcome) -> Divergence {
    let Some(event) = first_difference(&upstream.event_hashes, &fork.event_hashes) else {
        return Divergence::Identical;
    };
    match fork.patch_events.first() {
        Some(record) if record.event <= event => Divergence::Explained {
            event,
            patch: record.patch.clone(),
        },
        _ => Divergence::Unexplained { event },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Ending, Liveness};
    use crate::world::trace::PatchEvent;

    fn outcome(event_hashes: &[u64], patches: &[(usize, &str)]) -> RunOutcome {
        RunOutcome {
            ending: Ending::Passed,
            failed_at: None,
            liveness: Liveness::Converged,
            tick: 0,
            committed: 0,
            reads: 0,
            read_latencies: Vec::new(),
            counts: Default::default(),
            heal_to_commit_ticks: None,
            trace_hash: 0,
            event_hashes: event_hashes.to_vec(),
            patch_events: patches
                .iter()
                .map(|&(event, patch)| PatchEvent {
                    event,
                    patch: patch.into(),
                })
                .collect(),
            lines: Vec::new(),
            faults: Vec::new(),
        }
    }

    #[test]
    fn equal_traces_are_identical() {
        let run = outcome(&[1, 2, 3], &[]);
        assert_eq!(classify(&run, &run.clone()), Divergence::Identical);
    }

    #[test]
    fn a_difference_at_or_after_the_first_record_is_explained() {
        let up = outcome(&[1, 2, 3], &[]);
        let at = outcome(&[1, 9, 3], &[(1, "0005")]);
        let after = outcome(&[1, 2, 9, 4], &[(1, "0004"), (3, "0005")]);
        assert_eq!(
            classify(&up, &at),
            Divergence::Explained {
                event: 1,
                patch: "0005".into()
            }
        );
        assert_eq!(
            classify(&up, &after),
            Divergence::Explained {
                event: 2,
                patch: "0004".into()
            }
        );
    }

    #[test]
    fn a_difference_before_any_record_is_unexplained() {
        let up = outcome(&[1, 2, 3, 4], &[]);
        let fork = outcome(&[1, 7, 3, 4], &[(2, "0005")]);
        assert_eq!(classify(&up, &fork), Divergence::Unexplained { event: 1 });
        let silent = outcome(&[1, 2, 3, 5], &[]);
        assert_eq!(classify(&up, &silent), Divergence::Unexplained { event: 3 });
    }

    #[test]
    fn a_trace_that_stops_early_differs_where_it_stops() {
        let panicked = outcome(&[1, 2], &[]);
        let fork = outcome(&[1, 2, 3], &[(2, "0007")]);
        assert_eq!(
            classify(&panicked, &fork),
            Divergence::Explained {
                event: 2,
                patch: "0007".into()
            }
        );
        assert_eq!(first_difference(&[1, 2], &[1, 2]), None);
    }
}
