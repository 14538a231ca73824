//! The WAL itself: segments on disk, the index and window in memory, and
//! the operations a raft `Storage` needs. `WalStorage` wraps it in a lock.

use std::collections::VecDeque;
use std::fs;
use std::path::PathBuf;

use protobuf::Message as _;
use raft_proto::eraftpb::{ConfState, Entry, HardState, Snapshot};

use crate::error::{io_at, WalError};
use crate::format::{self, Checkpoint, Kind};
use crate::index::{Loc, LogIndex};
use crate::segment::{self, Segment};
use crate::snap::{self, SnapFiles, SnapshotRef};
use crate::{SyncPolicy, WalOptions};

/// Why a read fails: raft's three storage answers, or an I/O error.
#[derive(Debug)]
pub enum ReadError {
    /// Below the first index.
    Compacted,
    /// Past the last index.
    Unavailable,
    /// The snapshot is older than asked for.
    SnapshotTemporarilyUnavailable,
    /// The disk failed.
    Wal(WalError),
}

/// A sync begun by [`Wal::begin_sync`]: the segment to fdatasync and how
/// much of it the sync covers. Rotation syncs a segment before leaving it,
/// so a ticket on an older segment covers nothing new.
pub struct SyncTicket {
    /// A second handle on the segment, so the fdatasync needs no lock.
    pub file: std::fs::File,
    /// False under [`SyncPolicy::UnsafeNever`].
    pub fdatasync: bool,
    path: PathBuf,
    segment: u64,
    len: u64,
}

/// The WAL's state.
pub struct Wal {
    pub(crate) dir: PathBuf,
    pub(crate) opts: WalOptions,
    /// Oldest first; the last is the one written to.
    pub(crate) segments: VecDeque<Segment>,
    pub(crate) log: LogIndex,
    pub(crate) hard_state: HardState,
    pub(crate) conf_state: ConfState,
    /// The snapshot served, data included.
    pub(crate) snapshot: Snapshot,
    /// Where its data lies in `snaps`.
    pub(crate) snapshot_ref: SnapshotRef,
    pub(crate) snaps: SnapFiles,
    pub(crate) sync_seq: u64,
    /// Bytes written since the last sync.
    pub(crate) dirty: bool,
    /// fdatasyncs so far (for tests and benchmarks).
    pub(crate) syncs: u64,
    /// The active segment's length at the last sync.
    pub(crate) durable_len: u64,
    /// Set after a write failed part way.
    pub(crate) stopped: Option<String>,
}

impl Wal {
    fn active(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("a WAL always has a segment")
    }

