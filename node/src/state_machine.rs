//! The replicated state machine: an append-only record log, like one broker
//! partition. A record's offset is its position in the log.
//!
//! Two byte formats live here, both ours and both checked on decode:
//!
//! * an entry's data is one proposal: `proposer u64 | seq u64 | count u32 |
//!   (len u32 | bytes) * count`, all big-endian. `(proposer, seq)` lets the
//!   node that took the client's request find its answer when the entry is
//!   applied, on whichever node raft forwarded it through. The entry's
//!   context is the term the proposer was in (`term u64`): its records
//!   are applied only if the leader appended the entry in that term, so a
//!   proposal lost in an election can be proposed again without being
//!   stored twice (see the Ready loop's `appends`). A Kafka producer's
//!   batch adds its numbers after the term ([`ProducerBatch::put`]), so
//!   a batch the client retried is stored once ([`crate::producers`]).
//! * a snapshot's data is `start u64 | count u64 | (len u32 | bytes) *
//!   count | producers`: the retained records, the offset of the first
//!   and the producers' state ([`Producers::put`]; absent in snapshots
//!   written before it), so a follower that fell behind the compacted log
//!   is rebuilt from it.
//!
//! Like a broker partition, the log keeps the most recent records within
//! a [`Retention`], in records and in bytes: offsets keep counting, older
//! records are dropped. That bounds the memory and the snapshot, which
//! the WAL writes to a file of its own and a leader sends to a follower in
//! chunks (the node's configuration checks that it stays under what a peer
//! puts back together).

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes};

use crate::producers::{Admission, ProducerBatch, Producers, SequenceError};

/// Data that does not parse as this module's formats.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {what}: {reason}")]
pub struct DecodeError {
    what: &'static str,
    reason: String,
}

fn malformed(what: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        what,
        reason: reason.into(),
    }
}

/// One client request, as carried in one raft entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The node that took the request.
    pub proposer: u64,
    /// That node's sequence number for it.
    pub seq: u64,
    /// The records, in order.
    pub records: Vec<Bytes>,
}

impl Proposal {
    /// The entry data for this proposal.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + records_len(&self.records));
        out.put_u64(self.proposer);
        out.put_u64(self.seq);
        out.put_u32(self.records.len() as u32);
        put_records(&mut out, &self.records);
        out
    }

    /// Parses entry data written by [`Proposal::encode`]. The records
    /// share the entry's buffer: applying copies nothing.
    ///
    /// # Errors
    ///
    /// Truncated data, or bytes left over.
    pub fn decode(data: &Bytes) -> Result<Proposal, DecodeError> {
        let mut buf = data.clone();
        let what = "proposal";
        if buf.remaining() < 20 {
            return Err(malformed(
                what,
                format!("{} bytes, header needs 20", data.len()),
            ));
        }
        let proposer = buf.get_u64();
        let seq = buf.get_u64();
        let count = u64::from(buf.get_u32());
        let records = read_records(&mut buf, count, what)?;
        if buf.has_remaining() {
            return Err(malformed(
                what,
                format!("{} trailing bytes", buf.remaining()),
            ));
        }
        Ok(Proposal {
            proposer,
            seq,
            records,
        })
    }

    /// The context to propose an entry with while in `term`, with the
    /// numbers of the producer batch it carries, if any.
    pub fn stamp(term: u64, producer: Option<&ProducerBatch>) -> Vec<u8> {
        let mut context = Vec::with_capacity(8 + ProducerBatch::LEN);
        context.put_u64(term);
        if let Some(producer) = producer {
            producer.put(&mut context);
        }
        context
    }

    /// The producer batch numbers in an entry's context, if any.
    pub fn producer(context: &[u8]) -> Option<ProducerBatch> {
        context.get(8..).and_then(ProducerBatch::parse)
    }

    /// Whether an entry appended in `term` with `context` has its records
    /// applied: only if it is stamped with that term. An entry without a
    /// stamp (from a node older than stamps), or with a context that is no
    /// term, always is: every node decides alike, and a committed entry
    /// never stops the node.
    pub fn in_stamped_term(context: &[u8], term: u64) -> bool {
        let stamp = match context.len() {
            8 => &context[..8],
            n if n == 8 + ProducerBatch::LEN => &context[..8],
            _ => return true,
        };
        u64::from_be_bytes(stamp.try_into().expect("8 bytes")) == term
    }
}

