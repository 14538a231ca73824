//! Idempotent producers, as Kafka defines them: a producer numbers its
//! batches, and the log stores a batch only if it follows the last one
//! stored from that producer. A batch retried after a lost answer carries
//! the same numbers and is answered with the offset it was first stored
//! at, without being stored again.
//!
//! The state is part of the replicated state machine: every node applies
//! the same batches in the same order and reaches the same state, and
//! snapshots carry it, so a node rebuilt from one deduplicates as the
//! others do.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Buf, BufMut};

/// Batches remembered per producer to answer a retry with, as a Kafka
/// broker remembers (a producer has at most 5 requests in flight).
pub const BATCHES_REMEMBERED: usize = 5;

/// Producers remembered at most; past that, the one that wrote least
/// recently is forgotten, so a client creating producers cannot grow the
/// state without bound. A producer the log does not know must start at
/// sequence 0, so a forgotten one's next batch is refused out of sequence
/// (the client starts a new producer), never stored out of order.
pub const PRODUCERS_REMEMBERED: usize = 10_000;

/// Who sent a batch and how it is numbered: Kafka's producer id, epoch and
/// base sequence. Entries carry it beside the term stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The producer id (`InitProducerId` hands them out).
    pub id: i64,
    /// The producer's epoch.
    pub epoch: i16,
    /// The sequence number of the batch's first record.
    pub first_sequence: i32,
}

impl ProducerBatch {
    /// Bytes of [`ProducerBatch::put`].
    pub const LEN: usize = 14;

    /// Writes the batch's numbers, big-endian.
    pub fn put(&self, out: &mut Vec<u8>) {
        out.put_i64(self.id);
        out.put_i16(self.epoch);
        out.put_i32(self.first_sequence);
    }

    /// Reads what [`ProducerBatch::put`] wrote; `None` unless `bytes` is
    /// exactly that long.
    pub fn parse(mut bytes: &[u8]) -> Option<ProducerBatch> {
        (bytes.len() == Self::LEN).then(|| ProducerBatch {
            id: bytes.get_i64(),
            epoch: bytes.get_i16(),
            first_sequence: bytes.get_i32(),
        })
    }

    /// The sequence number of the last of `count` records.
    fn last_sequence(&self, count: usize) -> i32 {
        next_sequence(self.first_sequence, count.saturating_sub(1))
    }
}

/// The sequence `n` records after `sequence`: Kafka's sequences wrap from
/// `i32::MAX` to 0.
fn next_sequence(sequence: i32, n: usize) -> i32 {
    ((i64::from(sequence) + n as i64) % (i64::from(i32::MAX) + 1)) as i32
}

