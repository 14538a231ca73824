//! The in-memory part of the log: where every entry lies on disk, and a
//! window of the most recent entries themselves.

use std::collections::VecDeque;

use raft_proto::eraftpb::Entry;

/// Where an entry's bytes lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// The segment.
    pub seq: u64,
    /// Offset of the entry's protobuf bytes in the segment.
    pub offset: u64,
    /// Their length.
    pub len: u32,
    /// The entry's term, kept here so `term` never reads the disk.
    pub term: u64,
}

/// The log's index and window.
///
/// Invariants: `locs[i]` is entry `first_index + i`; `window` holds a
/// suffix of the log (its last entry is the log's last), at most
/// `retention` entries.
#[derive(Debug)]
pub struct LogIndex {
    first_index: u64,
    locs: VecDeque<Loc>,
    window: VecDeque<Entry>,
    retention: usize,
}

impl LogIndex {
    /// An empty log whose next entry is `first_index`.
    pub fn new(first_index: u64, retention: usize) -> LogIndex {
        LogIndex {
            first_index,
            locs: VecDeque::new(),
            window: VecDeque::new(),
            retention,
        }
    }

    /// The first entry's index (one past the last if the log is empty).
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// The last entry's index (`first_index - 1` if the log is empty).
    pub fn last_index(&self) -> u64 {
        self.first_index + self.locs.len() as u64 - 1
    }

    /// Entries in the window.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Whether the log holds no entry.
    pub fn is_empty(&self) -> bool {
        self.locs.is_empty()
    }

    /// The location of entry `index`.
    pub fn loc(&self, index: u64) -> Option<&Loc> {
        index
            .checked_sub(self.first_index)
            .and_then(|i| self.locs.get(i as usize))
    }

    /// Entry `index`, if the window holds it.
    pub fn cached(&self, index: u64) -> Option<&Entry> {
        let window_first = self.last_index() + 1 - self.window.len() as u64;
        index
            .checked_sub(window_first)
            .and_then(|i| self.window.get(i as usize))
    }

    /// The segment of the first entry, if any: older segments hold no
    /// entry of the log (entries are written in index order, so segments
    /// never decrease along the log).
    pub fn first_seq(&self) -> Option<u64> {
        self.locs.front().map(|l| l.seq)
    }

    /// Drops entry `index` and everything after it.
    pub fn truncate_from(&mut self, index: u64) {
        let keep = index.saturating_sub(self.first_index) as usize;
        let dropped = self.locs.len().saturating_sub(keep);
        self.locs.truncate(keep);
        self.window
            .truncate(self.window.len().saturating_sub(dropped));
    }

    /// Appends the next entry; `entry`, if given, enters the window.
    pub fn push(&mut self, loc: Loc, entry: Option<Entry>) {
        self.locs.push_back(loc);
        match entry {
            Some(e) if self.retention > 0 => {
                if self.window.len() == self.retention {
                    self.window.pop_front();
                }
                self.window.push_back(e);
            }
            _ => self.window.clear(),
        }
    }

    /// Puts an older entry at the front of the window, while it has room.
    pub fn prepend_cached(&mut self, entry: Entry) -> bool {
        if self.window.len() == self.retention {
            return false;
        }
        self.window.push_front(entry);
        true
    }

    /// Drops every entry before `index`.
    pub fn compact_to(&mut self, index: u64) {
        let drop = (index.saturating_sub(self.first_index) as usize).min(self.locs.len());
        self.locs.drain(..drop);
        self.first_index += drop as u64;
        let window_drop = self.window.len().saturating_sub(self.locs.len());
        self.window.drain(..window_drop);
        if self.locs.is_empty() {
            self.first_index = index;
        }
    }

    /// Empties the log; its next entry is `first_index`.
    pub fn reset(&mut self, first_index: u64) {
        self.locs.clear();
        self.window.clear();
        self.first_index = first_index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(term: u64) -> Loc {
        Loc {
            seq: 1,
            offset: 0,
            len: 0,
            term,
        }
    }

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            ..Default::default()
        }
    }

    #[test]
    fn window_keeps_the_last_entries_only() {
        let mut log = LogIndex::new(1, 3);
        for i in 1..=5 {
            log.push(loc(1), Some(entry(i)));
        }
        assert_eq!(log.window_len(), 3);
        assert!(log.cached(2).is_none());
        assert_eq!(log.cached(3).map(|e| e.index), Some(3));
        assert_eq!(log.cached(5).map(|e| e.index), Some(5));
        assert!(log.cached(6).is_none());
    }

    #[test]
    fn truncation_and_compaction_keep_the_window_a_suffix() {
        let mut log = LogIndex::new(1, 3);
        for i in 1..=5 {
            log.push(loc(1), Some(entry(i)));
        }
        log.truncate_from(5);
        assert_eq!((log.last_index(), log.window_len()), (4, 2));
        assert_eq!(log.cached(4).map(|e| e.index), Some(4));
        log.compact_to(4);
        assert_eq!(
            (log.first_index(), log.last_index(), log.window_len()),
            (4, 4, 1)
        );
        log.compact_to(7);
        assert_eq!((log.first_index(), log.last_index()), (7, 6));
    }
}
