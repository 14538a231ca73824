//! The writer task of one peer connection.

use std::net::SocketAddr;
use std::time::Duration;

use futures::SinkExt;
use raft::SnapshotStatus;
use raft_proto::eraftpb::{Message, MessageType};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::frame;
use crate::handle::Input;

const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Messages put into one write.
const BATCH_MESSAGES: usize = 512;

pub(super) struct Writer {
    pub id: u64,
    pub addr: SocketAddr,
    pub outbox: mpsc::Receiver<Message>,
    pub inbox: mpsc::Sender<Input>,
    pub stop: CancellationToken,
}

impl Writer {
    /// Connects, writes batches until the connection fails, and reconnects
    /// with exponential backoff, until the queue's sender is dropped or the
    /// node stops.
    pub async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let stream = tokio::select! {
                _ = self.stop.cancelled() => return,
                s = TcpStream::connect(self.addr) => s,
            };
            match stream {
                Ok(stream) => {
                    backoff = BACKOFF_MIN;
                    info!("connected to node {} at {}", self.id, self.addr);
                    if !self.write_until_error(stream).await {
                        return;
                    }
                }
                Err(e) => debug!("node {} at {}: connect failed: {e}", self.id, self.addr),
            }
            // Whatever queued while the link was down is stale by the time
            // it could go out: drop it and let raft resend.
            if !self.fail_queued() {
                return;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Returns false once the queue is closed (the peer was removed).
    async fn write_until_error(&mut self, stream: TcpStream) -> bool {
        let _ = stream.set_nodelay(true);
        let mut sink = FramedWrite::new(stream, frame::codec());
        loop {
            let first = tokio::select! {
                _ = self.stop.cancelled() => return false,
                m = self.outbox.recv() => match m {
                    Some(m) => m,
                    None => return false,
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
            for msg in &batch {
                written = sink.feed(frame::encode(msg)).await;
                if written.is_err() {
                    break;
                }
            }
            if written.is_ok() {
                written = SinkExt::<bytes::Bytes>::flush(&mut sink).await;
            }
            let status = match &written {
                Ok(()) => SnapshotStatus::Finish,
                Err(_) => SnapshotStatus::Failure,
            };
            self.report_snapshots(&batch, status);
            if let Err(e) = written {
                info!(
                    "node {} at {}: write failed ({e}); reconnecting",
                    self.id, self.addr
                );
                return true;
            }
        }
    }

    /// Drops the queued messages and tells the loop the peer is unreachable.
    fn fail_queued(&mut self) -> bool {
        let mut dropped = Vec::new();
        loop {
            match self.outbox.try_recv() {
                Ok(m) => dropped.push(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        self.report_snapshots(&dropped, SnapshotStatus::Failure);
        let _ = self.inbox.try_send(Input::Unreachable(self.id));
        true
    }

    /// A leader keeps a follower in snapshot state until it hears how the
    /// snapshot went.
    fn report_snapshots(&self, msgs: &[Message], status: SnapshotStatus) {
        for m in msgs
            .iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
        {
            let _ = self.inbox.try_send(Input::SnapshotSent(m.to, status));
        }
    }
}