/// Why a batch of an idempotent producer is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// The producer has moved to a later epoch: this one is fenced.
    #[error("producer {id} epoch {epoch} is fenced by epoch {current}")]
    FencedEpoch {
        /// The producer.
        id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The epoch stored.
        current: i16,
    },
    /// The batch does not follow the last one stored.
    #[error("producer {id}: sequence {got}, expected {expected}")]
    OutOfOrder {
        /// The producer.
        id: i64,
        /// The batch's first sequence.
        got: i32,
        /// The sequence that follows the last batch stored.
        expected: i32,
    },
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Store it.
    Store,
    /// A retry of a batch stored at this offset: answer with it, store
    /// nothing.
    Duplicate(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredBatch {
    first: i32,
    last: i32,
    offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Producer {
    epoch: i16,
    /// The raft index of its last stored batch, to forget the least
    /// recent producer first.
    last_index: u64,
    /// Its last batches, oldest first; never empty.
    batches: VecDeque<StoredBatch>,
}

/// The idempotence state of every producer that stored a batch.
///
/// Invariant: each producer's `batches` are the last (at most
/// [`BATCHES_REMEMBERED`]) stored in its current epoch, in order; at most
/// [`PRODUCERS_REMEMBERED`] producers are kept; `by_recency` maps each
/// producer's `last_index` to its id (one entry holds one batch, so no
/// two producers share one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Producers {
    by_id: BTreeMap<i64, Producer>,
    by_recency: BTreeMap<u64, i64>,
}

impl Producers {
    /// The most bytes [`Producers::put`] writes.
    pub const MAX_BYTES: usize = 4 + PRODUCERS_REMEMBERED * (19 + 16 * BATCHES_REMEMBERED);

    /// Whether `batch` of `count` records is stored, is a retry, or is
    /// refused. Changes nothing: [`Producers::stored`] records a stored one.
    ///
    /// # Errors
    ///
    /// [`SequenceError`]: a fenced epoch or a gap in the sequence.
    pub fn admit(&self, batch: &ProducerBatch, count: usize) -> Result<Admission, SequenceError> {
        let Some(producer) = self.by_id.get(&batch.id) else {
            return starting(batch);
        };
        if batch.epoch < producer.epoch {
            return Err(SequenceError::FencedEpoch {
                id: batch.id,
                epoch: batch.epoch,
                current: producer.epoch,
            });
        }
        if batch.epoch > producer.epoch {
            return starting(batch);
        }
        let last = batch.last_sequence(count);
        if let Some(stored) = producer
            .batches
            .iter()
            .find(|b| b.first == batch.first_sequence && b.last == last)
        {
            return Ok(Admission::Duplicate(stored.offset));
        }
        let latest = producer.batches.back().expect("never empty");
        let expected = next_sequence(latest.last, 1);
        if batch.first_sequence == expected {
            Ok(Admission::Store)
        } else {
            Err(SequenceError::OutOfOrder {
                id: batch.id,
                got: batch.first_sequence,
                expected,
            })
        }
    }

    /// Records that `batch` of `count` records was stored at `offset` by
    /// the entry at raft index `index`.
    pub fn stored(&mut self, batch: &ProducerBatch, count: usize, offset: u64, index: u64) {
        let producer = self.by_id.entry(batch.id).or_insert_with(|| Producer {
            epoch: batch.epoch,
            last_index: index,
            batches: VecDeque::new(),
        });
        if batch.epoch != producer.epoch {
            producer.epoch = batch.epoch;
            producer.batches.clear();
        }
        self.by_recency.remove(&producer.last_index);
        self.by_recency.insert(index, batch.id);
        producer.last_index = index;
        producer.batches.push_back(StoredBatch {
            first: batch.first_sequence,
            last: batch.last_sequence(count),
            offset,
        });
        if producer.batches.len() > BATCHES_REMEMBERED {
            producer.batches.pop_front();
        }
        if self.by_id.len() > PRODUCERS_REMEMBERED {
            let (_, least_recent) = self.by_recency.pop_first().expect("one per producer");
            self.by_id.remove(&least_recent);
        }
    }

    /// Appends the state to a snapshot: `count u32 | (id i64 | epoch i16 |
    /// last_index u64 | batches u8 | (first i32 | last i32 | offset u64) *
    /// batches) * count`.
    pub fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.by_id.len() as u32);
        for (&id, p) in &self.by_id {
            out.put_i64(id);
            out.put_i16(p.epoch);
            out.put_u64(p.last_index);
            out.put_u8(p.batches.len() as u8);
            for b in &p.batches {
                out.put_i32(b.first);
                out.put_i32(b.last);
                out.put_u64(b.offset);
            }
        }
    }

    /// Reads what [`Producers::put`] wrote.
    ///
    /// # Errors
    ///
    /// Why the bytes are not that.
    pub fn parse(buf: &mut impl Buf) -> Result<Producers, String> {
        let mut producers = Producers::default();
        let count = read(buf, 4, |b| b.get_u32())?;
        for i in 0..count {
            let (id, epoch, last_index, n) = read(buf, 19, |b| {
                (b.get_i64(), b.get_i16(), b.get_u64(), b.get_u8())
            })
            .map_err(|e| format!("producer {i}: {e}"))?;
            if n == 0 || usize::from(n) > BATCHES_REMEMBERED {
                return Err(format!("producer {id}: {n} batches"));
            }
            let mut batches = VecDeque::with_capacity(n.into());
            for _ in 0..n {
                let (first, last, offset) =
                    read(buf, 16, |b| (b.get_i32(), b.get_i32(), b.get_u64()))
                        .map_err(|e| format!("producer {id}: {e}"))?;
                batches.push_back(StoredBatch {
                    first,
                    last,
                    offset,
                });
            }
            let producer = Producer {
                epoch,
                last_index,
                batches,
            };
            if producers.by_id.insert(id, producer).is_some() {
                return Err(format!("producer {id} twice"));
            }
            if producers.by_recency.insert(last_index, id).is_some() {
                return Err(format!("two producers last wrote at index {last_index}"));
            }
        }
        if producers.by_id.len() > PRODUCERS_REMEMBERED {
            return Err(format!("{} producers", producers.by_id.len()));
        }
        Ok(producers)
    }
}

/// The first batch of a producer, or of its new epoch: it starts at
/// sequence 0.
fn starting(batch: &ProducerBatch) -> Result<Admission, SequenceError> {
    match batch.first_sequence {
        0 => Ok(Admission::Store),
        got => Err(SequenceError::OutOfOrder {
            id: batch.id,
            got,
            expected: 0,
        }),
    }
}

