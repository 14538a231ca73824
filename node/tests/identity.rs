//! Cluster identity, on real processes: a founding member whose data is
//! lost refuses to found the cluster again. (Connections from other
//! clusters and from strangers are `security.rs`'s.)

use std::path::Path;
use std::time::{Duration, Instant};

use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-node"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_founding_member_whose_data_is_lost_refuses_to_found_the_cluster_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) =
        LocalCluster::start_led(binary(), cluster::plan(3, dir.path()).unwrap())
            .await
            .unwrap();
    let mut client = Client::connect(nodes.api(leader)).await.unwrap();
    client.append(vec!["kept".into()]).await.unwrap();
    let victim = nodes.ids().into_iter().find(|&id| id != leader).unwrap();
    nodes.kill(victim);
    std::fs::remove_dir_all(&nodes.config(victim).dir).unwrap();
    nodes.restart(victim).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes.is_up(victim) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(nodes.log_path(victim)).unwrap();
    assert!(
        !nodes.is_up(victim),
        "node {victim} founded the cluster again on an empty directory:\n{log}"
    );
    assert!(log.contains("its data was lost"), "{log}");
    nodes.stop(Duration::from_secs(5));
}
