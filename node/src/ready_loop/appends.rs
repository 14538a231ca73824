//! Appends between the client and the applied entry, and what happens to
//! them when the leader changes.
//!
//! raft loses a proposal without a word when the leader it went to stops
//! leading before the entry commits, and a follower forwards to the leader
//! it knows, which may already be deposed. Waiting for the request timeout
//! would stall every client for its length at every election, and failing
//! at once would be no better: an entry the old leader appended may still
//! commit, so a client's retry could store its records twice.
//!
//! The loop retries inside the node instead, and knows when a retry is
//! safe: each proposal is stamped with the term this node is in
//! ([`Proposal::stamp`]), and every node applies an entry's records only
//! if the entry was appended in the term it is stamped with. The log's
//! terms never decrease, so once this node applies any entry of a later
//! term than a pending proposal's stamp, no copy of that proposal can be
//! applied any more, on any node: it is proposed again, stamped with the
//! current term, under the same key. A copy still in flight (a deposed
//! leader forwarding it on) lands in a later term and is skipped.
//!
//! Lost proposals are proposed again in the order they were first taken:
//! by key, which each boot of a node starts at random and increments, so
//! the order breaks only where the keys wrap past 2^64. A Kafka
//! producer's batch is not proposed again: it is answered
//! `NotLeader`, as a Kafka broker that lost leadership answers, and the
//! producer retries it, in its own order, at the new leader; the
//! producers' state stores each batch once whichever copy commits.

use std::collections::BTreeMap;
use std::time::Instant;

use raft::{RawNode, Storage};

use super::Reply;
use crate::handle::{Appended, RequestError};
use crate::metrics::Metrics;
use crate::producers::ProducerBatch;
use crate::state_machine::Proposal;

/// A proposal of this node whose entry has not been applied.
struct PendingAppend {
    reply: Reply<Appended>,
    proposed_at: Instant,
    /// The term it was last proposed in.
    stamp: u64,
    /// Its entry data and producer batch, kept to propose it again.
    data: (Vec<u8>, Option<ProducerBatch>),
}

/// The appends the loop is holding, by request key.
///
/// Invariant: a pending append whose stamp is below `applied_term` can no
/// longer be applied; [`PendingAppends::retry_lost`] proposes it again
/// stamped with the node's term, which is at least `applied_term`, so
/// each lost proposal is proposed again once per term it is lost in.
#[derive(Default)]
pub(super) struct PendingAppends {
    by_key: BTreeMap<u64, PendingAppend>,
    /// The highest term of an entry applied here.
    applied_term: u64,
}

impl PendingAppends {
    /// Proposes `data` (with its producer batch, if any) under `key`,
    /// stamped with the current term, or
    /// refuses it at once with a retryable error when raft drops it (no
    /// leader known, a leadership transfer under way): nothing was
    /// appended then.
    pub(super) fn propose<S: Storage>(
        &mut self,
        raw: &mut RawNode<S>,
        key: u64,
        data: (Vec<u8>, Option<ProducerBatch>),
        reply: Reply<Appended>,
    ) {
        let stamp = raw.raft.term;
        let context = Proposal::stamp(stamp, data.1.as_ref());
        if raw.propose(context, data.0.clone()).is_err() {
            let _ = reply.send(Err(RequestError::NoLeader));
            return;
        }
        let pending = PendingAppend {
            reply,
            proposed_at: Instant::now(),
            stamp,
            data,
        };
        self.by_key.insert(key, pending);
    }

    /// An entry of `term` is being applied: proposals stamped with an
    /// earlier term are lost for good.
    pub(super) fn on_applied_term(&mut self, term: u64) {
        self.applied_term = self.applied_term.max(term);
    }

    /// This node's proposal `key` was applied: stored where `appended`
    /// says, or refused by the producers' state.
    pub(super) fn on_applied(
        &mut self,
        key: u64,
        appended: Result<Appended, RequestError>,
        metrics: &Metrics,
    ) {
        if let Some(pending) = self.by_key.remove(&key) {
            metrics
                .commit_latency_seconds
                .observe(pending.proposed_at.elapsed().as_secs_f64());
            let _ = pending.reply.send(appended);
        }
    }

    /// Proposes the lost proposals again in the current term. Called once
    /// a Ready is handled, so that every entry it applied has counted.
    pub(super) fn retry_lost<S: Storage>(&mut self, raw: &mut RawNode<S>, metrics: &Metrics) {
        let applied_term = self.applied_term;
        debug_assert!(
            raw.raft.term >= applied_term,
            "a node's term covers what it applied"
        );
        let lost: Vec<u64> = self
            .by_key
            .iter()
            .filter(|(_, p)| p.stamp < applied_term)
            .map(|(&key, _)| key)
            .collect();
        for key in lost {
            let pending = self.by_key.remove(&key).expect("collected above");
            let PendingAppend {
                reply,
                proposed_at,
                data,
                ..
            } = pending;
            if data.1.is_some() {
                let _ = reply.send(Err(RequestError::NotLeader(raw.raft.leader_id)));
                continue;
            }
            self.propose(raw, key, data, reply);
            if let Some(retried) = self.by_key.get_mut(&key) {
                metrics.appends_retried.inc();
                retried.proposed_at = proposed_at;
            }
        }
    }

