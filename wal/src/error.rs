//! Errors of the WAL.

use std::io;
use std::path::PathBuf;

/// Why a WAL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Recovery found data it cannot trust.
    #[error("corrupt WAL: {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The call breaks the log's rules (a gap, overwriting compacted
    /// entries, an old snapshot); nothing was written.
    #[error("rejected: {0}")]
    Rejected(String),
    /// An earlier write failed part way; the WAL refuses writes until it is
    /// reopened, which recovers a consistent state.
    #[error("the WAL stopped after a failed write ({0}); reopen it")]
    Stopped(String),
}

/// Wraps an `io::Error` with the path it concerns.
pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> WalError {
    let path = path.into();
    move |source| WalError::Io { path, source }
}
