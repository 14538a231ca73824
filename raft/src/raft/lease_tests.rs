// Copyright 2026 The raft-rs fork authors. Licensed under Apache-2.0.

//! Tests of patch 0021: a LeaseBased read is answered at once only while
//! the leader's lease is valid. Each test builds the history in which
//! 0.7.0's cut-off leader answers a read that misses a write the new leader
//! committed.

use std::collections::{BTreeMap, BTreeSet};

use crate::eraftpb::{ConfState, Message, MessageType};
use crate::storage::MemStorage;
use crate::{default_logger, Config, RawNode, ReadOnlyOption, StateRole};

const ELECTION_TICKS: usize = 10;

/// Three nodes with LeaseBased reads and check_quorum, heartbeats every
/// tick, exchanging messages in memory.
struct Cluster {
    nodes: BTreeMap<u64, (RawNode<MemStorage>, MemStorage)>,
    /// Nodes whose messages, both ways, are lost.
    isolated: BTreeSet<u64>,
    /// Links `(from, to)` whose messages are lost.
    cut: BTreeSet<(u64, u64)>,
    /// Reads answered, as `(node, context, index)`.
    answered: Vec<(u64, Vec<u8>, u64)>,
}

fn config(id: u64) -> Config {
    Config {
        id,
        election_tick: ELECTION_TICKS,
        heartbeat_tick: 1,
        check_quorum: true,
        read_only_option: ReadOnlyOption::LeaseBased,
        ..Default::default()
    }
}

impl Cluster {
    /// Node 1 leads the others at term 1; only 3 of the followers campaigns
    /// late, so that 2 is the one whose timer fires first.
    fn led_by_1() -> Cluster {
        let mut nodes = BTreeMap::new();
        for id in 1..=3 {
            let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
            let node = RawNode::new(&config(id), store.clone(), &default_logger()).unwrap();
            nodes.insert(id, (node, store));
        }
        let mut cluster = Cluster {
            nodes,
            isolated: BTreeSet::new(),
            cut: BTreeSet::new(),
            answered: Vec::new(),
        };
        cluster.node(1).campaign().unwrap();
        cluster.settle();
        assert_eq!(cluster.node(1).raft.state, StateRole::Leader);
        cluster.set_timeouts();
        cluster
    }

    fn node(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        &mut self.nodes.get_mut(&id).unwrap().0
    }

    /// Fixes the election timers: 2 fires after the minimum, 3 after the
    /// maximum, 1 never comes to it as leader.
    fn set_timeouts(&mut self) {
        self.node(2)
            .raft
            .set_randomized_election_timeout(ELECTION_TICKS);
        self.node(3)
            .raft
            .set_randomized_election_timeout(2 * ELECTION_TICKS - 1);
    }

    /// Handles every node's Ready and delivers the messages, until none is
    /// left.
    fn settle(&mut self) {
        loop {
            let mut msgs = Vec::new();
            for (&id, (node, store)) in self.nodes.iter_mut() {
                if !node.has_ready() {
                    continue;
                }
                let mut ready = node.ready();
                for rs in ready.read_states() {
                    self.answered.push((id, rs.request_ctx.clone(), rs.index));
                }
                msgs.extend(ready.take_messages());
                store.wl().append(ready.entries()).unwrap();
                if let Some(hs) = ready.hs() {
                    store.wl().set_hardstate(hs.clone());
                }
                msgs.extend(ready.take_persisted_messages());
                let mut light = node.advance(ready);
                msgs.extend(light.take_messages());
                node.advance_apply();
            }
            if msgs.is_empty() {
                return;
            }
            for m in msgs {
                self.deliver(m);
            }
        }
    }

    fn deliver(&mut self, m: Message) {
        let lost = self.isolated.contains(&m.from)
            || self.isolated.contains(&m.to)
            || self.cut.contains(&(m.from, m.to));
        if !lost {
            let _ = self.node(m.to).step(m);
        }
    }

    /// One tick on every node, then the messages it caused.
    fn tick(&mut self) {
        for (node, _) in self.nodes.values_mut() {
            node.tick();
        }
        self.settle();
    }

    /// Commits a write through `leader`; returns its index.
    fn write(&mut self, leader: u64) -> u64 {
        self.node(leader).propose(vec![], b"w".to_vec()).unwrap();
        self.settle();
        let index = self.node(leader).raft.raft_log.last_index();
        assert_eq!(self.node(leader).raft.raft_log.committed, index);
        index
    }

    /// Asks `id` for a read and returns the index it answered at once,
    /// before any message left it, if it did.
    fn read_at_once(&mut self, id: u64, ctx: &[u8]) -> Option<u64> {
        self.node(id).read_index(ctx.to_vec());
        let node = self.node(id);
        let answer = node
            .raft
            .read_states
            .iter()
            .find(|rs| rs.request_ctx == ctx);
        answer.map(|rs| rs.index)
    }

    /// Ticks until the leader has just checked its quorum, so it stays
    /// leader for two election timeouts once cut off.
    fn tick_past_a_quorum_check(&mut self, leader: u64) {
        loop {
            self.tick();
            if self.node(leader).raft.election_elapsed == 0 {
                return;
            }
        }
    }
}

#[test]
fn a_valid_lease_answers_at_once() {
    let mut cluster = Cluster::led_by_1();
    let written = cluster.write(1);
    cluster.tick();
    assert_eq!(cluster.read_at_once(1, b"r"), Some(written));
}

#[test]
fn a_new_leader_reads_through_a_round_until_a_quorum_acknowledges_one() {
    let mut cluster = Cluster::led_by_1();
    cluster.write(1);
    // Elected and committed, but no heartbeat round answered yet.
    assert_eq!(cluster.read_at_once(1, b"first"), None);
    cluster.settle();
    assert!(cluster
        .answered
        .iter()
        .any(|(id, ctx, _)| *id == 1 && ctx == b"first"));
    assert!(cluster.read_at_once(1, b"second").is_some());
}

