//! [`WalStorage`]: the shareable handle, and its `raft::Storage` impl.

use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use raft::{GetEntriesContext, RaftState, StorageError};
use raft_proto::eraftpb::{ConfState, Entry, HardState, Snapshot};

use crate::error::WalError;
use crate::snap::{self, SnapshotRef};
use crate::wal::{ReadError, SyncTicket, Wal};
use crate::WalOptions;

/// A sync started by [`WalStorage::sync_detached`].
pub struct DetachedSync {
    wal: WalStorage,
    ticket: SyncTicket,
}

impl DetachedSync {
    /// The fdatasync, outside the WAL's lock.
    ///
    /// # Errors
    ///
    /// The fdatasync failed; the WAL then refuses writes until reopened.
    pub fn wait(self) -> Result<(), WalError> {
        let synced = if self.ticket.fdatasync {
            self.ticket.file.sync_data()
        } else {
            Ok(())
        };
        self.wal.wl().finish_sync(&self.ticket, synced)
    }
}

/// A raft log on a write-ahead log. Clones share one WAL, like
/// `MemStorage`.
#[derive(Clone)]
pub struct WalStorage(Arc<RwLock<Wal>>);

impl WalStorage {
    /// Opens (or creates) the WAL in `dir` and recovers it.
    ///
    /// # Errors
    ///
    /// I/O errors, and [`WalError::Corrupt`] naming the file and offset of
    /// data recovery cannot trust. A torn tail of the last segment is not an
    /// error: it is cut off.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<WalStorage, WalError> {
        Ok(WalStorage(Arc::new(RwLock::new(Wal::open(
            dir.as_ref(),
            opts,
        )?))))
    }

    fn rl(&self) -> RwLockReadGuard<'_, Wal> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn wl(&self) -> RwLockWriteGuard<'_, Wal> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends entries, truncating any conflicting suffix first.
    ///
    /// # Errors
    ///
    /// [`WalError::Rejected`] if they start before the first index or after
    /// the last index + 1, or are not consecutive; I/O errors.
    pub fn append(&self, entries: &[Entry]) -> Result<(), WalError> {
        self.wl().append(entries)
    }

    /// Appends several batches in order with one write; each batch is
    /// checked (and possibly rejected) on its own.
    ///
    /// # Errors
    ///
    /// I/O errors, for all batches at once.
    pub fn append_batches(
        &self,
        batches: &[&[Entry]],
    ) -> Result<Vec<Result<(), WalError>>, WalError> {
        self.wl().append_batches(batches)
    }

    /// Records the hard state.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn set_hard_state(&self, hs: HardState) -> Result<(), WalError> {
        self.wl().set_hard_state(hs)
    }

    /// Records the configuration.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn set_conf_state(&self, cs: ConfState) -> Result<(), WalError> {
        self.wl().set_conf_state(cs)
    }

    /// Replaces the log with a snapshot.
    ///
    /// # Errors
    ///
    /// [`WalError::Rejected`] if the snapshot is older than the first
    /// index; I/O errors.
    pub fn apply_snapshot(&self, snap: Snapshot) -> Result<(), WalError> {
        self.record_snapshot(snap, Wal::apply_snapshot)
    }

    /// Records a snapshot the application took of its own state (at an
    /// index the log holds, with that entry's term); `Storage::snapshot`
    /// serves it. The log is unchanged: compact separately.
    ///
    /// # Errors
    ///
    /// [`WalError::Rejected`] for a snapshot older than the current one,
    /// past the log, or of another term than the log's; I/O errors.
    pub fn set_snapshot(&self, snap: Snapshot) -> Result<(), WalError> {
        self.record_snapshot(snap, Wal::set_snapshot)
    }

    /// Writes a snapshot's data to its own file, durably, without the
    /// WAL's lock (appends go on meanwhile, whatever the state's size),
    /// then records it with `record` under the lock. The file of a
    /// snapshot the WAL refuses is deleted.
    fn record_snapshot(
        &self,
        snap: Snapshot,
        record: impl FnOnce(&mut Wal, Snapshot, SnapshotRef) -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        let data = self.write_snapshot_file(&snap)?;
        let mut wal = self.wl();
        let recorded = record(&mut wal, snap, data);
        if recorded.is_err() {
            wal.snaps.forget(data)?;
        }
        recorded
    }

    fn write_snapshot_file(&self, snap: &Snapshot) -> Result<SnapshotRef, WalError> {
        let dir = self.rl().snaps.dir().to_path_buf();
        let meta = snap.get_metadata();
        let data = SnapshotRef::of(meta.index, meta.term, snap.get_data());
        snap::write(&dir, data, snap.get_data())?;
        Ok(data)
    }

    /// The active segment and its length as of the last sync: what a power
    /// failure leaves (for crash testing).
    pub fn durable_position(&self) -> (std::path::PathBuf, u64) {
        self.rl().durable_position()
    }

    /// Drops the entries before `index` and deletes the segments that no
    /// longer hold any entry.
    ///
    /// # Errors
    ///
    /// [`WalError::Rejected`] if `index` is past the last index + 1; I/O
    /// errors.
    pub fn compact(&self, index: u64) -> Result<(), WalError> {
        self.wl().compact(index)
    }

    /// Makes everything written so far durable (one fdatasync).
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn sync(&self) -> Result<(), WalError> {
        self.wl().sync()
    }

    /// Starts a sync whose fdatasync runs without holding the WAL's lock:
    /// reads and further writes go on while [`DetachedSync::wait`] blocks
    /// on the disk. Everything written before this call is durable once
    /// `wait` returns `Ok`; `None` if nothing was written since the last
    /// sync. This is what asynchronous persistence
    /// (`RawNode::advance_append_async`, then `on_persist_ready` once
    /// `wait` returns) needs.
    ///
    /// # Errors
    ///
    /// I/O errors writing the Sync record or duplicating the file handle.
    pub fn sync_detached(&self) -> Result<Option<DetachedSync>, WalError> {
        let ticket = self.wl().begin_sync()?;
        Ok(ticket.map(|ticket| DetachedSync {
            wal: self.clone(),
            ticket,
        }))
    }

    /// fdatasyncs so far.
    pub fn syncs(&self) -> u64 {
        self.rl().syncs
    }

    /// Entries held in memory.
    pub fn window_len(&self) -> usize {
        self.rl().log.window_len()
    }

    /// Segment files on disk.
    pub fn segments(&self) -> usize {
        self.rl().segments.len()
    }

    /// The hard state.
    pub fn hard_state(&self) -> HardState {
        self.rl().hard_state.clone()
    }
}

fn storage_error(e: ReadError) -> raft::Error {
    raft::Error::Store(match e {
        ReadError::Compacted => StorageError::Compacted,
        ReadError::Unavailable => StorageError::Unavailable,
        ReadError::SnapshotTemporarilyUnavailable => StorageError::SnapshotTemporarilyUnavailable,
        ReadError::Wal(e) => StorageError::Other(Box::new(e)),
    })
}

impl raft::Storage for WalStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let wal = self.rl();
        Ok(RaftState {
            hard_state: wal.hard_state.clone(),
            conf_state: wal.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.rl()
            .entries(low, high, max_size.into())
            .map_err(storage_error)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.rl().term(idx).map_err(storage_error)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.rl().log.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.rl().log.last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        self.rl().snapshot(request_index).map_err(storage_error)
    }
}
