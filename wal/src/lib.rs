//! A crash-safe write-ahead-log [`raft::Storage`], keeping a window of the
//! most recent entries in memory and reading older ones back from disk.
//!
//! The on-disk format and the numbered recovery procedure are specified in
//! `FORMAT.md`. Writes reach the disk only through the calls of the Ready
//! loop ([`WalStorage::append`], [`WalStorage::set_hard_state`], ...); they
//! are durable once [`WalStorage::sync`] returns, or once
//! [`DetachedSync::wait`] returns for a [`WalStorage::sync_detached`],
//! whose fdatasync runs without holding the WAL's lock (asynchronous
//! persistence). A conflicting append truncates the log's tail, durably (a
//! Truncate record), so a stale tail never comes back. The storage never drops entries or moves
//! `first_index` on its own: only [`WalStorage::compact`] and
//! [`WalStorage::apply_snapshot`] do.
//!
//! [`GroupCommit`] is an async front end that coalesces many producers'
//! appends into one write and one fdatasync.

mod error;
mod format;
mod group;
mod index;
mod recovery;
mod segment;
mod snap;
mod storage;
mod wal;

pub use error::WalError;
pub use group::GroupCommit;
pub use storage::{DetachedSync, WalStorage};

/// When writes are fdatasynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Only on [`WalStorage::sync`]: one fdatasync per Ready.
    Explicit,
    /// After every write.
    EveryWrite,
    /// Never: syncs are recorded but no fdatasync is issued, so a power
    /// loss loses what the WAL reported durable. Only for showing that a
    /// power-loss test can lose data; never for a node that keeps data.
    #[doc(hidden)]
    UnsafeNever,
}

/// How a WAL is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Entries kept in memory, the most recent ones.
    pub retention_entries: usize,
    /// A new segment starts once the current one reaches this size.
    pub segment_bytes: u64,
    /// When writes are fdatasynced.
    pub sync: SyncPolicy,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            retention_entries: 1_000,
            segment_bytes: 64 << 20,
            sync: SyncPolicy::Explicit,
        }
    }
}

#[doc(hidden)]
pub mod internals {
    //! The record codec and segment header, for the decoder's property
    //! test, fuzzing and tests that write a WAL of an older shape.
    pub use crate::format::{decode, encode, segment_header, DecodeError, Kind, RawRecord};
}
