//! A lease read at a leader the others replaced: crates.io raft 0.7.0
//! answers it at once, at a read index that misses the new leader's write;
//! the fork's leader has no valid lease and sends it through a ReadIndex
//! round, which a cut-off leader cannot complete.

use regression::lease_read::{fork, upstream, Outcome};

fn assert_stale(outcome: &Outcome) {
    assert!(outcome.old_leader_leads, "{outcome:?}");
    let index = outcome.answered_at.expect("answered from the lease");
    assert!(index < outcome.written, "{outcome:?}");
}

fn assert_not_answered(outcome: &Outcome) {
    assert!(outcome.old_leader_leads, "{outcome:?}");
    assert_eq!(outcome.answered_at, None, "{outcome:?}");
}

#[test]
fn upstream_answers_a_stale_read_from_a_cut_off_leaders_lease() {
    assert_stale(&upstream::leader_cut_off_after_its_quorum_check());
}

#[test]
fn fork_lets_the_cut_off_leaders_lease_expire_first() {
    assert_not_answered(&fork::leader_cut_off_after_its_quorum_check());
}

#[test]
fn upstream_answers_a_stale_read_after_a_leader_transfer() {
    assert_stale(&upstream::leader_transfer_then_cut_off());
}

#[test]
fn fork_revokes_the_lease_when_it_sends_timeout_now() {
    assert_not_answered(&fork::leader_transfer_then_cut_off());
}
