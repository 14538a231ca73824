//! A Ready whose only change is the commit index (`Ready::must_sync()` is
//! false) is written without an fdatasync: the commit index is rebuilt on
//! restart, so syncing it buys nothing. With one client appending one
//! record at a time, a follower then syncs once per append (the entry),
//! not twice (the entry, then the leader's commit).

use std::path::Path;
use std::time::Duration;

use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};
use raft_node::config::Persistence;
use raft_node::metrics::sample;

const APPENDS: u64 = 40;

async fn fsyncs(api: std::net::SocketAddr) -> u64 {
    let text = Client::connect(api).await.unwrap().metrics().await.unwrap();
    // The WAL's own count, not the loop's: it sees every fdatasync.
    sample(&text, "wal_syncs").unwrap() as u64
}

async fn follower_fsyncs_per_append(persist: Persistence) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = cluster::plan(3, dir.path()).unwrap();
    for c in &mut configs {
        c.persist = persist;
    }
    let binary = Path::new(env!("CARGO_BIN_EXE_raft-node"));
    let (mut nodes, leader) = LocalCluster::start_led(binary, configs).await.unwrap();
    let follower = nodes.ids().into_iter().find(|&id| id != leader).unwrap();
    let mut client = Client::connect(nodes.api(leader)).await.unwrap();
    client.append(vec!["warm-up".into()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = fsyncs(nodes.api(follower)).await;
    for i in 0..APPENDS {
        client.append(vec![format!("r{i}")]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = fsyncs(nodes.api(follower)).await;
    nodes.stop(Duration::from_secs(5));
    (after - before) as f64 / APPENDS as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_syncs_once_per_append_not_again_for_the_commit() {
    for persist in [Persistence::Sync, Persistence::Async] {
        let per_append = follower_fsyncs_per_append(persist).await;
        println!("persist {persist}: {per_append:.2} follower fdatasyncs per append");
        assert!(
            per_append < 1.3,
            "persist {persist}: {per_append:.2} fdatasyncs per append on a follower; a commit-only Ready was synced"
        );
    }
}
