//! The one place that knows whether peer connections are TLS or plain
//! TCP, and the member set the listener admits.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::tls::peer::PeerTls;

/// A peer connection, either way.
pub type PeerStream = Either<tokio_rustls::TlsStream<TcpStream>, TcpStream>;

/// How peer connections are secured.
pub enum PeerSecurity {
    /// Mutual TLS: each side proves which member of which cluster it is.
    Tls(PeerTls),
    /// Plain TCP (`--insecure-peers`): the hello's word is taken for who
    /// the dialler is.
    Insecure,
}

/// The other nodes this one talks to: the peers it has a writer for.
/// Only they are admitted on the raft port. Shared between the writer
/// side, which keeps it as members are added and removed, and the
/// listener.
#[derive(Clone, Default)]
pub struct Members(Arc<RwLock<BTreeSet<u64>>>);

impl Members {
    /// The members `ids`, before the writers for them start.
    pub fn new(ids: impl IntoIterator<Item = u64>) -> Members {
        Members(Arc::new(RwLock::new(ids.into_iter().collect())))
    }

    pub(super) fn insert(&self, id: u64) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(id);
    }

    pub(super) fn remove(&self, id: u64) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// The current members, this node excluded.
    pub fn ids(&self) -> Vec<u64> {
        let members = self.0.read().unwrap_or_else(|e| e.into_inner());
        members.iter().copied().collect()
    }
}

impl PeerSecurity {
    /// Secures a connection this node opened to node `id`.
    ///
    /// # Errors
    ///
    /// The TLS handshake failed: the other end is not node `id` of this
    /// cluster, or the link broke.
    pub async fn dial(&self, tcp: TcpStream, id: u64) -> std::io::Result<PeerStream> {
        match self {
            PeerSecurity::Tls(tls) => Ok(Either::Left(tls.connect(tcp, id).await?.into())),
            PeerSecurity::Insecure => Ok(Either::Right(tcp)),
        }
    }

    /// Secures an inbound connection; with TLS, also returns the member
    /// its certificate proves it to be.
    ///
    /// # Errors
    ///
    /// Why the connection is refused.
    pub async fn admit(
        &self,
        tcp: TcpStream,
        members: &Members,
    ) -> Result<(PeerStream, Option<u64>), String> {
        match self {
            PeerSecurity::Tls(tls) => {
                let (stream, id) = tls.accept(tcp, &members.ids()).await?;
                Ok((Either::Left(stream.into()), Some(id)))
            }
            PeerSecurity::Insecure => Ok((Either::Right(tcp), None)),
        }
    }
}
