//! Byte layout of segments and records, as `FORMAT.md` specifies it.

use protobuf::Message as _;
use raft_proto::eraftpb::{ConfState, Entry, HardState, SnapshotMetadata};

use crate::snap::SnapshotRef;

/// First bytes of every segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"RAFTWAL\0";
/// Format version in the segment header.
pub const VERSION: u32 = 1;
/// Size of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 16;
/// Size of a record header.
pub const RECORD_HEADER_BYTES: usize = 16;
/// Largest payload a record may declare: a corrupt length must not make
/// recovery allocate without bound.
pub const PAYLOAD_MAX_BYTES: u32 = 64 << 20;
/// Bytes before each entry's protobuf in an Entries payload: term and length.
pub const ENTRY_FRAME_BYTES: usize = 12;

/// A record's kind byte. 0 is invalid, so zeroed space never decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Consecutive entries.
    Entries = 1,
    /// The hard state.
    HardState = 2,
    /// The configuration.
    ConfState = 3,
    /// Entries from an index on are gone.
    Truncate = 4,
    /// A snapshot with its data inline; the log restarts after it. Read
    /// only: written before snapshot files existed.
    Snapshot = 5,
    /// Entries before an index are gone.
    Compact = 6,
    /// Written before each fdatasync.
    Sync = 7,
    /// A snapshot the application took of its state, data inline; the
    /// log is unchanged. Read only, as [`Kind::Snapshot`].
    KeptSnapshot = 8,
    /// A snapshot whose data is in its file; the log restarts after it.
    SnapshotFile = 9,
    /// A snapshot the application took of its state, data in its file; the
    /// log is unchanged.
    KeptSnapshotFile = 10,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Entries,
            2 => Kind::HardState,
            3 => Kind::ConfState,
            4 => Kind::Truncate,
            5 => Kind::Snapshot,
            6 => Kind::Compact,
            7 => Kind::Sync,
            8 => Kind::KeptSnapshot,
            9 => Kind::SnapshotFile,
            10 => Kind::KeptSnapshotFile,
            _ => return None,
        })
    }
}

/// Why bytes do not decode as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends before the record does.
    #[error("record cut short: {needed} bytes needed, {available} available")]
    Incomplete {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The header's checksum does not match.
    #[error("record header checksum mismatch")]
    HeaderChecksum,
    /// The payload's checksum does not match.
    #[error("record payload checksum mismatch")]
    PayloadChecksum,
    /// The kind byte is not a known kind.
    #[error("unknown record kind {0}")]
    Kind(u8),
    /// The declared length is over the maximum.
    #[error("record length {0} over the maximum")]
    Length(u32),
    /// The payload does not parse as its kind says.
    #[error("malformed {kind:?} payload: {reason}")]
    Payload {
        /// The record's kind.
        kind: Kind,
        /// What is wrong.
        reason: String,
    },
}

/// The segment header.
pub fn segment_header() -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Whether `bytes` start with a valid segment header.
pub fn is_segment_header(bytes: &[u8]) -> bool {
    bytes.len() >= SEGMENT_HEADER_BYTES && bytes[..SEGMENT_HEADER_BYTES] == segment_header()
}

/// Appends one record of `kind` with `payload` to `out`.
pub fn encode(kind: Kind, payload: &[u8], out: &mut Vec<u8>) {
    let start = begin_record(out);
    out.extend_from_slice(payload);
    finish_record(kind, start, out);
}

/// Reserves a record header at the end of `out`; returns where it starts.
fn begin_record(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.resize(start + RECORD_HEADER_BYTES, 0);
    start
}

/// Fills in the header of the record that starts at `start` and whose
/// payload is everything after its header.
fn finish_record(kind: Kind, start: usize, out: &mut [u8]) {
    let (header, payload) = out[start..].split_at_mut(RECORD_HEADER_BYTES);
    header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4] = kind as u8;
    let header_crc = crc32c::crc32c(&header[..8]);
    header[8..12].copy_from_slice(&header_crc.to_le_bytes());
    header[12..16].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
}

