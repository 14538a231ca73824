//! Authentication, on real processes: what reaches raft through a node's
//! raft port, and what its API takes.
//!
//! The attack: a stranger opens a connection to a follower's raft port
//! and sends one MsgAppend "from the leader" at term 1000 that matches the
//! follower's last entry and commits one entry of 7 garbage bytes. With
//! plain TCP (`--insecure-peers`) it gets through: the follower moves to
//! term 1000 and stops on the entry, naming it and the way out. With TLS,
//! the default, it is refused, and so are a member's certificate used to
//! speak as another member and certificates of another cluster.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};
use raft_node::cluster_id::ClusterId;
use raft_node::config::NodeConfig;
use raft_node::entry::UNDECODABLE_EXIT_STATUS;
use raft_node::tls::api::{ApiCredentials, ApiTlsFiles};
use raft_node::tls::certs::ClusterCa;
use raft_node::tls::peer::PeerTls;
use raft_node::tls::TlsFiles;
use raft_node::transport::Hello;
use raft_proto::eraftpb::{Entry, Message, MessageType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-node"))
}

/// One length-delimited frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn hello(cluster: ClusterId, from: u64, to: u64) -> Vec<u8> {
    let hello = Hello {
        cluster: cluster.0,
        from,
        to,
        probe: false,
    };
    frame(&hello.encode())
}

/// A message carrying one entry of 7 garbage bytes.
fn with_garbage(kind: MessageType, from: u64, to: u64, term: u64, index: u64) -> Message {
    let entry = Entry {
        term,
        index,
        data: b"garbage".to_vec().into(),
        ..Default::default()
    };
    let mut msg = Message {
        from,
        to,
        term,
        ..Default::default()
    };
    msg.set_msg_type(kind);
    msg.set_entries(vec![entry].into());
    msg
}

/// The attack's frame: a MsgAppend "from" `from` at term 1000 whose log
/// term and index match `to`'s last entry, committing one garbage entry
/// after it.
fn forged_append(from: u64, to: u64, last_term: u64, last_index: u64) -> Vec<u8> {
    let mut msg = with_garbage(MessageType::MsgAppend, from, to, 1_000, last_index + 1);
    msg.log_term = last_term;
    msg.index = last_index;
    msg.commit = last_index + 1;
    frame(&msg.write_to_bytes().unwrap())
}

/// A heartbeat "from" `from` at `term`: it would move `to` to that term.
fn heartbeat(from: u64, to: u64, term: u64) -> Vec<u8> {
    let mut msg = Message {
        from,
        to,
        term,
        ..Default::default()
    };
    msg.set_msg_type(MessageType::MsgHeartbeat);
    frame(&msg.write_to_bytes().unwrap())
}

/// Writes `wire` and reads until the node closes the connection; false if
/// it stays open for 10 s.
async fn closed_after<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, wire: &[u8]) -> bool {
    let _ = stream.write_all(wire).await;
    let _ = stream.flush().await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .is_ok()
}

