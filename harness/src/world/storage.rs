//! What a node's raft reads and the world writes: the disk model and, with
//! `--storage wal`, a real [`WalStorage`] in a temporary directory beside
//! it.
//!
//! Every write goes to both, and both sync at the same points. Raft reads
//! the log from the WAL when there is one (so the WAL's window and disk
//! reads are what raft sees); the checkers read the model, which keeps the
//! chain hashes. A crash cuts the WAL's active segment at its last sync (what
//! a power failure leaves), reopens it through real recovery, and checks
//! that it recovered exactly the model's durable log. Faults that model the
//! disk itself (a late tail, a stale tail, a torn write) exist in the model
//! only, so they need `--storage memory`.

use std::cell::{Ref, RefCell};
use std::rc::Rc;

use raft_proto::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft_wal_storage::{WalOptions, WalStorage};

use crate::engine::wal_reads;
use crate::world::disk::{Disk, SimStorage, WriteMode};

/// Which storage nodes run on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// The disk model alone, in memory.
    Memory,
    /// raft-wal-storage on real files, beside the model.
    Wal,
}

/// The WAL of a node, and the directory it lives in.
struct WalNode {
    store: WalStorage,
    dir: tempfile::TempDir,
}

/// A node's storage; clones share it.
#[derive(Clone)]
pub struct NodeStorage {
    disk: SimStorage,
    wal: Option<Rc<RefCell<WalNode>>>,
}

/// Segments are small, so runs cross segment boundaries and compaction
/// reclaims segments.
const WAL_SEGMENT_BYTES: u64 = 256 << 10;

fn wal_options() -> WalOptions {
    WalOptions {
        segment_bytes: WAL_SEGMENT_BYTES,
        ..WalOptions::default()
    }
}

fn must<T>(what: &str, result: Result<T, raft_wal_storage::WalError>) -> T {
    result.unwrap_or_else(|e| panic!("harness: WAL {what} failed: {e}"))
}

impl NodeStorage {
    /// A fresh storage of the given kind for a node of a cluster of `voters`.
    pub fn new(kind: StorageKind, voters: Vec<u64>, mode: WriteMode) -> NodeStorage {
        let wal = (kind == StorageKind::Wal).then(|| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let store = must("open", WalStorage::open(dir.path(), wal_options()));
            Rc::new(RefCell::new(WalNode { store, dir }))
        });
        NodeStorage {
            disk: SimStorage::new(voters, mode),
            wal,
        }
    }

    /// The disk model.
    pub fn disk(&self) -> Ref<'_, Disk> {
        self.disk.rl()
    }

    /// The WAL, if the node runs on one.
    pub fn wal(&self) -> Option<WalStorage> {
        self.wal.as_ref().map(|w| w.borrow().store.clone())
    }

    fn on_wal(
        &self,
        what: &str,
        write: impl FnOnce(&WalStorage) -> Result<(), raft_wal_storage::WalError>,
    ) {
        if let Some(w) = &self.wal {
            must(what, write(&w.borrow().store));
        }
    }

    /// Writes entries as the Ready loop does.
    pub fn append(&self, entries: Vec<Entry>) {
        self.on_wal("append", |w| w.append(&entries));
        self.disk.wl().append(entries);
    }

    /// Writes the hard state.
    pub fn set_hard_state(&self, hs: HardState) {
        self.on_wal("hard state", |w| w.set_hard_state(hs.clone()));
        self.disk.wl().set_hard_state(hs);
    }

    /// Updates the commit index.
    pub fn set_commit(&self, commit: u64) {
        let mut hs = self.disk.rl().hard_state().clone();
        hs.commit = commit;
        self.set_hard_state(hs);
    }

    /// Replaces the log with a snapshot from the leader.
    pub fn apply_snapshot(&self, snap: &Snapshot) {
        self.on_wal("apply snapshot", |w| w.apply_snapshot(snap.clone()));
        self.disk.wl().apply_snapshot(snap);
    }

    /// Records an applied configuration change.
    pub fn set_conf_state(&self, index: u64, conf: ConfState) {
        self.on_wal("conf state", |w| w.set_conf_state(conf.clone()));
        self.disk.wl().set_conf_state(index, conf);
    }

    /// Makes every write so far durable.
    pub fn sync(&self) {
        self.on_wal("sync", WalStorage::sync);
        self.disk.wl().sync();
    }

    /// Snapshots at `index` and compacts up to it. The model treats
    /// compaction as durable at once, so with a WAL both sync.
    pub fn compact(&self, index: u64) {
        self.disk.wl().compact(index);
        if let Some(w) = &self.wal {
            let disk = self.disk.rl();
            if disk.snapshot_index() == index {
                let store = &w.borrow().store;
                must(
                    "snapshot",
                    store.set_snapshot(disk.snapshot(index).expect("the model just took it")),
                );
                must("compact", store.compact(index + 1));
            }
            drop(disk);
            self.sync();
        }
    }

    /// Writes entries outside the Ready loop, durably.
    pub fn write_out_of_band(&self, entries: Vec<Entry>) {
        self.on_wal("out-of-band append", |w| {
            w.append(&entries).and_then(|_| w.sync())
        });
        self.disk.wl().write_out_of_band(entries);
    }

    /// Entries appended since the last sync, as a torn write could keep:
    /// none on a WAL, whose crashes cut at the last sync.
    pub fn unsynced_entries(&self) -> u64 {
        if self.wal.is_some() {
            0
        } else {
            self.disk.rl().unsynced_entries()
        }
    }

    /// Hides the tail past `index` until `recover_tail` (memory only).
    pub fn hide_tail_after(&self, index: u64) {
        assert!(
            self.wal.is_none(),
            "harness: late recovery needs --storage memory"
        );
        self.disk.wl().hide_tail_after(index);
    }

    /// Brings a hidden tail back; how many entries.
    pub fn recover_tail(&self) -> usize {
        self.disk.wl().recover_tail()
    }

    /// Loses what was not synced, and checks that the WAL, reopened, holds
    /// exactly the model's durable log.
    ///
    /// # Panics
    ///
    /// If the recovered WAL differs from the model.
    pub fn crash(&self, torn_entries: u64) {
        self.disk.wl().crash(torn_entries);
        let Some(w) = &self.wal else { return };
        let mut node = w.borrow_mut();
        let (segment, len) = node.store.durable_position();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .and_then(|f| f.set_len(len))
            .unwrap_or_else(|e| panic!("harness: cutting {} failed: {e}", segment.display()));
        node.store = must("reopen", WalStorage::open(node.dir.path(), wal_options()));
        check_recovered(&node.store, &self.disk.rl());
    }
}

/// The recovered WAL holds the model's durable log: same bounds, same
/// entries, same hard state.
fn check_recovered(wal: &WalStorage, disk: &Disk) {
    let (first, last) = (wal_reads::first_index(wal), wal_reads::last_index(wal));
    assert_eq!(
        (first, last),
        (disk.first_index(), disk.last_index()),
        "harness: the recovered WAL's bounds differ from the model's"
    );
    if last >= first {
        let from_wal = wal_reads::entries(wal, first, last + 1, None);
        let from_model = disk.entries(first, last + 1, None);
        assert!(
            from_wal == from_model,
            "harness: the recovered WAL's entries differ from the model's"
        );
    }
    assert_eq!(
        &wal.hard_state(),
        disk.hard_state(),
        "harness: the recovered WAL's hard state differs"
    );
}