/// Bytes of `records`, each behind its length.
fn records_len<'a>(records: impl IntoIterator<Item = &'a Bytes>) -> usize {
    records.into_iter().map(|r| 4 + r.len()).sum()
}

/// Writes each record behind its 4-byte length.
fn put_records<'a>(out: &mut Vec<u8>, records: impl IntoIterator<Item = &'a Bytes>) {
    for r in records {
        out.put_u32(r.len() as u32);
        out.put_slice(r);
    }
}

/// Reads `count` length-prefixed records without trusting `count` for the
/// allocation: a corrupt count fails on the data, not on memory.
fn read_records(
    buf: &mut Bytes,
    count: u64,
    what: &'static str,
) -> Result<Vec<Bytes>, DecodeError> {
    let mut records = Vec::with_capacity(count.min(buf.remaining() as u64 / 4) as usize);
    for i in 0..count {
        if buf.remaining() < 4 {
            return Err(malformed(what, format!("record {i} of {count}: no length")));
        }
        let len = buf.get_u32() as usize;
        if buf.remaining() < len {
            return Err(malformed(
                what,
                format!(
                    "record {i} of {count}: {len} bytes, {} left",
                    buf.remaining()
                ),
            ));
        }
        records.push(buf.split_to(len));
    }
    Ok(records)
}

/// How much of the log is kept: the newest records, at most `records` of
/// them and at most `bytes` of record data, but always the newest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records kept at most.
    pub records: usize,
    /// Bytes of record data kept at most.
    pub bytes: usize,
}

impl Retention {
    /// The largest snapshot a log under this retention produces, given
    /// that no record is longer than `max_record`.
    pub fn max_snapshot_bytes(&self, max_record: usize) -> usize {
        16 + self.bytes + max_record + 4 * (self.records + 1) + Producers::MAX_BYTES
    }
}

/// The record log.
///
/// Invariant: `records` holds the records at offsets `start..start +
/// records.len()`, the newest of those appended by the entries applied up
/// to `applied` within `retention`, in log order, and `bytes` is their
/// total length; the same applied index gives the same offsets, records
/// and producers on every node. A clone shares the records' bytes.
#[derive(Debug, Clone)]
pub struct RecordLog {
    start: u64,
    records: VecDeque<Bytes>,
    bytes: usize,
    applied: u64,
    retention: Retention,
    producers: Producers,
}

impl RecordLog {
    /// An empty log.
    pub fn new(retention: Retention) -> RecordLog {
        RecordLog {
            start: 0,
            records: VecDeque::new(),
            bytes: 0,
            applied: 0,
            retention,
            producers: Producers::default(),
        }
    }

    /// Appends a proposal's records at raft index `index`; returns the
    /// offset of the first.
    pub fn apply(&mut self, index: u64, records: &[Bytes]) -> u64 {
        let first = self.end();
        self.records.extend(records.iter().cloned());
        self.bytes += records.iter().map(Bytes::len).sum::<usize>();
        self.trim();
        self.applied = index;
        first
    }

    /// Appends a Kafka producer's batch at raft index `index`, unless it
    /// is a retry of a batch already stored; returns the offset of its
    /// first record either way.
    ///
    /// # Errors
    ///
    /// The batch is out of sequence or from a fenced epoch; nothing is
    /// stored.
    pub fn apply_batch(
        &mut self,
        index: u64,
        producer: &ProducerBatch,
        records: &[Bytes],
    ) -> Result<u64, SequenceError> {
        let admission = self.producers.admit(producer, records.len());
        match admission {
            Ok(Admission::Store) => {
                let offset = self.apply(index, records);
                self.producers
                    .stored(producer, records.len(), offset, index);
                Ok(offset)
            }
            Ok(Admission::Duplicate(offset)) => {
                self.skip(index);
                Ok(offset)
            }
            Err(e) => {
                self.skip(index);
                Err(e)
            }
        }
    }

