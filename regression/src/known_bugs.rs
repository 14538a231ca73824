//! The 0.7.0 bugs outside the crash class that the fork fixes, scripted
//! through `RawNode`'s public API over `MemStorage`, once per engine like
//! the crash report's scenarios, and a [`Peer`] of either engine for
//! clusters that mix them; `tests/known_bugs.rs` holds the expectations.

use raft::eraftpb::Message;

/// A node of either engine, for clusters that mix them.
pub trait Peer {
    /// The node's id.
    fn id(&self) -> u64;
    /// `RawNode::step`.
    fn step(&mut self, m: Message);
    /// `RawNode::campaign`.
    fn campaign(&mut self);
    /// `RawNode::read_index`.
    fn read_index(&mut self, ctx: &[u8]);
    /// Whether it leads.
    fn is_leader(&self) -> bool;
    /// Runs its Readies through the documented loop: persists, applies,
    /// advances, and returns the messages to send, and the read states
    /// (context, index) it got.
    fn drive(&mut self) -> (Vec<Message>, Vec<(Vec<u8>, u64)>);
}

/// Delivers messages between `peers` until none is left, returning every
/// read state each peer got, by id.
pub fn settle(peers: &mut [Box<dyn Peer>]) -> Vec<(u64, Vec<u8>, u64)> {
    let mut reads = Vec::new();
    loop {
        let mut in_flight = Vec::new();
        for peer in peers.iter_mut() {
            let (sent, states) = peer.drive();
            in_flight.extend(sent);
            reads.extend(
                states
                    .into_iter()
                    .map(|(ctx, index)| (peer.id(), ctx, index)),
            );
        }
        if in_flight.is_empty() {
            return reads;
        }
        for m in in_flight {
            if let Some(peer) = peers.iter_mut().find(|p| p.id() == m.to) {
                peer.step(m);
            }
        }
    }
}

