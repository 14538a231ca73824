//! The simulated disk under each node: a raft log store whose writes stay
//! volatile until the node syncs.
//!
//! Fault model (after FoundationDB's simulator): a write lands in the
//! volatile state at once and is durable only after [`Disk::sync`]. A crash
//! keeps the durable state; with a torn write, a prefix of the entries
//! appended since the last sync survives too (never the hard state). The
//! disk also lets faults do what a real deployment's storage can do behind
//! raft's back: entries written outside the Ready loop, a tail that is only
//! recovered after `RawNode::new`, and (the negative control) overwrites
//! that leave a stale tail behind.
//!
//! Every entry carries a chain hash over the log up to it
//! ([`chain`]), so checkers compare whole log prefixes in O(1).

use std::cell::{Ref, RefCell, RefMut};
use std::rc::Rc;

use protobuf::Message as _;
use raft_proto::eraftpb::{ConfState, Entry, HardState, Snapshot};

/// The chain hash of a log prefix ending in an entry of `term` with `data`,
/// given the chain hash of the prefix before it.
pub fn chain(prev: u64, term: u64, data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(
        data,
        prev.rotate_left(17) ^ term.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    )
}

/// Why a read from the disk fails; the engine adapter maps these to each
/// engine's `StorageError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The index is at or below the snapshot.
    Compacted,
    /// The index is past the last entry.
    Unavailable,
    /// The snapshot asked for is newer than the one on disk.
    SnapshotTemporarilyUnavailable,
}

/// How an append treats the entries after the ones it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Entries past the written ones are dropped (raft's Storage contract).
    Truncate,
    /// Entries past the written ones stay (the seed project's store): a
    /// negative control no engine can make safe.
    StaleTail,
}

/// One copy of everything a node's storage holds.
///
/// Invariant: `entries[i].index == snapshot_index + 1 + i` and `chains[i]`
/// is the chain hash of the log up to `entries[i]`; `conf_states` is sorted
/// by index and its first element is at or below `snapshot_index`.
#[derive(Debug, Clone, Default)]
struct LogState {
    hard_state: HardState,
    /// `(index, conf state)` for the snapshot and every applied
    /// configuration change after it.
    conf_states: Vec<(u64, ConfState)>,
    snapshot_index: u64,
    snapshot_term: u64,
    snapshot_chain: u64,
    entries: Vec<Entry>,
    chains: Vec<u64>,
}

impl LogState {
    fn last_index(&self) -> u64 {
        self.snapshot_index + self.entries.len() as u64
    }

    fn position(&self, index: u64) -> usize {
        (index - self.snapshot_index - 1) as usize
    }

    fn chain_before(&self, index: u64) -> u64 {
        if index == self.snapshot_index + 1 {
            self.snapshot_chain
        } else {
            self.chains[self.position(index - 1)]
        }
    }

    fn truncate_after(&mut self, index: u64) {
        let keep = (index - self.snapshot_index) as usize;
        self.entries.truncate(keep);
        self.chains.truncate(keep);
    }

    /// Recomputes the chain hashes from `index` to the end.
    fn rechain_from(&mut self, index: u64) {
        let mut prev = self.chain_before(index);
        self.chains.truncate(self.position(index));
        for e in &self.entries[self.position(index)..] {
            prev = chain(prev, e.term, &e.data);
            self.chains.push(prev);
        }
    }

    /// The configuration in force at `index`.
    fn conf_state_at(&self, index: u64) -> &ConfState {
        let at = self.conf_states.partition_point(|(i, _)| *i <= index);
        &self.conf_states[at.max(1) - 1].1
    }

    /// Drops every entry up to `index`, which becomes the snapshot point.
    fn compact_to(&mut self, index: u64) {
        let conf = self.conf_state_at(index).clone();
        self.conf_states.retain(|(i, _)| *i > index);
        self.conf_states.insert(0, (index, conf));
        let pos = self.position(index);
        self.snapshot_term = self.entries[pos].term;
        self.snapshot_chain = self.chains[pos];
        self.entries.drain(..=pos);
        self.chains.drain(..=pos);
        self.snapshot_index = index;
    }
}

