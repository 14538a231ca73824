//! Peer transport over TCP: one outbound connection per peer, fed by a
//! bounded queue, and a listener for the inbound ones. Connections are
//! mutual TLS, or plain TCP behind `--insecure-peers` ([`secure`]).
//!
//! The Ready loop never waits on the network: [`Peers::send`] only queues.
//! A full queue (in messages or in bytes) drops the message, which raft
//! tolerates (it retries), and the loop reports the peer unreachable so the
//! leader stops streaming to it until it answers again; a dropped snapshot
//! is reported failed, so the leader sends another.

mod frame;
mod listener;
mod peer;
mod secure;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use raft_proto::eraftpb::{ConfState, Message, MessageType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{warn, Instrument};

use crate::cluster_id::ClusterId;
use crate::handle::Input;
use crate::metrics::Metrics;

pub use frame::{Hello, MAX_FRAME_BYTES, MAX_SNAPSHOT_BYTES, SNAPSHOT_CHUNK_BYTES};
pub use listener::{serve, Identity};
pub use secure::{members_of, Members, PeerSecurity};

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE_MESSAGES: usize = 4096;
/// Bytes queued per peer before new messages are dropped; a message is
/// always taken into an empty queue, so one snapshot larger than this
/// still goes out.
const PEER_QUEUE_BYTES: usize = 64 << 20;

/// What a message counts for against [`PEER_QUEUE_BYTES`]: its entries'
/// and snapshot's data, which dominate, plus a fixed allowance.
fn queued_size(msg: &Message) -> usize {
    let entries: usize = msg.get_entries().iter().map(|e| e.data.len() + 32).sum();
    entries + msg.get_snapshot().data.len() + 64
}

/// How much log the node at `addr` holds: its last index (1 right after
/// founding, 0 blank), or `None` if it cannot be reached within a second
/// or refuses the hello (another cluster, another node).
pub async fn probe(
    addr: SocketAddr,
    security: &PeerSecurity,
    cluster: ClusterId,
    me: u64,
    to: u64,
) -> Option<u64> {
    use futures::{SinkExt, StreamExt};
    let asked = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let stream = security.dial(tcp, to).await.ok()?;
        let mut frames = tokio_util::codec::Framed::new(stream, frame::codec());
        let hello = Hello {
            cluster: cluster.0,
            from: me,
            to,
            probe: true,
        };
        frames.send(hello.encode()).await.ok()?;
        let answer = frames.next().await?.ok()?;
        Some(u64::from_be_bytes(answer[..].try_into().ok()?))
    };
    tokio::time::timeout(std::time::Duration::from_secs(1), asked)
        .await
        .ok()
        .flatten()
}

/// One peer's queue.
struct Queue {
    sender: mpsc::Sender<Message>,
    bytes: Arc<AtomicUsize>,
    /// Set when a response from the peer arrives: proof that our
    /// messages reach it, after which its writer's backoff starts over.
    heard: Arc<AtomicBool>,
}

/// What [`Peers::send`] could not queue.
#[derive(Debug, Default)]
pub struct Undelivered {
    /// Peers with a message dropped: report them unreachable.
    pub unreachable: Vec<u64>,
    /// Peers whose snapshot was dropped: report it failed.
    pub snapshots: Vec<u64>,
}

