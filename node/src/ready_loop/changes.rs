//! Membership at the loop: a change is checked ([`crate::membership`]),
//! proposed with a context naming its proposer (to answer the caller) and
//! a new member's address (for every node to dial), and applied when
//! committed. A leader transfer starts here too.

use raft_proto::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{ReadyLoop, Reply};
use crate::error::NodeError;
use crate::handle::{Membership, MembershipChange, RequestError};
use crate::membership::{self, Verdict};

/// What a membership change carries in its `context`, so the node that
/// proposed it can answer its caller, and every node learns a new
/// member's address.
#[derive(Serialize, Deserialize)]
struct ChangeContext {
    proposer: u64,
    seq: u64,
    addr: Option<std::net::SocketAddr>,
}

impl ReadyLoop {
    /// Starts handing leadership to `to`, at the leader only.
    pub(super) fn transfer_leader(&mut self, to: u64, reply: Reply<()>) {
        let answer = match membership::check_transfer(&self.raw.raft, to) {
            Verdict::Propose => {
                self.raw.transfer_leader(to);
                Ok(())
            }
            Verdict::Refuse(why) => Err(RequestError::Refused(why)),
            Verdict::NoLeader | Verdict::TransferFirst { .. } => Err(RequestError::NoLeader),
        };
        let _ = reply.send(answer);
    }

    pub(super) fn propose_change(&mut self, change: MembershipChange, reply: Reply<Membership>) {
        let is_voter = |id| self.conf_state.voters.contains(&id);
        let is_learner = |id| self.conf_state.learners.contains(&id);
        let (change_type, id, addr) = match change {
            MembershipChange::AddLearner { id, addr } if !is_voter(id) && !is_learner(id) => {
                (ConfChangeType::AddLearnerNode, id, Some(addr))
            }
            MembershipChange::Promote { id } if is_learner(id) => {
                (ConfChangeType::AddNode, id, None)
            }
            MembershipChange::Remove { id } if is_voter(id) || is_learner(id) => {
                (ConfChangeType::RemoveNode, id, None)
            }
            other => {
                let _ = reply.send(Err(RequestError::Refused(format!(
                    "{other:?} does not fit voters {:?} learners {:?}",
                    self.conf_state.voters, self.conf_state.learners
                ))));
                return;
            }
        };
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change_type);
        single.node_id = id;
        match membership::check(&self.raw.raft, &single) {
            Verdict::Propose => {}
            Verdict::Refuse(why) => {
                let _ = reply.send(Err(RequestError::Refused(why)));
                return;
            }
            Verdict::NoLeader => {
                let _ = reply.send(Err(RequestError::NoLeader));
                return;
            }
            Verdict::TransferFirst { to } => {
                self.raw.transfer_leader(to);
                let _ = reply.send(Err(RequestError::LeaderMoving(to)));
                return;
            }
        }
        let seq = self.request_ids.next_key();
        let context = ChangeContext {
            proposer: self.raw.raft.id,
            seq,
            addr,
        };
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        cc.context = serde_json::to_vec(&context).expect("plain struct").into();
        match self.raw.propose_conf_change(vec![], cc) {
            Ok(()) => {
                self.changes.insert(seq, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(RequestError::Refused(format!(
                    "{e} (no leader, or another change is still pending)"
                ))));
            }
        }
    }

    pub(super) async fn apply_change(
        &mut self,
        index: u64,
        cc: ConfChangeV2,
    ) -> Result<(), NodeError> {
        let context: Option<ChangeContext> = serde_json::from_slice(&cc.context).ok();
        // A committed change raft refuses (one the proposal-time check did
        // not see, such as a change written by an older node) is applied as
        // a no-op: the entry stays in the log, and every restart replays
        // it, so failing here would stop the node for good.
        let conf_state = match self.raw.apply_conf_change(&cc) {
            Ok(conf_state) => conf_state,
            Err(e) => {
                warn!(
                    "membership change at index {index} refused by raft, applied as a no-op: {e}"
                );
                self.write_log().skip(index);
                if let Some(ctx) = context.filter(|c| c.proposer == self.raw.raft.id) {
                    if let Some(reply) = self.changes.remove(&ctx.seq) {
                        let _ = reply.send(Err(RequestError::Refused(e.to_string())));
                    }
                }
                return Ok(());
            }
        };
        let stored = conf_state.clone();
        self.on_disk(move |s| s.set_conf_state(stored)).await?;
        self.conf_state = conf_state;
        self.peers.admit(&self.conf_state);
        self.write_log().skip(index);
        for change in cc.get_changes() {
            match change.get_change_type() {
                ConfChangeType::AddLearnerNode | ConfChangeType::AddNode => {
                    if let Some(addr) = context.as_ref().and_then(|c| c.addr) {
                        self.peers.connect(change.node_id, addr);
                    }
                    self.member_added = true;
                }
                ConfChangeType::RemoveNode => self.peers.disconnect(change.node_id),
            }
        }
        info!(
            "membership at index {index}: voters {:?} learners {:?}",
            self.conf_state.voters, self.conf_state.learners
        );
        if let Some(ctx) = context.filter(|c| c.proposer == self.raw.raft.id) {
            if let Some(reply) = self.changes.remove(&ctx.seq) {
                let _ = reply.send(Ok(self.membership()));
            }
        }
        Ok(())
    }

    /// The members, in id order.
    pub(super) fn membership(&self) -> Membership {
        let sorted = |ids: &[u64]| {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids
        };
        Membership {
            voters: sorted(&self.conf_state.voters),
            learners: sorted(&self.conf_state.learners),
        }
    }
}