/// A node's disk. Shared between the node's `RawNode` (through
/// [`SimStorage`]) and the world that crashes and inspects it.
#[derive(Debug)]
pub struct Disk {
    /// What reads see: every write, synced or not.
    state: LogState,
    /// The hard state as of the last sync.
    durable_hard_state: HardState,
    /// Entries up to here are durable, unless `backup` holds the durable
    /// state instead.
    durable_last: u64,
    /// The durable state, saved at the first write since the last sync that
    /// destroys durable data (an overwrite, a snapshot).
    backup: Option<LogState>,
    mode: WriteMode,
    /// Durable entries a restarted node has not recovered yet.
    hidden_tail: Vec<Entry>,
    /// The first place a write left entry terms decreasing, if any.
    term_regression: Option<String>,
}

impl Disk {
    fn new(voters: Vec<u64>, mode: WriteMode) -> Disk {
        let state = LogState {
            conf_states: vec![(
                0,
                ConfState {
                    voters,
                    ..Default::default()
                },
            )],
            ..Default::default()
        };
        Disk {
            state,
            durable_hard_state: HardState::default(),
            durable_last: 0,
            backup: None,
            mode,
            hidden_tail: Vec::new(),
            term_regression: None,
        }
    }

    /// The index of the first entry.
    pub fn first_index(&self) -> u64 {
        self.state.snapshot_index + 1
    }

    /// The index of the last entry, or of the snapshot if there is none.
    pub fn last_index(&self) -> u64 {
        self.state.last_index()
    }

    /// The snapshot point's index.
    pub fn snapshot_index(&self) -> u64 {
        self.state.snapshot_index
    }

    /// The hard state as written.
    pub fn hard_state(&self) -> &HardState {
        &self.state.hard_state
    }

    /// The term at `index`, from the snapshot point to the last entry.
    pub fn term(&self, index: u64) -> Result<u64, ReadError> {
        if index == self.state.snapshot_index {
            return Ok(self.state.snapshot_term);
        }
        if index < self.state.snapshot_index {
            return Err(ReadError::Compacted);
        }
        if index > self.last_index() {
            return Err(ReadError::Unavailable);
        }
        Ok(self.state.entries[self.state.position(index)].term)
    }

    /// The chain hash of the log up to `index`, from the snapshot point to
    /// the last entry.
    pub fn chain_at(&self, index: u64) -> Option<u64> {
        if index == self.state.snapshot_index {
            Some(self.state.snapshot_chain)
        } else if index < self.state.snapshot_index || index > self.last_index() {
            None
        } else {
            Some(self.state.chains[self.state.position(index)])
        }
    }

    /// The entries in `[low, high)`, at least one, at most `max_size` bytes
    /// after the first (raft's `limit_size`).
    pub fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> Result<Vec<Entry>, ReadError> {
        if low <= self.state.snapshot_index {
            return Err(ReadError::Compacted);
        }
        assert!(
            high <= self.last_index() + 1,
            "disk: entries [{low}, {high}) asked past last index {}",
            self.last_index()
        );
        let slice = &self.state.entries[self.state.position(low)..self.state.position(high)];
        let mut size = 0u64;
        let limit = max_size.unwrap_or(u64::MAX);
        let taken = slice
            .iter()
            .enumerate()
            .take_while(|(i, e)| {
                size += u64::from(e.compute_size());
                *i == 0 || size <= limit
            })
            .count();
        Ok(slice[..taken].to_vec())
    }

