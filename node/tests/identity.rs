//! Cluster identity, on real processes: a founding member whose data is
//! lost refuses to found the cluster again, and a peer connection without
//! this cluster's hello is closed before any of its messages reaches raft.
//! (The hello names a cluster, it does not prove membership: a stranger
//! who knows the name can still connect. Authentication is issue 21's.)

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};
use raft_node::transport::Hello;
use raft_proto::eraftpb::{Message, MessageType};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-node"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_founding_member_whose_data_is_lost_refuses_to_found_the_cluster_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = LocalCluster::start_led(binary(), cluster::plan(3, dir.path()).unwrap())
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

/// One length-delimited frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn hello(cluster: u64, from: u64, to: u64) -> Vec<u8> {
    let hello = Hello {
        cluster,
        from,
        to,
        probe: false,
    };
    hello.encode().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_cluster_is_cut_off_before_raft_sees_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let configs = cluster::plan(3, dir.path()).unwrap();
    let (mut nodes, leader) = LocalCluster::start_led(binary(), configs).await.unwrap();
    let target = nodes.ids().into_iter().find(|&id| id != leader).unwrap();
    let term = |nodes: &LocalCluster| {
        let api = nodes.api(target);
        async move {
            Client::connect(api)
                .await
                .unwrap()
                .status()
                .await
                .unwrap()
                .term
        }
    };
    let before = term(&nodes).await;
    // A heartbeat "from the leader" at a much higher term would depose the
    // leader and move node `target` to that term, if it got through.
    let mut forged = Message::default();
    forged.set_msg_type(MessageType::MsgHeartbeat);
    forged.from = leader;
    forged.to = target;
    forged.term = before + 1_000;
    let forged = frame(&forged.write_to_bytes().unwrap());
    // Once with no hello, once behind another cluster's.
    let mut foreign = frame(&hello(0xdead_beef, leader, target));
    foreign.extend_from_slice(&forged);
    for wire in [forged.clone(), foreign] {
        let mut stream = TcpStream::connect(nodes.config(target).listen()).unwrap();
        stream.write_all(&wire).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            term(&nodes).await,
            before,
            "the forged heartbeat reached raft"
        );
    }
    let log = std::fs::read_to_string(nodes.log_path(target)).unwrap();
    assert!(log.contains("no hello"), "{log}");
    assert!(log.contains("of cluster 00000000deadbeef"), "{log}");
    nodes.stop(Duration::from_secs(5));
}
