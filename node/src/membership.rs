//! What the loop checks before it proposes a membership change. A change
//! raft refuses once committed is an entry every restart replays, and some
//! changes raft takes are still unwise; both are cheaper to refuse before
//! they enter the log. Only the leader knows what is pending and how far
//! each learner is, so only the leader proposes changes.

use raft::eraftpb::{ConfChangeSingle, ConfChangeType};
use raft::{Changer, ProgressState, Raft, StateRole, Storage, INVALID_ID};

/// How many entries a learner in Replicate may trail the commit index and
/// still be promoted: the appends in flight to it under steady writes.
const PROMOTE_LAG_ENTRIES: u64 = 64;

/// What to do with a change the admin asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Propose it.
    Propose,
    /// Refuse it, and why (a 409).
    Refuse(String),
    /// No leader is known to send it to (a 503).
    NoLeader,
    /// It removes this node while it leads: hand leadership to `to` first,
    /// and have the admin retry once `to` leads (a 503).
    TransferFirst {
        /// The live voter most caught up.
        to: u64,
    },
}

/// The verdict on handing leadership to `to`: only the leader transfers,
/// and only to another voter.
pub fn check_transfer<S: Storage>(raft: &Raft<S>, to: u64) -> Verdict {
    if raft.state != StateRole::Leader {
        return match raft.leader_id {
            INVALID_ID => Verdict::NoLeader,
            leader => Verdict::Refuse(format!("transfers go to the leader, node {leader}")),
        };
    }
    if to == raft.id || !raft.prs().conf().voters().contains(to) {
        return Verdict::Refuse(format!("node {to} is not another voter"));
    }
    Verdict::Propose
}

/// The verdict on `change` at `raft`.
pub fn check<S: Storage>(raft: &Raft<S>, change: &ConfChangeSingle) -> Verdict {
    if raft.state != StateRole::Leader {
        return match raft.leader_id {
            INVALID_ID => Verdict::NoLeader,
            leader => Verdict::Refuse(format!(
                "membership changes go to the leader, node {leader}, which knows what is pending and how far each learner is"
            )),
        };
    }
    if raft.has_pending_conf() {
        return Verdict::Refuse(
            "another membership change is still pending; retry once it is applied".into(),
        );
    }
    if let Err(e) = Changer::new(raft.prs()).simple(std::slice::from_ref(change)) {
        return Verdict::Refuse(format!("raft refuses it: {e}"));
    }
    match change.get_change_type() {
        ConfChangeType::AddNode => {
            let committed = raft.raft_log.committed;
            let progress = raft.prs().get(change.node_id);
            let matched = progress.map_or(0, |pr| pr.matched);
            let replicating = progress.is_some_and(|pr| pr.state == ProgressState::Replicate);
            if replicating && matched + PROMOTE_LAG_ENTRIES >= committed {
                Verdict::Propose
            } else {
                Verdict::Refuse(format!(
                    "learner {} has not caught up: it holds entries up to {matched}, {} behind the commit index {committed}{}",
                    change.node_id,
                    committed.saturating_sub(matched),
                    if replicating { "" } else { ", and is not replicating" }
                ))
            }
        }
        ConfChangeType::RemoveNode if change.node_id == raft.id => {
            let voters = raft.prs().conf().voters();
            let to = raft
                .prs()
                .iter()
                .filter(|(&id, pr)| id != raft.id && voters.contains(id) && pr.recent_active)
                .max_by_key(|(&id, pr)| (pr.matched, std::cmp::Reverse(id)))
                .map(|(&id, _)| id);
            match to {
                Some(to) => Verdict::TransferFirst { to },
                None => Verdict::Refuse("no other live voter to hand leadership to".into()),
            }
        }
        _ => Verdict::Propose,
    }
}
