// Copyright 2026 The raft-rs fork authors. Licensed under Apache-2.0.

//! Tests of the fork's patches to `raft.rs`: a node whose storage gained
//! entries outside the Ready loop wins an election (0007); a fresh node
//! rejects a lower-priority pre-vote at term 0 (0015).

use crate::eraftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry,
    EntryType, HardState, Message, MessageType,
};
use crate::storage::MemStorage;
use crate::{default_logger, Config, ProgressState, RawNode, StateRole};

fn run(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last)
        .map(|index| Entry {
            index,
            term,
            ..Default::default()
        })
        .collect()
}

/// The only voter of its cluster, started over `1..=5` at term 1, whose
/// storage then receives `6..=8` behind raft's back.
fn single_voter_with_storage_ahead() -> (RawNode<MemStorage>, MemStorage) {
    let store = MemStorage::new_with_conf_state(ConfState::from((vec![1], vec![])));
    store.wl().append(&run(1, 5, 1)).unwrap();
    store.wl().set_hardstate(HardState {
        term: 1,
        commit: 5,
        ..Default::default()
    });
    let config = Config {
        id: 1,
        applied: 5,
        ..Config::new(1)
    };
    let node = RawNode::new(&config, store.clone(), &default_logger()).unwrap();
    store.wl().append(&run(6, 8, 1)).unwrap();
    (node, store)
}

#[test]
fn candidate_with_storage_ahead_becomes_leader() {
    let (mut node, _) = single_voter_with_storage_ahead();
    node.campaign().unwrap();
    assert_eq!(node.raft.state, StateRole::Leader);
    assert_eq!(node.raft.raft_log.last_index(), 9);
    // Its own progress counts only what it knows is persisted.
    assert_eq!(node.raft.prs().get(1).unwrap().matched, 5);
    assert_eq!(node.raft.raft_log.committed, 5);
}

#[test]
fn leader_with_storage_ahead_commits_once_its_entry_is_persisted() {
    let (mut node, store) = single_voter_with_storage_ahead();
    node.campaign().unwrap();
    let ready = node.ready();
    assert_eq!(
        ready
            .entries()
            .iter()
            .map(|e| (e.index, e.term))
            .collect::<Vec<_>>(),
        vec![(9, 2)]
    );
    store.wl().append(ready.entries()).unwrap();
    if let Some(hs) = ready.hs() {
        store.wl().set_hardstate(hs.clone());
    }
    let light = node.advance(ready);
    assert_eq!(light.commit_index(), Some(9));
    assert_eq!(node.raft.prs().get(1).unwrap().matched, 9);
}

/// Node 1 of voters {1, 2, 3} over `store`, with priority 2 and pre-vote,
/// steps a pre-vote from node 2, of priority 1, for `term` with 2's last
/// entry at `index`@`log_term`; returns the node and its replies as
/// (type, to, term, reject).
fn pre_vote_from_lower_priority(
    store: MemStorage,
    term: u64,
    index: u64,
    log_term: u64,
) -> (RawNode<MemStorage>, Vec<(MessageType, u64, u64, bool)>) {
    let config = Config {
        id: 1,
        pre_vote: true,
        priority: 2,
        ..Config::new(1)
    };
    let mut node = RawNode::new(&config, store, &default_logger()).unwrap();
    let mut pre_vote = Message {
        from: 2,
        to: 1,
        term,
        index,
        log_term,
        priority: 1,
        ..Default::default()
    };
    pre_vote.set_msg_type(MessageType::MsgRequestPreVote);
    node.step(pre_vote).unwrap();
    let replies = node
        .raft
        .msgs
        .iter()
        .map(|m| (m.get_msg_type(), m.to, m.term, m.reject))
        .collect();
    (node, replies)
}

#[test]
fn fresh_node_rejects_a_lower_priority_pre_vote_at_term_0() {
    let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    let (node, replies) = pre_vote_from_lower_priority(store, 1, 0, 0);
    assert_eq!(
        replies,
        vec![(MessageType::MsgRequestPreVoteResponse, 2, 0, true)]
    );
    assert_eq!((node.raft.term, node.raft.state), (0, StateRole::Follower));
}

