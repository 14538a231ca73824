//! Linearizable reads (ReadIndex) between the client and the applied
//! index: handed to raft with a unique context, confirmed by a Ready's
//! read states, answered once this node has applied up to the confirmed
//! index.
//!
//! raft drops a read without a word when it cannot serve it: at a leader
//! that has not committed in its term, on a node that knows no leader,
//! and when the leader it went to stops leading. Each of those is
//! answered here with a retryable 503 instead of a timeout. A read
//! changes nothing, so a client's retry cannot duplicate anything.

use std::collections::HashMap;

use raft::{RawNode, ReadState, Storage};

use super::Reply;
use crate::handle::RequestError;

/// A read handed to raft, waiting for its read index.
struct UnconfirmedRead {
    reply: Reply<u64>,
    /// The leader and term it was asked under: raft drops it once that
    /// leader stops leading that term.
    leader: u64,
    term: u64,
}

/// The reads the loop is holding.
#[derive(Default)]
pub(super) struct PendingReads {
    /// Waiting for the leader to confirm their index, by context.
    unconfirmed: HashMap<Vec<u8>, UnconfirmedRead>,
    /// With a confirmed index, waiting for it to be applied here.
    confirmed: Vec<(u64, Reply<u64>)>,
}

impl PendingReads {
    /// Hands a read to raft under `ctx`, or refuses it at once where raft
    /// would drop it.
    pub(super) fn ask<S: Storage>(
        &mut self,
        raw: &mut RawNode<S>,
        ctx: Vec<u8>,
        reply: Reply<u64>,
    ) {
        // No leader known, or a leader that has not committed in its term
        // yet (and this node knows of no such commit).
        if raw.raft.leader_id == raft::INVALID_ID || !raw.raft.commit_to_current_term() {
            let _ = reply.send(Err(RequestError::NoLeader));
            return;
        }
        raw.read_index(ctx.clone());
        let asked = UnconfirmedRead {
            reply,
            leader: raw.raft.leader_id,
            term: raw.raft.term,
        };
        self.unconfirmed.insert(ctx, asked);
    }

    /// Takes a Ready's read states, then fails the reads raft dropped
    /// because the leader they went to (`leader`, `term`) is no longer the
    /// one this node follows.
    pub(super) fn on_ready(&mut self, states: Vec<ReadState>, leader: u64, term: u64) {
        for rs in states {
            if let Some(read) = self.unconfirmed.remove(&rs.request_ctx) {
                self.confirmed.push((rs.index, read.reply));
            }
        }
        let (current, former): (HashMap<_, _>, HashMap<_, _>) =
            std::mem::take(&mut self.unconfirmed)
                .into_iter()
                .partition(|(_, read)| (read.leader, read.term) == (leader, term));
        self.unconfirmed = current;
        for read in former.into_values() {
            let _ = read.reply.send(Err(RequestError::NoLeader));
        }
    }

    /// Answers the confirmed reads whose index is applied.
    pub(super) fn serve(&mut self, applied: u64) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.confirmed = waiting;
        for (_, reply) in ready {
            let _ = reply.send(Ok(applied));
        }
    }

    /// Forgets reads whose caller gave up (timed out).
    pub(super) fn forget_abandoned(&mut self) {
        self.unconfirmed.retain(|_, r| !r.reply.is_closed());
        self.confirmed.retain(|(_, r)| !r.is_closed());
    }
}