    /// Appends `bytes` to the active segment; returns the segment and the
    /// offset they start at.
    fn write(&mut self, bytes: &[u8]) -> Result<(u64, u64), WalError> {
        if let Some(why) = &self.stopped {
            return Err(WalError::Stopped(why.clone()));
        }
        let seq = self.active().seq;
        match self.active().append(bytes) {
            Ok(at) => {
                self.dirty = true;
                Ok((seq, at))
            }
            Err(e) => {
                self.stopped = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// After a write: sync if the policy says so, and start a new segment
    /// if this one is full.
    fn after_write(&mut self) -> Result<(), WalError> {
        if self.opts.sync == SyncPolicy::EveryWrite {
            self.sync()?;
        }
        if self.active().len >= self.opts.segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable: a Sync record, then one
    /// fdatasync. Does nothing if nothing was written since the last.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if !self.dirty {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(format::RECORD_HEADER_BYTES + 8);
        format::encode_index(Kind::Sync, self.sync_seq + 1, &mut buf);
        self.write(&buf)?;
        if self.opts.sync != SyncPolicy::UnsafeNever {
            if let Err(e) = self.active().sync() {
                self.stopped = Some(e.to_string());
                return Err(e);
            }
        }
        self.sync_seq += 1;
        self.syncs += 1;
        self.dirty = false;
        self.durable_len = self.active().len;
        Ok(())
    }

    /// The first half of a sync whose fdatasync runs outside the WAL's
    /// lock: writes the Sync record and hands out a handle on the active
    /// segment. Until [`Wal::finish_sync`], nothing written so far counts
    /// as durable; later writes may go on meanwhile. `None` if nothing was
    /// written since the last sync.
    pub fn begin_sync(&mut self) -> Result<Option<SyncTicket>, WalError> {
        if !self.dirty {
            return Ok(None);
        }
        let mut buf = Vec::with_capacity(format::RECORD_HEADER_BYTES + 8);
        format::encode_index(Kind::Sync, self.sync_seq + 1, &mut buf);
        self.write(&buf)?;
        self.sync_seq += 1;
        self.dirty = false;
        let fdatasync = self.opts.sync != SyncPolicy::UnsafeNever;
        let active = self.active();
        let file = active.file.try_clone().map_err(io_at(&active.path))?;
        Ok(Some(SyncTicket {
            file,
            fdatasync,
            path: active.path.clone(),
            segment: active.seq,
            len: active.len,
        }))
    }

    /// The second half: records the outcome of the ticket's fdatasync. A
    /// failed fdatasync stops the WAL, as in [`Wal::sync`].
    pub fn finish_sync(
        &mut self,
        ticket: &SyncTicket,
        synced: std::io::Result<()>,
    ) -> Result<(), WalError> {
        if let Err(e) = synced {
            let e = io_at(&ticket.path)(e);
            self.stopped = Some(e.to_string());
            return Err(e);
        }
        self.syncs += 1;
        let active = self.active();
        if active.seq == ticket.segment && ticket.len > self.durable_len {
            self.durable_len = ticket.len;
        }
        Ok(())
    }

    /// Starts a new segment with a checkpoint of the current state.
    fn rotate(&mut self) -> Result<(), WalError> {
        self.sync()?;
        let mut first = Vec::new();
        self.checkpoint().encode(&mut first);
        format::encode_index(Kind::Sync, self.sync_seq, &mut first);
        let seq = self.active().seq + 1;
        let segment = Segment::create(&self.dir, seq, &first)?;
        self.snaps.refer(self.snapshot_ref, seq);
        self.durable_len = segment.len;
        self.segments.push_back(segment);
        Ok(())
    }

    pub(crate) fn checkpoint(&self) -> Checkpoint<'_> {
        Checkpoint {
            snapshot: self.snapshot.get_metadata(),
            snapshot_data: self.snapshot_ref,
            conf_state: &self.conf_state,
            hard_state: &self.hard_state,
            first_index: self.log.first_index(),
        }
    }

    /// Checks that `entries` can follow a log whose first and last indexes
    /// are `first` and `last`.
    fn check_append(entries: &[Entry], first: u64, last: u64) -> Result<(), WalError> {
        let start = entries[0].index;
        if start < first {
            return Err(WalError::Rejected(format!(
                "entries from {start} overwrite compacted entries (first index {first})"
            )));
        }
        if start > last + 1 {
            return Err(WalError::Rejected(format!(
                "entries from {start} leave a gap after last index {last}"
            )));
        }
        if let Some(w) = entries.windows(2).find(|w| w[1].index != w[0].index + 1) {
            return Err(WalError::Rejected(format!(
                "entries are not consecutive: {} then {}",
                w[0].index, w[1].index
            )));
        }
        Ok(())
    }

    /// Appends each batch in turn, truncating any conflicting suffix, in
    /// one write. A batch that breaks the log's rules is rejected alone.
    pub fn append_batches(
        &mut self,
        batches: &[&[Entry]],
    ) -> Result<Vec<Result<(), WalError>>, WalError> {
        let (first, mut last) = (self.log.first_index(), self.log.last_index());
        let mut buf = Vec::new();
        let mut outcomes = Vec::with_capacity(batches.len());
        let mut planned = Vec::new();
        for &batch in batches {
            if batch.is_empty() {
                outcomes.push(Ok(()));
                continue;
            }
            if let Err(e) = Self::check_append(batch, first, last) {
                outcomes.push(Err(e));
                continue;
            }
            let start = batch[0].index;
            if start <= last {
                format::encode_index(Kind::Truncate, start, &mut buf);
            }
            let record_at = buf.len();
            let spans = format::encode_entries(batch, &mut buf);
            planned.push((batch, record_at, spans));
            last = batch[batch.len() - 1].index;
            outcomes.push(Ok(()));
        }
        if planned.is_empty() {
            return Ok(outcomes);
        }
        let (seq, at) = self.write(&buf)?;
        for (batch, record_at, spans) in planned {
            self.log.truncate_from(batch[0].index);
            for (entry, span) in batch.iter().zip(spans) {
                let loc = Loc {
                    seq,
                    offset: at + (record_at + span.offset) as u64,
                    len: span.len as u32,
                    term: span.term,
                };
                self.log.push(loc, Some(entry.clone()));
            }
        }
        self.after_write()?;
        Ok(outcomes)
    }

    /// Appends entries, truncating any conflicting suffix.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        self.append_batches(&[entries])?.pop().unwrap_or(Ok(()))
    }

    fn write_message(&mut self, kind: Kind, msg: &dyn protobuf::Message) -> Result<(), WalError> {
        let mut buf = Vec::new();
        format::encode_message(kind, msg, &mut buf);
        self.write(&buf)?;
        self.after_write()
    }

    /// Records the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) -> Result<(), WalError> {
        self.write_message(Kind::HardState, &hs)?;
        self.hard_state = hs;
        Ok(())
    }

