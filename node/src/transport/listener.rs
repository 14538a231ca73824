//! Inbound peer connections: frames in, messages to the Ready loop.

use std::net::SocketAddr;

use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

use super::frame;
use crate::handle::Input;

/// Accepts peer connections until `stop`; each one is read by its own task.
pub async fn serve(
    listener: TcpListener,
    me: u64,
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
        tokio::spawn(read_peer(stream, remote, me, inbox.clone(), stop.clone()).in_current_span());
    }
}

/// Reads one connection. A frame that is not a raft message, or a message
/// for another node, ends the connection with a log line naming the peer:
/// the sender is broken or misconfigured, and nothing it sends after that
/// can be trusted.
async fn read_peer(
    stream: TcpStream,
    remote: SocketAddr,
    me: u64,
    inbox: mpsc::Sender<Input>,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut frames = FramedRead::new(stream, frame::codec());
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
        if msg.to != me {
            warn!(
                "peer {remote}: message for node {} reached node {me}; check the --peer lists; closing the connection",
                msg.to
            );
            return;
        }
        if inbox.send(Input::Raft(Box::new(msg))).await.is_err() {
            debug!("peer {remote}: the node stopped");
            return;
        }
    }
}