#[test]
fn a_lower_priority_candidate_with_a_newer_log_gets_the_pre_vote() {
    // Node 1: priority 2, log 1..=3 at term 1, at term 2. Candidate 2:
    // priority 1, log ending at 2@2, shorter but of a newer term.
    let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    store.wl().append(&run(1, 3, 1)).unwrap();
    store.wl().set_hardstate(HardState {
        term: 2,
        ..Default::default()
    });
    let (_, replies) = pre_vote_from_lower_priority(store, 3, 2, 2);
    assert_eq!(
        replies,
        vec![(MessageType::MsgRequestPreVoteResponse, 2, 3, false)]
    );
}

/// Writes the Ready's entries and hard state to `store`, then advances.
fn persist_ready(node: &mut RawNode<MemStorage>, store: &MemStorage) {
    let ready = node.ready();
    store.wl().append(ready.entries()).unwrap();
    if let Some(hs) = ready.hs() {
        store.wl().set_hardstate(hs.clone());
    }
    node.advance(ready);
}

/// Leader 1 of {1, 2, 3} at term 1, its empty entry 1 committed with 2's
/// acknowledgement; 3 has not answered yet.
fn leader_of_three() -> RawNode<MemStorage> {
    let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    let mut node = RawNode::new(&Config::new(1), store.clone(), &default_logger()).unwrap();
    node.campaign().unwrap();
    persist_ready(&mut node, &store);
    let mut vote = Message {
        from: 2,
        to: 1,
        term: 1,
        ..Default::default()
    };
    vote.set_msg_type(MessageType::MsgRequestVoteResponse);
    node.step(vote).unwrap();
    persist_ready(&mut node, &store);
    let mut ack = Message {
        from: 2,
        to: 1,
        term: 1,
        index: 1,
        ..Default::default()
    };
    ack.set_msg_type(MessageType::MsgAppendResponse);
    node.step(ack).unwrap();
    assert_eq!(node.raft.raft_log.committed, 1);
    node
}

#[test]
fn leader_sends_the_automatic_leave_joint_entry() {
    let mut node = leader_of_three();

    // Entry 1 stands for a change into a joint configuration that leaves
    // it by itself (3 becomes a learner, implicitly through joint
    // consensus); applying it must append and send the leaving entry.
    let change = ConfChangeV2 {
        transition: ConfChangeTransition::Implicit.into(),
        changes: vec![ConfChangeSingle {
            change_type: ConfChangeType::AddLearnerNode.into(),
            node_id: 3,
            ..Default::default()
        }]
        .into(),
        ..Default::default()
    };
    node.apply_conf_change(&change).unwrap();
    assert!(node.raft.prs().conf().auto_leave);
    node.raft.msgs.clear();
    node.raft.commit_apply(1);

    let leave = node.raft.raft_log.last_index();
    assert_eq!(node.raft.pending_conf_index, leave);
    let sent: Vec<_> = node
        .raft
        .msgs
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgAppend)
        .filter(|m| {
            m.entries
                .iter()
                .any(|e| e.index == leave && e.get_entry_type() == EntryType::EntryConfChangeV2)
        })
        .map(|m| m.to)
        .collect();
    // 3 has not answered yet: it is probing, paused behind its first append.
    assert_eq!(sent, vec![2], "{:?}", node.raft.msgs);
}

#[test]
fn a_late_heartbeat_response_does_not_confirm_a_reused_read_context() {
    let mut node = leader_of_three();
    node.raft.msgs.clear();

    // Read A goes through a round of heartbeats and 2's answer confirms it.
    node.read_index(b"A".to_vec());
    let heartbeat = node
        .raft
        .msgs
        .iter()
        .find(|m| m.get_msg_type() == MessageType::MsgHeartbeat && m.to == 2)
        .expect("a heartbeat to 2")
        .clone();
    let mut response = Message {
        from: 2,
        to: 1,
        term: 1,
        context: heartbeat.context.clone(),
        ..Default::default()
    };
    response.set_msg_type(MessageType::MsgHeartbeatResponse);
    node.step(response.clone()).unwrap();
    let answered: Vec<Vec<u8>> = node
        .raft
        .read_states
        .drain(..)
        .map(|rs| rs.request_ctx)
        .collect();
    assert_eq!(answered, vec![b"A".to_vec()]);

    // Read B, then A again with the same context, as a retrying client
    // sends it; then a late copy of 2's answer to A's first round arrives.
    node.read_index(b"B".to_vec());
    node.read_index(b"A".to_vec());
    node.step(response).unwrap();
    assert!(
        node.raft.read_states.is_empty(),
        "a late response confirmed {:?}",
        node.raft.read_states
    );
    assert_eq!(node.raft.pending_read_count(), 2);
}