macro_rules! known_bugs {
    ($raft:ident) => {
        use $raft::eraftpb::{
            ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry,
            EntryType, HardState, Message, MessageType,
        };
        use $raft::storage::MemStorage;
        use $raft::{Config, RawNode};

        /// tikv/raft-rs#511: node 1 of voters {1, 2, 3}, fresh at term 0
        /// with priority 2 and pre-vote, receives a pre-vote for term 1 from
        /// node 2, of priority 1, whose log is as long as its own. Returns
        /// what node 1 sends.
        pub fn fresh_node_gets_a_lower_priority_pre_vote() -> Vec<Message> {
            let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
            pre_vote_from_lower_priority(store, 1, 0, 0)
        }

        /// Node 1 of voters {1, 2, 3} over `store`, with priority 2 and
        /// pre-vote, steps a pre-vote from node 2, of priority 1, for `term`
        /// with 2's last log entry at `index`@`log_term`. Returns what node 1
        /// sends.
        fn pre_vote_from_lower_priority(
            store: MemStorage,
            term: u64,
            index: u64,
            log_term: u64,
        ) -> Vec<Message> {
            let config = Config {
                id: 1,
                pre_vote: true,
                priority: 2,
                ..Config::new(1)
            };
            let logger = slog::Logger::root(slog::Discard, slog::o!());
            let mut node = RawNode::new(&config, store, &logger).unwrap();
            node.step(Message {
                msg_type: MessageType::MsgRequestPreVote.into(),
                from: 2,
                to: 1,
                term,
                index,
                log_term,
                priority: 1,
                ..Default::default()
            })
            .unwrap();
            std::mem::take(&mut node.raft.msgs)
        }

        /// A message of `msg_type` from node 2 to node 1 at term 1.
        fn from_2(msg_type: MessageType) -> Message {
            Message {
                msg_type: msg_type.into(),
                from: 2,
                to: 1,
                term: 1,
                ..Default::default()
            }
        }

        /// etcd-io/raft#397: leader 1 of {1, 2, 3} answers read A with 2's
        /// heartbeat response; then reads B and A again (a client retrying
        /// with the same context), and a late copy of 2's response to A's
        /// first round arrives. Returns the reads answered after that copy.
        pub fn late_heartbeat_response_after_a_reused_read_context() -> Vec<(Vec<u8>, u64)> {
            let mut leader = ThreeNodeLeader::new();
            leader.node.read_index(b"A".to_vec());
            let heartbeat_to_2 = leader
                .take_sent()
                .into_iter()
                .find(|m| m.get_msg_type() == MessageType::MsgHeartbeat && m.to == 2)
                .expect("a heartbeat to 2");
            let response = Message {
                context: heartbeat_to_2.context,
                ..from_2(MessageType::MsgHeartbeatResponse)
            };
            leader.node.step(response.clone()).unwrap();
            let (_, first) = leader.drive();
            assert_eq!(first.len(), 1, "A is answered");
            leader.node.read_index(b"B".to_vec());
            leader.node.read_index(b"A".to_vec());
            leader.drive();
            leader.node.step(response).unwrap();
            leader.drive().1
        }

        /// etcd-io/etcd#14538: leader 1 of {1, 2, 3} applies a change into a
        /// joint configuration that leaves it by itself (3 becomes a learner
        /// through `ConfChangeTransition::Implicit`). Returns the nodes the
        /// leaving entry is sent to then.
        pub fn leader_applies_an_auto_leave_configuration() -> Vec<u64> {
            let mut leader = ThreeNodeLeader::new();
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
            // The change is proposed, committed with 2's acknowledgement and
            // applied as entry 2; then the application applies it to raft.
            leader
                .node
                .propose_conf_change(vec![], change.clone())
                .unwrap();
            leader.drive();
            leader
                .node
                .step(Message {
                    index: 2,
                    ..from_2(MessageType::MsgAppendResponse)
                })
                .unwrap();
            leader.drive();
            assert_eq!(leader.node.raft.pending_conf_index, 2);
            leader.node.apply_conf_change(&change).unwrap();
            leader.node.advance_apply_to(2);
            let leave = leader.node.raft.raft_log.last_index();
            assert_eq!(leave, 3, "the leader appended the leaving entry");
            leader
                .drive()
                .0
                .iter()
                .filter(|m| {
                    m.get_msg_type() == MessageType::MsgAppend
                        && m.entries.iter().any(|e| {
                            e.index == leave && e.get_entry_type() == EntryType::EntryConfChangeV2
                        })
                })
                .map(|m| m.to)
                .collect()
        }

        /// etcd-io/raft#52: leader 1 reports follower 2, which is caught up,
        /// unreachable; 2 then answers a heartbeat, and acknowledges its
        /// match if the leader sends it an append. Returns whether 2 is back
        /// in Replicate.
        pub fn caught_up_follower_reported_unreachable() -> bool {
            let mut leader = ThreeNodeLeader::new();
            leader.node.report_unreachable(2);
            leader.drive();
            leader
                .node
                .step(Message {
                    commit: 1,
                    ..from_2(MessageType::MsgHeartbeatResponse)
                })
                .unwrap();
            let sent = leader.drive().0;
            if sent
                .iter()
                .any(|m| m.get_msg_type() == MessageType::MsgAppend && m.to == 2)
            {
                leader
                    .node
                    .step(Message {
                        index: 1,
                        ..from_2(MessageType::MsgAppendResponse)
                    })
                    .unwrap();
            }
            leader.node.raft.prs().get(2).unwrap().state == $raft::ProgressState::Replicate
        }

        /// A node of this engine over its own `MemStorage`.
        pub struct EnginePeer {
            node: RawNode<MemStorage>,
            store: MemStorage,
        }

        type ThreeNodeLeader = EnginePeer;

        impl EnginePeer {
            /// Node `id` of voters {1, 2, 3}, fresh.
            pub fn fresh(id: u64) -> EnginePeer {
                let store =
                    MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
                let logger = slog::Logger::root(slog::Discard, slog::o!());
                let node = RawNode::new(&Config::new(id), store.clone(), &logger).unwrap();
                EnginePeer { node, store }
            }

            /// Leader 1 of {1, 2, 3} at term 1, its empty entry committed by
            /// 2's acknowledgement.
            fn new() -> EnginePeer {
                let mut peer = EnginePeer::fresh(1);
                peer.node.campaign().unwrap();
                peer.drive();
                for msg_type in [
                    MessageType::MsgRequestVoteResponse,
                    MessageType::MsgAppendResponse,
                ] {
                    peer.node
                        .step(Message {
                            index: 1,
                            ..from_2(msg_type)
                        })
                        .unwrap();
                    peer.drive();
                }
                assert_eq!(peer.node.raft.raft_log.committed, 1);
                peer
            }

            fn take_sent(&mut self) -> Vec<Message> {
                self.drive().0
            }

            /// See [`crate::known_bugs::Peer::drive`].
            pub fn drive(&mut self) -> (Vec<Message>, Vec<(Vec<u8>, u64)>) {
                let mut sent = Vec::new();
                let mut reads = Vec::new();
                while self.node.has_ready() {
                    let mut ready = self.node.ready();
                    sent.extend(ready.take_messages());
                    reads.extend(
                        ready
                            .take_read_states()
                            .into_iter()
                            .map(|rs| (rs.request_ctx, rs.index)),
                    );
                    self.store.wl().append(ready.entries()).unwrap();
                    if let Some(hs) = ready.hs() {
                        self.store.wl().set_hardstate(hs.clone());
                    }
                    sent.extend(ready.take_persisted_messages());
                    let mut light = self.node.advance(ready);
                    if let Some(commit) = light.commit_index() {
                        self.store.wl().mut_hard_state().commit = commit;
                    }
                    sent.extend(light.take_messages());
                    self.node.advance_apply();
                }
                (sent, reads)
            }
        }

        impl crate::known_bugs::Peer for EnginePeer {
            fn id(&self) -> u64 {
                self.node.raft.id
            }
            fn step(&mut self, m: Message) {
                let _ = self.node.step(m);
            }
            fn campaign(&mut self) {
                self.node.campaign().unwrap();
            }
            fn read_index(&mut self, ctx: &[u8]) {
                self.node.read_index(ctx.to_vec());
            }
            fn is_leader(&self) -> bool {
                self.node.raft.state == $raft::StateRole::Leader
            }
            fn drive(&mut self) -> (Vec<Message>, Vec<(Vec<u8>, u64)>) {
                EnginePeer::drive(self)
            }
        }

        /// Found by the harness (priority seed 811): node 1 of voters
        /// {1, 2, 3}, priority 2, log `1..=3` at term 1, at term 2, receives
        /// a pre-vote for term 3 from node 2, of priority 1, whose log ends
        /// at 2@2: shorter, but of a newer term. Returns what node 1 sends.
        pub fn newer_log_of_lower_priority_asks_for_a_pre_vote() -> Vec<Message> {
            let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
            let log: Vec<Entry> = (1..=3)
                .map(|index| Entry {
                    index,
                    term: 1,
                    ..Default::default()
                })
                .collect();
            store.wl().append(&log).unwrap();
            store.wl().set_hardstate(HardState {
                term: 2,
                ..Default::default()
            });
            pre_vote_from_lower_priority(store, 3, 2, 2)
        }
    };
}

/// The scenarios on crates.io raft 0.7.0.
pub mod upstream {
    known_bugs!(upstream);
}

/// The scenarios on this fork.
pub mod fork {
    known_bugs!(raft);
}