/// Appends a record holding a protobuf message.
pub fn encode_message(kind: Kind, msg: &dyn protobuf::Message, out: &mut Vec<u8>) {
    let payload = msg.write_to_bytes().expect("raft messages encode");
    encode(kind, &payload, out);
}

/// Appends a record holding one index.
pub fn encode_index(kind: Kind, index: u64, out: &mut Vec<u8>) {
    encode(kind, &index.to_le_bytes(), out);
}

/// Appends a SnapshotFile or KeptSnapshotFile record: the data's length
/// and CRC32C, then the snapshot's metadata.
pub fn encode_snapshot_ref(
    kind: Kind,
    metadata: &SnapshotMetadata,
    data: SnapshotRef,
    out: &mut Vec<u8>,
) {
    let start = begin_record(out);
    out.extend_from_slice(&data.len.to_le_bytes());
    out.extend_from_slice(&data.crc.to_le_bytes());
    metadata.write_to_vec(out).expect("raft messages encode");
    finish_record(kind, start, out);
}

/// Where one entry of an Entries record lies, relative to the record's
/// start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntrySpan {
    /// The entry's term.
    pub term: u64,
    /// Offset of its protobuf bytes from the record's start.
    pub offset: usize,
    /// Length of its protobuf bytes.
    pub len: usize,
}

/// Appends an Entries record for consecutive `entries`; returns where each
/// entry's bytes lie, relative to the record's start in `out`. Entries are
/// encoded in place, with no intermediate buffer.
pub fn encode_entries(entries: &[Entry], out: &mut Vec<u8>) -> Vec<EntrySpan> {
    let start = begin_record(out);
    out.extend_from_slice(&entries[0].index.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut spans = Vec::with_capacity(entries.len());
    for e in entries {
        out.extend_from_slice(&e.term.to_le_bytes());
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let at = out.len();
        e.write_to_vec(out).expect("entries encode");
        let len = out.len() - at;
        out[len_at..at].copy_from_slice(&(len as u32).to_le_bytes());
        spans.push(EntrySpan {
            term: e.term,
            offset: at - start,
            len,
        });
    }
    finish_record(Kind::Entries, start, out);
    spans
}

/// A record read back: its kind and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The kind.
    pub kind: Kind,
    /// The payload.
    pub payload: &'a [u8],
}

impl RawRecord<'_> {
    /// Bytes the record takes, header included.
    pub fn size(&self) -> usize {
        RECORD_HEADER_BYTES + self.payload.len()
    }

    fn malformed(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::Payload {
            kind: self.kind,
            reason: reason.into(),
        }
    }

    /// The index of a Truncate, Compact or Sync record.
    pub fn index(&self) -> Result<u64, DecodeError> {
        let bytes: [u8; 8] = self
            .payload
            .try_into()
            .map_err(|_| self.malformed("not 8 bytes"))?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// The first index and the spans of an Entries record's entries.
    pub fn entries(&self) -> Result<(u64, Vec<EntrySpan>), DecodeError> {
        let p = self.payload;
        if p.len() < 12 {
            return Err(self.malformed("shorter than its header"));
        }
        let first = u64::from_le_bytes(p[..8].try_into().unwrap());
        let count = u32::from_le_bytes(p[8..12].try_into().unwrap()) as usize;
        let mut spans = Vec::with_capacity(count.min(p.len() / ENTRY_FRAME_BYTES));
        let mut at = 12;
        for _ in 0..count {
            if p.len() < at + ENTRY_FRAME_BYTES {
                return Err(self.malformed("entry frame cut short"));
            }
            let term = u64::from_le_bytes(p[at..at + 8].try_into().unwrap());
            let len = u32::from_le_bytes(p[at + 8..at + 12].try_into().unwrap()) as usize;
            at += ENTRY_FRAME_BYTES;
            if p.len() < at + len {
                return Err(self.malformed("entry cut short"));
            }
            spans.push(EntrySpan {
                term,
                offset: RECORD_HEADER_BYTES + at,
                len,
            });
            at += len;
        }
        if at != p.len() {
            return Err(self.malformed("bytes after the last entry"));
        }
        Ok((first, spans))
    }

    /// The metadata of a SnapshotFile or KeptSnapshotFile record, and the
    /// reference to its data.
    pub fn snapshot_ref(&self) -> Result<(SnapshotMetadata, SnapshotRef), DecodeError> {
        let p = self.payload;
        if p.len() < 12 {
            return Err(self.malformed("shorter than its header"));
        }
        let len = u64::from_le_bytes(p[..8].try_into().unwrap());
        let crc = u32::from_le_bytes(p[8..12].try_into().unwrap());
        let metadata = SnapshotMetadata::parse_from_bytes(&p[12..])
            .map_err(|e| self.malformed(e.to_string()))?;
        let data = SnapshotRef {
            index: metadata.index,
            term: metadata.term,
            len,
            crc,
        };
        Ok((metadata, data))
    }

    /// The message of a HardState, ConfState or Snapshot record.
    pub fn message<M: protobuf::Message>(&self) -> Result<M, DecodeError> {
        M::parse_from_bytes(self.payload).map_err(|e| self.malformed(e.to_string()))
    }
}

