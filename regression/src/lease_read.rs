//! Lease reads (`ReadOnlyOption::LeaseBased` with check_quorum) on a
//! leader the others replaced, scripted once per engine through the public
//! API; `tests/lease_read.rs` holds the expectations.
//!
//! Two ways a leader goes on answering from a lease after another node
//! leads and commits:
//! - cut off just after it checked its quorum, it stays leader for almost
//!   two election timeouts, while the others elect after one;
//! - having sent `MsgTimeoutNow`, it leads on until it hears of the
//!   transferee's term, and the transferee's campaign skips the followers'
//!   lease check.

/// What the old leader did with a read once the new leader committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The index of the write the new leader (node 2) committed.
    pub written: u64,
    /// Whether node 1 still thought it led.
    pub old_leader_leads: bool,
    /// The read index node 1 answered a read with, at once, if it did.
    pub answered_at: Option<u64>,
}

macro_rules! lease_read {
    ($raft:ident) => {
        use std::collections::BTreeSet;

        use $raft::eraftpb::{ConfState, Message};
        use $raft::storage::MemStorage;
        use $raft::{Config, RawNode, ReadOnlyOption, StateRole};

        use crate::lease_read::Outcome;

        const ELECTION_TICK: usize = 10;

        /// Nodes 1, 2 and 3; messages on a cut link `(from, to)` are lost.
        struct Cluster {
            nodes: Vec<(RawNode<MemStorage>, MemStorage)>,
            cut: BTreeSet<(u64, u64)>,
        }

        impl Cluster {
            /// Node 1 leads term 1 and committed an entry; 2's election
            /// timer fires first.
            fn led_by_1() -> Cluster {
                let logger = slog::Logger::root(slog::Discard, slog::o!());
                let nodes = (1..=3)
                    .map(|id| {
                        let store = MemStorage::new_with_conf_state(ConfState::from((
                            vec![1, 2, 3],
                            vec![],
                        )));
                        let config = Config {
                            id,
                            election_tick: ELECTION_TICK,
                            heartbeat_tick: 1,
                            check_quorum: true,
                            read_only_option: ReadOnlyOption::LeaseBased,
                            ..Default::default()
                        };
                        let node = RawNode::new(&config, store.clone(), &logger).unwrap();
                        (node, store)
                    })
                    .collect();
                let mut cluster = Cluster {
                    nodes,
                    cut: BTreeSet::new(),
                };
                cluster.node(1).campaign().unwrap();
                cluster.settle();
                cluster
                    .node(2)
                    .raft
                    .set_randomized_election_timeout(ELECTION_TICK);
                cluster
                    .node(3)
                    .raft
                    .set_randomized_election_timeout(2 * ELECTION_TICK - 1);
                cluster.write(1);
                cluster
            }

            fn node(&mut self, id: u64) -> &mut RawNode<MemStorage> {
                &mut self.nodes[id as usize - 1].0
            }

            fn isolate(&mut self, id: u64) {
                for other in (1..=3).filter(|&o| o != id) {
                    self.cut.extend([(id, other), (other, id)]);
                }
            }

            /// Handles every Ready and delivers the messages until none is
            /// left.
            fn settle(&mut self) {
                loop {
                    let mut msgs: Vec<Message> = Vec::new();
                    for (node, store) in &mut self.nodes {
                        if !node.has_ready() {
                            continue;
                        }
                        let mut ready = node.ready();
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
                        if !self.cut.contains(&(m.from, m.to)) {
                            let _ = self.node(m.to).step(m);
                        }
                    }
                }
            }

            fn tick(&mut self) {
                for (node, _) in &mut self.nodes {
                    node.tick();
                }
                self.settle();
            }

            /// Commits a write through `leader`; returns its index.
            fn write(&mut self, leader: u64) -> u64 {
                self.node(leader).propose(vec![], b"w".to_vec()).unwrap();
                self.settle();
                self.node(leader).raft.raft_log.committed
            }

            /// Asks node 1 for a read and what it answered at once.
            fn outcome(mut self, written: u64) -> Outcome {
                let old_leader_leads = self.node(1).raft.state == StateRole::Leader;
                self.node(1).read_index(b"read".to_vec());
                let answered_at = self.node(1).raft.read_states.first().map(|rs| rs.index);
                Outcome {
                    written,
                    old_leader_leads,
                    answered_at,
                }
            }
        }

        /// Node 1 is cut off one tick after a quorum check it passed; 2
        /// and 3 elect 2 after an election timeout, and 2 commits a write.
        pub fn leader_cut_off_after_its_quorum_check() -> Outcome {
            let mut cluster = Cluster::led_by_1();
            while cluster.node(1).raft.election_elapsed != 0 {
                cluster.tick();
            }
            cluster.tick();
            cluster.isolate(1);
            for _ in 0..=ELECTION_TICK {
                cluster.tick();
            }
            assert_eq!(cluster.node(2).raft.state, StateRole::Leader);
            let written = cluster.write(2);
            cluster.outcome(written)
        }

        /// Node 1 hands leadership to 2; its `MsgTimeoutNow` is the last
        /// message it gets through. 2 wins with 3's vote and commits a
        /// write.
        pub fn leader_transfer_then_cut_off() -> Outcome {
            let mut cluster = Cluster::led_by_1();
            cluster.tick();
            cluster.cut.extend([(2, 1), (3, 1), (1, 3)]);
            cluster.node(1).transfer_leader(2);
            cluster.settle();
            cluster.isolate(1);
            assert_eq!(cluster.node(2).raft.state, StateRole::Leader);
            let written = cluster.write(2);
            cluster.outcome(written)
        }
    };
}

/// The scenarios on crates.io raft 0.7.0.
pub mod upstream {
    lease_read!(upstream);
}

/// The scenarios on the fork.
pub mod fork {
    lease_read!(raft);
}
