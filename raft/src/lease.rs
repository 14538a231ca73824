// Fork: the leader lease behind `ReadOnlyOption::LeaseBased` reads.
//
// A follower that hears from its leader ignores vote requests of a higher
// term, unless the campaign is a leader transfer, for `election_timeout`
// of its ticks (the check in `Raft::step`, with check_quorum). So when a
// quorum of voters acknowledged a heartbeat round the leader sent at its
// tick `s`, no other node can win an election before each of them has
// ticked `election_timeout` times after `s`. With ticks of the same length
// everywhere, `election_timeout - 1` of the leader's ticks after `s` end
// before that, whatever the phase of each node's ticks: this is the lease.
// A read is answered at once only within it; any other read goes through a
// ReadIndex round, as with `ReadOnlyOption::Safe`.
//
// Two things break a follower's promise, and each gets a rule:
// - A leader transfer: the transferee campaigns with `CAMPAIGN_TRANSFER`,
//   which the followers grant at once. A leader that sent `MsgTimeoutNow`
//   has no lease for the rest of its term, since the message may reach the
//   transferee at any later time.
// - A restart: the promise lives in memory. A voter that restarts with a
//   term it may have promised in withholds its vote for `election_timeout`
//   ticks after it starts (`VotePromise`).
//
// 0.7.0 answered every LeaseBased read at once, with no expiry; etcd-io/raft
// does the same today (etcd-io/raft#166, tikv/raft-rs#234).

use crate::quorum::{AckIndexer, Index};
use crate::JointConfig;

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

/// A restarted voter's promise to the leader it may have acknowledged
/// before it went down: it ignores vote requests for `election_timeout`
/// ticks, as it would have had it stayed up.
#[derive(Debug, Default, Clone)]
pub(crate) struct VotePromise {
    ticks_left: usize,
}

impl VotePromise {
    /// The promise of a node starting from storage: kept only where lease
    /// reads rely on it, and only if the node may have acknowledged a
    /// leader, which means it had seen a term.
    pub(crate) fn at_start(lease_reads: bool, term: u64, election_timeout: usize) -> VotePromise {
        VotePromise {
            ticks_left: if lease_reads && term > 0 {
                election_timeout
            } else {
                0
            },
        }
    }

    /// Counts one of the node's ticks.
    pub(crate) fn tick(&mut self) {
        self.ticks_left = self.ticks_left.saturating_sub(1);
    }

    /// Whether the node still withholds its vote.
    pub(crate) fn holds(&self) -> bool {
        self.ticks_left > 0
    }
}
