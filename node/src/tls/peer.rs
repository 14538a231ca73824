//! Mutual TLS between members.
//!
//! Each member presents a certificate signed by the cluster's CA and valid
//! for its peer name, [`PeerTls::name`]: the name carries both the node id
//! and the cluster id. The dialling side checks the listener's certificate
//! against the name of the node it means to reach (rustls does, as for
//! any server name); the listening side finds which current member the
//! dialler's certificate names, before it reads a frame, and the transport
//! then holds every frame of the connection to that id.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use super::{load_certs, load_key, load_roots, provider, TlsError, TlsFiles};
use crate::cluster_id::ClusterId;

/// An id no node has (raft reserves 0): a certificate valid for its peer
/// name is a wildcard, which would name every member.
const NO_NODE: u64 = 0;

/// Whether `cert` is valid for node `id`'s peer name.
fn names(cert: &webpki::EndEntityCert<'_>, cluster: ClusterId, id: u64) -> bool {
    ServerName::try_from(PeerTls::name(cluster, id))
        .is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
}

/// A node's side of peer TLS: its certificate, and the cluster CA it
/// holds the other members' certificates to.
pub struct PeerTls {
    cluster: ClusterId,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl PeerTls {
    /// The peer name of node `id` of `cluster`: what its certificate must
    /// be valid for.
    pub fn name(cluster: ClusterId, id: u64) -> String {
        format!("node-{id}.cluster-{:016x}.raft", cluster.0)
    }

    /// Loads the CA, and node `me`'s certificate and key.
    ///
    /// # Errors
    ///
    /// A file cannot be read or parsed, rustls refuses its contents, or
    /// the certificate is not node `me`'s alone (it also names one of
    /// `peers`, or every node): the node would start and then be refused
    /// by every peer.
    pub fn load(
        files: &TlsFiles,
        cluster: ClusterId,
        me: u64,
        peers: &[u64],
    ) -> Result<PeerTls, TlsError> {
        let roots = load_roots(&files.ca)?;
        let chain = load_certs(&files.cert)?;
        let key = load_key(&files.key)?;
        let own = webpki::EndEntityCert::try_from(&chain[0])
            .map_err(|e| super::file_error(&files.cert, e))?;
        let others = peers.iter().chain([&NO_NODE]).filter(|&&id| id != me);
        if !names(&own, cluster, me) || others.clone().any(|&id| names(&own, cluster, id)) {
            return Err(super::file_error(
                &files.cert,
                format!(
                    "not a certificate for {} alone: every peer would refuse it",
                    Self::name(cluster, me)
                ),
            ));
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider()).build()?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(PeerTls {
            cluster,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// Opens TLS to node `id` over `tcp`, which fails unless the other end
    /// proves to be that node of this cluster.
    ///
    /// # Errors
    ///
    /// The handshake failed.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        id: u64,
    ) -> std::io::Result<client::TlsStream<TcpStream>> {
        let name = ServerName::try_from(Self::name(self.cluster, id))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, tcp).await
    }

    /// Accepts TLS on `tcp` and finds which of `members` the dialler's
    /// certificate names.
    ///
    /// # Errors
    ///
    /// Why the connection is refused: the handshake failed (no
    /// certificate, another CA), or the certificate names no member of
    /// this cluster, or several.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        members: &[u64],
    ) -> Result<(server::TlsStream<TcpStream>, u64), String> {
        let stream = self
            .acceptor
            .accept(tcp)
            .await
            .map_err(|e| format!("TLS handshake failed ({e})"))?;
        let id = {
            let (_, session) = stream.get_ref();
            let cert = session
                .peer_certificates()
                .and_then(|chain| chain.first())
                .ok_or("no client certificate")?;
            self.member_named(cert, members)?
        };
        Ok((stream, id))
    }

    /// The one member whose peer name `cert` is valid for.
    fn member_named(
        &self,
        cert: &rustls::pki_types::CertificateDer<'_>,
        members: &[u64],
    ) -> Result<u64, String> {
        let cert = webpki::EndEntityCert::try_from(cert)
            .map_err(|e| format!("unreadable certificate ({e})"))?;
        if names(&cert, self.cluster, NO_NODE) {
            return Err("a wildcard certificate names every node".into());
        }
        let named: Vec<u64> = members
            .iter()
            .copied()
            .filter(|&id| names(&cert, self.cluster, id))
            .collect();
        match named[..] {
            [id] => Ok(id),
            [] => Err(format!(
                "the certificate names no current member ({members:?}) of cluster {:016x}",
                self.cluster.0
            )),
            _ => Err(format!("the certificate names several members ({named:?})")),
        }
    }
}