    /// Records the configuration.
    pub fn set_conf_state(&mut self, cs: ConfState) -> Result<(), WalError> {
        self.write_message(Kind::ConfState, &cs)?;
        self.conf_state = cs;
        Ok(())
    }

    /// Writes a record referring to `snap`'s data file, which
    /// [`snap::write`] made durable outside the lock (written again here
    /// if compaction reclaimed a file of the same name meanwhile).
    fn write_snapshot_ref(
        &mut self,
        kind: Kind,
        snap: &Snapshot,
        data: SnapshotRef,
    ) -> Result<(), WalError> {
        snap::write(self.snaps.dir(), data, snap.get_data())?;
        let meta = snap.get_metadata();
        let mut buf = Vec::new();
        format::encode_snapshot_ref(kind, meta, data, &mut buf);
        let (seq, _) = self.write(&buf)?;
        self.snaps.refer(data, seq);
        self.after_write()
    }

    /// Replaces the log with a snapshot (as `MemStorage::apply_snapshot`),
    /// whose data is already in its file (`data`).
    pub fn apply_snapshot(&mut self, snap: Snapshot, data: SnapshotRef) -> Result<(), WalError> {
        let index = snap.get_metadata().index;
        if index < self.log.first_index() {
            return Err(WalError::Rejected(format!(
                "snapshot at {index} is older than the log (first index {})",
                self.log.first_index()
            )));
        }
        self.write_snapshot_ref(Kind::SnapshotFile, &snap, data)?;
        self.restore(snap, data);
        Ok(())
    }

    /// The state change of a snapshot, at write and at recovery alike.
    pub(crate) fn restore(&mut self, snap: Snapshot, data: SnapshotRef) {
        let meta = snap.get_metadata();
        self.log.reset(meta.index + 1);
        self.hard_state.commit = meta.index;
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot = snap;
        self.snapshot_ref = data;
    }

    /// Records a snapshot the application took of its own state, whose data
    /// is already in its file (`data`), which `snapshot` then serves; the
    /// log is unchanged (compact separately).
    pub fn set_snapshot(&mut self, snap: Snapshot, data: SnapshotRef) -> Result<(), WalError> {
        let meta = snap.get_metadata();
        let current = self.snapshot.get_metadata().index;
        if meta.index < current || meta.index > self.log.last_index() {
            return Err(WalError::Rejected(format!(
                "snapshot at {} is outside [{current}, {}]",
                meta.index,
                self.log.last_index()
            )));
        }
        if let Some(loc) = self.log.loc(meta.index).filter(|l| l.term != meta.term) {
            return Err(WalError::Rejected(format!(
                "snapshot at {} has term {}, the log has {}",
                meta.index, meta.term, loc.term
            )));
        }
        self.write_snapshot_ref(Kind::KeptSnapshotFile, &snap, data)?;
        self.snapshot = snap;
        self.snapshot_ref = data;
        Ok(())
    }

