//! What the loop checks before it proposes a membership change. A change
//! raft refuses once committed is an entry every restart replays, and some
//! changes raft takes are still unwise; both are cheaper to refuse before
//! they enter the log.

use raft::eraftpb::{ConfChangeSingle, ConfChangeType};
use raft::{Changer, Raft, StateRole, Storage};

/// What to do with a change the admin asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Propose it.
    Propose,
    /// Refuse it, and why (a 409).
    Refuse(String),
    /// It removes this node while it leads: hand leadership to `to` first,
    /// and have the admin retry once `to` leads (a 503).
    TransferFirst {
        /// The voter most caught up.
        to: u64,
    },
}

/// The verdict on `change` at `raft`.
pub fn check<S: Storage>(raft: &Raft<S>, change: &ConfChangeSingle) -> Verdict {
    if raft.has_pending_conf() {
        return Verdict::Refuse(
            "another membership change is still pending; retry once it is applied".into(),
        );
    }
    if let Err(e) = Changer::new(raft.prs()).simple(std::slice::from_ref(change)) {
        return Verdict::Refuse(format!("raft refuses it: {e}"));
    }
    let leading = raft.state == StateRole::Leader;
    match change.get_change_type() {
        ConfChangeType::AddNode if !leading => Verdict::Refuse(format!(
            "promote through the leader (node {}), which knows how far the learner is behind",
            raft.leader_id
        )),
        ConfChangeType::AddNode => {
            let committed = raft.raft_log.committed;
            let matched = raft.prs().get(change.node_id).map_or(0, |pr| pr.matched);
            if matched < committed {
                Verdict::Refuse(format!(
                    "learner {} has not caught up: it holds entries up to {matched}, {} behind the commit index {committed}",
                    change.node_id,
                    committed - matched
                ))
            } else {
                Verdict::Propose
            }
        }
        ConfChangeType::RemoveNode if leading && change.node_id == raft.id => {
            let to = raft
                .prs()
                .iter()
                .filter(|(&id, _)| id != raft.id && raft.prs().conf().voters().contains(id))
                .max_by_key(|(&id, pr)| (pr.matched, std::cmp::Reverse(id)))
                .map(|(&id, _)| id);
            match to {
                Some(to) => Verdict::TransferFirst { to },
                None => Verdict::Refuse("no other voter to hand leadership to".into()),
            }
        }
        _ => Verdict::Propose,
    }
}