/// A TLS client trusting `ca`, presenting `cert` if given.
fn tls_client(ca: &Path, cert: Option<&TlsFiles>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match cert {
        Some(files) => {
            let chain = CertificateDer::pem_file_iter(&files.cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// Opens TLS to node `to`'s raft port with `connector` and sends `wire`;
/// whether the node closed the connection (a refused handshake counts).
async fn tls_closed_after(connector: &TlsConnector, config: &NodeConfig, wire: &[u8]) -> bool {
    let tcp = TcpStream::connect(config.listen()).await.unwrap();
    let cluster = ClusterId::of_name(&config.cluster_name);
    let name = ServerName::try_from(PeerTls::name(cluster, config.id)).unwrap();
    match connector.connect(name, tcp).await {
        Ok(stream) => closed_after(stream, wire).await,
        Err(_) => true,
    }
}

/// A node's term and records.
async fn seen(nodes: &LocalCluster, id: u64) -> (u64, Vec<String>) {
    let mut client = nodes.client(id).await.unwrap();
    let term = client.status().await.unwrap().term;
    (term, client.read_all().await.unwrap().1)
}

/// Three nodes holding three records, their leader, and a follower; both
/// followers hold every entry the leader has, up to `last_index` at
/// `term`.
struct Target {
    nodes: LocalCluster,
    leader: u64,
    id: u64,
    term: u64,
    last_index: u64,
}

async fn three_nodes_and_a_follower(configs: Vec<NodeConfig>) -> Target {
    let (nodes, leader) = LocalCluster::start_led(binary(), configs).await.unwrap();
    let mut client = nodes.client(leader).await.unwrap();
    for r in ["a", "b", "c"] {
        client.append(vec![r.into()]).await.unwrap();
    }
    let leader_status = client.status().await.unwrap();
    let followers: Vec<u64> = nodes.ids().into_iter().filter(|&id| id != leader).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    for &id in &followers {
        while nodes
            .client(id)
            .await
            .unwrap()
            .status()
            .await
            .unwrap()
            .applied
            < leader_status.last_index
        {
            assert!(Instant::now() < deadline, "node {id} never caught up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Target {
        nodes,
        leader,
        id: followers[0],
        term: leader_status.term,
        last_index: leader_status.last_index,
    }
}

/// The follower of a 3-node cluster with TLS between peers, and its term
/// and records before any attack.
async fn tls_target(dir: &Path) -> (Target, (u64, Vec<String>)) {
    let target = three_nodes_and_a_follower(cluster::plan(3, dir).unwrap()).await;
    let before = seen(&target.nodes, target.id).await;
    (target, before)
}

/// The follower of a 3-node cluster with plain TCP between peers
/// (`--insecure-peers`).
async fn insecure_target(dir: &Path) -> Target {
    let mut configs = cluster::plan(3, dir).unwrap();
    for c in &mut configs {
        c.peer_tls = None;
        c.insecure_peers = true;
    }
    three_nodes_and_a_follower(configs).await
}

impl Target {
    fn config(&self) -> &NodeConfig {
        self.nodes.config(self.id)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.nodes.log_path(self.id)).unwrap()
    }

    fn cluster(&self) -> ClusterId {
        ClusterId::of_name(&self.config().cluster_name)
    }

    /// A hello of `cluster` as `hello_from`, then the forged append "from"
    /// `from`.
    fn forged(&self, cluster: ClusterId, hello_from: u64, from: u64) -> Vec<u8> {
        let mut wire = hello(cluster, hello_from, self.id);
        wire.extend(forged_append(from, self.id, self.term, self.last_index));
        wire
    }

    /// The attack's bytes: this cluster's hello as the leader, then the
    /// forged append from it.
    fn attack(&self) -> Vec<u8> {
        self.forged(self.cluster(), self.leader, self.leader)
    }

    /// The attack on `victim`, either follower, sent over plain TCP.
    async fn attack_plain(&self, victim: u64) {
        let mut wire = hello(self.cluster(), self.leader, victim);
        wire.extend(forged_append(
            self.leader,
            victim,
            self.term,
            self.last_index,
        ));
        let tcp = TcpStream::connect(self.nodes.config(victim).listen())
            .await
            .unwrap();
        let _ = closed_after(tcp, &wire).await;
    }

    /// Sends `wire` over TLS with `connector` and checks the node refused
    /// it: the connection closed, and the node is unchanged.
    async fn refuses(
        &mut self,
        connector: &TlsConnector,
        wire: &[u8],
        before: &(u64, Vec<String>),
    ) {
        assert!(tls_closed_after(connector, self.config(), wire).await);
        self.unchanged(before).await;
    }

    /// Checks the node logged `line`.
    fn logged(&self, line: &str) {
        let log = self.log();
        assert!(log.contains(line), "no `{line}` in:\n{log}");
    }

    /// Waits out the attack and checks the node is up, at its term, with
    /// its records.
    async fn unchanged(&mut self, before: &(u64, Vec<String>)) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(self.nodes.is_up(self.id), "node stopped:\n{}", self.log());
        assert_eq!(&seen(&self.nodes, self.id).await, before, "{}", self.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forged_append_of_a_stranger_is_refused_and_the_follower_keeps_its_term_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut target, before) = tls_target(dir.path()).await;
    let wire = target.attack();

    // As plain TCP, the attack is no TLS handshake.
    let tcp = TcpStream::connect(target.config().listen()).await.unwrap();
    assert!(closed_after(tcp, &wire).await);
    target.unchanged(&before).await;
    // Over TLS, trusting the cluster's CA, but with no certificate.
    let ca = &target.config().peer_tls.as_ref().unwrap().ca;
    let anonymous = tls_client(ca, None);
    target.refuses(&anonymous, &wire, &before).await;
    assert_eq!(target.log().matches("TLS handshake failed").count(), 2);
    target.nodes.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_certificate_speaking_as_another_member_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut target, before) = tls_target(dir.path()).await;
    // Node `thief`'s own certificate and key, and the member it poses as.
    let thief = target
        .nodes
        .ids()
        .into_iter()
        .find(|&id| id != target.id)
        .unwrap();
    let posed = (1..=3).find(|&id| id != thief && id != target.id).unwrap();
    let stolen = target.nodes.config(thief).peer_tls.clone().unwrap();
    let connector = tls_client(&stolen.ca, Some(&stolen));

    // The hello names the posed member; then the hello is honest and the
    // message is not.
    let cluster = target.cluster();
    for hello_from in [posed, thief] {
        let wire = target.forged(cluster, hello_from, posed);
        target.refuses(&connector, &wire, &before).await;
    }
    target.logged(&format!(
        "the certificate of node {thief} says hello as node {posed}"
    ));
    target.logged(&format!(
        "a message from node {posed} for node {} on node {thief}'s connection",
        target.id
    ));
    target.nodes.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut target, before) = tls_target(dir.path()).await;
    let ca = target.config().peer_tls.clone().unwrap().ca;
    let wire = target.attack();

    // Another CA's certificate for the leader's own peer name.
    let elsewhere = tempfile::tempdir().unwrap();
    let other_ca = ClusterCa::open_or_create(elsewhere.path()).unwrap();
    let impostor = other_ca
        .issue_node(target.cluster(), target.leader)
        .unwrap();
    target
        .refuses(&tls_client(&ca, Some(&impostor)), &wire, &before)
        .await;
    target.logged("TLS handshake failed");

    // This cluster's CA, shared with a cluster of another name: the
    // certificate names the leader's id in that cluster.
    let shared = tempfile::tempdir().unwrap();
    for file in ["ca.pem", "ca.key"] {
        std::fs::copy(ca.with_file_name(file), shared.path().join(file)).unwrap();
    }
    let other = ClusterId::of_name("another-cluster");
    let neighbour = ClusterCa::open_or_create(shared.path())
        .unwrap()
        .issue_node(other, target.leader)
        .unwrap();
    let wire = target.forged(other, target.leader, target.leader);
    target
        .refuses(&tls_client(&ca, Some(&neighbour)), &wire, &before)
        .await;
    target.logged("the certificate names no current member");
    target.nodes.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_members_certificate_is_refused_on_open_and_new_connections_and_after_a_restart()
{
    let dir = tempfile::tempdir().unwrap();
    let (mut target, before) = tls_target(dir.path()).await;
    let (leader, id) = (target.leader, target.id);
    let removed = (1..=3).find(|&n| n != leader && n != id).unwrap();
    let cluster = target.cluster();
    let files = target.nodes.config(removed).peer_tls.clone().unwrap();
    let dialer = PeerTls::load(&files, cluster, removed, &[]).unwrap();
    let addr = target.config().listen();
    let dial = || async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        dialer.connect(tcp, id).await
    };
    // Connected as `removed` before its removal, past the hello.
    let mut open = dial().await.unwrap();
    open.write_all(&hello(cluster, removed, id)).await.unwrap();
    open.flush().await.unwrap();

    let mut client = target.nodes.client(leader).await.unwrap();
    client
        .change_membership(&raft_node::handle::MembershipChange::Remove { id: removed })
        .await
        .unwrap();
    target.nodes.remove(removed);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = target
            .nodes
            .client(id)
            .await
            .unwrap()
            .status()
            .await
            .unwrap();
        if status.membership.voters == [leader.min(id), leader.max(id)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} never applied the removal"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let forged = heartbeat(removed, id, before.0 + 1_000);
    assert!(closed_after(open, &forged).await);
    target.unchanged(&before).await;
    target.logged(&format!("node {removed} is no member any more"));

    let mut wire = hello(cluster, removed, id);
    wire.extend(&forged);
    // A new connection; then the same after a restart of node `id`, with
    // `removed` dropped from its --peer list as an operator does.
    if let Ok(stream) = dial().await {
        assert!(closed_after(stream, &wire).await);
    }
    target.unchanged(&before).await;
    target.nodes.config_mut(id).peers.remove(&removed);
    target.nodes.restart(id).unwrap();
    target
        .nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    if let Ok(stream) = dial().await {
        assert!(closed_after(stream, &wire).await);
    }
    // The restart may cost the two voters an election: the term may move
    // on, but never to a forged one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (term, records) = seen(&target.nodes, id).await;
    assert!(term < 1_000, "a forged term landed: {term}");
    assert_eq!(records, before.1);
    assert_eq!(
        target
            .log()
            .matches("the certificate names no current member")
            .count(),
        2
    );
    target.nodes.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_insecure_peers_a_connection_without_this_clusters_hello_is_cut_off_before_raft() {
    let dir = tempfile::tempdir().unwrap();
    let mut target = insecure_target(dir.path()).await;
    let before = seen(&target.nodes, target.id).await;
    // A heartbeat at a much higher term, with no hello, then behind
    // another cluster's.
    let forged = heartbeat(target.leader, target.id, before.0 + 1_000);
    let mut foreign = hello(ClusterId(0xdead_beef), target.leader, target.id);
    foreign.extend(&forged);
    for wire in [forged, foreign] {
        let tcp = TcpStream::connect(target.config().listen()).await.unwrap();
        assert!(closed_after(tcp, &wire).await);
        target.unchanged(&before).await;
    }
    target.logged("no hello");
    target.logged("of cluster 00000000deadbeef");
    target.nodes.stop(Duration::from_secs(5));
}

/// Stops when node `id` stops (within 30 s) and checks it named the entry
/// at `index` and the way out, with its own exit status.
async fn stops_naming(nodes: &mut LocalCluster, id: u64, index: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes.is_up(id) {
        assert!(Instant::now() < deadline, "node {id} did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        nodes.exit_code(id),
        Some(i32::from(UNDECODABLE_EXIT_STATUS))
    );
    let log = std::fs::read_to_string(nodes.log_path(id)).unwrap();
    for line in [
        format!("committed entry {index} (term 1000) cannot be applied"),
        format!("--skip-undecodable-entry {index}"),
    ] {
        assert!(log.contains(&line), "node {id}: no `{line}` in:\n{log}");
    }
}

/// Without TLS between peers, the attack goes through. Sent to both
/// followers, a majority, it commits the garbage entry for the cluster:
/// each stops naming the entry and the way out, and stops again if
/// restarted without it. Restarted with `--skip-undecodable-entry`, the
/// two elect a leader whose log carries the entry to the old leader,
/// which stops on it in turn; given the flag too, the three run again
/// with the same records. A garbage proposal forwarded to the leader
/// is refused before raft takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_insecure_peers_the_attack_lands_and_the_way_out_the_node_names_brings_the_cluster_back(
) {
    let dir = tempfile::tempdir().unwrap();
    let mut target = insecure_target(dir.path()).await;
    let records = seen(&target.nodes, target.leader).await.1;

    let mut wire = hello(target.cluster(), target.id, target.leader);
    let propose = with_garbage(MessageType::MsgPropose, target.id, target.leader, 0, 0);
    wire.extend(frame(&propose.write_to_bytes().unwrap()));
    let leader_peer = target.nodes.config(target.leader).listen();
    let mut stream = TcpStream::connect(leader_peer).await.unwrap();
    stream.write_all(&wire).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = format!(
        "undecodable_proposals_refused_total{{node=\"{}\"}} 1",
        target.leader
    );
    loop {
        let mut client = target.nodes.client(target.leader).await.unwrap();
        if client.metrics().await.unwrap().contains(&refused) {
            break;
        }
        assert!(Instant::now() < deadline, "the leader never refused it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in target.nodes.ids() {
        assert!(target.nodes.is_up(id), "node {id} stopped");
    }

    let index = target.last_index + 1;
    let followers: Vec<u64> = target
        .nodes
        .ids()
        .into_iter()
        .filter(|&id| id != target.leader)
        .collect();
    // Both at once: an answer at term 1000 from the first makes the real
    // leader step down, and one re-elected at term 1001 would leave the
    // second's forged append stale.
    futures::future::join_all(followers.iter().map(|&id| target.attack_plain(id))).await;
    for &id in &followers {
        stops_naming(&mut target.nodes, id, index).await;
    }
    target.logged("became follower at term 1000");
    target.nodes.restart(target.id).unwrap();
    stops_naming(&mut target.nodes, target.id, index).await;

    for &id in &followers {
        target.nodes.config_mut(id).skip_undecodable_entries = vec![index];
        target.nodes.restart(id).unwrap();
    }
    let old_leader = target.leader;
    stops_naming(&mut target.nodes, old_leader, index).await;
    target.nodes.config_mut(old_leader).skip_undecodable_entries = vec![index];
    target.nodes.restart(old_leader).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    'converged: loop {
        assert!(Instant::now() < deadline, "the nodes never converged");
        tokio::time::sleep(Duration::from_millis(100)).await;
        for id in target.nodes.ids() {
            let status = async { target.nodes.client(id).await?.status().await };
            match status.await {
                Ok(status) if status.applied > index => {}
                _ => continue 'converged,
            }
        }
        break;
    }
    for id in target.nodes.ids() {
        assert!(target.nodes.is_up(id), "node {id} stopped");
        assert_eq!(seen(&target.nodes, id).await.1, records, "node {id}");
        let log = std::fs::read_to_string(target.nodes.log_path(id)).unwrap();
        assert!(
            log.contains(&format!(
                "committed entry {index} (term 1000) does not decode"
            )),
            "node {id}: {log}"
        );
    }
    target.nodes.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_requests_without_the_credentials_it_requires() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = cluster::plan(1, dir.path()).unwrap();
    let peer = configs[0].peer_tls.clone().unwrap();
    // API clients' certificates come from a CA of their own.
    let clients = ClusterCa::open_or_create(&dir.path().join("clients")).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let wrong_token = dir.path().join("wrong-token");
    std::fs::write(&wrong_token, "guess").unwrap();
    configs[0].api_tls = Some(ApiTlsFiles {
        cert: peer.cert.clone(),
        key: peer.key.clone(),
        client_ca: Some(clients.ca_path()),
    });
    configs[0].api_token_file = Some(token.clone());
    let operator = clients.issue_client("operator").unwrap();
    let client_cert = Some((operator.cert.as_path(), operator.key.as_path()));
    let full = ApiCredentials::load(Some(&peer.ca), client_cert, Some(&token)).unwrap();

    let mut nodes = LocalCluster::start(binary(), configs).unwrap();
    nodes.set_credentials(full);
    nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let api = nodes.api(1);

    // Plain HTTP, even with the token, and TLS without a client
    // certificate, get no HTTP answer at all.
    let plain = ApiCredentials::load(None, None, Some(&token)).unwrap();
    let plain = async { Client::connect_with(api, &plain).await?.status().await };
    assert_eq!(plain.await.unwrap_err().status(), None);
    let no_cert = ApiCredentials::load(Some(&peer.ca), None, Some(&token)).unwrap();
    let anonymous = async { Client::connect_with(api, &no_cert).await?.status().await };
    assert_eq!(anonymous.await.unwrap_err().status(), None);
    // A certificate without the token, or with a wrong one: 401 on every
    // route, the admin ones included.
    for token in [None, Some(wrong_token.as_path())] {
        let credentials = ApiCredentials::load(Some(&peer.ca), client_cert, token).unwrap();
        let mut client = Client::connect_with(api, &credentials).await.unwrap();
        let refused = [
            client.status().await.unwrap_err(),
            client.append(vec!["x".into()]).await.unwrap_err(),
            client.transfer_leader(1).await.unwrap_err(),
            client
                .change_membership(&raft_node::handle::MembershipChange::Remove { id: 1 })
                .await
                .unwrap_err(),
        ];
        for e in refused {
            assert_eq!(e.status(), Some(hyper::StatusCode::UNAUTHORIZED), "{e}");
        }
    }
    let mut client = nodes.client(1).await.unwrap();
    client.append(vec!["authorized".into()]).await.unwrap();
    assert_eq!(client.read_all().await.unwrap().1, vec!["authorized"]);

    // The Kafka listener takes the API's TLS and client certificates:
    // kcat with the operator's certificate produces; without one, or in
    // plain TCP, it gets no metadata.
    let kafka = nodes.kafka(1).unwrap().to_string();
    // `tls`: plain TCP (None), or TLS with or without a client certificate.
    let kcat = |args: &[String], tls: Option<Option<&TlsFiles>>, stdin: &str| {
        let mut command = std::process::Command::new("kcat");
        command.args(["-b", &kafka, "-m", "5"]).args(args);
        if let Some(certificate) = tls {
            command.args([
                "-X".into(),
                "security.protocol=ssl".into(),
                "-X".into(),
                format!("ssl.ca.location={}", peer.ca.display()),
            ]);
            if let Some(files) = certificate {
                command.args([
                    "-X".into(),
                    format!("ssl.certificate.location={}", files.cert.display()),
                    "-X".into(),
                    format!("ssl.key.location={}", files.key.display()),
                ]);
            }
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("kcat (`.ci/run` installs it)");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        child.wait().unwrap().success()
    };
    let produce: Vec<String> = ["-P", "-t", "records", "-p", "0", "-X", "acks=all"]
        .map(String::from)
        .to_vec();
    assert!(kcat(&produce, Some(Some(&operator)), "over-tls\n"));
    assert_eq!(
        client.read_all().await.unwrap().1,
        vec!["authorized", "over-tls"]
    );
    let metadata = ["-L".to_string()];
    assert!(kcat(&metadata, Some(Some(&operator)), ""));
    assert!(!kcat(&metadata, None, ""), "plain TCP");
    assert!(!kcat(&metadata, Some(None), ""), "no client certificate");
    nodes.stop(Duration::from_secs(5));
}
