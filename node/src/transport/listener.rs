//! Inbound peer connections: a hello, then frames in, messages to the
//! Ready loop.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

use super::frame::{self, Hello};
use crate::cluster_id::ClusterId;
use crate::handle::Input;
use crate::metrics::Metrics;

/// Who this listener is, for checking each connection's hello.
#[derive(Clone)]
pub struct Identity {
    /// This node.
    pub me: u64,
    /// Its cluster.
    pub cluster: ClusterId,
    /// Its gauges: a probe is answered with the applied index.
    pub metrics: Arc<Metrics>,
}

/// Accepts peer connections until `stop`; each one is read by its own task.
pub async fn serve(
    listener: TcpListener,
    identity: Identity,
    inbox: mpsc::Sender<Input>,
    stop: CancellationToken,
) {
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
        let reader = read_peer(
            stream,
            remote,
            identity.clone(),
            inbox.clone(),
            stop.clone(),
        );
        tokio::spawn(reader.in_current_span());
    }
}

/// Reads one connection. A first frame that is no hello of this cluster
/// for this node, a later frame that is not a raft message, or a message
/// for another node or from another sender than the hello named, ends the
/// connection with a log line naming the peer: the sender is broken,
/// misconfigured or a stranger, and nothing it sends after that can be
/// trusted.
async fn read_peer(
    stream: TcpStream,
    remote: SocketAddr,
    identity: Identity,
    inbox: mpsc::Sender<Input>,
    stop: CancellationToken,
) {
    let me = identity.me;
    let _ = stream.set_nodelay(true);
    let mut frames = Framed::new(stream, frame::codec());
    let first = tokio::select! {
        _ = stop.cancelled() => return,
        first = frames.next() => first,
    };
    let hello = match first {
        None => return,
        Some(Err(e)) => {
            warn!("peer {remote}: bad frame ({e}); closing the connection");
            return;
        }
        Some(Ok(payload)) => match Hello::decode(&payload) {
            Some(hello) => hello,
            None => {
                warn!("peer {remote}: no hello; closing the connection");
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
    if hello.probe {
        let applied = identity.metrics.applied_index.get().max(0) as u64;
        let answer = Bytes::copy_from_slice(&applied.to_be_bytes());
        let _ = frames.send(answer).await;
        return;
    }
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
        if msg.to != me || msg.from != hello.from {
            warn!(
                "peer {remote}: a message from node {} for node {} on node {}'s connection to node {me}; closing the connection",
                msg.from, msg.to, hello.from
            );
            return;
        }
        if inbox.send(Input::Raft(Box::new(msg))).await.is_err() {
            debug!("peer {remote}: the node stopped");
            return;
        }
    }
}