    /// A leader's snapshot replaced the log up to a term of `term`: a
    /// pending proposal stamped no later may have been applied inside it,
    /// where its key cannot be seen. Its outcome is unknown, and a retry
    /// could apply it twice, so it is answered as a timeout is.
    pub(super) fn on_snapshot(&mut self, term: u64) {
        self.applied_term = self.applied_term.max(term);
        let (unknown, waiting): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.by_key)
            .into_iter()
            .partition(|(_, p)| p.stamp <= term);
        self.by_key = waiting;
        for pending in unknown.into_values() {
            let _ = pending.reply.send(Err(RequestError::Timeout));
        }
    }

    /// Forgets appends whose caller gave up (timed out).
    pub(super) fn forget_abandoned(&mut self) {
        self.by_key.retain(|_, p| !p.reply.is_closed());
    }
}

#[cfg(test)]
mod tests {
    use raft::storage::MemStorage;
    use raft::Config;
    use raft_proto::eraftpb::ConfState;
    use tokio::sync::oneshot;

    use super::*;

    /// A single-voter node that leads at term 1.
    fn leader() -> RawNode<MemStorage> {
        let store = MemStorage::new_with_conf_state(ConfState::from((vec![1], vec![])));
        let config = Config {
            id: 1,
            ..Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&config, store, &logger).unwrap();
        raw.campaign().unwrap();
        persist(&mut raw);
        assert_eq!(raw.raft.term, 1);
        raw
    }

    /// Makes what raft handed out durable, as the loop does.
    fn persist(raw: &mut RawNode<MemStorage>) {
        let mut ready = raw.ready();
        let store = raw.store().clone();
        store.wl().append(ready.entries()).unwrap();
        if let Some(hs) = ready.hs() {
            store.wl().set_hardstate(hs.clone());
        }
        let _ = ready.take_committed_entries();
        let mut light = raw.advance(ready);
        let _ = light.take_committed_entries();
        raw.advance_apply();
    }

    /// Deposes and re-elects the node `elections` times.
    fn reelect(raw: &mut RawNode<MemStorage>, elections: u64) {
        for _ in 0..elections {
            persist(raw);
            let term = raw.raft.term;
            raw.raft.become_follower(term, raft::INVALID_ID);
            raw.campaign().unwrap();
            persist(raw);
        }
    }

    /// A leader at term 1 with one append pending, its answer, and the
    /// metrics.
    fn one_pending() -> (
        RawNode<MemStorage>,
        PendingAppends,
        oneshot::Receiver<Result<Appended, RequestError>>,
        Metrics,
    ) {
        let mut raw = leader();
        let mut pending = PendingAppends::default();
        let (reply, answer) = oneshot::channel();
        pending.propose(&mut raw, 7, (b"records".to_vec(), None), reply);
        (raw, pending, answer, Metrics::new(1))
    }

    #[test]
    fn a_proposal_lost_across_two_terms_is_proposed_again_once() {
        let (mut raw, mut pending, _answer, metrics) = one_pending();
        reelect(&mut raw, 2);
        // One Ready applies entries of both later terms.
        pending.on_applied_term(2);
        pending.on_applied_term(3);
        let before = raw.raft.raft_log.last_index();
        pending.retry_lost(&mut raw, &metrics);
        assert_eq!(raw.raft.raft_log.last_index(), before + 1);
        assert_eq!(metrics.appends_retried.get(), 1);
        pending.retry_lost(&mut raw, &metrics);
        assert_eq!(raw.raft.raft_log.last_index(), before + 1);
    }

    #[test]
    fn a_lost_producer_batch_is_answered_not_leader_and_the_rest_are_proposed_in_order() {
        let mut raw = leader();
        let mut pending = PendingAppends::default();
        let batch = ProducerBatch {
            id: 1,
            epoch: 0,
            first_sequence: 0,
        };
        let (reply, mut batch_answer) = oneshot::channel();
        pending.propose(&mut raw, 3, (b"batch".to_vec(), Some(batch)), reply);
        let mut answers = Vec::new();
        for key in [9u64, 5, 7] {
            let (reply, answer) = oneshot::channel();
            pending.propose(&mut raw, key, (key.to_be_bytes().to_vec(), None), reply);
            answers.push(answer);
        }
        reelect(&mut raw, 1);
        pending.on_applied_term(2);
        let before = raw.raft.raft_log.last_index();
        pending.retry_lost(&mut raw, &Metrics::new(1));
        assert!(matches!(
            batch_answer.try_recv(),
            Ok(Err(RequestError::NotLeader(_)))
        ));
        let proposed: Vec<Vec<u8>> = raw
            .raft
            .raft_log
            .entries(before + 1, None, raft::GetEntriesContext::empty(false))
            .unwrap()
            .iter()
            .map(|e| e.data.to_vec())
            .collect();
        let in_key_order: Vec<Vec<u8>> = [5u64, 7, 9]
            .iter()
            .map(|k| k.to_be_bytes().to_vec())
            .collect();
        assert_eq!(proposed, in_key_order);
    }

    #[test]
    fn a_proposal_of_the_applied_term_is_not_retried() {
        let (mut raw, mut pending, _answer, metrics) = one_pending();
        pending.on_applied_term(1);
        pending.retry_lost(&mut raw, &metrics);
        assert_eq!(metrics.appends_retried.get(), 0);
    }

    #[test]
    fn a_snapshot_that_may_hide_a_proposal_answers_it_as_unknown() {
        let (_raw, mut pending, answer, _metrics) = one_pending();
        pending.on_snapshot(1);
        assert_eq!(answer.blocking_recv().unwrap(), Err(RequestError::Timeout));
    }
}