/// Decodes the entry bytes an [`EntrySpan`] points at.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, protobuf::ProtobufError> {
    Entry::parse_from_bytes(bytes)
}

/// Decodes the record at the start of `buf`.
///
/// # Errors
///
/// Whatever keeps `buf` from starting with a valid record.
pub fn decode(buf: &[u8]) -> Result<RawRecord<'_>, DecodeError> {
    if buf.len() < RECORD_HEADER_BYTES {
        return Err(DecodeError::Incomplete {
            needed: RECORD_HEADER_BYTES,
            available: buf.len(),
        });
    }
    let header_crc = u32::from_le_bytes(buf[8..12].try_into().unwrap());
    if crc32c::crc32c(&buf[..8]) != header_crc {
        return Err(DecodeError::HeaderChecksum);
    }
    let len = u32::from_le_bytes(buf[..4].try_into().unwrap());
    let kind = Kind::from_byte(buf[4]).ok_or(DecodeError::Kind(buf[4]))?;
    if len > PAYLOAD_MAX_BYTES {
        return Err(DecodeError::Length(len));
    }
    let end = RECORD_HEADER_BYTES + len as usize;
    if buf.len() < end {
        return Err(DecodeError::Incomplete {
            needed: end,
            available: buf.len(),
        });
    }
    let payload = &buf[RECORD_HEADER_BYTES..end];
    let payload_crc = u32::from_le_bytes(buf[12..16].try_into().unwrap());
    if crc32c::crc32c(payload) != payload_crc {
        return Err(DecodeError::PayloadChecksum);
    }
    Ok(RawRecord { kind, payload })
}

/// Messages a checkpoint holds, in the order they are written.
pub struct Checkpoint<'a> {
    /// The kept snapshot's metadata.
    pub snapshot: &'a SnapshotMetadata,
    /// Its data's file.
    pub snapshot_data: SnapshotRef,
    /// The configuration.
    pub conf_state: &'a ConfState,
    /// The hard state.
    pub hard_state: &'a HardState,
    /// The first index of the log.
    pub first_index: u64,
}

impl Checkpoint<'_> {
    /// Appends the checkpoint records.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_snapshot_ref(
            Kind::KeptSnapshotFile,
            self.snapshot,
            self.snapshot_data,
            out,
        );
        encode_message(Kind::ConfState, self.conf_state, out);
        encode_message(Kind::HardState, self.hard_state, out);
        encode_index(Kind::Compact, self.first_index, out);
    }
}
