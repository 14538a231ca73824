//! Snapshots at the loop: the leader's, installed in place of the log and
//! the records; and this node's own, taken every `snapshot_entries`
//! applied entries (and after a member is added), after which the WAL
//! keeps only `log_tail_entries` entries before it.

use raft::Storage;
use raft_proto::eraftpb::Snapshot;
use tracing::info;

use super::ReadyLoop;
use crate::error::NodeError;
use crate::state_machine::RecordLog;

impl ReadyLoop {
    pub(super) async fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), NodeError> {
        let meta = snap.get_metadata().clone();
        info!(
            "installing a snapshot at index {} term {}",
            meta.index, meta.term
        );
        let mut restored = RecordLog::new(self.retention);
        restored.restore(meta.index, snap.get_data())?;
        self.on_disk(move |s| s.apply_snapshot(snap)).await?;
        *self.log.write().unwrap_or_else(|e| e.into_inner()) = restored;
        self.conf_state = meta.get_conf_state().clone();
        self.last_snapshot = meta.index;
        Ok(())
    }

    /// Every `snapshot_entries` applied entries, and after a member is
    /// added, the records become a snapshot and the WAL drops all but the
    /// last `log_tail_entries` entries before it, so the log on disk stays
    /// bounded.
    pub(super) async fn maybe_snapshot(&mut self) -> Result<(), NodeError> {
        let (applied, data) = {
            let log = self.log.read().unwrap_or_else(|e| e.into_inner());
            let due = log.applied() >= self.last_snapshot + self.snapshot_entries
                || (self.member_added && log.applied() > self.last_snapshot);
            if !due {
                return Ok(());
            }
            (log.applied(), log.snapshot())
        };
        let term = self.raw.store().term(applied)?;
        let mut snap = Snapshot::default();
        snap.set_data(data.into());
        let meta = snap.mut_metadata();
        meta.index = applied;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        let first = self.raw.store().first_index()?;
        let compact_to = (applied + 1).saturating_sub(self.log_tail_entries);
        self.on_disk(move |s| {
            s.set_snapshot(snap)?;
            if compact_to > first {
                s.compact(compact_to)?;
            }
            Ok(())
        })
        .await?;
        info!(
            "snapshot at index {applied}; WAL compacted to {}",
            compact_to.max(first)
        );
        self.last_snapshot = applied;
        self.member_added = false;
        Ok(())
    }
}
