//! Cluster identity. Every cluster has a name (`--cluster-name`, like
//! etcd's `--initial-cluster-token`), and its id is the name's XXH3 hash.
//! The id is stored beside the WAL when a node founds or joins the
//! cluster, checked on every restart, and sent first on every peer
//! connection, so nodes of two clusters never exchange a message.
//!
//! It also stops a founding member whose data was lost from founding the
//! cluster again: before it writes the founding configuration to an empty
//! directory, the node asks the other founders how much log they hold,
//! until a majority has answered, and refuses if any holds more than the
//! founding entry.

use std::fs;
use std::io::Write;
use std::path::Path;

/// A cluster's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterId(pub u64);

/// The file holding the id, in the WAL directory.
const FILE: &str = "cluster-id";

impl ClusterId {
    /// The id of the cluster named `name`.
    pub fn of_name(name: &str) -> ClusterId {
        ClusterId(xxhash_rust::xxh3::xxh3_64(name.as_bytes()))
    }

    /// Checks the id stored in `dir` against this one, or stores it (with
    /// an fsync of the file and the directory) if none is.
    ///
    /// # Errors
    ///
    /// A different id is stored ([`IdentityError::OtherCluster`]), or the
    /// file cannot be read or written.
    pub fn check_or_store(self, dir: &Path) -> Result<(), IdentityError> {
        let path = dir.join(FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let stored = u64::from_str_radix(text.trim(), 16).map_err(|_| {
                    IdentityError::Unreadable(format!("{}: {text:?}", path.display()))
                })?;
                if stored != self.0 {
                    return Err(IdentityError::OtherCluster {
                        dir: dir.display().to_string(),
                        stored,
                        configured: self.0,
                    });
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let staged = dir.join(format!("{FILE}.new"));
                let mut file = fs::File::create(&staged)?;
                writeln!(file, "{:016x}", self.0)?;
                file.sync_all()?;
                fs::rename(&staged, &path)?;
                fs::File::open(dir)?.sync_all()?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Why a node refuses to start with the data or peers it found.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The WAL belongs to another cluster.
    #[error(
        "{dir} belongs to cluster {stored:016x}, not to {configured:016x} (from --cluster-name): wrong --dir or --cluster-name?"
    )]
    OtherCluster {
        /// The WAL directory.
        dir: String,
        /// The id stored there.
        stored: u64,
        /// The id configured.
        configured: u64,
    },
    /// The directory is empty but the cluster already runs: this node's
    /// data is gone, and founding the cluster again would let it vote and
    /// acknowledge as if it remembered.
    #[error(
        "this node's WAL is empty but its cluster already exists (node {peer} holds its log up to index {held}): \
         its data was lost. Remove node {me} from the cluster, then start it on the empty directory under a new id \
         with --join and add it back (raft-node admin add-learner, then promote)"
    )]
    ClusterExists {
        /// This node.
        me: u64,
        /// The peer that answered.
        peer: u64,
        /// The last index that peer holds.
        held: u64,
    },
    /// The stored id does not parse.
    #[error("unreadable cluster id: {0}")]
    Unreadable(String),
    /// Reading or writing the id failed.
    #[error("cluster id file: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_stored_once_and_checked_after() {
        let dir = tempfile::tempdir().unwrap();
        let ours = ClusterId::of_name("ours");
        ours.check_or_store(dir.path()).unwrap();
        ours.check_or_store(dir.path()).unwrap();
        let theirs = ClusterId::of_name("theirs");
        assert_ne!(ours, theirs);
        let e = theirs.check_or_store(dir.path()).unwrap_err();
        assert!(matches!(e, IdentityError::OtherCluster { .. }), "{e}");
    }
}
