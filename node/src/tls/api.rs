//! TLS on the client API: the listener the node serves HTTPS on, and the
//! credentials the node's own clients (`raft-node admin`, the bench, the
//! tests) present to it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{server, TlsAcceptor, TlsConnector};
use tokio_util::either::Either;

use super::{file_error, load_certs, load_key, load_roots, provider, TlsError};

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most; a connection past them is closed at
/// once, so strangers cannot pile up half-open connections.
const HANDSHAKES_IN_PROGRESS: usize = 256;

/// TLS on the API. In TOML a table: `[api_tls]` then `cert = "..."`,
/// `key = "..."` and, to require client certificates, `client_ca = "..."`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiTlsFiles {
    /// The node's API certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// If set, every client must present a certificate signed by this CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

/// The bearer token in `path`: its contents without surrounding
/// whitespace, which must leave printable ASCII (it travels in a header).
///
/// # Errors
///
/// The file cannot be read, holds only whitespace, or holds anything
/// else than printable ASCII.
pub fn read_token(path: &Path) -> Result<String, TlsError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(file_error(path, "the token file is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(file_error(
            path,
            "a token is printable ASCII without spaces",
        ));
    }
    Ok(token.to_owned())
}

/// A listener that hands axum only connections whose TLS handshake
/// succeeded. Handshakes run side by side, so a client that stalls in
/// one holds up nobody else.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: FuturesUnordered<Handshake>,
}

type Handshake =
    Pin<Box<dyn Future<Output = Option<(server::TlsStream<TcpStream>, SocketAddr)>> + Send>>;

impl TlsListener {
    /// TLS on `tcp` with the certificate, key and optional client CA of
    /// `files`.
    ///
    /// # Errors
    ///
    /// A file cannot be read or parsed, or rustls refuses its contents.
    pub fn new(tcp: TcpListener, files: &ApiTlsFiles) -> Result<TlsListener, TlsError> {
        let chain = load_certs(&files.cert)?;
        let key = load_key(&files.key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let config = match &files.client_ca {
            Some(ca) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(load_roots(ca)?, provider())
                        .build()?;
                builder
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(chain, key)?
            }
            None => builder.with_no_client_auth().with_single_cert(chain, key)?,
        };
        Ok(TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshakes: FuturesUnordered::new(),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((_, remote)) if self.handshakes.len() >= HANDSHAKES_IN_PROGRESS => {
                        tracing::info!("API client {remote}: {HANDSHAKES_IN_PROGRESS} TLS handshakes in progress; closing");
                    }
                    Ok((tcp, remote)) => {
                        let handshake = self.acceptor.accept(tcp);
                        self.handshakes.push(Box::pin(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(stream)) => Some((stream, remote)),
                                Ok(Err(e)) => {
                                    tracing::info!("API client {remote}: TLS handshake failed ({e})");
                                    None
                                }
                                Err(_) => None,
                            }
                        }));
                    }
                    Err(e) => {
                        tracing::warn!("API listener: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                Some(done) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    if let Some(connection) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// What a client presents to the API: TLS (the CA it trusts the node's
/// certificate to, and its own certificate if the node requires one) and
/// a bearer token. The default is neither: plain HTTP, no token.
#[derive(Clone, Default)]
pub struct ApiCredentials {
    tls: Option<TlsConnector>,
    token: Option<String>,
}

/// A connection to the API: TLS or plain.
pub type ApiStream = Either<tokio_rustls::client::TlsStream<TcpStream>, TcpStream>;

impl ApiCredentials {
    /// Credentials from files: `ca` turns TLS on, `client` is a
    /// certificate and its key, `token` a token file.
    ///
    /// # Errors
    ///
    /// A file cannot be read or parsed, or a client certificate is given
    /// without the CA that turns TLS on.
    pub fn load(
        ca: Option<&Path>,
        client: Option<(&Path, &Path)>,
        token: Option<&Path>,
    ) -> Result<ApiCredentials, TlsError> {
        let tls = match (ca, client) {
            (None, None) => None,
            (None, Some((cert, _))) => {
                return Err(file_error(
                    cert,
                    "a client certificate needs the CA of the node's API certificate",
                ))
            }
            (Some(ca), client) => {
                let builder = ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(load_roots(ca)?);
                let config = match client {
                    Some((cert, key)) => {
                        builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?
                    }
                    None => builder.with_no_client_auth(),
                };
                Some(TlsConnector::from(Arc::new(config)))
            }
        };
        let token = token.map(read_token).transpose()?;
        Ok(ApiCredentials { tls, token })
    }

    /// The token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Opens the connection over `tcp` to the API at `addr`, checking the
    /// node's certificate against `addr`'s IP address.
    ///
    /// # Errors
    ///
    /// The TLS handshake failed.
    pub async fn open(&self, tcp: TcpStream, addr: SocketAddr) -> std::io::Result<ApiStream> {
        match &self.tls {
            None => Ok(Either::Right(tcp)),
            Some(connector) => {
                let name = ServerName::IpAddress(addr.ip().into());
                Ok(Either::Left(connector.connect(name, tcp).await?))
            }
        }
    }
}