    /// The snapshot on disk, if it is at least `request_index`.
    pub fn snapshot(&self, request_index: u64) -> Result<Snapshot, ReadError> {
        if self.state.snapshot_index < request_index {
            return Err(ReadError::SnapshotTemporarilyUnavailable);
        }
        let mut snap = Snapshot {
            data: self.state.snapshot_chain.to_le_bytes().to_vec().into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = self.state.snapshot_index;
        meta.term = self.state.snapshot_term;
        meta.set_conf_state(self.state.conf_state_at(self.state.snapshot_index).clone());
        Ok(snap)
    }

    /// The hard state a restarting node reads, and the configuration at its
    /// snapshot: the node applies the committed entries after it again,
    /// configuration changes included.
    pub fn initial_state(&self) -> (HardState, ConfState) {
        let conf = self.state.conf_state_at(self.state.snapshot_index);
        (self.state.hard_state.clone(), conf.clone())
    }

    /// The latest configuration applied.
    pub fn conf_state(&self) -> &ConfState {
        &self
            .state
            .conf_states
            .last()
            .expect("a base configuration")
            .1
    }

    /// Records the configuration applied at `index` (replacing any recorded
    /// at or after it, as a restarted node applies them again).
    pub fn set_conf_state(&mut self, index: u64, conf: ConfState) {
        self.state.conf_states.retain(|(i, _)| *i < index);
        self.state.conf_states.push((index, conf));
    }

    /// Saves the durable state before a write destroys part of it.
    fn save_durable(&mut self) {
        if self.backup.is_none() {
            let mut durable = self.state.clone();
            durable.truncate_after(self.durable_last.max(durable.snapshot_index));
            durable.hard_state = self.durable_hard_state.clone();
            self.backup = Some(durable);
        }
    }

    /// Writes entries as the Ready loop does: `ents` replace whatever the
    /// log holds from their first index on (in [`WriteMode::StaleTail`], only
    /// the entries they overlap).
    ///
    /// # Panics
    ///
    /// If `ents` start at or below the snapshot, or past the last entry + 1:
    /// raft never asks for either.
    pub fn append(&mut self, ents: Vec<Entry>) {
        let Some(first) = ents.first().map(|e| e.index) else {
            return;
        };
        assert!(
            first > self.state.snapshot_index && first <= self.last_index() + 1,
            "disk: append at {first} outside [{}, {}]",
            self.first_index(),
            self.last_index() + 1
        );
        if first <= self.durable_last {
            self.save_durable();
        }
        let end = first + ents.len() as u64;
        if self.mode == WriteMode::StaleTail && end <= self.last_index() {
            let pos = self.state.position(first);
            let len = ents.len();
            self.state.entries.splice(pos..pos + len, ents);
        } else {
            self.state.truncate_after(first - 1);
            self.state.entries.extend(ents);
        }
        self.state.rechain_from(first);
        self.check_terms_from(first);
    }

    fn check_terms_from(&mut self, first: u64) {
        if self.term_regression.is_some() {
            return;
        }
        let mut prev = self.term(first - 1).unwrap_or(0);
        for e in &self.state.entries[self.state.position(first)..] {
            if e.term < prev {
                self.term_regression = Some(format!(
                    "entry {} has term {} after term {}",
                    e.index, e.term, prev
                ));
                return;
            }
            prev = e.term;
        }
    }

    /// The first place a write left entry terms decreasing.
    pub fn term_regression(&self) -> Option<&str> {
        self.term_regression.as_deref()
    }

    /// Writes the hard state (volatile until synced).
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.state.hard_state = hs;
    }

    /// Updates the commit index in the hard state.
    pub fn set_commit(&mut self, commit: u64) {
        self.state.hard_state.commit = commit;
    }

