//! Peer transport over TCP: one outbound connection per peer, fed by a
//! bounded queue, and a listener for the inbound ones.
//!
//! The Ready loop never waits on the network: [`Peers::send`] only queues.
//! A full queue drops the message, which raft tolerates (it retries), and
//! the loop reports the peer unreachable so the leader stops streaming to
//! it until it answers again.

mod frame;
mod listener;
mod peer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use raft_proto::eraftpb::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{warn, Instrument};

use crate::handle::Input;
use crate::metrics::Metrics;

pub use frame::MAX_FRAME_BYTES;
pub use listener::serve;

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE_MESSAGES: usize = 4096;

/// The outbound side: a queue and a writer task per peer.
pub struct Peers {
    me: u64,
    queues: HashMap<u64, mpsc::Sender<Message>>,
    inbox: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl Peers {
    /// No peers yet; writer tasks report back through `inbox`.
    pub fn new(
        me: u64,
        inbox: mpsc::Sender<Input>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Peers {
        Peers {
            me,
            queues: HashMap::new(),
            inbox,
            metrics,
            stop,
        }
    }

    /// Starts (or restarts, at a new address) the writer task for `id`.
    /// Must run inside the tokio runtime.
    pub fn connect(&mut self, id: u64, addr: SocketAddr) {
        if id == self.me {
            return;
        }
        let (queue, outbox) = mpsc::channel(PEER_QUEUE_MESSAGES);
        let writer = peer::Writer {
            id,
            addr,
            outbox,
            inbox: self.inbox.clone(),
            stop: self.stop.child_token(),
        };
        tokio::spawn(writer.run().in_current_span());
        self.queues.insert(id, queue);
    }

    /// Stops the writer task for a removed member.
    pub fn disconnect(&mut self, id: u64) {
        self.queues.remove(&id);
    }

    /// Queues messages; returns the peers whose queue was full or unknown.
    pub fn send(&mut self, msgs: Vec<Message>) -> Vec<u64> {
        let mut unreachable = Vec::new();
        for msg in msgs {
            let to = msg.to;
            let queued = match self.queues.get(&to) {
                Some(queue) => queue.try_send(msg).is_ok(),
                None => {
                    warn!(
                        "no address for node {to}; dropping a {:?}",
                        msg.get_msg_type()
                    );
                    false
                }
            };
            if !queued {
                self.metrics.peer_send_failures.inc();
                if !unreachable.contains(&to) {
                    unreachable.push(to);
                }
            }
        }
        unreachable
    }
}
