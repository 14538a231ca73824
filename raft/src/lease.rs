// Fork: the leader lease behind `ReadOnlyOption::LeaseBased` reads.
//
// The followers' half (`VotePromise`): a node that hears from a leader
// (an append, a heartbeat or a snapshot) ignores every vote and pre-vote
// request, at any term, for `election_timeout` of its ticks, unless it
// repeats the vote the node cast or comes from a leader transfer. 0.7.0's
// own check (in `Raft::step`, with check_quorum) is not enough: it holds
// only while the node keeps its leader and term, and any message of a
// higher term, such as an append response from a node cut off from the
// leader, clears both without a vote.
//
// The leader's half (`LeaderLease`): when a quorum of voters acknowledged
// a heartbeat round the leader sent at its tick `s`, each of them received
// it after `s`, so no candidate can win before each has ticked
// `election_timeout` times after `s`. With ticks of the same length
// everywhere, `election_timeout - 1` of the leader's ticks after `s` end
// before that, whatever the phase of each node's ticks (a tick boundary
// falls at most one tick after any instant): this is the lease. A read is
// answered at once only within it; any other read goes through a ReadIndex
// round, as with `ReadOnlyOption::Safe`. The bound has no slack left for
// clocks: a leader whose ticks come late (a stalled event loop, a ticker
// that drops or pauses ticks) holds its lease longer in real time.
//
// Two things break a follower's promise, and each gets a rule:
// - A leader transfer: the transferee campaigns with `CAMPAIGN_TRANSFER`,
//   which the followers grant at once. A leader that sent `MsgTimeoutNow`
//   has no lease for the rest of its term, since the message may reach the
//   transferee at any later time.
// - A restart: the promise lives in memory. A voter that restarts with a
//   term it may have promised in keeps it for `election_timeout` ticks
//   after it starts.
//
// 0.7.0 answered every LeaseBased read at once, with no expiry; etcd-io/raft
// does the same today (etcd-io/raft#166, tikv/raft-rs#234).

use crate::eraftpb::{Message, MessageType};
use crate::quorum::{AckIndexer, Index};
use crate::{JointConfig, CAMPAIGN_TRANSFER};

/// The lease a leader holds from its acknowledged heartbeat rounds. Raft
/// drops it whenever the node changes role or term, so it never outlives
/// the term whose rounds built it.
#[derive(Debug, Default, Clone)]
pub(crate) struct LeaderLease {
    /// The leader's ticks in this term. A round's send tick is its value
    /// plus one when the round went out (see `send_tick`), so that 0 means
    /// "no round".
    ticks: u64,
    /// Per peer, the send tick of the newest round it acknowledged; the
    /// leader's own entry is its current tick, set when the lease is read.
    acked: AckIndexer,
    /// The leader sent `MsgTimeoutNow` in this term.
    revoked: bool,
}

/// Bytes of a lease round's heartbeat context: the read position (see
/// `ReadOnly::heartbeat_ctx`), then the round's send tick, each as 8
/// little-endian bytes. Followers echo it unchanged.
const ROUND_CTX_LEN: usize = 16;

impl LeaderLease {
    /// Counts one of the leader's ticks.
    pub(crate) fn tick(&mut self) {
        self.ticks += 1;
    }

    /// The send tick of a round sent now.
    fn send_tick(&self) -> u64 {
        self.ticks + 1
    }

    /// The context of a heartbeat round sent now, carrying `read_position`
    /// for the ReadIndex reads it also confirms.
    pub(crate) fn round_ctx(&self, read_position: u64) -> Vec<u8> {
        let mut ctx = Vec::with_capacity(ROUND_CTX_LEN);
        ctx.extend_from_slice(&read_position.to_le_bytes());
        ctx.extend_from_slice(&self.send_tick().to_le_bytes());
        ctx
    }

    /// Notes that `from` acknowledged the heartbeat whose context is `ctx`,
    /// and returns the part of it that positions reads. A context that is
    /// not a round's (sent before the leader took lease reads, or by none)
    /// extends nothing and is returned whole.
    pub(crate) fn recv_ack<'a>(&mut self, from: u64, ctx: &'a [u8]) -> &'a [u8] {
        if ctx.len() != ROUND_CTX_LEN {
            return ctx;
        }
        let (position, sent) = ctx.split_at(ROUND_CTX_LEN / 2);
        let sent = u64::from_le_bytes(sent.try_into().expect("8 bytes"));
        let newest = &mut self.acked.entry(from).or_default().index;
        *newest = (*newest).max(sent);
        position
    }

    /// Gives the lease up for the rest of the term.
    pub(crate) fn revoke(&mut self) {
        self.revoked = true;
    }

    /// Whether a read may be answered now without a round: a quorum of
    /// `voters` (every half of a joint configuration; learners never count)
    /// acknowledged a round sent less than `election_timeout - 1` ticks ago.
    /// The leader acknowledges its own rounds as it sends them.
    pub(crate) fn is_valid(
        &mut self,
        leader: u64,
        voters: &JointConfig,
        election_timeout: usize,
    ) -> bool {
        if self.revoked {
            return false;
        }
        let own = Index {
            index: self.send_tick(),
            group_id: 0,
        };
        self.acked.insert(leader, own);
        let (since, _) = voters.committed_index(false, &self.acked);
        let lasts = election_timeout.saturating_sub(1) as u64;
        since > 0 && self.send_tick() < since.saturating_add(lasts)
    }
}

/// A node's promise to the leaders it heard from: while it holds, the node
/// ignores vote and pre-vote requests that do not repeat its vote and do
/// not come from a leader transfer. Kept only with lease reads.
#[derive(Debug, Default, Clone)]
pub(crate) struct VotePromise {
    ticks_left: usize,
}

