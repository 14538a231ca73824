//! Why a node stops.

use raft_wal_storage::WalError;

use crate::config::ConfigError;
use crate::state_machine::DecodeError;

/// A fatal error: the node logs it and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The WAL failed or is corrupt (the message names file and offset).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// An asynchronous fdatasync failed; the WAL stopped.
    #[error("WAL fdatasync: {0}")]
    Persist(std::sync::Arc<WalError>),
    /// Raft refused an operation the loop relies on.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A committed entry or a snapshot does not parse.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A committed entry does not decode.
    #[error(transparent)]
    Undecodable(#[from] crate::entry::Undecodable),
    /// The WAL or the peers belong to another cluster, or the cluster
    /// exists and this node's data is gone.
    #[error(transparent)]
    Identity(#[from] crate::cluster_id::IdentityError),
    /// TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A socket could not be bound.
    #[error("{what} {addr}: {source}")]
    Bind {
        /// Which socket.
        what: &'static str,
        /// Its address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}
