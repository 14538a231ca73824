//! Inbound peer connections: a hello, then frames in, messages to the
//! Ready loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use raft_wal_storage::WalStorage;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

use super::frame::{self, Hello, SnapshotChunks};
use super::secure::{Members, PeerSecurity};
use crate::cluster_id::ClusterId;
use crate::handle::Input;

/// How long a new connection may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections not yet past their hello at most; one past them is closed
/// at once, so strangers cannot pile up handshakes.
const CONNECTIONS_BEFORE_HELLO: usize = 256;

/// Who this listener is, for checking each connection's hello.
#[derive(Clone)]
pub struct Identity {
    /// This node.
    pub me: u64,
    /// Its cluster.
    pub cluster: ClusterId,
    /// Its WAL: a probe is answered with the last index it holds.
    pub store: WalStorage,
    /// How connections are secured.
    pub security: Arc<PeerSecurity>,
    /// The nodes admitted: the members this node talks to.
    pub members: Members,
}

/// Accepts peer connections until `stop`; each one is read by its own task.
pub async fn serve(
    listener: TcpListener,
    identity: Identity,
    inbox: mpsc::Sender<Input>,
    stop: CancellationToken,
) {
    let before_hello = Arc::new(Semaphore::new(CONNECTIONS_BEFORE_HELLO));
    let mut last_warned: Option<std::time::Instant> = None;
    loop {
        let (stream, remote) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!("peer listener: accept failed: {e}");
                    continue;
                }
            },
        };
        let Ok(unproven) = before_hello.clone().try_acquire_owned() else {
            // One line a second at most: a flood must not fill the log.
            if last_warned.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                warn!("peer {remote}: {CONNECTIONS_BEFORE_HELLO} connections are before their hello; closing new ones");
                last_warned = Some(std::time::Instant::now());
            }
            continue;
        };
        let reader = read_peer(
            (stream, unproven),
            remote,
            identity.clone(),
            inbox.clone(),
            stop.clone(),
        );
        tokio::spawn(reader.in_current_span());
    }
}

/// Reads one connection. A connection whose TLS does not prove a current
/// member (with `--insecure-peers` there is no such proof), a first frame
/// that is no hello of this cluster for this node from the member the
/// certificate proves, a later frame that is not a raft message, or a
/// message for another node or from another sender than the hello named,
/// ends the connection with a log line naming the peer: the sender is
/// broken, misconfigured or a stranger, and nothing it sends after that
/// can be trusted.
async fn read_peer(
    (tcp, unproven): (TcpStream, OwnedSemaphorePermit),
    remote: SocketAddr,
    identity: Identity,
    inbox: mpsc::Sender<Input>,
    stop: CancellationToken,
) {
    let me = identity.me;
    let _ = tcp.set_nodelay(true);
    // The handshake and the hello run under one timeout, and the hello is
    // read with its own size as the frame limit: a stranger gets neither a
    // 64 MiB buffer nor a task that waits forever.
    let opened = async {
        let (stream, proven) = identity.security.admit(tcp, &identity.members).await?;
        let mut frames = Framed::new(stream, frame::hello_codec());
        Ok::<_, String>((frames.next().await, proven, frames))
    };
    let opened = tokio::select! {
        _ = stop.cancelled() => return,
        opened = tokio::time::timeout(HELLO_TIMEOUT, opened) => opened,
    };
    let (hello, proven, frames) = match opened {
        Err(_) => {
            warn!("peer {remote}: no hello within {HELLO_TIMEOUT:?}; closing the connection");
            return;
        }
        Ok(Err(refused)) => {
            warn!("peer {remote}: {refused}; closing the connection");
            return;
        }
        Ok(Ok(opened)) => opened,
    };
    let hello = match hello {
        None => return,
        Some(Err(e)) => {
            warn!("peer {remote}: bad frame ({e}); closing the connection");
            return;
        }
        Some(Ok(payload)) => match Hello::decode(&payload) {
            Ok(hello) => hello,
            Err(e) => {
                warn!("peer {remote}: {e}; closing the connection");
                return;
            }
        },
    };
    if hello.cluster != identity.cluster.0 || hello.to != me {
        warn!(
            "peer {remote}: node {} of cluster {:016x} means to reach node {}; this is node {me} of cluster {:016x}; closing the connection",
            hello.from, hello.cluster, hello.to, identity.cluster.0
        );
        return;
    }
    if let Some(proven) = proven.filter(|&id| id != hello.from) {
        warn!(
            "peer {remote}: the certificate of node {proven} says hello as node {}; closing the connection",
            hello.from
        );
        return;
    }

    drop(unproven);
    let mut frames = frames.map_codec(|_| frame::codec());
    if hello.probe {
        let held = raft::Storage::last_index(&identity.store).unwrap_or(0);
        let answer = Bytes::copy_from_slice(&held.to_be_bytes());
        let _ = frames.send(answer).await;
        return;
    }
    let mut chunks = SnapshotChunks::default();
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = frames.next() => next,
        };
        let payload = match next {
            None => return,
            Some(Ok(payload)) => payload,
            Some(Err(e)) => {
                warn!("peer {remote}: bad frame ({e}); closing the connection");
                return;
            }
        };
        let msg = match frame::decode(&payload) {
            Ok(msg) => msg,
            Err(e) => {
                warn!("peer {remote}: malformed raft message ({e}); closing the connection");
                return;
            }
        };
        if let Some(removed) = proven.filter(|&id| !identity.members.contains(id)) {
            warn!("peer {remote}: node {removed} is no member any more; closing the connection");
            return;
        }
        if msg.to != me || msg.from != hello.from {
            warn!(
                "peer {remote}: a message from node {} for node {} on node {}'s connection to node {me}; closing the connection",
                msg.from, msg.to, hello.from
            );
            return;
        }
        let msg = match chunks.take(msg) {
            Ok(Some(msg)) => msg,
            Ok(None) => continue,
            Err(e) => {
                warn!("peer {remote}: {e}; closing the connection");
                return;
            }
        };
        if inbox.send(Input::Raft(Box::new(msg))).await.is_err() {
            debug!("peer {remote}: the node stopped");
            return;
        }
    }
}