    /// Replaces the log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) {
        self.save_durable();
        let meta = snap.get_metadata();
        let state = &mut self.state;
        state.entries.clear();
        state.chains.clear();
        state.snapshot_index = meta.index;
        state.snapshot_term = meta.term;
        state.snapshot_chain = snapshot_chain(snap);
        state.conf_states = vec![(meta.index, meta.get_conf_state().clone())];
        state.hard_state.commit = state.hard_state.commit.max(meta.index);
        state.hard_state.term = state.hard_state.term.max(meta.term);
    }

    /// Makes every write so far durable.
    pub fn sync(&mut self) {
        self.backup = None;
        self.durable_last = self.last_index();
        self.durable_hard_state = self.state.hard_state.clone();
    }

    /// Takes a snapshot at `index` (applied by the node) and drops the
    /// entries up to it. Compaction only forgets what the snapshot covers,
    /// so it is durable at once; and since only committed entries are
    /// applied, the commit index it implies is durable with it (raft
    /// refuses to start from a snapshot past its hard state's commit).
    pub fn compact(&mut self, index: u64) {
        if index <= self.state.snapshot_index || index > self.last_index() {
            return;
        }
        self.state.compact_to(index);
        let commit = &mut self.state.hard_state.commit;
        *commit = (*commit).max(index);
        let durable = &mut self.durable_hard_state.commit;
        *durable = (*durable).max(index);
        if let Some(backup) = &mut self.backup {
            if index > backup.snapshot_index && index <= backup.last_index() {
                backup.compact_to(index);
                backup.hard_state.commit = backup.hard_state.commit.max(index);
            }
        }
    }

    /// Loses whatever was not synced. With `torn_entries`, that many of the
    /// entries appended since the last sync survive as well, if no
    /// overwrite happened since.
    pub fn crash(&mut self, torn_entries: u64) {
        match self.backup.take() {
            Some(durable) => self.state = durable,
            None => {
                let keep = (self.durable_last + torn_entries).min(self.last_index());
                self.state
                    .truncate_after(keep.max(self.state.snapshot_index));
                self.state.hard_state = self.durable_hard_state.clone();
            }
        }
        self.sync();
    }

    /// Entries appended since the last sync (what a torn write can keep).
    pub fn unsynced_entries(&self) -> u64 {
        if self.backup.is_some() {
            0
        } else {
            self.last_index().saturating_sub(self.durable_last)
        }
    }

    /// Writes entries outside the Ready loop, as a WAL replicated by a side
    /// channel does, durably. They must continue the log.
    pub fn write_out_of_band(&mut self, ents: Vec<Entry>) {
        assert_eq!(
            ents[0].index,
            self.last_index() + 1,
            "out-of-band entries must continue the log"
        );
        self.append(ents);
        self.sync();
    }

    /// Hides the durable entries past `index` until [`Disk::recover_tail`]:
    /// a storage that finishes loading after `RawNode::new`.
    pub fn hide_tail_after(&mut self, index: u64) {
        if index >= self.last_index() || index < self.state.snapshot_index {
            return;
        }
        let pos = self.state.position(index + 1);
        self.hidden_tail = self.state.entries[pos..].to_vec();
        self.state.truncate_after(index);
        self.sync();
    }

    /// Brings back the hidden tail, if the log still ends where it was cut.
    /// Returns how many entries came back.
    pub fn recover_tail(&mut self) -> usize {
        let tail = std::mem::take(&mut self.hidden_tail);
        if tail.first().map(|e| e.index) != Some(self.last_index() + 1) {
            return 0;
        }
        let recovered = tail.len();
        self.write_out_of_band(tail);
        recovered
    }
}

/// The chain hash a snapshot carries as its data.
pub fn snapshot_chain(snap: &Snapshot) -> u64 {
    let data: &[u8] = snap.get_data();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&data[..8]);
    u64::from_le_bytes(bytes)
}

/// The handle a `RawNode` owns as its `Storage`; clones share one disk.
#[derive(Debug, Clone)]
pub struct SimStorage(Rc<RefCell<Disk>>);

impl SimStorage {
    /// A fresh disk for a node of a cluster of `voters`.
    pub fn new(voters: Vec<u64>, mode: WriteMode) -> SimStorage {
        SimStorage(Rc::new(RefCell::new(Disk::new(voters, mode))))
    }

