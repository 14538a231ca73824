//! Helpers shared by the WAL's tests.

#![allow(dead_code)]

use raft_proto::eraftpb::Entry;

/// The bytes entry `index` of `term` carries in tests: derived from both,
/// so a wrong or stale entry never compares equal.
pub fn data(index: u64, term: u64, bytes: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(bytes);
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ term;
    while d.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d.extend_from_slice(&x.to_le_bytes());
    }
    d.truncate(bytes);
    d
}

/// Entries `first..=last` at `term`, each with its own data.
pub fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last)
        .map(|index| Entry {
            index,
            term,
            data: data(index, term, 64).into(),
            ..Default::default()
        })
        .collect()
}
