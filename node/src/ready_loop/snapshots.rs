//! Snapshots at the loop: the leader's, installed in place of the log and
//! the records; and this node's own, taken every `snapshot_entries`
//! applied entries (and after a member is added) and written off the
//! loop, after which the WAL keeps only `log_tail_entries` entries before
//! it.

use raft::Storage;
use raft_proto::eraftpb::Snapshot;
use raft_wal_storage::WalError;
use tracing::info;

use super::ReadyLoop;
use crate::error::NodeError;
use crate::handle::Input;
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
        self.peers.admit(&self.conf_state);
        self.last_snapshot = meta.index;
        self.appends.on_snapshot(meta.term);
        Ok(())
    }

    /// Every `snapshot_entries` applied entries, and after a member is
    /// added, the records become a snapshot and the WAL drops all but the
    /// last `log_tail_entries` entries before it, so the log on disk stays
    /// bounded. The loop only copies the records (a reference count per
    /// record); encoding and writing run on the blocking pool, and the
    /// outcome comes back as [`Input::SnapshotWritten`]. One at a time.
    pub(super) fn maybe_snapshot(&mut self) -> Result<(), NodeError> {
        if self.snapshot_in_flight {
            return Ok(());
        }
        let records = {
            let log = self.log.read().unwrap_or_else(|e| e.into_inner());
            let due = log.applied() >= self.last_snapshot + self.snapshot_entries
                || (self.member_added && log.applied() > self.last_snapshot);
            if !due {
                return Ok(());
            }
            log.clone()
        };
        let index = records.applied();
        let term = self.raw.store().term(index)?;
        let conf_state = self.conf_state.clone();
        let compact_to = (index + 1).saturating_sub(self.log_tail_entries);
        let (store, inbox) = (self.store.clone(), self.own_inbox.clone());
        self.snapshot_in_flight = true;
        self.member_added = false;
        tokio::task::spawn_blocking(move || {
            let mut snap = Snapshot::default();
            snap.set_data(records.snapshot().into());
            let meta = snap.mut_metadata();
            meta.index = index;
            meta.term = term;
            meta.set_conf_state(conf_state);
            let result = store
                .set_snapshot(snap)
                .and_then(|()| store.compact(compact_to))
                .map(|()| compact_to);
            // The loop only stops taking inputs when the node stops.
            let _ = inbox.blocking_send(Input::SnapshotWritten { index, result });
        });
        Ok(())
    }

    /// A snapshot written off the loop. One the WAL refuses was overtaken
    /// by a leader's newer snapshot installed meanwhile; any other failure
    /// stops the node, as every WAL failure does.
    pub(super) fn on_snapshot_written(
        &mut self,
        index: u64,
        result: Result<u64, WalError>,
    ) -> Result<(), NodeError> {
        self.snapshot_in_flight = false;
        match result {
            Ok(compacted_to) => {
                info!("snapshot at index {index}; WAL compacted to {compacted_to}");
                self.last_snapshot = self.last_snapshot.max(index);
                Ok(())
            }
            Err(WalError::Rejected(why)) => {
                info!("snapshot at index {index} overtaken: {why}");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
