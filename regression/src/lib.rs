//! The crash report's scenarios, scripted through the public API of
//! `RawNode` over `MemStorage`, once per engine: [`upstream`] is crates.io
//! raft 0.7.0 and [`fork`] is this repository's `raft/`. The same macro
//! expands for both, so the two runs differ only in the crate underneath.
//!
//! Each scenario returns what the node did, or lets the engine's panic
//! escape; `tests/seed_620.rs` holds the expectations.

pub mod known_bugs;
pub mod lease_read;
pub mod stale_term_leader;

/// What a node left behind after a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `(index, term)` of every entry in the node's storage, first to last.
    pub log: Vec<(u64, u64)>,
    /// The messages the node sent while handling the scenario's last step.
    pub sent: Vec<raft::eraftpb::Message>,
}

macro_rules! scenarios {
    ($raft:ident) => {
        use $raft::eraftpb::{ConfState, Entry, HardState, Message, MessageType};
        use $raft::storage::MemStorage;
        use $raft::{Config, RawNode, Storage};

        use crate::Outcome;

        fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
            (first..=last)
                .map(|index| Entry {
                    index,
                    term,
                    ..Default::default()
                })
                .collect()
        }

        /// Node `id` of voters {1, 2, 3}: storage holds `1..=619` at term 1,
        /// all committed and applied, so `unstable.offset` is 620.
        fn node_with_619_entries(id: u64) -> (RawNode<MemStorage>, MemStorage) {
            let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
            store.wl().append(&entries(1, 619, 1)).unwrap();
            store.wl().set_hardstate(HardState {
                term: 1,
                commit: 619,
                ..Default::default()
            });
            let config = Config {
                id,
                applied: 619,
                election_tick: 10,
                heartbeat_tick: 1,
                ..Default::default()
            };
            let logger = slog::Logger::root(slog::Discard, slog::o!());
            let node = RawNode::new(&config, store.clone(), &logger).unwrap();
            (node, store)
        }

        /// Runs one Ready through the documented loop (persist, then send)
        /// and returns what it sent.
        fn handle_ready(node: &mut RawNode<MemStorage>, store: &MemStorage) -> Vec<Message> {
            let mut sent = Vec::new();
            if !node.has_ready() {
                return sent;
            }
            let mut ready = node.ready();
            sent.extend(ready.take_messages());
            store.wl().append(ready.entries()).unwrap();
            if let Some(hs) = ready.hs() {
                store.wl().set_hardstate(hs.clone());
            }
            sent.extend(ready.take_persisted_messages());
            let mut light = node.advance(ready);
            sent.extend(light.take_messages());
            node.advance_apply();
            sent
        }

        fn outcome(store: &MemStorage, sent: Vec<Message>) -> Outcome {
            let (first, last) = (store.first_index().unwrap(), store.last_index().unwrap());
            let ctx = $raft::GetEntriesContext::empty(false);
            let log = store
                .entries(first, last + 1, None, ctx)
                .unwrap()
                .iter()
                .map(|e| (e.index, e.term))
                .collect();
            Outcome { log, sent }
        }

        fn append_from_2(index: u64, log_term: u64, entries: Vec<Entry>) -> Message {
            Message {
                msg_type: MessageType::MsgAppend.into(),
                from: 2,
                to: 3,
                term: 4,
                index,
                log_term,
                entries: entries.into(),
                commit: 619,
                ..Default::default()
            }
        }

        /// (a), follower: `620..=622` at term 1 reach follower 3's storage
        /// outside the Ready loop; then the new leader 2, at term 4, sends
        /// prev (621, 1) and entries `[622@4]`.
        pub fn follower_storage_ahead() -> Outcome {
            let (mut node, store) = node_with_619_entries(3);
            store.wl().append(&entries(620, 622, 1)).unwrap();
            node.step(append_from_2(621, 1, entries(622, 622, 4)))
                .unwrap();
            let sent = handle_ready(&mut node, &store);
            outcome(&store, sent)
        }

        /// Node 1 campaigns for term 2 and node 2 votes for it.
        fn win_term_2(node: &mut RawNode<MemStorage>, store: &MemStorage) {
            node.campaign().unwrap();
            handle_ready(node, store);
            node.step(Message {
                msg_type: MessageType::MsgRequestVoteResponse.into(),
                from: 2,
                to: 1,
                term: 2,
                ..Default::default()
            })
            .unwrap();
        }

        /// (a), leader: node 1 wins term 2 and persists its empty entry 620;
        /// then `621..=622` of its own term reach its storage outside the
        /// Ready loop, and it proposes one entry.
        pub fn leader_storage_ahead() -> Outcome {
            let (mut node, store) = node_with_619_entries(1);
            win_term_2(&mut node, &store);
            assert_eq!(node.raft.state, $raft::StateRole::Leader);
            handle_ready(&mut node, &store);
            store.wl().append(&entries(621, 622, 2)).unwrap();
            node.propose(vec![], b"after the side channel".to_vec())
                .unwrap();
            let sent = handle_ready(&mut node, &store);
            outcome(&store, sent)
        }

        /// (a), at election: `622..=625` at term 1 reach node 1's storage
        /// outside the Ready loop; then it campaigns and node 2 votes for it.
        pub fn candidate_storage_ahead() -> Outcome {
            let (mut node, store) = node_with_619_entries(1);
            store.wl().append(&entries(620, 625, 1)).unwrap();
            win_term_2(&mut node, &store);
            let sent = handle_ready(&mut node, &store);
            outcome(&store, sent)
        }

        /// (b): follower 3, whose log ends at 619, receives prev (700, 0) and
        /// entries `[701@4]` from leader 2 at term 4.
        pub fn append_past_the_log() -> Outcome {
            let (mut node, store) = node_with_619_entries(3);
            node.step(append_from_2(700, 0, entries(701, 701, 4)))
                .unwrap();
            let sent = handle_ready(&mut node, &store);
            outcome(&store, sent)
        }
    };
}

/// The scenarios on crates.io raft 0.7.0.
pub mod upstream {
    scenarios!(upstream);
}

/// The scenarios on this fork.
pub mod fork {
    scenarios!(raft);
}