    /// The active segment and its length at the last sync: what a power
    /// failure leaves.
    pub fn durable_position(&self) -> (PathBuf, u64) {
        let active = self.segments.back().expect("a WAL always has a segment");
        (active.path.clone(), self.durable_len)
    }

    /// Drops the entries before `index` and deletes the segments that hold
    /// none of the rest.
    pub fn compact(&mut self, index: u64) -> Result<(), WalError> {
        if index <= self.log.first_index() {
            return Ok(());
        }
        if index > self.log.last_index() + 1 {
            return Err(WalError::Rejected(format!(
                "compaction to {index} is past last index {}",
                self.log.last_index()
            )));
        }
        let mut buf = Vec::new();
        format::encode_index(Kind::Compact, index, &mut buf);
        self.write(&buf)?;
        self.log.compact_to(index);
        self.after_write()?;
        self.reclaim()
    }

    /// Deletes segments older than the one holding the first entry (or the
    /// active one): every segment starts with a checkpoint, so recovery can
    /// start at the oldest one left. What makes them unneeded (the Compact
    /// record, a kept snapshot) is synced first: deleted before it is
    /// durable, a power loss would leave the log with a hole between the
    /// surviving checkpoint's snapshot and the oldest entry left.
    fn reclaim(&mut self) -> Result<(), WalError> {
        let keep_from = self
            .log
            .first_seq()
            .unwrap_or_else(|| self.segments.back().unwrap().seq);
        if self.segments.front().is_some_and(|s| s.seq < keep_from) {
            self.sync()?;
        }
        let mut removed = false;
        while self.segments.front().is_some_and(|s| s.seq < keep_from) {
            let segment = self.segments.pop_front().unwrap();
            fs::remove_file(&segment.path).map_err(io_at(&segment.path))?;
            removed = true;
        }
        if removed {
            segment::sync_dir(&self.dir)?;
        }
        let oldest = self.segments.front().expect("a WAL always has a segment");
        self.snaps.reclaim(oldest.seq, self.snapshot_ref)
    }

    /// Reads entry `index` from its segment.
    pub(crate) fn read_entry(&self, loc: &Loc) -> Result<Entry, WalError> {
        let segment = self
            .segments
            .iter()
            .find(|s| s.seq == loc.seq)
            .expect("the index points into a live segment");
        let bytes = segment.read(loc.offset, loc.len as usize)?;
        format::decode_entry(&bytes).map_err(|e| WalError::Corrupt {
            path: segment.path.clone(),
            offset: loc.offset,
            reason: format!("entry does not decode: {e}"),
        })
    }

    /// Entries in `[low, high)`, at least one, at most `max_size` bytes
    /// after the first (raft's `limit_size`).
    pub fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> Result<Vec<Entry>, ReadError> {
        if low < self.log.first_index() {
            return Err(ReadError::Compacted);
        }
        if high > self.log.last_index() + 1 {
            return Err(ReadError::Unavailable);
        }
        let limit = max_size.unwrap_or(u64::MAX);
        let mut size = 0u64;
        let mut out = Vec::with_capacity((high - low) as usize);
        for index in low..high {
            let entry = match self.log.cached(index) {
                Some(e) => e.clone(),
                None => self
                    .read_entry(self.log.loc(index).unwrap())
                    .map_err(ReadError::Wal)?,
            };
            size += u64::from(entry.compute_size());
            if !out.is_empty() && size > limit {
                break;
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// The term of entry `index` (or of the snapshot, at its index).
    pub fn term(&self, index: u64) -> Result<u64, ReadError> {
        let meta = self.snapshot.get_metadata();
        if index == meta.index {
            return Ok(meta.term);
        }
        if index < self.log.first_index() {
            return Err(ReadError::Compacted);
        }
        self.log
            .loc(index)
            .map(|l| l.term)
            .ok_or(ReadError::Unavailable)
    }

    /// The snapshot, if it is at least `request_index`.
    pub fn snapshot(&self, request_index: u64) -> Result<Snapshot, ReadError> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(ReadError::SnapshotTemporarilyUnavailable);
        }
        Ok(self.snapshot.clone())
    }
}
