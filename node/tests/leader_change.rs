//! Requests waiting on a leader that stops leading, which raft drops
//! without a word: a read is answered with a retryable 503 as soon as the
//! node learns of the change; an append is proposed again to the new
//! leader once it is sure the first proposal can no longer be applied,
//! and is stored once. Neither waits for the request timeout (a 504).

use std::path::Path;
use std::time::Duration;

use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};
use raft_node::metrics::sample;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-node"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_forwarded_to_a_deposed_leader_fails_fast_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) =
        LocalCluster::start_led(binary(), cluster::plan(3, dir.path()).unwrap())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_forwarded_to_a_deposed_leader_are_proposed_again_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) =
        LocalCluster::start_led(binary(), cluster::plan(3, dir.path()).unwrap())
            .await
            .unwrap();
    let follower = nodes.ids().into_iter().find(|&id| id != leader).unwrap();
    let api = nodes.api(follower);
    Client::connect(api)
        .await
        .unwrap()
        .append(vec!["before".into()])
        .await
        .unwrap();

    // Until its election timeout, the follower forwards these to a leader
    // that no longer answers; they are lost unless proposed again.
    nodes.pause(leader);
    let appends: Vec<_> = (0..16)
        .map(|i| {
            tokio::spawn(async move {
                let mut client = Client::connect(api).await.unwrap();
                // A 503 (no leader known, nothing appended) may come once
                // the follower's election timer fires; a retry is safe.
                let appended = async {
                    loop {
                        match client.append(vec![format!("during-{i}")]).await {
                            Err(e) if e.status().map(|s| s.as_u16()) == Some(503) => {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            outcome => return outcome,
                        }
                    }
                };
                tokio::time::timeout(Duration::from_secs(30), appended)
                    .await
                    .expect("a leader within 30 s")
            })
        })
        .collect();
    for (i, append) in appends.into_iter().enumerate() {
        let outcome = append.await.unwrap();
        assert!(outcome.is_ok(), "append {i}: {outcome:?}");
    }
    let mut client = Client::connect(api).await.unwrap();
    let metrics = client.metrics().await.unwrap();
    assert!(
        sample(&metrics, "appends_retried_total").unwrap() >= 1.0,
        "no append was proposed again: {metrics}"
    );

    // The old leader wakes with the first proposals in its socket. It
    // appends them in its old term, which the new leader overwrites, or,
    // if it hears of the new term first, forwards them into a term they
    // were not stamped with: either way none is stored a second time.
    nodes.resume(leader);
    nodes
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    client.append(vec!["after".into()]).await.unwrap();
    for id in nodes.ids() {
        let mut reader = Client::connect(nodes.api(id)).await.unwrap();
        reader.read(0, 1, true).await.unwrap();
        let (_, log) = reader.read_all().await.unwrap();
        for i in 0..16 {
            let stored = log.iter().filter(|r| **r == format!("during-{i}")).count();
            assert_eq!(
                stored, 1,
                "node {id} holds during-{i} {stored} times: {log:?}"
            );
        }
    }
    nodes.stop(Duration::from_secs(5));
}
