//! Opening a WAL: the recovery procedure of `FORMAT.md`, step by step.

use std::collections::VecDeque;
use std::fs;
use std::path::Path;

use raft_proto::eraftpb::{ConfState, HardState, Snapshot};

use crate::error::{io_at, WalError};
use crate::format::{self, DecodeError, Kind, RawRecord, SEGMENT_HEADER_BYTES};
use crate::index::{Loc, LogIndex};
use crate::segment::{self, Segment};
use crate::snap::{self, SnapFiles, SnapshotRef};
use crate::wal::Wal;
use crate::WalOptions;

impl Wal {
    /// Opens the WAL in `dir`, creating it if it is empty, and recovers its
    /// state.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Wal, WalError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            log: LogIndex::new(1, opts.retention_entries),
            opts,
            segments: VecDeque::new(),
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot: Snapshot::default(),
            snapshot_ref: SnapshotRef::default(),
            snaps: SnapFiles::open(dir)?,
            sync_seq: 0,
            dirty: false,
            syncs: 0,
            durable_len: 0,
            stopped: None,
        };
        // Step 1: leftover temporary segments go; the rest, in order.
        let seqs = segment::list(dir)?;
        if seqs.is_empty() {
            let mut first = Vec::new();
            wal.checkpoint().encode(&mut first);
            format::encode_index(Kind::Sync, 0, &mut first);
            let segment = Segment::create(dir, 1, &first)?;
            wal.durable_len = segment.len;
            wal.segments.push_back(segment);
            return Ok(wal);
        }
        if let Some(w) = seqs.windows(2).find(|w| w[1] != w[0] + 1) {
            return Err(WalError::Corrupt {
                path: segment::path(dir, w[1]),
                offset: 0,
                reason: format!("segment {:016x} is missing", w[0] + 1),
            });
        }
        for (i, &seq) in seqs.iter().enumerate() {
            let last = i + 1 == seqs.len();
            let mut segment = Segment::open(dir, seq)?;
            let bytes = fs::read(&segment.path).map_err(io_at(&segment.path))?;
            // Step 2: the header.
            if !format::is_segment_header(&bytes) {
                if last && bytes.len() < SEGMENT_HEADER_BYTES && i > 0 {
                    fs::remove_file(&segment.path).map_err(io_at(&segment.path))?;
                    segment::sync_dir(dir)?;
                    break;
                }
                return Err(WalError::Corrupt {
                    path: segment.path.clone(),
                    offset: 0,
                    reason: "bad segment header".into(),
                });
            }
            // Steps 3 and 4: records, up to a torn tail or an error. A
            // segment's checkpoint (the records up to its first Sync)
            // repeats what the segments before it say, so only the oldest
            // segment's counts. If older ones were reclaimed, the entries
            // they held are gone, so the log may restart in this segment:
            // at its first Entries record, and at one that overwrites
            // entries a reclaimed segment held once a Truncate emptied the
            // log (the Compact that let those segments go, made durable
            // before they were deleted, drops those indexes again). Never
            // below what a Compact or snapshot already dropped.
            let mut at = SEGMENT_HEADER_BYTES;
            let mut in_checkpoint = true;
            let older_reclaimed = i == 0 && seq > 1;
            let mut may_restart = older_reclaimed;
            // The first index a Compact or snapshot replayed so far left.
            let mut dropped_below = 0;
            while at < bytes.len() {
                match format::decode(&bytes[at..]) {
                    Ok(record) => {
                        let corrupt = |reason: String| WalError::Corrupt {
                            path: segment.path.clone(),
                            offset: at as u64,
                            reason,
                        };
                        // Every surviving reference keeps its file, the
                        // checkpoints' that are not replayed too.
                        if matches!(record.kind, Kind::SnapshotFile | Kind::KeptSnapshotFile) {
                            let (_, data) =
                                record.snapshot_ref().map_err(|e| corrupt(e.to_string()))?;
                            wal.snaps.refer(data, seq);
                        }
                        if !in_checkpoint || i == 0 {
                            if may_restart && record.kind == Kind::Entries && wal.log.is_empty() {
                                let (first, _) =
                                    record.entries().map_err(|e| corrupt(e.to_string()))?;
                                if first < dropped_below {
                                    return Err(corrupt(format!(
                                        "entries from {first} restart the log below {dropped_below}, which was compacted"
                                    )));
                                }
                                wal.log.reset(first);
                            }
                            // Once the log has started here, it restarts only
                            // where a Truncate emptied it.
                            may_restart = match record.kind {
                                Kind::Truncate => older_reclaimed,
                                Kind::Entries | Kind::Snapshot | Kind::SnapshotFile => false,
                                _ => may_restart,
                            };
                            // The writer's first index, which no append
                            // went below: a Compact's own index (the log
                            // recovered here may start above it), a
                            // snapshot's index + 1.
                            if record.kind == Kind::Compact {
                                let index = record.index().map_err(|e| corrupt(e.to_string()))?;
                                dropped_below = dropped_below.max(index);
                            }
                            wal.replay(seq, at as u64, record).map_err(corrupt)?;
                            if matches!(record.kind, Kind::Snapshot | Kind::SnapshotFile) {
                                dropped_below = dropped_below.max(wal.log.first_index());
                            }
                        }
                        in_checkpoint &= record.kind != Kind::Sync;
                        at += record.size();
                    }
                    Err(e) if last && is_torn_tail(&bytes[at..], &e) => {
                        segment.truncate(at as u64)?;
                        break;
                    }
                    Err(e) => {
                        return Err(WalError::Corrupt {
                            path: segment.path.clone(),
                            offset: at as u64,
                            reason: e.to_string(),
                        })
                    }
                }
            }
            wal.durable_len = segment.len;
            wal.segments.push_back(segment);
        }
        // Step 5: the snapshot's data, from its file.
        wal.load_snapshot_data()?;
        // Step 6: the window.
        let last = wal.log.last_index();
        let mut index = last;
        while index >= wal.log.first_index() && index > 0 {
            let loc = *wal.log.loc(index).unwrap();
            let entry = wal.read_entry(&loc)?;
            if !wal.log.prepend_cached(entry) {
                break;
            }
            index -= 1;
        }
        Ok(wal)
    }

    /// Reads the data of the snapshot recovered, and deletes the files no
    /// segment refers to. A snapshot recovered from an inline record (a
    /// WAL older than snapshot files) gets its file now, before a new
    /// segment's checkpoint refers to it.
    fn load_snapshot_data(&mut self) -> Result<(), WalError> {
        let data = self.snapshot_ref;
        if self.snapshot.get_data().is_empty() {
            let bytes = self.snaps.read(data)?;
            self.snapshot.set_data(bytes);
        } else {
            snap::write(self.snaps.dir(), data, self.snapshot.get_data())?;
            let active = self.segments.back().expect("a WAL always has a segment");
            self.snaps.refer(data, active.seq);
        }
        self.snaps.remove_strays()
    }

    /// Applies one record read back.
    fn replay(&mut self, seq: u64, at: u64, record: RawRecord<'_>) -> Result<(), String> {
        match record.kind {
            Kind::Entries => {
                let (first, spans) = record.entries().map_err(|e| e.to_string())?;
                let next = self.log.last_index() + 1;
                if first != next && !spans.is_empty() {
                    return Err(format!(
                        "entries from {first} do not continue the log at {next}"
                    ));
                }
                for span in spans {
                    let loc = Loc {
                        seq,
                        offset: at + span.offset as u64,
                        len: span.len as u32,
                        term: span.term,
                    };
                    self.log.push(loc, None);
                }
            }
            Kind::Truncate => self
                .log
                .truncate_from(record.index().map_err(|e| e.to_string())?),
            Kind::Compact => {
                let index = record.index().map_err(|e| e.to_string())?;
                if index > self.log.first_index() {
                    self.log.compact_to(index);
                }
            }
            Kind::HardState => self.hard_state = record.message().map_err(|e| e.to_string())?,
            Kind::ConfState => self.conf_state = record.message().map_err(|e| e.to_string())?,
            Kind::Snapshot => {
                let snap: Snapshot = record.message().map_err(|e| e.to_string())?;
                let data = inline_ref(&snap);
                self.restore(snap, data);
            }
            Kind::KeptSnapshot => {
                self.snapshot = record.message().map_err(|e| e.to_string())?;
                self.snapshot_ref = inline_ref(&self.snapshot);
            }
            Kind::SnapshotFile => {
                let (metadata, data) = record.snapshot_ref().map_err(|e| e.to_string())?;
                let snap = Snapshot {
                    metadata: Some(metadata).into(),
                    ..Snapshot::default()
                };
                self.restore(snap, data);
            }
            Kind::KeptSnapshotFile => {
                let (metadata, data) = record.snapshot_ref().map_err(|e| e.to_string())?;
                self.snapshot = Snapshot {
                    metadata: Some(metadata).into(),
                    ..Snapshot::default()
                };
                self.snapshot_ref = data;
            }
            Kind::Sync => self.sync_seq = record.index().map_err(|e| e.to_string())?,
        }
        Ok(())
    }
}

/// The reference an inline snapshot's data gets once written to its file.
fn inline_ref(snap: &Snapshot) -> SnapshotRef {
    let meta = snap.get_metadata();
    SnapshotRef::of(meta.index, meta.term, snap.get_data())
}

/// Whether a record that failed to decode is a torn write at the end of the
/// last segment: zeroed space, a record cut short by the end of the file,
/// or a corrupt payload that ends exactly at the end of the file. Anything
/// followed by more data is corruption.
fn is_torn_tail(rest: &[u8], error: &DecodeError) -> bool {
    if rest.iter().all(|&b| b == 0) {
        return true;
    }
    match error {
        DecodeError::Incomplete { .. } => true,
        DecodeError::PayloadChecksum => {
            let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            format::RECORD_HEADER_BYTES + len == rest.len()
        }
        _ => false,
    }
}
