//! The 0.7.0 bugs outside the crash class that the fork fixes, scripted
//! through `RawNode`'s public API over `MemStorage`, once per engine like
//! the crash report's scenarios; `tests/known_bugs.rs` holds the
//! expectations.

macro_rules! known_bugs {
    ($raft:ident) => {
        use $raft::eraftpb::{ConfState, Entry, HardState, Message, MessageType};
        use $raft::storage::MemStorage;
        use $raft::{Config, RawNode};

        /// tikv/raft-rs#511: node 1 of voters {1, 2, 3}, fresh at term 0
        /// with priority 2 and pre-vote, receives a pre-vote for term 1 from
        /// node 2, of priority 1, whose log is as long as its own. Returns
        /// what node 1 sends.
        pub fn fresh_node_gets_a_lower_priority_pre_vote() -> Vec<Message> {
            let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
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
                term: 1,
                priority: 1,
                ..Default::default()
            })
            .unwrap();
            std::mem::take(&mut node.raft.msgs)
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
                term: 3,
                index: 2,
                log_term: 2,
                priority: 1,
                ..Default::default()
            })
            .unwrap();
            std::mem::take(&mut node.raft.msgs)
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