#[test]
fn a_caught_up_follower_reported_unreachable_returns_to_replicate() {
    let mut node = leader_of_three();
    assert_eq!(node.raft.prs().get(2).unwrap().matched, 1);
    node.report_unreachable(2);
    assert_eq!(node.raft.prs().get(2).unwrap().state, ProgressState::Probe);
    node.raft.msgs.clear();

    let mut heartbeat_response = Message {
        from: 2,
        to: 1,
        term: 1,
        commit: 1,
        ..Default::default()
    };
    heartbeat_response.set_msg_type(MessageType::MsgHeartbeatResponse);
    node.step(heartbeat_response).unwrap();
    let appends: Vec<_> = node
        .raft
        .msgs
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgAppend && m.to == 2)
        .map(|m| (m.index, m.entries.len()))
        .collect();
    assert_eq!(appends, vec![(1, 0)], "an empty append probing at 1");

    let mut ack = Message {
        from: 2,
        to: 1,
        term: 1,
        index: 1,
        ..Default::default()
    };
    ack.set_msg_type(MessageType::MsgAppendResponse);
    node.step(ack).unwrap();
    assert_eq!(
        node.raft.prs().get(2).unwrap().state,
        ProgressState::Replicate
    );
}

/// Node 3 at term 5, without check_quorum or pre-vote, in configuration
/// `voters` and `learners`, steps `m` from leader 1 of term 1; returns the
/// node and its answers as (type, to, term).
fn lower_term_message_to_node_3(
    voters: Vec<u64>,
    learners: Vec<u64>,
    m: Message,
) -> (RawNode<MemStorage>, Vec<(MessageType, u64, u64)>) {
    let store = MemStorage::new_with_conf_state(ConfState::from((voters, learners)));
    store.wl().set_hardstate(HardState {
        term: 5,
        ..Default::default()
    });
    let mut node = RawNode::new(&Config::new(3), store, &default_logger()).unwrap();
    assert!(!node.raft.check_quorum && !node.raft.pre_vote);
    node.step(m).unwrap();
    let answers = node
        .raft
        .msgs
        .iter()
        .map(|m| (m.get_msg_type(), m.to, m.term))
        .collect();
    (node, answers)
}

#[test]
fn a_lower_term_leader_is_answered_without_check_quorum_or_pre_vote() {
    let mut leader = leader_of_three();
    leader.raft.msgs.clear();
    for _ in 0..leader.raft.heartbeat_timeout() {
        leader.tick();
    }
    let heartbeat_to_3 = leader
        .raft
        .msgs
        .drain(..)
        .find(|m| m.get_msg_type() == MessageType::MsgHeartbeat && m.to == 3)
        .expect("a heartbeat to 3");

    // 3 ran its term up to 5 while cut off, in a configuration in which 1
    // is a learner, so its vote requests never reach 1.
    let (mut node_3, answers) = lower_term_message_to_node_3(vec![2, 3], vec![1], heartbeat_to_3);
    assert_eq!(answers, vec![(MessageType::MsgAppendResponse, 1, 5)]);
    leader.step(node_3.raft.msgs.remove(0)).unwrap();
    assert_eq!(leader.raft.state, StateRole::Follower);
    assert_eq!(leader.raft.term, 5);

    let mut append = Message {
        from: 1,
        to: 3,
        term: 1,
        ..Default::default()
    };
    append.set_msg_type(MessageType::MsgAppend);
    let (_, answers) = lower_term_message_to_node_3(vec![1, 3], vec![2], append.clone());
    assert_eq!(answers, vec![(MessageType::MsgAppendResponse, 1, 5)]);

    // A leader that 3's configuration no longer counts, such as one removed
    // while it was cut off, is left alone, as in 0.7.0: answered, it would
    // campaign and disrupt the members.
    let (_, answers) = lower_term_message_to_node_3(vec![2, 3], vec![], append);
    assert!(answers.is_empty(), "{answers:?}");
}
