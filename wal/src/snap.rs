//! Snapshot data files in `snap/`, beside the segments, as etcd keeps
//! them: segments carry only a snapshot's metadata and a reference to its
//! file ([`SnapshotRef`]), so starting a segment costs nothing in
//! proportion to the state.
//!
//! A file is written whole and durable (temporary name, fsync, rename,
//! directory fsync) before any record refers to it, so a reference read
//! back always finds its file, and the file's CRC is checked against the
//! reference. A file is deleted once compaction reclaims the last segment
//! that referred to it, or at recovery if none ever did (a crash between
//! the file and its record).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::error::{io_at, WalError};
use crate::segment::sync_dir;

/// The directory, under the WAL's.
pub const DIR: &str = "snap";
const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";
/// First bytes of every snapshot file.
pub const MAGIC: &[u8; 8] = b"RAFTSNAP";
/// Bytes before the data: magic, data length (u64), data CRC32C (u32),
/// reserved (u32).
pub const HEADER_BYTES: usize = 24;

/// What a segment record says of a snapshot's data: enough to name its
/// file and to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct SnapshotRef {
    /// The snapshot's index.
    pub index: u64,
    /// The snapshot's term.
    pub term: u64,
    /// Bytes of data; 0 means no file.
    pub len: u64,
    /// CRC32C of the data.
    pub crc: u32,
}

impl SnapshotRef {
    /// The reference to `data` of a snapshot at `index` and `term`.
    pub fn of(index: u64, term: u64, data: &[u8]) -> SnapshotRef {
        SnapshotRef {
            index,
            term,
            len: data.len() as u64,
            crc: crc32c::crc32c(data),
        }
    }

    /// Whether a file holds the data (empty data has none).
    pub fn has_file(&self) -> bool {
        self.len > 0
    }

    fn file_name(&self) -> String {
        format!(
            "{:016x}-{:016x}-{:08x}{SUFFIX}",
            self.index, self.term, self.crc
        )
    }
}

/// The files of one WAL, and the newest segment referring to each.
#[derive(Debug)]
pub struct SnapFiles {
    dir: PathBuf,
    referred: BTreeMap<SnapshotRef, u64>,
}

impl SnapFiles {
    /// The snapshot directory of the WAL in `wal_dir`, created if missing;
    /// leftover temporary files of interrupted writes are deleted.
    pub fn open(wal_dir: &Path) -> Result<SnapFiles, WalError> {
        let dir = wal_dir.join(DIR);
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        // Durable before any record can refer to a file in it, on every
        // open: a crash may have come between creating it and this fsync.
        sync_dir(wal_dir)?;
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let path = entry.map_err(io_at(&dir))?.path();
            if path.to_string_lossy().ends_with(TMP_SUFFIX) {
                fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        Ok(SnapFiles {
            dir,
            referred: BTreeMap::new(),
        })
    }

    /// Notes that segment `seq` refers to `snap`.
    pub fn refer(&mut self, snap: SnapshotRef, seq: u64) {
        if snap.has_file() {
            let newest = self.referred.entry(snap).or_default();
            *newest = (*newest).max(seq);
        }
    }

    /// Deletes the files of snapshots no segment from `oldest_seq` on
    /// refers to any more, except `current`'s.
    pub fn reclaim(&mut self, oldest_seq: u64, current: SnapshotRef) -> Result<(), WalError> {
        let (kept, gone): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.referred)
            .into_iter()
            .partition(|&(snap, seq)| seq >= oldest_seq || snap == current);
        self.referred = kept;
        for snap in gone.keys() {
            remove_if_present(&self.dir.join(snap.file_name()))?;
        }
        if !gone.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Deletes the files no segment refers to: left by a crash between a
    /// file and its record. Only at recovery, when no write is under way
    /// (a file is written before the lock its record needs is taken).
    pub fn remove_strays(&mut self) -> Result<(), WalError> {
        let kept: Vec<String> = self.referred.keys().map(|s| s.file_name()).collect();
        let mut removed = false;
        for entry in fs::read_dir(&self.dir).map_err(io_at(&self.dir))? {
            let entry = entry.map_err(io_at(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(SUFFIX) && !kept.contains(&name) {
                fs::remove_file(entry.path()).map_err(io_at(entry.path()))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Deletes the file of `snap` unless a segment refers to it: written
    /// for a snapshot the WAL then refused.
    pub fn forget(&mut self, snap: SnapshotRef) -> Result<(), WalError> {
        if !snap.has_file() || self.referred.contains_key(&snap) {
            return Ok(());
        }
        remove_if_present(&self.dir.join(snap.file_name()))
    }

    /// Reads the data `snap` refers to, checking it.
    ///
    /// # Errors
    ///
    /// [`WalError::Corrupt`] naming the file if it is missing, or its
    /// header, length or CRC is not what the reference says.
    pub fn read(&self, snap: SnapshotRef) -> Result<Bytes, WalError> {
        if !snap.has_file() {
            return Ok(Bytes::new());
        }
        let path = self.dir.join(snap.file_name());
        let corrupt = |reason: String| WalError::Corrupt {
            path: path.clone(),
            offset: 0,
            reason,
        };
        let bytes = fs::read(&path).map_err(|e| corrupt(format!("unreadable: {e}")))?;
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            return Err(corrupt("bad snapshot file header".into()));
        }
        let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        let crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
        let data = &bytes[HEADER_BYTES..];
        if len != snap.len || data.len() as u64 != len {
            return Err(corrupt(format!(
                "{} bytes of data, the WAL refers to {}",
                data.len(),
                snap.len
            )));
        }
        if crc != snap.crc || crc32c::crc32c(data) != crc {
            return Err(corrupt("snapshot data checksum mismatch".into()));
        }
        Ok(Bytes::from(bytes).slice(HEADER_BYTES..))
    }

    /// The directory, for writes outside the WAL's lock.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes `data` as the file of `snap` in `dir`, durably, unless it exists
/// (the same name is the same data). Needs no lock: the WAL refers to the
/// file only once this returns.
pub fn write(dir: &Path, snap: SnapshotRef, data: &[u8]) -> Result<(), WalError> {
    if !snap.has_file() {
        return Ok(());
    }
    let path = dir.join(snap.file_name());
    if path.exists() {
        return Ok(());
    }
    // A name of its own per write: two writers of the same snapshot (the
    // node's own and an identical one from the leader) never share one.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let unique = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        "{}.{}-{unique}{TMP_SUFFIX}",
        snap.file_name().trim_end_matches(SUFFIX),
        std::process::id()
    ));
    {
        let mut file = File::create(&tmp).map_err(io_at(&tmp))?;
        let mut header = [0u8; HEADER_BYTES];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&snap.len.to_le_bytes());
        header[16..20].copy_from_slice(&snap.crc.to_le_bytes());
        file.write_all(&header).map_err(io_at(&tmp))?;
        file.write_all(data).map_err(io_at(&tmp))?;
        file.sync_all().map_err(io_at(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_at(&path))?;
    sync_dir(dir)
}

/// Deletes `path`; one already gone is not an error.
fn remove_if_present(path: &Path) -> Result<(), WalError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_at(path)(e)),
        _ => Ok(()),
    }
}
