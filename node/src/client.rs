//! A small HTTP/1.1 client of the API, over one kept-alive connection, with
//! TLS and a bearer token when the node asks for them: the bench's
//! producers, `raft-node admin`, the cluster's readiness checks and the
//! nemesis clients all use it.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::api::{AppendRequest, Encoding, ReadResponse};
use crate::handle::{Appended, Membership, MembershipChange, Status};
use crate::tls::api::ApiCredentials;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or broke.
    #[error("{addr}: {source}")]
    Connection {
        /// The node.
        addr: SocketAddr,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The node answered with an error status.
    #[error("{addr}: HTTP {status}: {body}")]
    Status {
        /// The node.
        addr: SocketAddr,
        /// The status.
        status: StatusCode,
        /// The body (`{"error": ...}`).
        body: String,
    },
    /// The answer was not the expected JSON.
    #[error("{addr}: unexpected answer: {source}")]
    Body {
        /// The node.
        addr: SocketAddr,
        /// The cause.
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The HTTP status, if the node answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One connection to one node's API.
pub struct Client {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
    /// `Bearer <token>`, sent with every request.
    authorization: Option<String>,
}

impl Client {
    /// Connects over plain HTTP, with no token.
    ///
    /// # Errors
    ///
    /// [`ClientError::Connection`].
    pub async fn connect(addr: SocketAddr) -> Result<Client, ClientError> {
        Client::connect_with(addr, &ApiCredentials::default()).await
    }

    /// Connects presenting `credentials`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Connection`], the TLS handshake's failure included.
    pub async fn connect_with(
        addr: SocketAddr,
        credentials: &ApiCredentials,
    ) -> Result<Client, ClientError> {
        let broken = |source: Box<dyn std::error::Error + Send + Sync>| ClientError::Connection {
            addr,
            source,
        };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| broken(e.into()))?;
        let _ = stream.set_nodelay(true);
        let stream = credentials
            .open(stream, addr)
            .await
            .map_err(|e| broken(e.into()))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| broken(e.into()))?;
        tokio::spawn(connection);
        Ok(Client {
            addr,
            sender,
            authorization: credentials.token().map(|t| format!("Bearer {t}")),
        })
    }

    /// One request and its whole answer.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Bytes, ClientError> {
        let addr = self.addr;
        let broken = |source: Box<dyn std::error::Error + Send + Sync>| ClientError::Connection {
            addr,
            source,
        };
        self.sender.ready().await.map_err(|e| broken(e.into()))?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let request = request
            .body(Full::new(body))
            .expect("a well-formed request");
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| broken(e.into()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| broken(e.into()))?
            .to_bytes();
        if !status.is_success() {
            return Err(ClientError::Status {
                addr,
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }

    async fn call<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<T, ClientError> {
        let body = self.send(method, path, body).await?;
        serde_json::from_slice(&body).map_err(|source| ClientError::Body {
            addr: self.addr,
            source,
        })
    }

    fn json(value: &impl Serialize) -> Bytes {
        Bytes::from(serde_json::to_vec(value).expect("plain structs serialize"))
    }

    /// `POST /v1/append`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn append(&mut self, records: Vec<String>) -> Result<Appended, ClientError> {
        let body = Self::json(&AppendRequest {
            records,
            encoding: Encoding::Utf8,
        });
        self.call(Method::POST, "/v1/append", body).await
    }

    /// `POST /v1/append` of any bytes, in base64.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn append_bytes(&mut self, records: &[Bytes]) -> Result<Appended, ClientError> {
        let body = Self::json(&AppendRequest {
            records: records.iter().map(|r| BASE64.encode(r)).collect(),
            encoding: Encoding::Base64,
        });
        self.call(Method::POST, "/v1/append", body).await
    }

    /// `GET /v1/records` in base64, linearizable: up to `max` records from
    /// `from` as bytes, with the offset of the first.
    ///
    /// # Errors
    ///
    /// [`ClientError`]; [`ClientError::Status`] for a record the node
    /// sent as something else than base64.
    pub async fn read_bytes(
        &mut self,
        from: u64,
        max: usize,
    ) -> Result<(u64, Vec<Bytes>), ClientError> {
        let path = format!("/v1/records?from={from}&max={max}&encoding=base64");
        let page: ReadResponse = self.call(Method::GET, &path, Bytes::new()).await?;
        let records = page
            .records
            .iter()
            .map(|r| BASE64.decode(r).map(Bytes::from))
            .collect::<Result<_, _>>()
            .map_err(|e| ClientError::Status {
                addr: self.addr,
                status: StatusCode::OK,
                body: format!("a record not in base64: {e}"),
            })?;
        Ok((page.first, records))
    }

    /// `GET /v1/records`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn read(
        &mut self,
        from: u64,
        max: usize,
        linearizable: bool,
    ) -> Result<ReadResponse, ClientError> {
        let path = format!("/v1/records?from={from}&max={max}&linearizable={linearizable}");
        self.call(Method::GET, &path, Bytes::new()).await
    }

    /// Every record this node keeps, without a read barrier, in pages;
    /// with the offset of the first.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn read_all(&mut self) -> Result<(u64, Vec<String>), ClientError> {
        let first = self.read(0, 0, false).await?.first;
        let mut log = Vec::new();
        loop {
            let from = first + log.len() as u64;
            let page = self.read(from, crate::api::MAX_READ_RECORDS, false).await?;
            if page.records.is_empty() {
                return Ok((first, log));
            }
            log.extend(page.records);
        }
    }

    /// `GET /v1/status`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn status(&mut self) -> Result<Status, ClientError> {
        self.call(Method::GET, "/v1/status", Bytes::new()).await
    }

    /// `POST /v1/membership`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn change_membership(
        &mut self,
        change: &MembershipChange,
    ) -> Result<Membership, ClientError> {
        self.call(Method::POST, "/v1/membership", Self::json(change))
            .await
    }

    /// `POST /v1/leader`: asks the leader to hand leadership to `to`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn transfer_leader(&mut self, to: u64) -> Result<(), ClientError> {
        let body = Self::json(&crate::api::TransferLeader { to });
        let _: crate::api::TransferLeader = self.call(Method::POST, "/v1/leader", body).await?;
        Ok(())
    }

    /// `GET /metrics`, as text.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn metrics(&mut self) -> Result<String, ClientError> {
        let body = self.send(Method::GET, "/metrics", Bytes::new()).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}
