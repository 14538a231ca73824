//! 0.7.0 bugs outside the crash class, on both engines: crates.io raft
//! 0.7.0 shows the bug exactly, the fork does not.

use std::panic::catch_unwind;

use raft::eraftpb::MessageType;
use regression::known_bugs::{fork, settle, upstream, Peer};

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

#[test]
fn upstream_answers_reads_from_a_late_heartbeat_response() {
    // B was requested after 2's response left; 0.7.0 answers it, and the
    // re-sent A, from that response alone.
    assert_eq!(
        upstream::late_heartbeat_response_after_a_reused_read_context(),
        vec![(b"B".to_vec(), 1), (b"A".to_vec(), 1)]
    );
}

#[test]
fn fork_answers_no_read_from_a_late_heartbeat_response() {
    assert!(fork::late_heartbeat_response_after_a_reused_read_context().is_empty());
}

/// A cluster {1, 2, 3} with node 1, which campaigns, on `leader` and the
/// others on `followers`; every node asks for a read.
fn mixed_cluster_reads(leader: Box<dyn Peer>, followers: [Box<dyn Peer>; 2]) {
    let [f2, f3] = followers;
    let mut peers = vec![leader, f2, f3];
    peers[0].campaign();
    settle(&mut peers);
    assert!(peers[0].is_leader());
    for peer in peers.iter_mut() {
        let ctx = format!("read at {}", peer.id());
        peer.read_index(ctx.as_bytes());
    }
    let mut reads: Vec<(u64, Vec<u8>)> = settle(&mut peers)
        .into_iter()
        .map(|(id, ctx, _)| (id, ctx))
        .collect();
    reads.sort();
    let expected: Vec<(u64, Vec<u8>)> = (1..=3)
        .map(|id| (id, format!("read at {id}").into_bytes()))
        .collect();
    assert_eq!(reads, expected);
}

#[test]
fn a_fork_leader_serves_reads_with_upstream_followers() {
    mixed_cluster_reads(
        Box::new(fork::EnginePeer::fresh(1)),
        [
            Box::new(upstream::EnginePeer::fresh(2)),
            Box::new(upstream::EnginePeer::fresh(3)),
        ],
    );
}

#[test]
fn an_upstream_leader_serves_reads_with_fork_followers() {
    mixed_cluster_reads(
        Box::new(upstream::EnginePeer::fresh(1)),
        [
            Box::new(fork::EnginePeer::fresh(2)),
            Box::new(fork::EnginePeer::fresh(3)),
        ],
    );
}

#[test]
fn upstream_does_not_send_the_auto_leave_entry() {
    assert!(upstream::leader_applies_an_auto_leave_configuration().is_empty());
}

#[test]
fn fork_sends_the_auto_leave_entry_to_the_caught_up_follower() {
    // 3 has not answered the leader yet, so it is still probing, paused.
    assert_eq!(fork::leader_applies_an_auto_leave_configuration(), vec![2]);
}

#[test]
fn upstream_leaves_a_caught_up_follower_probing() {
    assert!(!upstream::caught_up_follower_reported_unreachable());
}

#[test]
fn fork_returns_a_caught_up_follower_to_replicate() {
    assert!(fork::caught_up_follower_reported_unreachable());
}
