//! Segment files: naming, creation (made durable by rename and directory
//! fsync) and positional reads and writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{io_at, WalError};
use crate::format::segment_header;

const SUFFIX: &str = ".wal";
const TMP_SUFFIX: &str = ".wal.tmp";

/// One segment file.
#[derive(Debug)]
pub struct Segment {
    /// Its sequence number.
    pub seq: u64,
    /// Its path.
    pub path: PathBuf,
    /// Open for reading and writing.
    pub file: File,
    /// Bytes in it.
    pub len: u64,
}

/// The path of segment `seq` in `dir`.
pub fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}{SUFFIX}"))
}

/// Fsyncs a directory, so that names created or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Segment sequence numbers in `dir`, in order; removes leftover `.tmp`
/// files of segments whose creation a crash interrupted.
pub fn list(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TMP_SUFFIX) {
            fs::remove_file(entry.path()).map_err(io_at(entry.path()))?;
        } else if let Some(hex) = name.strip_suffix(SUFFIX) {
            if let Ok(seq) = u64::from_str_radix(hex, 16) {
                seqs.push(seq);
            }
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

impl Segment {
    /// Opens an existing segment.
    pub fn open(dir: &Path, seq: u64) -> Result<Segment, WalError> {
        let path = path(dir, seq);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
        let len = file.metadata().map_err(io_at(&path))?.len();
        Ok(Segment {
            seq,
            path,
            file,
            len,
        })
    }

    /// Creates segment `seq` holding its header and `first_records`,
    /// durably: written to a temporary name, fsynced, renamed, and the
    /// directory fsynced.
    pub fn create(dir: &Path, seq: u64, first_records: &[u8]) -> Result<Segment, WalError> {
        let path = path(dir, seq);
        let tmp = dir.join(format!("{seq:016x}{TMP_SUFFIX}"));
        {
            let mut file = File::create(&tmp).map_err(io_at(&tmp))?;
            file.write_all(&segment_header()).map_err(io_at(&tmp))?;
            file.write_all(first_records).map_err(io_at(&tmp))?;
            file.sync_all().map_err(io_at(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        sync_dir(dir)?;
        Segment::open(dir, seq)
    }

    /// Appends `bytes`; returns the offset they start at.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64, WalError> {
        let at = self.len;
        self.file
            .write_all_at(bytes, at)
            .map_err(io_at(&self.path))?;
        self.len += bytes.len() as u64;
        Ok(at)
    }

    /// Reads `len` bytes at `offset`.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, WalError> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(io_at(&self.path))?;
        Ok(buf)
    }

    /// fdatasync.
    pub fn sync(&self) -> Result<(), WalError> {
        self.file.sync_data().map_err(io_at(&self.path))
    }

    /// Cuts the segment at `len` bytes, durably.
    pub fn truncate(&mut self, len: u64) -> Result<(), WalError> {
        self.file.set_len(len).map_err(io_at(&self.path))?;
        self.file.sync_all().map_err(io_at(&self.path))?;
        self.len = len;
        Ok(())
    }
}
