//! The one place that knows whether peer connections are TLS or plain
//! TCP, and the member set the listener admits.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use raft_proto::eraftpb::ConfState;
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

/// The nodes admitted on the raft port, this node aside: the members of
/// the configuration it has applied and the peers it has an address for
/// (`Peers` keeps it). The listener checks it when a connection opens and
/// at every frame, so a removed member's open connections close too.
#[derive(Clone, Default)]
pub struct Members(Arc<RwLock<BTreeSet<u64>>>);

impl Members {
    /// The nodes `ids`.
    pub fn new(ids: impl IntoIterator<Item = u64>) -> Members {
        let members = Members::default();
        members.set(ids);
        members
    }

    /// Admits exactly `ids` from now on.
    pub fn set(&self, ids: impl IntoIterator<Item = u64>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = ids.into_iter().collect();
    }

    /// Whether `id` is admitted.
    pub fn contains(&self, id: u64) -> bool {
        let members = self.0.read().unwrap_or_else(|e| e.into_inner());
        members.contains(&id)
    }

    /// The admitted ids.
    pub fn ids(&self) -> Vec<u64> {
        let members = self.0.read().unwrap_or_else(|e| e.into_inner());
        members.iter().copied().collect()
    }
}

/// Every node `conf` names, in any role, but `me`; `None` for a
/// configuration with no voters (a blank node's).
pub fn members_of(conf: &ConfState, me: u64) -> Option<Vec<u64>> {
    if conf.voters.is_empty() {
        return None;
    }
    let named = [
        &conf.voters,
        &conf.learners,
        &conf.voters_outgoing,
        &conf.learners_next,
    ];
    Some(
        named
            .into_iter()
            .flatten()
            .copied()
            .filter(|&id| id != me)
            .collect(),
    )
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
