//! A leader nobody tells that its term is over, under raft's default
//! `Config` (no check_quorum, no pre-vote), scripted once per engine like
//! the crash report's scenarios; `tests/stale_term_leader.rs` holds the
//! expectations. Found by the harness (`read-index` seed 2886).
//!
//! The shape: node 3 restarted with an old log, in which its configuration
//! is voters {1, 3} and learner 2, and ran its term up while cut off.
//! Meanwhile node 2 won term 3 of voters {2, 3} and learner 1, a
//! configuration 3 has not seen. When the links heal, 2 heartbeats 3 at
//! term 3 and 3 ignores it; 3 asks only 1 for votes, and 1, a learner with
//! a longer log, refuses and cannot campaign itself.

/// One node at the end of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The node's id.
    pub id: u64,
    /// Whether it leads.
    pub leading: bool,
    /// Its term.
    pub term: u64,
    /// The leader it follows (itself if it leads, 0 if none).
    pub leader_id: u64,
    /// Its commit index.
    pub commit: u64,
}

/// What the cluster looked like after the links healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Nodes 1, 2 and 3, after 50 election timeouts.
    pub nodes: Vec<NodeView>,
    /// The index of a proposal made then to the leader of the highest
    /// term, if there was such a leader.
    pub proposal: Option<u64>,
    /// The nodes that committed that proposal within 10 further election
    /// timeouts.
    pub committed_on: Vec<u64>,
}