    fn trim(&mut self) {
        while self.records.len() > 1
            && (self.records.len() > self.retention.records || self.bytes > self.retention.bytes)
        {
            let dropped = self.records.pop_front().expect("more than one record");
            self.bytes -= dropped.len();
            self.start += 1;
        }
    }

    /// Moves the applied index over an entry that carries no records (an
    /// empty entry after an election, a configuration change).
    pub fn skip(&mut self, index: u64) {
        self.applied = index;
    }

    /// The raft index of the last applied entry.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The offset of the oldest record kept.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The offset the next record will get: records ever appended.
    pub fn end(&self) -> u64 {
        self.start + self.records.len() as u64
    }

    /// Up to `max` records from offset `from` (from the oldest kept if
    /// `from` is older), with the offset of the first.
    pub fn read(&self, from: u64, max: usize) -> (u64, Vec<Bytes>) {
        let first = from.clamp(self.start, self.end());
        let skip = (first - self.start) as usize;
        (
            first,
            self.records.iter().skip(skip).take(max).cloned().collect(),
        )
    }

    /// The snapshot data of the log as it stands.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + records_len(&self.records));
        out.put_u64(self.start);
        out.put_u64(self.records.len() as u64);
        put_records(&mut out, &self.records);
        self.producers.put(&mut out);
        out
    }

    /// Replaces the log with a snapshot's data taken at raft index `index`.
    ///
    /// # Errors
    ///
    /// Data not written by [`RecordLog::snapshot`]; the log is unchanged.
    pub fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), DecodeError> {
        let what = "snapshot";
        let mut restored = RecordLog::new(self.retention);
        restored.applied = index;
        // The empty data of the snapshot a new cluster starts from.
        if !data.is_empty() {
            let mut buf = Bytes::copy_from_slice(data);
            if buf.remaining() < 16 {
                return Err(malformed(
                    what,
                    format!("{} bytes, header needs 16", data.len()),
                ));
            }
            restored.start = buf.get_u64();
            let count = buf.get_u64();
            restored.records = read_records(&mut buf, count, what)?.into();
            restored.bytes = restored.records.iter().map(Bytes::len).sum();
            if buf.has_remaining() {
                restored.producers =
                    Producers::parse(&mut buf).map_err(|reason| malformed(what, reason))?;
            }
            if buf.has_remaining() {
                return Err(malformed(
                    what,
                    format!("{} trailing bytes", buf.remaining()),
                ));
            }
            restored.trim();
        }
        *self = restored;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_appended_in_their_stamped_term_are_applied() {
        assert!(Proposal::in_stamped_term(&Proposal::stamp(7, None), 7));
        assert!(!Proposal::in_stamped_term(&Proposal::stamp(7, None), 8));
        assert!(!Proposal::in_stamped_term(&Proposal::stamp(8, None), 7));
        let producer = ProducerBatch {
            id: 4,
            epoch: 0,
            first_sequence: 9,
        };
        let stamped = Proposal::stamp(7, Some(&producer));
        assert!(Proposal::in_stamped_term(&stamped, 7));
        assert!(!Proposal::in_stamped_term(&stamped, 8));
        assert_eq!(Proposal::producer(&stamped), Some(producer));
        assert_eq!(Proposal::producer(&Proposal::stamp(7, None)), None);
        assert!(Proposal::in_stamped_term(&[], 7));
        assert!(Proposal::in_stamped_term(&[0; 7], 7));
    }

    fn keep_records(n: usize) -> Retention {
        Retention {
            records: n,
            bytes: usize::MAX,
        }
    }

    fn proposal() -> Proposal {
        Proposal {
            proposer: 2,
            seq: 9,
            records: vec![
                Bytes::from_static(b"a"),
                Bytes::new(),
                Bytes::from(vec![7; 300]),
            ],
        }
    }

    #[test]
    fn proposal_round_trips() {
        assert_eq!(
            Proposal::decode(&proposal().encode().into()),
            Ok(proposal())
        );
    }

    #[test]
    fn every_truncation_of_a_proposal_is_an_error() {
        let bytes = Bytes::from(proposal().encode());
        for len in 0..bytes.len() {
            assert!(
                Proposal::decode(&bytes.slice(..len)).is_err(),
                "length {len}"
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(Proposal::decode(&longer.into()).is_err());
    }

    #[test]
    fn a_huge_record_count_fails_without_allocating_it() {
        let mut bytes = vec![0; 16];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Proposal::decode(&bytes.into()).is_err());
        let mut snap = vec![0; 8];
        snap.extend_from_slice(&u64::MAX.to_be_bytes());
        snap.extend_from_slice(&[0, 0, 0, 1, 5]);
        assert!(RecordLog::new(keep_records(10)).restore(3, &snap).is_err());
    }

    #[test]
    fn snapshot_restores_the_same_records_and_offsets() {
        let mut log = RecordLog::new(keep_records(10));
        assert_eq!(log.apply(5, &proposal().records), 0);
        assert_eq!(log.apply(6, &proposal().records), 3);
        let mut restored = RecordLog::new(keep_records(10));
        restored.restore(6, &log.snapshot()).unwrap();
        assert_eq!(restored.read(0, 100), log.read(0, 100));
        assert_eq!((restored.applied(), restored.end()), (6, 6));
        assert_eq!(restored.read(4, 1), (4, vec![Bytes::new()]));
        assert_eq!(restored.read(9, 5), (6, vec![]));
    }

    #[test]
    fn a_retried_batch_is_stored_once_and_snapshots_keep_the_producers() {
        let mut log = RecordLog::new(keep_records(10));
        let producer = ProducerBatch {
            id: 1,
            epoch: 0,
            first_sequence: 0,
        };
        let records = proposal().records;
        assert_eq!(log.apply_batch(1, &producer, &records), Ok(0));
        let mut restored = RecordLog::new(keep_records(10));
        restored.restore(1, &log.snapshot()).unwrap();
        for log in [&mut log, &mut restored] {
            assert_eq!(log.apply_batch(2, &producer, &records), Ok(0));
            assert_eq!((log.applied(), log.end()), (2, 3));
        }
        let mut old_format = RecordLog::new(keep_records(10)).snapshot();
        old_format.truncate(16);
        assert!(RecordLog::new(keep_records(10))
            .restore(1, &old_format)
            .is_ok());
    }

    #[test]
    fn retention_drops_the_oldest_records_and_keeps_offsets() {
        let mut log = RecordLog::new(keep_records(4));
        assert_eq!(log.apply(1, &proposal().records), 0);
        assert_eq!(log.apply(2, &proposal().records), 3);
        assert_eq!((log.start(), log.end()), (2, 6));
        let (first, records) = log.read(0, 10);
        assert_eq!((first, records.len()), (2, 4));
        let mut smaller = RecordLog::new(keep_records(2));
        smaller.restore(2, &log.snapshot()).unwrap();
        assert_eq!(smaller.read(0, 10), log.read(4, 10));
    }

    #[test]
    fn retention_in_bytes_bounds_the_snapshot_and_keeps_the_newest_record() {
        let retention = Retention {
            records: 1_000,
            bytes: 1_000,
        };
        let mut log = RecordLog::new(retention);
        for i in 0..100 {
            log.apply(i + 1, &[Bytes::from(vec![1; 300])]);
            assert!(log.snapshot().len() <= retention.max_snapshot_bytes(300));
        }
        assert_eq!((log.start(), log.end()), (97, 100));
        log.apply(101, &[Bytes::from(vec![2; 5_000])]);
        assert_eq!(
            (log.start(), log.end()),
            (100, 101),
            "the newest record stays"
        );
        assert!(log.snapshot().len() <= retention.max_snapshot_bytes(5_000));
        let mut restored = RecordLog::new(retention);
        restored.restore(101, &log.snapshot()).unwrap();
        restored.apply(102, &[Bytes::from(vec![3; 10])]);
        assert_eq!((restored.start(), restored.end()), (101, 102));
    }
}
