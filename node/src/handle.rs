//! What the rest of the process asks of the Ready loop, and the handle it
//! asks through. Every request carries a oneshot for its answer; the loop
//! owns the `RawNode`, so nothing else ever locks it.

use std::time::Duration;

use bytes::Bytes;
use raft::SnapshotStatus;
use raft_proto::eraftpb::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::producers::{ProducerBatch, SequenceError};

/// Requests to the Ready loop.
pub enum Input {
    /// A client's records, to be replicated as one entry.
    Append {
        /// The records.
        records: Vec<Bytes>,
        /// Who sends them, how they are numbered, and where they may be
        /// taken.
        origin: Origin,
        /// The offsets once applied.
        reply: oneshot::Sender<Result<Appended, RequestError>>,
    },
    /// A linearizable read barrier: answered once this node has applied
    /// everything committed when the read arrived (ReadIndex).
    ReadBarrier {
        /// The applied index the read may be served at.
        reply: oneshot::Sender<Result<u64, RequestError>>,
    },
    /// A membership change, applied before answering.
    ChangeMembership {
        /// The change.
        change: MembershipChange,
        /// The new configuration once applied.
        reply: oneshot::Sender<Result<Membership, RequestError>>,
    },
    /// Hand leadership to another voter (at the leader only).
    TransferLeader {
        /// The voter to lead next.
        to: u64,
        /// Answered once the transfer has started.
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    /// The node's state, for `/v1/status`.
    Status {
        /// The answer.
        reply: oneshot::Sender<Status>,
    },
    /// A message from a peer.
    Raft(Box<Message>),
    /// The transport could not reach a peer.
    Unreachable(u64),
    /// The transport sent, or failed to send, a snapshot to a peer.
    SnapshotSent(u64, SnapshotStatus),
    /// A snapshot of this node's records was written (or refused), and the
    /// WAL compacted to the index returned.
    SnapshotWritten {
        /// The snapshot's index.
        index: u64,
        /// Where the WAL now starts, or why the write failed.
        result: Result<u64, raft_wal_storage::WalError>,
    },
    /// Readies handed to raft with `advance_append_async` are durable.
    Persisted(Box<crate::persister::Persisted>),
}

/// Where an append comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin {
    /// A Kafka producer batch's numbers: the log stores a retry of a
    /// stored batch only once ([`crate::producers`]).
    pub producer: Option<ProducerBatch>,
    /// Refuse it unless this node leads, as a Kafka broker refuses a
    /// produce at a follower, rather than forward it to the leader.
    pub at_leader_only: bool,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Appended {
    /// The offset of the first record.
    pub offset: u64,
    /// How many records.
    pub count: u64,
    /// The raft index of the entry that carried them.
    #[serde(default)]
    pub index: u64,
}

/// A membership change, as `raft-node admin` asks for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum MembershipChange {
    /// Add a node as a learner: it receives the log but does not vote.
    AddLearner {
        /// Its id.
        id: u64,
        /// Its raft address.
        addr: std::net::SocketAddr,
    },
    /// Make a learner a voter.
    Promote {
        /// Its id.
        id: u64,
    },
    /// Remove a node.
    Remove {
        /// Its id.
        id: u64,
    },
}

/// The members after a change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Membership {
    /// Voters.
    pub voters: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
}

/// A node's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: u64,
    /// The leader it knows of, 0 for none.
    pub leader: u64,
    /// Its role: Follower, PreCandidate, Candidate or Leader.
    pub role: String,
    /// Its term.
    pub term: u64,
    /// Its commit index.
    pub commit: u64,
    /// Its applied index.
    pub applied: u64,
    /// Its WAL's last index.
    pub last_index: u64,
    /// Records ever appended to its log (the next offset).
    pub records: u64,
    /// The members.
    pub membership: Membership,
}