impl VotePromise {
    /// The promise of a node starting from storage: kept only where lease
    /// reads rely on it, and only if the node may have acknowledged a
    /// leader before it went down, which means it had seen a term.
    pub(crate) fn at_start(lease_reads: bool, term: u64, election_timeout: usize) -> VotePromise {
        let mut promise = VotePromise::default();
        if lease_reads && term > 0 {
            promise.renew(election_timeout);
        }
        promise
    }

    /// The node heard from a leader: it holds for `election_timeout` ticks.
    pub(crate) fn renew(&mut self, election_timeout: usize) {
        self.ticks_left = election_timeout;
    }

    /// Counts one of the node's ticks.
    pub(crate) fn tick(&mut self) {
        self.ticks_left = self.ticks_left.saturating_sub(1);
    }

    /// Whether the node must ignore `m`, at its `term` with its `vote`.
    pub(crate) fn withholds(&self, m: &Message, term: u64, vote: u64) -> bool {
        let request = matches!(
            m.get_msg_type(),
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        );
        let repeat = m.term == term && m.from == vote;
        self.ticks_left > 0 && request && !repeat && m.context != CAMPAIGN_TRANSFER
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashSet;

    fn voters(ids: &[u64]) -> JointConfig {
        JointConfig::new(ids.iter().copied().collect::<HashSet<u64>>())
    }

    /// A leader `sent` ticks into its term when it sends a round that
    /// `ackers` acknowledge.
    fn lease_acked_by(sent: u64, ackers: &[u64]) -> LeaderLease {
        let mut lease = LeaderLease::default();
        for _ in 0..sent {
            lease.tick();
        }
        let ctx = lease.round_ctx(7);
        for &id in ackers {
            assert_eq!(lease.recv_ack(id, &ctx), 7u64.to_le_bytes());
        }
        lease
    }

    #[test]
    fn the_lease_lasts_election_timeout_minus_one_ticks_from_the_send() {
        let config = voters(&[1, 2, 3]);
        let mut lease = lease_acked_by(4, &[2]);
        for _ in 0..8 {
            assert!(lease.is_valid(1, &config, 10));
            lease.tick();
        }
        assert!(lease.is_valid(1, &config, 10), "8 ticks after the send");
        lease.tick();
        assert!(
            !lease.is_valid(1, &config, 10),
            "election_timeout - 1 ticks after the send"
        );
    }

    #[test]
    fn a_minority_acknowledgement_or_a_learners_gives_no_lease() {
        let config = voters(&[1, 2, 3, 4, 5]);
        let mut lease = lease_acked_by(0, &[2, 6, 7]);
        assert!(!lease.is_valid(1, &config, 10), "2 voters and 2 learners");
        let ctx = lease.round_ctx(0);
        lease.recv_ack(3, &ctx);
        assert!(lease.is_valid(1, &config, 10));
    }

    #[test]
    fn a_joint_configuration_needs_a_quorum_of_each_half() {
        let mut config = voters(&[1, 2, 3]);
        config.outgoing = voters(&[1, 4, 5]).incoming;
        let mut lease = lease_acked_by(0, &[2, 3]);
        assert!(
            !lease.is_valid(1, &config, 10),
            "the outgoing half has only 1"
        );
        let ctx = lease.round_ctx(0);
        lease.recv_ack(4, &ctx);
        assert!(lease.is_valid(1, &config, 10));
    }

    #[test]
    fn an_older_acknowledgement_does_not_shorten_the_lease() {
        let config = voters(&[1, 2, 3]);
        let mut lease = LeaderLease::default();
        let old = lease.round_ctx(0);
        for _ in 0..5 {
            lease.tick();
        }
        let new = lease.round_ctx(0);
        lease.recv_ack(2, &new);
        lease.recv_ack(2, &old);
        for _ in 0..8 {
            lease.tick();
        }
        assert!(
            lease.is_valid(1, &config, 10),
            "still 8 ticks after the newer send"
        );
    }

    #[test]
    fn a_revoked_lease_or_a_context_of_no_round_gives_nothing() {
        let config = voters(&[1, 2, 3]);
        let mut lease = LeaderLease::default();
        assert_eq!(lease.recv_ack(2, &5u64.to_le_bytes()), 5u64.to_le_bytes());
        assert!(!lease.is_valid(1, &config, 10), "an 8-byte read context");
        let ctx = lease.round_ctx(0);
        lease.recv_ack(2, &ctx);
        assert!(lease.is_valid(1, &config, 10));
        lease.revoke();
        assert!(!lease.is_valid(1, &config, 10));
    }

    #[test]
    fn a_promise_withholds_other_votes_for_election_timeout_ticks() {
        let vote = |from: u64, term: u64, transfer: bool| {
            let mut m = Message {
                from,
                term,
                ..Default::default()
            };
            m.set_msg_type(MessageType::MsgRequestVote);
            if transfer {
                m.context = CAMPAIGN_TRANSFER.to_vec().into();
            }
            m
        };
        let mut promise = VotePromise::at_start(true, 3, 10);
        assert!(VotePromise::at_start(true, 0, 10).ticks_left == 0);
        assert!(VotePromise::at_start(false, 3, 10).ticks_left == 0);
        for _ in 0..9 {
            promise.tick();
            assert!(promise.withholds(&vote(2, 4, false), 3, 0));
            assert!(
                promise.withholds(&vote(2, 3, false), 3, 0),
                "at its own term too"
            );
            assert!(
                !promise.withholds(&vote(2, 3, false), 3, 2),
                "a repeat of its vote"
            );
            assert!(!promise.withholds(&vote(2, 4, true), 3, 0), "a transfer");
        }
        promise.tick();
        assert!(!promise.withholds(&vote(2, 4, false), 3, 0));
    }
}
