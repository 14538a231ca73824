//! A restart applies the committed entries after the WAL's snapshot again,
//! membership changes included; each must meet the configuration it was
//! made from. Here node 2 was added as a learner, promoted, and node 1
//! removed, all after the snapshot. Replayed onto the latest configuration
//! (voters {2}), adding 2 as a learner demotes the only voter and raft
//! refuses the change; replayed onto the snapshot's ({1}), all three apply.
//! The WAL keeps the latest, so a crash before the replay does not leave
//! the next start's boot check facing a membership without node 2.
//!
//! And a committed change raft refuses whatever the configuration (here
//! removing the only voter, as an older node without the proposal-time
//! checks could commit) is applied as a no-op: the node keeps running,
//! rather than exiting on it at every restart.

use std::path::Path;
use std::time::Duration;

use protobuf::Message as _;
use raft::Storage;
use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};
use raft_node::config::NodeConfig;
use raft_node::serve::{found, open_storage, restore};
use raft_proto::eraftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, HardState,
};

fn change(index: u64, kind: ConfChangeType, node: u64) -> Entry {
    let mut single = ConfChangeSingle::default();
    single.set_change_type(kind);
    single.node_id = node;
    let mut cc = ConfChangeV2::default();
    cc.set_changes(vec![single].into());
    let mut entry = Entry::default();
    entry.set_entry_type(EntryType::EntryConfChangeV2);
    entry.index = index;
    entry.term = 1;
    entry.data = cc.write_to_bytes().unwrap().into();
    entry
}

#[test]
fn membership_changes_after_the_snapshot_replay_onto_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // The WAL as node 1 founded it alone, then wrote and applied the three
    // changes (the loop stores each applied configuration).
    let node1 = NodeConfig::new(1, dir.path().into(), addr(8101), [(1, addr(7101))].into());
    let store = open_storage(&node1).unwrap();
    found(&node1, &store).unwrap();
    store
        .append(&[
            change(2, ConfChangeType::AddLearnerNode, 2),
            change(3, ConfChangeType::AddNode, 2),
            change(4, ConfChangeType::RemoveNode, 1),
        ])
        .unwrap();
    let hs = HardState {
        term: 1,
        commit: 4,
        ..Default::default()
    };
    store.set_hard_state(hs).unwrap();
    store
        .set_conf_state(ConfState::from((vec![2], vec![])))
        .unwrap();
    store.sync().unwrap();
    drop(store);

    // The same directory, restarted as node 2.
    let peers = [(1, addr(7101)), (2, addr(7102))].into();
    let mut node2 = NodeConfig::new(2, dir.path().into(), addr(8102), peers);
    node2.join = true;
    let store = open_storage(&node2).unwrap();
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let (mut raw, _log) = restore(&node2, &store, &logger).unwrap();
    let mut ready = raw.ready();
    let committed = ready.take_committed_entries();
    assert_eq!(committed.len(), 3);
    for entry in &committed {
        let cc = ConfChangeV2::parse_from_bytes(&entry.data).unwrap();
        if let Err(e) = raw.apply_conf_change(&cc) {
            panic!("replaying the change at index {}: {e}", entry.index);
        }
    }
    assert_eq!(
        raw.raft
            .prs()
            .conf()
            .voters()
            .ids()
            .iter()
            .collect::<Vec<_>>(),
        vec![2]
    );
    // A crash before the replay: the next start's boot check still finds
    // node 2 in the membership the WAL holds.
    drop(raw);
    drop(store);
    let store = open_storage(&node2).unwrap();
    assert_eq!(store.initial_state().unwrap().conf_state.voters, vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_change_raft_refuses_is_a_no_op_and_the_node_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster::plan(1, dir.path()).unwrap().remove(0);
    let store = open_storage(&config).unwrap();
    found(&config, &store).unwrap();
    store
        .append(&[change(2, ConfChangeType::RemoveNode, 1)])
        .unwrap();
    store
        .set_hard_state(HardState {
            term: 1,
            commit: 2,
            ..Default::default()
        })
        .unwrap();
    store.sync().unwrap();
    drop(store);

    let binary = Path::new(env!("CARGO_BIN_EXE_raft-node"));
    let mut nodes = LocalCluster::start(binary, vec![config]).unwrap();
    let leader = nodes.wait_for_leader(Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(nodes.log_path(1)).unwrap();
    assert_eq!(leader, Ok(1), "{log}");
    let status = Client::connect(nodes.api(1))
        .await
        .unwrap()
        .status()
        .await
        .unwrap();
    assert_eq!(status.membership.voters, vec![1]);
    assert!(log.contains("applied as a no-op"), "{log}");
    nodes.stop(Duration::from_secs(5));
}
