//! Membership through the admin API: a node started with `--join` is added
//! as a learner, catches up (by snapshot, as the log was compacted), is
//! promoted to voter, and another node is removed; the cluster keeps
//! taking appends throughout. Adding a node is where the crash report's
//! cluster crashed ("immediately after ConfChange").

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};
use raft_node::config::NodeConfig;
use raft_node::handle::{Membership, MembershipChange};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-node"))
}

async fn append_many(api: std::net::SocketAddr, n: usize, tag: &str) {
    let mut client = Client::connect(api).await.unwrap();
    for i in 0..n {
        client.append(vec![format!("{tag}-{i}")]).await.unwrap();
    }
}

async fn wait_for_records(nodes: &LocalCluster, id: u64, records: u64) {
    let api = nodes.api(id);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = Client::connect(api).await {
            if c.status().await.map(|s| s.records).unwrap_or(0) >= records {
                return;
            }
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = nodes
                .ids()
                .into_iter()
                .map(|n| std::fs::read_to_string(nodes.log_path(n)).unwrap_or_default())
                .collect();
            panic!(
                "node {id} did not reach {records} records; logs:\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node `id` to be started with `--join` beside the founders (`founder`
/// is one of their configurations), on free ports; and its raft address.
fn joiner(id: u64, dir: &Path, founder: &NodeConfig) -> (NodeConfig, std::net::SocketAddr) {
    let addrs = cluster::free_addrs(2);
    let mut config = NodeConfig::new(
        id,
        dir.join(format!("node-{id}")),
        addrs[1],
        founder.peers.clone(),
    );
    config.peers.insert(id, addrs[0]);
    config.join = true;
    config.peer_tls = Some(cluster::peer_tls(dir, &config.cluster_name, id).unwrap());
    (config, addrs[0])
}

/// Three nodes in `dir` on default settings, and their leader.
async fn three_nodes(dir: &Path) -> (LocalCluster, u64) {
    LocalCluster::start_led(binary(), cluster::plan(3, dir).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_is_added_as_learner_promoted_and_another_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = cluster::plan(3, dir.path()).unwrap();
    for c in &mut configs {
        c.snapshot_entries = 500;
        c.log_tail_entries = 100;
    }
    let (mut nodes, leader) = LocalCluster::start_led(binary(), configs.clone())
        .await
        .unwrap();
    append_many(nodes.api(leader), 1_200, "before").await;

    let (joiner, addr) = joiner(4, dir.path(), &configs[0]);
    nodes.add(joiner).unwrap();

    let mut admin = Client::connect(nodes.api(leader)).await.unwrap();
    let added = admin
        .change_membership(&MembershipChange::AddLearner { id: 4, addr })
        .await
        .unwrap();
    assert_eq!(
        added,
        Membership {
            voters: vec![1, 2, 3],
            learners: vec![4]
        }
    );
    let again = admin
        .change_membership(&MembershipChange::AddLearner { id: 4, addr })
        .await
        .unwrap_err();
    assert_eq!(again.status().map(|s| s.as_u16()), Some(409), "{again}");
    wait_for_records(&nodes, 4, 1_200).await;

    // Promotion through the CLI, as an operator would: at the leader, once
    // it has heard that the learner caught up (a 409 until then).
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let leader = nodes
            .wait_for_leader(Duration::from_secs(20))
            .await
            .unwrap();
        let api = nodes.api(leader).to_string();
        let out = Command::new(binary())
            .args(["admin", "--api", &api, "promote", "4"])
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(r#""voters":[1,2,3,4]"#), "{printed}");

    // Changes go to the leader, which may have moved meanwhile.
    let leader = nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let mut admin = Client::connect(nodes.api(leader)).await.unwrap();
    let removed = if leader == 1 { 2 } else { 1 };
    let after = admin
        .change_membership(&MembershipChange::Remove { id: removed })
        .await
        .unwrap();
    assert!(
        !after.voters.contains(&removed) && after.voters.contains(&4),
        "{after:?}"
    );
    nodes.kill(removed);

    append_many(nodes.api(leader), 300, "after").await;
    wait_for_records(&nodes, 4, 1_500).await;
    let leader_log = admin.read_all().await.unwrap().1;
    let joiner_log = Client::connect(nodes.api(4))
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap()
        .1;
    assert_eq!(joiner_log, leader_log);
    let log4 = std::fs::read_to_string(nodes.log_path(4)).unwrap();
    assert!(log4.contains("installing a snapshot"), "{log4}");
    for id in nodes.ids() {
        let log = std::fs::read_to_string(nodes.log_path(id)).unwrap();
        assert!(!log.contains("panicked"), "node {id}:\n{log}");
    }
    nodes.stop(Duration::from_secs(5));
}

/// The leader's state, larger than a peer frame, reaches a new learner:
/// the snapshot goes out in chunks and is put back together there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_from_a_snapshot_larger_than_a_frame() {
    const RECORDS: u64 = 40;
    const RECORD_BYTES: usize = 1_900_000;
    assert!(RECORDS as usize * RECORD_BYTES > raft_node::transport::MAX_FRAME_BYTES);
    let dir = tempfile::tempdir().unwrap();
    let mut configs = cluster::plan(1, dir.path()).unwrap();
    configs[0].snapshot_entries = 5;
    configs[0].log_tail_entries = 1;
    configs[0].retention_bytes = 2 * raft_node::transport::MAX_FRAME_BYTES;
    let (mut nodes, leader) = LocalCluster::start_led(binary(), configs.clone())
        .await
        .unwrap();
    let mut client = Client::connect(nodes.api(leader)).await.unwrap();
    for i in 0..RECORDS {
        let record = format!("{i:02}{}", "x".repeat(RECORD_BYTES - 2));
        client.append(vec![record]).await.unwrap();
    }

    let (mut joiner, addr) = joiner(2, dir.path(), &configs[0]);
    joiner.retention_bytes = configs[0].retention_bytes;
    nodes.add(joiner).unwrap();
    client
        .change_membership(&MembershipChange::AddLearner { id: 2, addr })
        .await
        .unwrap();
    wait_for_records(&nodes, 2, RECORDS).await;

    let joiner_log = std::fs::read_to_string(nodes.log_path(2)).unwrap();
    assert!(
        joiner_log.contains("installing a snapshot"),
        "the learner caught up without a snapshot:\n{joiner_log}"
    );
    let (first, records) = Client::connect(nodes.api(2))
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    assert_eq!((first, records.len() as u64), (0, RECORDS));
    for (i, record) in records.iter().enumerate() {
        assert!(record.starts_with(&format!("{i:02}x")) && record.len() == RECORD_BYTES);
    }
    nodes.stop(Duration::from_secs(5));
}

/// `admin remove` of every voter in turn, as a new user tried it: the last
/// one is refused with a 409 that names raft's reason, and the node keeps
/// serving. Before, the change was committed and node 1 exited with
/// `error: raft: removed all voters`, at every restart again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_last_voter_is_refused_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = three_nodes(dir.path()).await;
    let mut admin = Client::connect(nodes.api(leader)).await.unwrap();
    for id in nodes.ids().into_iter().filter(|&id| id != leader) {
        let after = admin
            .change_membership(&MembershipChange::Remove { id })
            .await
            .unwrap();
        assert!(!after.voters.contains(&id), "{after:?}");
        nodes.kill(id);
    }

    let refused = admin
        .change_membership(&MembershipChange::Remove { id: leader })
        .await
        .unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(409), "{refused}");
    assert!(
        refused.to_string().contains("removed all voters"),
        "{refused}"
    );

    append_many(nodes.api(leader), 10, "after").await;
    assert!(nodes.is_up(leader));
    let log = std::fs::read_to_string(nodes.log_path(leader)).unwrap();
    assert!(!log.contains("error: raft"), "{log}");
    nodes.stop(Duration::from_secs(5));
}

/// A change asked for while another is still pending is refused at once
/// with a 409. Before, raft turned it into an empty entry and the admin got
/// a 504 after the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_another_is_pending_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = cluster::plan(3, dir.path()).unwrap();
    for c in &mut configs {
        // The leader must not step down while its followers are paused.
        c.election_ticks = 60;
    }
    let mut nodes = LocalCluster::start(binary(), configs).unwrap();
    let leader = nodes
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    let followers: Vec<u64> = nodes.ids().into_iter().filter(|&id| id != leader).collect();
    for &id in &followers {
        nodes.pause(id);
    }

    // The first change cannot commit while both followers are paused.
    let api = nodes.api(leader);
    let addr = cluster::free_addrs(1)[0];
    let pending = tokio::spawn(async move {
        let mut admin = Client::connect(api).await.unwrap();
        let _ = admin
            .change_membership(&MembershipChange::AddLearner { id: 4, addr })
            .await;
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut admin = Client::connect(api).await.unwrap();
    let refused = admin
        .change_membership(&MembershipChange::Remove { id: followers[0] })
        .await
        .unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(409), "{refused}");
    assert!(refused.to_string().contains("still pending"), "{refused}");

    for &id in &followers {
        nodes.resume(id);
    }
    pending.await.unwrap();
    nodes.stop(Duration::from_secs(5));
}

/// Promotion waits for the learner: one that holds less than the leader
/// committed is refused with how far behind it is. Before, a learner
/// that never answered became a voter at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_a_learner_that_has_not_caught_up_is_refused_with_its_lag() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = three_nodes(dir.path()).await;
    append_many(nodes.api(leader), 20, "before").await;
    // Node 4 is added but never started: it holds nothing.
    let addr = cluster::free_addrs(1)[0];
    let mut admin = Client::connect(nodes.api(leader)).await.unwrap();
    admin
        .change_membership(&MembershipChange::AddLearner { id: 4, addr })
        .await
        .unwrap();

    let refused = admin
        .change_membership(&MembershipChange::Promote { id: 4 })
        .await
        .unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(409), "{refused}");
    assert!(
        refused.to_string().contains("has not caught up"),
        "{refused}"
    );
    nodes.stop(Duration::from_secs(5));
}

