//! The crash report's test 2, automated: three nodes up; SIGKILL node 3;
//! append 10,000 records; restart node 3. It must catch up without a
//! panic, hold the leader's log, and lose nothing acknowledged.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::join_all;
use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};
use raft_node::config::Persistence;

const RECORDS: usize = 10_000;
const PRODUCERS: usize = 32;

/// Every record a node holds; the test stays under retention, so from
/// offset 0.
async fn log_of(api: std::net::SocketAddr) -> Vec<String> {
    let (first, log) = Client::connect(api)
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    assert_eq!(first, 0, "{api} dropped records to retention");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node3_catches_up_after_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = cluster::plan(3, dir.path()).unwrap();
    // Snapshot and compact while node 3 is down, so it has to catch up
    // through a snapshot and then the log after it. Node 3 persists
    // asynchronously: a snapshot's Ready is then durable only after the
    // loop has moved on, which is where the nemesis found an applied index
    // ahead of the persisted one (seed 30).
    for c in &mut configs {
        c.snapshot_entries = 2_000;
        c.log_tail_entries = 500;
    }
    configs[2].persist = Persistence::Async;
    let mut nodes =
        LocalCluster::start(Path::new(env!("CARGO_BIN_EXE_raft-node")), configs).unwrap();
    nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();

    nodes.kill(3);
    let leader = nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let api = nodes.api(leader);
    let acked: Vec<(u64, String)> = join_all((0..PRODUCERS).map(|p| async move {
        let mut client = Client::connect(api).await.unwrap();
        let mut acked = Vec::new();
        for i in (p..RECORDS).step_by(PRODUCERS) {
            let value = format!("record-{i}");
            let a = client.append(vec![value.clone()]).await.unwrap();
            acked.push((a.offset, value));
        }
        acked
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(acked.len(), RECORDS);

    nodes.restart(3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let leader_log = log_of(api).await;
    loop {
        let caught_up = match Client::connect(nodes.api(3)).await {
            Ok(mut c) => {
                c.status().await.map(|s| s.records).unwrap_or(0) >= leader_log.len() as u64
            }
            Err(_) => false,
        };
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 did not catch up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node3_log = log_of(nodes.api(3)).await;
    assert_eq!(node3_log, leader_log, "node 3's log equals the leader's");
    for (offset, value) in &acked {
        assert_eq!(
            leader_log.get(*offset as usize),
            Some(value),
            "acknowledged record at {offset}"
        );
    }
    let log3 = std::fs::read_to_string(nodes.log_path(3)).unwrap();
    assert!(!log3.contains("panicked"), "node 3 panicked:\n{log3}");
    assert!(
        log3.contains("installing a snapshot"),
        "node 3 caught up through a snapshot:\n{log3}"
    );
    nodes.stop(Duration::from_secs(5));
}
