//! A read waiting on a leader that stops leading is answered with a
//! retryable 503 as soon as the node learns of the change, not with a 504
//! after the request timeout: raft drops such reads without a word.

use std::path::Path;
use std::time::Duration;

use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-node"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_forwarded_to_a_deposed_leader_fails_fast_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = LocalCluster::start_led(binary(), cluster::plan(3, dir.path()))
        .await
        .unwrap();
    let follower = nodes.ids().into_iter().find(|&id| id != leader).unwrap();
    let mut client = Client::connect(nodes.api(follower)).await.unwrap();
    client.append(vec!["before".into()]).await.unwrap();

    // The follower forwards the read to a leader that no longer answers;
    // the others elect a new one within an election timeout or two.
    nodes.pause(leader);
    let refused = client.read(0, 1, true).await.unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(503), "{refused}");

    nodes.resume(leader);
    nodes.stop(Duration::from_secs(5));
}