macro_rules! stale_term_leader {
    ($raft:ident) => {
        use $raft::eraftpb::{ConfState, Entry, HardState, Message, MessageType};
        use $raft::storage::MemStorage;
        use $raft::{Config, RawNode, StateRole};

        use crate::stale_term_leader::{NodeView, Outcome};

        const ELECTION_TICK: usize = 10;

        /// Entries `(index, term)` with no data.
        fn entries(log: &[(u64, u64)]) -> Vec<Entry> {
            log.iter()
                .map(|&(index, term)| Entry {
                    index,
                    term,
                    ..Default::default()
                })
                .collect()
        }

        struct Node {
            raw: RawNode<MemStorage>,
            store: MemStorage,
        }

        impl Node {
            /// Node `id` restarted on a storage holding `log`, all of it
            /// committed and applied, in configuration `voters` and
            /// `learners`, at `term`. Each node's election timeout is its
            /// own, fixed one (0.7 draws it from `thread_rng` otherwise), so
            /// the run repeats exactly and no two nodes campaign in step.
            fn restart(
                id: u64,
                voters: Vec<u64>,
                learners: Vec<u64>,
                log: &[(u64, u64)],
                term: u64,
            ) -> Node {
                let store = MemStorage::new_with_conf_state(ConfState::from((voters, learners)));
                store.wl().append(&entries(log)).unwrap();
                let last = log.last().map_or(0, |&(index, _)| index);
                store.wl().set_hardstate(HardState {
                    term,
                    commit: last,
                    ..Default::default()
                });
                let timeout = ELECTION_TICK + 3 * id as usize;
                let config = Config {
                    id,
                    applied: last,
                    election_tick: ELECTION_TICK,
                    heartbeat_tick: 1,
                    min_election_tick: timeout,
                    max_election_tick: timeout + 1,
                    ..Default::default()
                };
                let logger = slog::Logger::root(slog::Discard, slog::o!());
                let raw = RawNode::new(&config, store.clone(), &logger).unwrap();
                Node { raw, store }
            }

            /// Runs its Readies through the documented loop and returns the
            /// messages to send.
            fn drive(&mut self) -> Vec<Message> {
                let mut sent = Vec::new();
                while self.raw.has_ready() {
                    let mut ready = self.raw.ready();
                    sent.extend(ready.take_messages());
                    self.store.wl().append(ready.entries()).unwrap();
                    if let Some(hs) = ready.hs() {
                        self.store.wl().set_hardstate(hs.clone());
                    }
                    sent.extend(ready.take_persisted_messages());
                    let mut light = self.raw.advance(ready);
                    if let Some(commit) = light.commit_index() {
                        self.store.wl().mut_hard_state().commit = commit;
                    }
                    sent.extend(light.take_messages());
                    self.raw.advance_apply();
                }
                sent
            }

            fn view(&self) -> NodeView {
                let raft = &self.raw.raft;
                NodeView {
                    id: raft.id,
                    leading: raft.state == StateRole::Leader,
                    term: raft.term,
                    leader_id: raft.leader_id,
                    commit: raft.raft_log.committed,
                }
            }
        }

        /// Nodes 1, 2 and 3, with every link up.
        struct Cluster {
            nodes: Vec<Node>,
        }

        impl Cluster {
            /// Delivers messages until none is left.
            fn settle(&mut self) {
                loop {
                    let in_flight: Vec<Message> =
                        self.nodes.iter_mut().flat_map(Node::drive).collect();
                    if in_flight.is_empty() {
                        return;
                    }
                    for m in in_flight {
                        let to = &mut self.nodes[m.to as usize - 1];
                        let _ = to.raw.step(m);
                    }
                }
            }

            fn run(&mut self, ticks: usize) {
                for _ in 0..ticks {
                    for node in &mut self.nodes {
                        node.raw.tick();
                    }
                    self.settle();
                }
            }

            /// The leader of the highest term any node has, if any.
            fn leader_of_the_highest_term(&self) -> Option<usize> {
                let highest = self.nodes.iter().map(|n| n.raw.raft.term).max()?;
                self.nodes.iter().position(|n| {
                    n.raw.raft.term == highest && n.raw.raft.state == StateRole::Leader
                })
            }
        }

        /// Builds the shape above, heals every link, runs 50 election
        /// timeouts, then proposes to the leader of the highest term, if
        /// any, and runs 10 more.
        pub fn leader_of_a_configuration_the_higher_term_does_not_know() -> Outcome {
            // 1..=2 at term 1 hold what 3 knows: voters {1, 3}, learner 2.
            // 3..=4 at term 2 stand for the changes 3 missed, to voters
            // {1, 2, 3} and then voters {2, 3} with learner 1; the test sets
            // each node's applied configuration directly.
            let old = [(1, 1), (2, 1)];
            let new = [(1, 1), (2, 1), (3, 2), (4, 2)];
            let n1 = Node::restart(1, vec![2, 3], vec![1], &new, 2);
            let mut n2 = Node::restart(2, vec![2, 3], vec![1], &new, 2);
            let mut n3 = Node::restart(3, vec![1, 3], vec![2], &old, 9);

            // 2 wins term 3 with 3's vote, before 3 crashed; what it sends
            // now is lost.
            n2.raw.campaign().unwrap();
            n2.drive();
            n2.raw
                .step(Message {
                    msg_type: MessageType::MsgRequestVoteResponse.into(),
                    from: 3,
                    to: 2,
                    term: 3,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(n2.raw.raft.state, StateRole::Leader);
            n2.drive();
            // 3, cut off, campaigns for term 10; its vote request is lost.
            n3.raw.campaign().unwrap();
            n3.drive();

            let mut cluster = Cluster {
                nodes: vec![n1, n2, n3],
            };
            cluster.run(50 * ELECTION_TICK);
            let nodes = cluster.nodes.iter().map(Node::view).collect();
            let proposal = cluster.leader_of_the_highest_term().map(|leader| {
                let raw = &mut cluster.nodes[leader].raw;
                raw.propose(vec![], b"after healing".to_vec()).unwrap();
                raw.raft.raft_log.last_index()
            });
            cluster.run(10 * ELECTION_TICK);
            let committed_on = match proposal {
                Some(index) => cluster
                    .nodes
                    .iter()
                    .filter(|n| n.raw.raft.raft_log.committed >= index)
                    .map(|n| n.raw.raft.id)
                    .collect(),
                None => Vec::new(),
            };
            Outcome {
                nodes,
                proposal,
                committed_on,
            }
        }
    };
}

/// The scenario on crates.io raft 0.7.0.
pub mod upstream {
    stale_term_leader!(upstream);
}

/// The scenario on this fork.
pub mod fork {
    stale_term_leader!(raft);
}
