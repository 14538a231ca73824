//! The writer task of one peer connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::SinkExt;
use raft::SnapshotStatus;
use raft_proto::eraftpb::{Message, MessageType};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::frame::{self, Hello};
use super::secure::{PeerSecurity, PeerStream};
use crate::handle::Input;

const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// How long connecting and the TLS handshake may take: a listener that
/// accepts and then stalls must not hold the writer.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Messages put into one write.
const BATCH_MESSAGES: usize = 512;

pub(super) struct Writer {
    /// The hello this writer opens every connection with.
    pub hello: Hello,
    pub id: u64,
    pub addr: SocketAddr,
    pub security: Arc<PeerSecurity>,
    pub outbox: mpsc::Receiver<Message>,
    /// Bytes of the messages in `outbox`, shared with the sender.
    pub queued_bytes: Arc<AtomicUsize>,
    /// Set by the loop when a response from this peer arrives.
    pub heard: Arc<AtomicBool>,
    pub inbox: mpsc::Sender<Input>,
    pub stop: CancellationToken,
}

/// How a connection ended.
enum Ended {
    /// The queue closed (the peer was removed) or the node stops.
    Closed,
    /// A write failed.
    Failed,
}

impl Writer {
    /// Connects, writes batches until the connection fails, and reconnects
    /// with exponential backoff, until the queue's sender is dropped or the
    /// node stops. The backoff resets only after an exchange, a response
    /// from the peer arriving while connected: a peer that accepts
    /// connections and then drops them (a proxy whose link is cut, a node
    /// refusing us) is retried ever more slowly, not every 20 ms.
    pub async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let stream = tokio::select! {
                _ = self.stop.cancelled() => return,
                s = self.open() => s,
            };
            match stream {
                Ok(stream) => {
                    info!("connected to node {} at {}", self.id, self.addr);
                    self.heard.store(false, Ordering::Relaxed);
                    if let Ended::Closed = self.write_until_error(stream).await {
                        return;
                    }
                    if self.heard.swap(false, Ordering::Relaxed) {
                        backoff = BACKOFF_MIN;
                    }
                }
                Err(e) => debug!("node {} at {}: connect failed: {e}", self.id, self.addr),
            }
            // Whatever queued while the link was down is stale by the time
            // it could go out: drop it and let raft resend.
            if !self.fail_queued().await {
                return;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// A connection to the peer, secured.
    async fn open(&self) -> std::io::Result<PeerStream> {
        let dial = async {
            let tcp = TcpStream::connect(self.addr).await?;
            let _ = tcp.set_nodelay(true);
            self.security.dial(tcp, self.id).await
        };
        tokio::time::timeout(DIAL_TIMEOUT, dial)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("not connected within {DIAL_TIMEOUT:?}"),
                ))
            })
    }

    async fn write_until_error(&mut self, stream: PeerStream) -> Ended {
        let mut sink = FramedWrite::new(stream, frame::codec());
        if let Err(e) = sink.send(self.hello.encode()).await {
            info!("node {} at {}: hello failed ({e})", self.id, self.addr);
            return Ended::Failed;
        }
        loop {
            let first = tokio::select! {
                _ = self.stop.cancelled() => return Ended::Closed,
                m = self.outbox.recv() => match m {
                    Some(m) => m,
                    None => return Ended::Closed,
                },
            };
            let mut batch = vec![first];
            while batch.len() < BATCH_MESSAGES {
                match self.outbox.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut written = Ok(());
            'batch: for msg in &batch {
                for payload in frame::encode_frames(msg) {
                    written = sink.feed(payload).await;
                    if written.is_err() {
                        break 'batch;
                    }
                }
            }
            if written.is_ok() {
                written = SinkExt::<bytes::Bytes>::flush(&mut sink).await;
            }
            let status = match &written {
                Ok(()) => SnapshotStatus::Finish,
                Err(_) => SnapshotStatus::Failure,
            };
            self.dequeued(&batch);
            self.report_snapshots(&batch, status).await;
            if let Err(e) = written {
                info!(
                    "node {} at {}: write failed ({e}); reconnecting",
                    self.id, self.addr
                );
                return Ended::Failed;
            }
        }
    }

    fn dequeued(&self, msgs: &[Message]) {
        let bytes = msgs.iter().map(super::queued_size).sum();
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Drops the queued messages and tells the loop the peer is unreachable.
    async fn fail_queued(&mut self) -> bool {
        let mut dropped = Vec::new();
        loop {
            match self.outbox.try_recv() {
                Ok(m) => dropped.push(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        self.dequeued(&dropped);
        self.report_snapshots(&dropped, SnapshotStatus::Failure)
            .await;
        let _ = self.inbox.try_send(Input::Unreachable(self.id));
        true
    }

    /// A leader keeps a follower in snapshot state until it hears how the
    /// snapshot went, so the report waits for room in the loop's inbox
    /// rather than being dropped when it is full.
    async fn report_snapshots(&self, msgs: &[Message], status: SnapshotStatus) {
        for m in msgs
            .iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
        {
            let _ = self.inbox.send(Input::SnapshotSent(m.to, status)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use tokio::net::TcpListener;

    use super::*;

    /// A peer that accepts every connection and closes it at once (as a
    /// cut proxy link does) is redialled with a growing backoff, not
    /// every [`BACKOFF_MIN`].
    #[tokio::test]
    async fn a_peer_that_drops_every_connection_is_redialled_ever_more_slowly() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                drop(stream);
            }
        });
        let (queue, outbox) = mpsc::channel(1024);
        let (inbox, mut loop_inbox) = mpsc::channel(1024);
        tokio::spawn(async move { while loop_inbox.recv().await.is_some() {} });
        let stop = CancellationToken::new();
        let writer = Writer {
            hello: Hello {
                cluster: 0,
                from: 1,
                to: 2,
                probe: false,
            },
            id: 2,
            addr,
            security: Arc::new(PeerSecurity::Insecure),
            outbox,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            heard: Arc::new(AtomicBool::new(false)),
            inbox,
            stop: stop.clone(),
        };
        tokio::spawn(writer.run());
        let started = tokio::time::Instant::now();
        while started.elapsed() < Duration::from_millis(1_300) {
            let _ = queue.try_send(Message::default());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        // 20 + 40 + 80 + 160 + 320 + 640 ms of backoff: about 7 dials in
        // 1.3 s; resetting after every connect would make it dozens.
        let dials = accepted.load(Ordering::Relaxed);
        assert!(dials <= 10, "{dials} dials in 1.3 s");
    }
}
