//! Log matching: if two logs hold an entry with the same index and term,
//! they are identical up to it. Also: terms never decrease along a log.
//!
//! Disks keep a chain hash per entry, so for each pair of nodes it is
//! enough to find the highest index where their terms agree and compare the
//! chains there; logs differ only in short tails, so the walk is short.

use super::{ClusterView, Violation};

/// How far below the shorter log's end a pair is searched for an index
/// with equal terms.
const WALK_MAX: u64 = 10_000;

/// Stateless: everything it needs is on the disks.
#[derive(Default)]
pub struct LogMatching;

impl LogMatching {
    /// Checks every disk's terms and every pair of disks.
    pub fn check(&mut self, view: &impl ClusterView) -> Result<(), Violation> {
        let ids = view.ids();
        for &id in ids {
            if let Some(regression) = view.disk(id).term_regression() {
                return Err(Violation {
                    checker: "log matching",
                    message: format!("n{id}: {regression}"),
                });
            }
        }
        for (i, &a) in ids.iter().enumerate() {
            for &b in &ids[i + 1..] {
                let (da, db) = (view.disk(a), view.disk(b));
                let low = da.snapshot_index().max(db.snapshot_index());
                let high = da.last_index().min(db.last_index());
                let mut index = high;
                while index >= low && high - index <= WALK_MAX {
                    if da.term(index) == db.term(index) {
                        if da.chain_at(index) != db.chain_at(index) {
                            return Err(Violation {
                                checker: "log matching",
                                message: format!(
                                    "n{a} and n{b} agree on the term of entry {index} but not on the log up to it"
                                ),
                            });
                        }
                        break;
                    }
                    if index == 0 {
                        break;
                    }
                    index -= 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::fake::FakeCluster;

    #[test]
    fn same_term_with_different_history_is_caught() {
        let cluster = FakeCluster::new(2);
        cluster.append(1, 1, &[1, 1, 2], 7);
        cluster.append(2, 1, &[1, 1], 7);
        cluster.append(2, 3, &[2], 8);
        assert_eq!(
            LogMatching.check(&cluster).unwrap_err().message,
            "n1 and n2 agree on the term of entry 3 but not on the log up to it"
        );
    }

    #[test]
    fn diverging_tails_of_different_terms_are_fine() {
        let cluster = FakeCluster::new(2);
        cluster.append(1, 1, &[1, 1, 2, 2], 7);
        cluster.append(2, 1, &[1, 1, 3], 7);
        LogMatching.check(&cluster).unwrap();
    }

    #[test]
    fn decreasing_terms_along_a_log_are_caught() {
        let cluster = FakeCluster::new(1);
        cluster.append(1, 1, &[1, 3, 2], 7);
        assert_eq!(
            LogMatching.check(&cluster).unwrap_err().message,
            "n1: entry 3 has term 2 after term 3"
        );
    }
}