#[test]
fn a_cut_off_leader_stops_answering_at_once_before_another_can_be_elected() {
    let mut cluster = Cluster::led_by_1();
    cluster.write(1);
    cluster.tick_past_a_quorum_check(1);
    cluster.tick();
    cluster.isolated.insert(1);

    // 2 and 3 hear nothing for an election timeout; 2 campaigns, 3 grants.
    let mut ticks = 0;
    while cluster.node(2).raft.state != StateRole::Leader {
        cluster.tick();
        ticks += 1;
        assert!(ticks <= ELECTION_TICKS + 1, "2 never won");
    }
    let written = cluster.write(2);
    // 1 has not checked its quorum again: it still leads term 1.
    assert_eq!(cluster.node(1).raft.state, StateRole::Leader);

    // 0.7.0 answers at 1's commit index, which misses `written`.
    assert_eq!(cluster.read_at_once(1, b"stale?"), None);
    assert_eq!(cluster.node(1).raft.pending_read_count(), 1);
    assert!(cluster.node(1).raft.raft_log.committed < written);
}

#[test]
fn a_leader_that_sent_timeout_now_has_no_lease_for_the_rest_of_its_term() {
    let mut cluster = Cluster::led_by_1();
    cluster.write(1);
    cluster.tick();
    assert!(cluster.read_at_once(1, b"before").is_some());

    // 2 is caught up, so 1 sends it MsgTimeoutNow at once, the last
    // message 1 gets through. 2's campaign skips 3's lease check, as a
    // transfer does.
    cluster.cut.extend([(2, 1), (3, 1), (1, 3)]);
    cluster.node(1).transfer_leader(2);
    cluster.settle();
    assert_eq!(cluster.node(2).raft.state, StateRole::Leader);
    let written = cluster.write(2);
    assert_eq!(cluster.node(1).raft.state, StateRole::Leader);

    assert_eq!(cluster.read_at_once(1, b"stale?"), None);
    assert!(cluster.node(1).raft.raft_log.committed < written);
}

#[test]
fn rounds_acknowledged_after_timeout_now_give_no_lease_back() {
    let mut cluster = Cluster::led_by_1();
    cluster.write(1);
    // 1's MsgTimeoutNow to 2 is late: 1 cannot know when 2 campaigns.
    cluster.cut.insert((1, 2));
    cluster.node(1).transfer_leader(2);
    for _ in 0..3 {
        cluster.tick();
    }
    assert_eq!(cluster.node(1).raft.state, StateRole::Leader);
    assert_eq!(cluster.read_at_once(1, b"r"), None);
    cluster.settle();
    assert!(cluster
        .answered
        .iter()
        .any(|(id, ctx, _)| *id == 1 && ctx == b"r"));
}

#[test]
fn a_higher_term_message_does_not_release_a_followers_promise() {
    let mut cluster = Cluster::led_by_1();
    cluster.write(1);
    cluster.tick();
    assert!(cluster.read_at_once(1, b"before").is_some());
    cluster.isolated.insert(1);

    // 2, cut off from 1, campaigns: 3 heard from 1 a tick ago and ignores it.
    cluster.node(2).campaign().unwrap();
    cluster.settle();
    assert_eq!(cluster.node(2).raft.state, StateRole::Candidate);
    // Any message of 2's term, here an append response, moves 3 to that
    // term with no leader, which ends 0.7.0's lease check on 3.
    let mut response = Message {
        from: 2,
        to: 3,
        term: cluster.node(2).raft.term,
        ..Default::default()
    };
    response.set_msg_type(MessageType::MsgAppendResponse);
    cluster.node(3).step(response).unwrap();
    assert_eq!(cluster.node(3).raft.leader_id, 0);

    cluster.node(2).campaign().unwrap();
    cluster.settle();
    assert_ne!(cluster.node(2).raft.state, StateRole::Leader);
    let committed = cluster.node(3).raft.raft_log.committed;
    assert_eq!(cluster.read_at_once(1, b"during"), Some(committed));
}

#[test]
fn a_restarted_voter_keeps_the_promise_it_may_have_made() {
    let mut cluster = Cluster::led_by_1();
    cluster.write(1);
    // 2 does not hear from 1: 1's lease rests on 3 alone.
    cluster.cut.insert((1, 2));
    cluster.cut.insert((2, 1));
    cluster.tick();
    assert!(cluster.read_at_once(1, b"before").is_some());

    // 1 is cut off and 3 restarts from its storage, its memory of 1 lost.
    cluster.isolated.insert(1);
    let store = cluster.nodes[&3].1.clone();
    let restarted = RawNode::new(&config(3), store, &default_logger()).unwrap();
    cluster.nodes.get_mut(&3).unwrap().0 = restarted;

    // 2's campaign finds no vote while 1's lease may last.
    cluster.node(2).campaign().unwrap();
    cluster.settle();
    assert_ne!(cluster.node(2).raft.state, StateRole::Leader);
    let committed = cluster.node(3).raft.raft_log.committed;
    assert_eq!(cluster.read_at_once(1, b"during"), Some(committed));

    // Nor for election_timeout - 1 ticks after the restart; at the next
    // tick 3 is free to vote.
    for _ in 1..ELECTION_TICKS {
        cluster.tick();
        cluster.node(2).campaign().unwrap();
        cluster.settle();
        assert_ne!(cluster.node(2).raft.state, StateRole::Leader);
    }
    cluster.tick();
    cluster.node(2).campaign().unwrap();
    cluster.settle();
    assert_eq!(cluster.node(2).raft.state, StateRole::Leader);
}
