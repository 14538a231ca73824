//! Bad input gets an error and a closed connection, or a refusal to start
//! with a message naming the problem, never a panic.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use raft_node::client::Client;
use raft_node::cluster::{self, serve_args, LocalCluster};
use raft_node::cluster_id::ClusterId;
use raft_node::tls::peer::PeerTls;
use raft_node::transport::{Hello, MAX_FRAME_BYTES};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-node"))
}

async fn one_node(dir: &Path) -> LocalCluster {
    let mut nodes = LocalCluster::start(binary(), cluster::plan(1, dir).unwrap()).unwrap();
    nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    nodes
}

/// Writes `bytes` and reads until the node closes the connection.
async fn closed_after<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, bytes: &[u8]) -> Vec<u8> {
    s.write_all(bytes).await.unwrap();
    s.flush().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .expect("the node closes the connection")
        .unwrap_or_default();
    answer
}

/// A TLS connection to node `to`'s raft port as member `from`, with its
/// certificate.
async fn as_member(
    nodes: &LocalCluster,
    from: u64,
    to: u64,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = nodes.config(from);
    let cluster = ClusterId::of_name(&config.cluster_name);
    let tls = PeerTls::load(config.peer_tls.as_ref().unwrap(), cluster, from, &[]).unwrap();
    let tcp = TcpStream::connect(nodes.config(to).listen()).await.unwrap();
    tls.connect(tcp, to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_peer_frames_close_the_connection_and_the_node_keeps_serving() {
    // Sent with member 2's certificate: with TLS only a member's frames
    // reach the parser.
    let dir = tempfile::tempdir().unwrap();
    let configs = cluster::plan(3, dir.path()).unwrap();
    let (mut nodes, _) = LocalCluster::start_led(binary(), configs).await.unwrap();

    // A first frame longer than any hello is refused before it is read.
    let long_first = (1u32 << 20).to_be_bytes();
    assert!(closed_after(as_member(&nodes, 2, 1).await, &long_first)
        .await
        .is_empty());
    // Behind this cluster's hello, so the frames reach the message parser.
    let hello = Hello {
        cluster: ClusterId::of_name(&nodes.config(1).cluster_name).0,
        from: 2,
        to: 1,
        probe: false,
    }
    .encode();
    let hello = [&(hello.len() as u32).to_be_bytes()[..], &hello].concat();
    let garbage = [&hello[..], &5u32.to_be_bytes()[..], &[0xff; 5]].concat();
    assert!(closed_after(as_member(&nodes, 2, 1).await, &garbage)
        .await
        .is_empty());
    let oversized = [
        &hello[..],
        &((MAX_FRAME_BYTES as u32) + 1).to_be_bytes()[..],
    ]
    .concat();
    assert!(closed_after(as_member(&nodes, 2, 1).await, &oversized)
        .await
        .is_empty());

    let mut client = Client::connect(nodes.api(1)).await.unwrap();
    assert_eq!(
        client
            .append(vec!["still here".into()])
            .await
            .unwrap()
            .offset,
        0
    );
    let log = std::fs::read_to_string(nodes.log_path(1)).unwrap();
    assert!(log.contains("malformed raft message"), "{log}");
    assert!(log.contains("bad frame"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    nodes.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_client_requests_get_a_400_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = one_node(dir.path()).await;
    let api = nodes.api(1);
    for (body, reason) in [
        (r#"{"records": "#, "EOF while parsing"),
        (r#"{"records": [1, 2]}"#, "invalid type"),
        (r#"{"records": []}"#, "records must not be empty"),
    ] {
        let request = format!(
            "POST /v1/append HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let answer = String::from_utf8(
            closed_after(TcpStream::connect(api).await.unwrap(), request.as_bytes()).await,
        )
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(reason), "{answer}");
    }
    let answer = closed_after(
        TcpStream::connect(api).await.unwrap(),
        b"NOT HTTP AT ALL\r\n\r\n",
    )
    .await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 400") || answer.is_empty());
    let answer = String::from_utf8(
        closed_after(
            TcpStream::connect(api).await.unwrap(),
            b"GET /v1/records?from=minus HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await,
    )
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(Client::connect(api).await.unwrap().status().await.is_ok());
    nodes.stop(Duration::from_secs(5));
}

/// Runs `raft-node serve` with `args` to its exit; returns its stderr.
fn serve_fails(args: &[String]) -> String {
    let out = Command::new(binary()).args(args).output().unwrap();
    assert!(!out.status.success(), "the node started");
    String::from_utf8(out.stderr).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_with_a_wrong_id_or_peer_list_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let configs = cluster::plan(3, dir.path()).unwrap();
    let mut nodes = LocalCluster::start(binary(), configs.clone()).unwrap();
    nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    nodes.stop(Duration::from_secs(5));

    let mut wrong_id = configs[0].clone();
    wrong_id.id = 4;
    wrong_id.peers.insert(4, cluster::free_addrs(1)[0]);
    let e = serve_fails(&serve_args(&wrong_id));
    assert!(
        e.contains("node id 4 is not a member of the cluster stored in"),
        "{e}"
    );

    let mut short_list = configs[0].clone();
    short_list.peers.remove(&3);
    let e = serve_fails(&serve_args(&short_list));
    assert!(e.contains("members [3] of the cluster stored in"), "{e}");

    let mut missing_self = configs[0].clone();
    missing_self.peers.remove(&1);
    let e = serve_fails(&serve_args(&missing_self));
    assert!(e.contains("node id 1 has no --peer entry"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_corrupt_wal_exits_naming_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = one_node(dir.path()).await;
    let mut client = Client::connect(nodes.api(1)).await.unwrap();
    for i in 0..50 {
        client.append(vec![format!("record {i}")]).await.unwrap();
    }
    nodes.stop(Duration::from_secs(5));
    let config = nodes.config(1).clone();
    let segment = std::fs::read_dir(&config.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .expect("a WAL segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();

    let e = serve_fails(&serve_args(&config));
    assert!(e.contains("corrupt WAL"), "{e}");
    assert!(e.contains(&segment.display().to_string()), "{e}");
    assert!(e.contains("at offset"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}