/// Why a request got no answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// No leader is known: an election is under way or this node is cut off.
    #[error("no leader known; retry")]
    NoLeader,
    /// The request was not answered in time; an append may still commit.
    #[error("timed out; an append may still have committed")]
    Timeout,
    /// The request was refused (an invalid membership change).
    #[error("refused: {0}")]
    Refused(String),
    /// The node is shutting down.
    #[error("the node is stopping")]
    Stopping,
    /// The change removes the leader: leadership is moving to this node
    /// first; retry there, or anywhere once it leads.
    #[error("leadership is moving to node {0} first; retry")]
    LeaderMoving(u64),
    /// The request is taken at the leader only, and node `0` leads (0 for
    /// none known).
    #[error("this node does not lead; node {0} does")]
    NotLeader(u64),
    /// A Kafka producer's batch out of sequence: nothing was stored.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

/// A cloneable sender of [`Input`]s, with a timeout on every answer.
#[derive(Clone)]
pub struct NodeHandle {
    inbox: mpsc::Sender<Input>,
    timeout: Duration,
}

impl NodeHandle {
    /// A handle on the loop reading `inbox`.
    pub fn new(inbox: mpsc::Sender<Input>, timeout: Duration) -> NodeHandle {
        NodeHandle { inbox, timeout }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Input,
    ) -> Result<T, RequestError> {
        self.send(make).await?.await
    }

    /// Hands the loop a request; the future it returns waits for the
    /// answer. Requests sent one after the other reach the loop in order,
    /// whenever their answers are awaited.
    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Input,
    ) -> Result<impl std::future::Future<Output = Result<T, RequestError>>, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(make(reply))
            .await
            .map_err(|_| RequestError::Stopping)?;
        let timeout = self.timeout;
        Ok(async move {
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(_)) => Err(RequestError::Stopping),
                Err(_) => Err(RequestError::Timeout),
            }
        })
    }

    /// Replicates `records`; answers with their offsets once applied here.
    ///
    /// # Errors
    ///
    /// [`RequestError`]: no leader, timeout, stopping.
    pub async fn append(&self, records: Vec<Bytes>) -> Result<Appended, RequestError> {
        self.append_from(records, Origin::default()).await
    }

    /// Replicates `records` from `origin`; answers with their offsets once
    /// applied here.
    ///
    /// # Errors
    ///
    /// [`RequestError`]: no leader, not the leader, out of sequence,
    /// timeout, stopping.
    pub async fn append_from(
        &self,
        records: Vec<Bytes>,
        origin: Origin,
    ) -> Result<Appended, RequestError> {
        self.send_append(records, origin).await?.await
    }

    /// Hands `records` from `origin` to the loop, behind any append sent
    /// before; the future returned answers as [`NodeHandle::append_from`]
    /// does. A Kafka connection's pipelined produces keep their order so.
    ///
    /// # Errors
    ///
    /// [`RequestError::Stopping`].
    pub async fn send_append(
        &self,
        records: Vec<Bytes>,
        origin: Origin,
    ) -> Result<impl std::future::Future<Output = Result<Appended, RequestError>>, RequestError>
    {
        let answer = self
            .send(move |reply| Input::Append {
                records,
                origin,
                reply,
            })
            .await?;
        Ok(async move { answer.await? })
    }

    /// Waits until a read at this node is linearizable; returns the applied
    /// index it may be served at.
    ///
    /// # Errors
    ///
    /// [`RequestError`]: no leader, timeout, stopping.
    pub async fn read_barrier(&self) -> Result<u64, RequestError> {
        self.ask(|reply| Input::ReadBarrier { reply }).await?
    }

    /// Proposes a membership change; answers once it is applied here.
    ///
    /// # Errors
    ///
    /// [`RequestError`]: refused, no leader, timeout, stopping.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<Membership, RequestError> {
        self.ask(|reply| Input::ChangeMembership { change, reply })
            .await?
    }

    /// Starts handing leadership to `to`; answers once started (raft
    /// aborts a transfer that has not completed within an election
    /// timeout).
    ///
    /// # Errors
    ///
    /// [`RequestError`]: refused, no leader, timeout, stopping.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), RequestError> {
        self.ask(|reply| Input::TransferLeader { to, reply })
            .await?
    }

    /// The node's state.
    ///
    /// # Errors
    ///
    /// [`RequestError::Stopping`] or a timeout.
    pub async fn status(&self) -> Result<Status, RequestError> {
        self.ask(|reply| Input::Status { reply }).await
    }
}