fn read<B: Buf, T>(buf: &mut B, len: usize, get: impl FnOnce(&mut B) -> T) -> Result<T, String> {
    if buf.remaining() < len {
        return Err(format!("{} bytes left, {len} needed", buf.remaining()));
    }
    Ok(get(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, epoch: i16, first_sequence: i32) -> ProducerBatch {
        ProducerBatch {
            id,
            epoch,
            first_sequence,
        }
    }

    #[test]
    fn a_retried_batch_is_answered_with_its_first_offset_and_a_gap_is_refused() {
        let mut producers = Producers::default();
        assert_eq!(producers.admit(&batch(7, 0, 0), 3), Ok(Admission::Store));
        producers.stored(&batch(7, 0, 0), 3, 100, 5);
        assert_eq!(
            producers.admit(&batch(7, 0, 0), 3),
            Ok(Admission::Duplicate(100))
        );
        assert_eq!(producers.admit(&batch(7, 0, 3), 2), Ok(Admission::Store));
        producers.stored(&batch(7, 0, 3), 2, 103, 6);
        assert_eq!(
            producers.admit(&batch(7, 0, 0), 3),
            Ok(Admission::Duplicate(100))
        );
        assert_eq!(
            producers.admit(&batch(7, 0, 6), 1),
            Err(SequenceError::OutOfOrder {
                id: 7,
                got: 6,
                expected: 5
            })
        );
        assert_eq!(producers.admit(&batch(8, 0, 0), 1), Ok(Admission::Store));
        assert!(
            producers.admit(&batch(8, 0, 40), 1).is_err(),
            "an unknown producer starts at 0"
        );
    }

    #[test]
    fn a_later_epoch_starts_at_zero_and_fences_the_earlier_one() {
        let mut producers = Producers::default();
        producers.stored(&batch(7, 1, 0), 1, 0, 1);
        assert!(matches!(
            producers.admit(&batch(7, 2, 1), 1),
            Err(SequenceError::OutOfOrder { expected: 0, .. })
        ));
        producers.stored(&batch(7, 2, 0), 1, 1, 2);
        assert_eq!(
            producers.admit(&batch(7, 1, 1), 1),
            Err(SequenceError::FencedEpoch {
                id: 7,
                epoch: 1,
                current: 2
            })
        );
    }

    #[test]
    fn sequences_wrap_and_only_the_last_five_batches_are_remembered() {
        let mut producers = Producers::default();
        producers.stored(&batch(1, 0, i32::MAX - 1), 2, 0, 1);
        assert_eq!(producers.admit(&batch(1, 0, 0), 1), Ok(Admission::Store));
        for (i, first) in (0..6).enumerate() {
            producers.stored(&batch(1, 0, first), 1, 2 + i as u64, 2 + i as u64);
        }
        assert_eq!(
            producers.admit(&batch(1, 0, 1), 1),
            Ok(Admission::Duplicate(3))
        );
        assert!(producers.admit(&batch(1, 0, 0), 1).is_err(), "forgotten");
    }

    #[test]
    fn the_least_recent_producer_is_forgotten_past_the_bound() {
        let mut producers = Producers::default();
        for id in 0..=PRODUCERS_REMEMBERED as i64 {
            producers.stored(&batch(id, 0, 0), 1, id as u64, id as u64 + 1);
        }
        assert_eq!(producers.by_id.len(), PRODUCERS_REMEMBERED);
        assert_eq!(producers.by_recency.len(), PRODUCERS_REMEMBERED);
        assert!(!producers.by_id.contains_key(&0));
        assert!(producers.by_id.contains_key(&1));
        // Producer 1 writes again: producer 2 is now the least recent.
        let next = PRODUCERS_REMEMBERED as u64 + 2;
        producers.stored(&batch(1, 0, 1), 1, next, next);
        producers.stored(&batch(-1, 0, 0), 1, next + 1, next + 1);
        assert!(producers.by_id.contains_key(&1));
        assert!(!producers.by_id.contains_key(&2));
        let mut full = Producers::default();
        for id in 0..PRODUCERS_REMEMBERED as i64 {
            for first in 0..BATCHES_REMEMBERED as i32 {
                let index = (id as u64) * 10 + first as u64;
                full.stored(&batch(id, 0, first), 1, index, index);
            }
        }
        let mut bytes = Vec::new();
        full.put(&mut bytes);
        assert_eq!(bytes.len(), Producers::MAX_BYTES);
        assert_eq!(Producers::parse(&mut bytes.as_slice()), Ok(full));
    }

    #[test]
    fn the_state_round_trips_and_every_truncation_is_an_error() {
        let mut producers = Producers::default();
        producers.stored(&batch(1, 0, 0), 2, 0, 1);
        producers.stored(&batch(1, 0, 2), 2, 2, 2);
        producers.stored(&batch(-5, 3, 9), 1, 4, 3);
        let mut bytes = Vec::new();
        producers.put(&mut bytes);
        assert_eq!(Producers::parse(&mut bytes.as_slice()), Ok(producers));
        for len in 0..bytes.len() {
            assert!(
                Producers::parse(&mut &bytes[..len]).is_err(),
                "length {len}"
            );
        }
        let parsed = ProducerBatch::parse(&{
            let mut out = Vec::new();
            batch(3, 4, 5).put(&mut out);
            out
        });
        assert_eq!(parsed, Some(batch(3, 4, 5)));
        assert_eq!(ProducerBatch::parse(&[0; 13]), None);
    }
}