/// Removing the leader hands leadership to the most caught-up voter first
/// and asks the admin to retry (a 503 naming it); the retry, once that
/// voter leads, removes the old leader. Before, the leader committed its
/// own removal and the cluster went without a leader until an election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_leader_hands_leadership_over_first() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = three_nodes(dir.path()).await;
    let mut admin = Client::connect(nodes.api(leader)).await.unwrap();
    let moving = admin
        .change_membership(&MembershipChange::Remove { id: leader })
        .await
        .unwrap_err();
    assert_eq!(moving.status().map(|s| s.as_u16()), Some(503), "{moving}");
    assert!(
        moving.to_string().contains("leadership is moving to node"),
        "{moving}"
    );

    // Retry at whoever leads now until the old leader is out (a retry
    // whose answer was lost finds it already removed).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let new_leader = nodes
            .wait_for_leader(Duration::from_secs(20))
            .await
            .unwrap();
        if new_leader != leader {
            let mut admin = Client::connect(nodes.api(new_leader)).await.unwrap();
            let _ = admin
                .change_membership(&MembershipChange::Remove { id: leader })
                .await;
            let members = admin.status().await.unwrap().membership;
            if !members.voters.contains(&leader) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the old leader was never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nodes.stop(Duration::from_secs(5));
}

/// Only the leader knows what is pending and how far each learner is: a
/// change sent to a follower is refused with the leader's id. Before, it
/// was forwarded, and a removal of the leader or a change while another
/// was pending slipped past the leader's checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sent_to_a_follower_is_refused_naming_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = three_nodes(dir.path()).await;
    let follower = nodes.ids().into_iter().find(|&id| id != leader).unwrap();
    let mut admin = Client::connect(nodes.api(follower)).await.unwrap();
    let refused = admin
        .change_membership(&MembershipChange::Remove { id: leader })
        .await
        .unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(409), "{refused}");
    assert!(
        refused
            .to_string()
            .contains(&format!("the leader, node {leader}")),
        "{refused}"
    );
    let members = admin.status().await.unwrap().membership;
    assert!(members.voters.contains(&leader), "{members:?}");
    nodes.stop(Duration::from_secs(5));
}
