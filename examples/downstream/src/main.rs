//! A 3-node raft cluster in one process, over `MemStorage`, written only
//! against raft 0.7's public API: node 1 campaigns, 200 entries are
//! proposed and every node applies them.
//!
//! With `--storage-ahead`, node 3 catches up from a replicated log once:
//! the entries of the first append it receives after entry 50 are written
//! into its storage before raft sees the message, as a WAL replicated by a
//! side channel would do. raft 0.7.0 then panics on the next append
//! (`unstable.slice[..] out of bound[..]`); the fork carries on.
//!
//! Exits 0 once all three nodes applied the same 200 entries.

use std::collections::VecDeque;

use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

const PROPOSALS: usize = 200;
const SIDE_CHANNEL_AFTER: u64 = 50;

struct Node {
    raft: RawNode<MemStorage>,
    store: MemStorage,
    applied: Vec<Vec<u8>>,
}

impl Node {
    fn new(id: u64) -> Node {
        let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        let config = Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raft = RawNode::new(&config, store.clone(), &logger).expect("a valid config");
        Node {
            raft,
            store,
            applied: Vec::new(),
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for e in entries {
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                self.applied.push(e.data.to_vec());
            }
        }
    }

    /// The documented Ready loop: persist, send, apply, advance.
    fn handle_ready(&mut self, outbox: &mut VecDeque<Message>) {
        if !self.raft.has_ready() {
            return;
        }
        let mut ready = self.raft.ready();
        outbox.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.store
                .wl()
                .apply_snapshot(ready.snapshot().clone())
                .unwrap();
        }
        self.apply(ready.take_committed_entries());
        self.store.wl().append(ready.entries()).unwrap();
        if let Some(hs) = ready.hs() {
            self.store.wl().set_hardstate(hs.clone());
        }
        outbox.extend(ready.take_persisted_messages());
        let mut light = self.raft.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.store.wl().mut_hard_state().set_commit(commit);
        }
        outbox.extend(light.take_messages());
        self.apply(light.take_committed_entries());
        self.raft.advance_apply();
    }
}

fn main() {
    let storage_ahead = std::env::args().any(|a| a == "--storage-ahead");
    let mut nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let mut outbox = VecDeque::new();
    let mut side_channel_used = false;
    nodes[0].raft.campaign().unwrap();
    let mut proposed = 0;
    for _tick in 0..10_000 {
        for node in nodes.iter_mut() {
            node.raft.tick();
        }
        if nodes[0].raft.raft.state == StateRole::Leader && proposed < PROPOSALS {
            nodes[0]
                .raft
                .propose(vec![], format!("entry {proposed}").into_bytes())
                .unwrap();
            proposed += 1;
        }
        loop {
            for node in nodes.iter_mut() {
                node.handle_ready(&mut outbox);
            }
            let Some(msg) = outbox.pop_front() else { break };
            let to = &mut nodes[(msg.to - 1) as usize];
            let side_channel = storage_ahead
                && !side_channel_used
                && msg.to == 3
                && msg.get_msg_type() == MessageType::MsgAppend
                && msg
                    .entries
                    .first()
                    .is_some_and(|e| e.index > SIDE_CHANNEL_AFTER);
            if side_channel {
                // The replicated WAL delivers these entries to node 3's
                // storage before raft steps the message that carries them.
                to.store.wl().append(&msg.entries).unwrap();
                side_channel_used = true;
                println!(
                    "node 3 storage got entries {}..={} outside the Ready loop",
                    msg.entries[0].index,
                    msg.entries[msg.entries.len() - 1].index
                );
            }
            to.raft.step(msg).unwrap();
        }
        if nodes.iter().all(|n| n.applied.len() == PROPOSALS) {
            assert!(
                nodes.iter().all(|n| n.applied == nodes[0].applied),
                "nodes applied different entries"
            );
            println!("converged: 3 nodes applied the same {PROPOSALS} entries");
            return;
        }
    }
    eprintln!(
        "did not converge: applied {:?}",
        nodes.iter().map(|n| n.applied.len()).collect::<Vec<_>>()
    );
    std::process::exit(1);
}