/// The outbound side: a queue and a writer task per peer.
pub struct Peers {
    me: u64,
    cluster: ClusterId,
    security: Arc<PeerSecurity>,
    members: Members,
    /// The other members of the configuration last applied.
    configured: Vec<u64>,
    queues: HashMap<u64, Queue>,
    inbox: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl Peers {
    /// No peers yet; writer tasks report back through `inbox`. `members`
    /// is what the listener admits ([`Peers::admit`]).
    pub fn new(
        me: u64,
        cluster: ClusterId,
        (security, members): (Arc<PeerSecurity>, Members),
        inbox: mpsc::Sender<Input>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Peers {
        Peers {
            me,
            cluster,
            security,
            members,
            configured: Vec::new(),
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
        let (sender, outbox) = mpsc::channel(PEER_QUEUE_MESSAGES);
        let bytes = Arc::new(AtomicUsize::new(0));
        let heard = Arc::new(AtomicBool::new(false));
        let writer = peer::Writer {
            hello: Hello {
                cluster: self.cluster.0,
                from: self.me,
                to: id,
                probe: false,
            },
            id,
            addr,
            security: self.security.clone(),
            outbox,
            queued_bytes: bytes.clone(),
            heard: heard.clone(),
            inbox: self.inbox.clone(),
            stop: self.stop.child_token(),
        };
        tokio::spawn(writer.run().in_current_span());
        self.queues.insert(
            id,
            Queue {
                sender,
                bytes,
                heard,
            },
        );
        self.publish();
    }

    /// Takes `conf`, the configuration just applied (or stored, at
    /// start), for what the raft port admits; one with no voters changes
    /// nothing.
    pub fn admit(&mut self, conf: &ConfState) {
        if let Some(ids) = members_of(conf, self.me) {
            self.configured = ids;
            self.publish();
        }
    }

    /// Admits the members of the configuration last applied and every
    /// peer this node has an address for: a node that missed changes
    /// while it was down still admits the members added since, once the
    /// operator names them with `--peer`. A member removed by a change
    /// this node applies leaves both.
    fn publish(&self) {
        let addressed = self.queues.keys().copied();
        self.members
            .set(self.configured.iter().copied().chain(addressed));
    }

    /// A response from `id` arrived: our messages reach it.
    pub fn heard_from(&self, id: u64) {
        if let Some(queue) = self.queues.get(&id) {
            queue.heard.store(true, Ordering::Relaxed);
        }
    }

    /// Stops the writer task for a removed member.
    pub fn disconnect(&mut self, id: u64) {
        self.queues.remove(&id);
        self.configured.retain(|&member| member != id);
        self.publish();
    }

    /// Queues messages; returns what could not be queued (a full queue,
    /// an unknown peer).
    pub fn send(&mut self, msgs: Vec<Message>) -> Undelivered {
        let mut undelivered = Undelivered::default();
        for msg in msgs {
            let to = msg.to;
            let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
            let queued = match self.queues.get(&to) {
                Some(queue) => queue.push(msg),
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
                if !undelivered.unreachable.contains(&to) {
                    undelivered.unreachable.push(to);
                }
                if is_snapshot {
                    undelivered.snapshots.push(to);
                }
            }
        }
        undelivered
    }
}

impl Queue {
    /// Queues `msg` unless the queue is full in messages or in bytes.
    fn push(&self, msg: Message) -> bool {
        let size = queued_size(&msg);
        let before = self.bytes.fetch_add(size, Ordering::Relaxed);
        if before > 0 && before + size > PEER_QUEUE_BYTES {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        if self.sender.try_send(msg).is_err() {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use raft_proto::eraftpb::Entry;

    use super::*;

    fn message(to: u64, kind: MessageType, bytes: usize) -> Message {
        let entry = Entry {
            data: vec![0; bytes].into(),
            ..Default::default()
        };
        let mut msg = Message {
            to,
            ..Default::default()
        };
        msg.set_msg_type(kind);
        msg.set_entries(vec![entry].into());
        msg
    }

    fn peers() -> (Peers, mpsc::Receiver<Input>) {
        let (inbox, rx) = mpsc::channel(16);
        let peers = Peers::new(
            1,
            ClusterId(0),
            (Arc::new(PeerSecurity::Insecure), Members::default()),
            inbox,
            Arc::new(Metrics::new(1)),
            CancellationToken::new(),
        );
        (peers, rx)
    }

    #[tokio::test]
    async fn a_snapshot_that_cannot_be_queued_is_reported_undelivered() {
        let (mut peers, _rx) = peers();
        let undelivered = peers.send(vec![
            message(9, MessageType::MsgSnapshot, 0),
            message(9, MessageType::MsgAppend, 0),
        ]);
        assert_eq!(undelivered.unreachable, vec![9]);
        assert_eq!(undelivered.snapshots, vec![9]);
    }

    #[tokio::test]
    async fn a_queue_full_in_bytes_drops_messages_but_an_empty_one_takes_any_size() {
        let (sender, _outbox) = mpsc::channel(PEER_QUEUE_MESSAGES);
        let queue = Queue {
            sender,
            bytes: Arc::new(AtomicUsize::new(0)),
            heard: Arc::new(AtomicBool::new(false)),
        };
        let big = PEER_QUEUE_BYTES + 1;
        assert!(queue.push(message(2, MessageType::MsgSnapshot, big)));
        assert!(!queue.push(message(2, MessageType::MsgAppend, 1)));
        queue.bytes.store(0, Ordering::Relaxed);
        for _ in 0..3 {
            assert!(queue.push(message(2, MessageType::MsgAppend, PEER_QUEUE_BYTES / 4)));
        }
        assert!(!queue.push(message(2, MessageType::MsgAppend, PEER_QUEUE_BYTES / 4)));
    }
}