    /// Reads the disk.
    pub fn rl(&self) -> Ref<'_, Disk> {
        self.0.borrow()
    }

    /// Writes the disk.
    pub fn wl(&self) -> RefMut<'_, Disk> {
        self.0.borrow_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents(first: u64, last: u64, term: u64) -> Vec<Entry> {
        (first..=last)
            .map(|index| Entry {
                index,
                term,
                data: vec![index as u8; 4].into(),
                ..Default::default()
            })
            .collect()
    }

    fn disk() -> Disk {
        Disk::new(vec![1, 2, 3], WriteMode::Truncate)
    }

    #[test]
    fn crash_loses_unsynced_entries_and_hard_state() {
        let mut d = disk();
        d.append(ents(1, 5, 1));
        d.set_hard_state(HardState {
            term: 1,
            commit: 3,
            ..Default::default()
        });
        d.sync();
        d.append(ents(6, 8, 1));
        d.set_hard_state(HardState {
            term: 2,
            commit: 6,
            ..Default::default()
        });
        d.crash(0);
        assert_eq!(d.last_index(), 5);
        assert_eq!(d.hard_state().commit, 3);
    }

    #[test]
    fn a_crash_after_compaction_keeps_a_commit_covering_the_snapshot() {
        let mut d = disk();
        d.append(ents(1, 8, 1));
        d.set_hard_state(HardState {
            term: 1,
            commit: 3,
            ..Default::default()
        });
        d.sync();
        d.set_commit(7);
        d.compact(6);
        d.crash(0);
        assert_eq!(d.snapshot_index(), 6);
        assert_eq!(d.hard_state().commit, 6);
    }

    #[test]
    fn torn_write_keeps_a_prefix_of_unsynced_entries() {
        let mut d = disk();
        d.append(ents(1, 5, 1));
        d.sync();
        d.append(ents(6, 9, 1));
        assert_eq!(d.unsynced_entries(), 4);
        d.crash(2);
        assert_eq!(d.last_index(), 7);
    }

    #[test]
    fn crash_restores_durable_entries_an_unsynced_overwrite_replaced() {
        let mut d = disk();
        d.append(ents(1, 5, 1));
        d.sync();
        let before = d.chain_at(5);
        d.append(ents(3, 3, 2));
        assert_eq!(d.last_index(), 3);
        d.crash(0);
        assert_eq!((d.last_index(), d.term(4)), (5, Ok(1)));
        assert_eq!(d.chain_at(5), before);
    }

    #[test]
    fn stale_tail_overwrite_keeps_old_entries_and_is_flagged() {
        let mut d = Disk::new(vec![1], WriteMode::StaleTail);
        d.append(ents(1, 5, 1));
        d.append(ents(3, 3, 2));
        assert_eq!((d.last_index(), d.term(3), d.term(4)), (5, Ok(2), Ok(1)));
        assert_eq!(d.term_regression(), Some("entry 4 has term 1 after term 2"));
    }

    #[test]
    fn equal_logs_have_equal_chains_and_a_different_entry_changes_them() {
        let (mut a, mut b) = (disk(), disk());
        a.append(ents(1, 5, 1));
        b.append(ents(1, 5, 1));
        assert_eq!(a.chain_at(5), b.chain_at(5));
        b.append(ents(3, 5, 2));
        assert_eq!(a.chain_at(2), b.chain_at(2));
        assert_ne!(a.chain_at(3), b.chain_at(3));
    }

    #[test]
    fn compaction_keeps_the_chain_in_the_snapshot() {
        let mut d = disk();
        d.append(ents(1, 5, 1));
        let chain3 = d.chain_at(3);
        d.compact(3);
        assert_eq!((d.first_index(), d.chain_at(3)), (4, chain3));
        assert_eq!(d.term(2), Err(ReadError::Compacted));
        let snap = d.snapshot(0).unwrap();
        assert_eq!(Some(snapshot_chain(&snap)), chain3);

        let mut follower = disk();
        follower.apply_snapshot(&snap);
        assert_eq!((follower.last_index(), follower.chain_at(3)), (3, chain3));
    }

    #[test]
    fn hidden_tail_comes_back_only_where_it_was_cut() {
        let mut d = disk();
        d.append(ents(1, 8, 1));
        d.sync();
        d.hide_tail_after(5);
        assert_eq!(d.last_index(), 5);
        assert_eq!(d.recover_tail(), 3);
        assert_eq!(d.last_index(), 8);

        d.hide_tail_after(5);
        d.append(ents(6, 6, 2));
        assert_eq!(d.recover_tail(), 0);
        assert_eq!(d.last_index(), 6);
    }

    #[test]
    fn size_limit_returns_at_least_one_entry() {
        let mut d = disk();
        d.append(ents(1, 5, 1));
        assert_eq!(d.entries(1, 6, Some(0)).unwrap().len(), 1);
        assert_eq!(d.entries(1, 6, None).unwrap().len(), 5);
        assert_eq!(d.entries(2, 4, None).unwrap()[0].index, 2);
    }
}
