//! 0.7.0 bugs outside the crash class, on both engines: crates.io raft
//! 0.7.0 shows the bug exactly, the fork does not.

use std::panic::catch_unwind;

use raft::eraftpb::MessageType;
use regression::known_bugs::{fork, upstream};

#[test]
fn upstream_panics_rejecting_a_pre_vote_at_term_0() {
    let payload = catch_unwind(upstream::fresh_node_gets_a_lower_priority_pre_vote)
        .expect_err("upstream 0.7.0 did not panic");
    let message = payload.downcast::<String>().expect("a formatted panic");
    assert_eq!(
        *message,
        "term should be set when sending MsgRequestPreVoteResponse, raft_id: 1"
    );
}

#[test]
fn fork_rejects_a_pre_vote_at_term_0() {
    assert_eq!(
        pre_vote_replies(fork::fresh_node_gets_a_lower_priority_pre_vote()),
        vec![(MessageType::MsgRequestPreVoteResponse, 2, 0, true)]
    );
}

fn pre_vote_replies(sent: Vec<raft::eraftpb::Message>) -> Vec<(MessageType, u64, u64, bool)> {
    sent.iter()
        .map(|m| (m.get_msg_type(), m.to, m.term, m.reject))
        .collect()
}

#[test]
fn upstream_refuses_a_newer_log_of_lower_priority() {
    assert_eq!(
        pre_vote_replies(upstream::newer_log_of_lower_priority_asks_for_a_pre_vote()),
        vec![(MessageType::MsgRequestPreVoteResponse, 2, 2, true)]
    );
}

#[test]
fn fork_grants_a_newer_log_of_lower_priority() {
    assert_eq!(
        pre_vote_replies(fork::newer_log_of_lower_priority_asks_for_a_pre_vote()),
        vec![(MessageType::MsgRequestPreVoteResponse, 2, 3, false)]
    );
}
