//! The client API: JSON over HTTP/1.1 (axum).
//!
//! HTTP and JSON rather than gRPC because a broker's producers and
//! operators reach it from any language with nothing but an HTTP client
//! (`curl` included), and the bench measures what such clients see. The
//! routes, with `curl` examples, are in the README.
//!
//! | route | does |
//! |---|---|
//! | `POST /v1/append` `{"records": ["a", "b"]}` | replicates the records as one entry; `{"offset": 0, "count": 2, "index": 9}` once applied here |
//! | `GET /v1/records?from=0&max=100&linearizable=true` | `{"first": 0, "records": [...], "end": 2}`; linearizable (ReadIndex) unless `linearizable=false` |
//! | `GET /v1/status` | role, leader, term, indexes, membership |
//! | `POST /v1/membership` `{"op": "add-learner", "id": 4, "addr": "127.0.0.1:7004"}` | `add-learner`, `promote`, `remove` |
//! | `POST /v1/leader` `{"to": 2}` | at the leader: hands leadership to voter 2; `{"to": 2}` once started |
//! | `GET /metrics` | Prometheus text |
//!
//! Records are bytes. In JSON they are UTF-8 strings unless the request
//! says `"encoding": "base64"` (append) or `encoding=base64` (read); a
//! read in UTF-8 that meets a record that is not UTF-8 (a Kafka client's,
//! say) is refused, naming its offset, rather than altered.
//!
//! With a token configured (`--api-token-file`), every route, the admin
//! ones (`/v1/membership`, `/v1/leader`) included, answers 401 to a
//! request without `Authorization: Bearer <token>`. TLS, and client
//! certificates if required, are the listener's ([`crate::tls::api`]).

use std::sync::{Arc, RwLock};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::handle::{MembershipChange, NodeHandle, RequestError};
use crate::metrics::Metrics;
use crate::state_machine::RecordLog;

/// Records returned by one read at most.
pub const MAX_READ_RECORDS: usize = 10_000;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The Ready loop.
    pub node: NodeHandle,
    /// The applied records, read without going through the loop.
    pub log: Arc<RwLock<RecordLog>>,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// The bearer token every request must carry, if one is configured.
    pub token: Option<Arc<str>>,
}

/// `POST /v1/append`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppendRequest {
    /// The records, as `encoding` says.
    pub records: Vec<String>,
    /// How the records are written.
    #[serde(default)]
    pub encoding: Encoding,
}

/// How records are written in JSON.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// As UTF-8 text.
    #[default]
    Utf8,
    /// As base64 (standard alphabet, padded): any bytes.
    Base64,
}

/// `GET /v1/records` parameters.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadQuery {
    /// The first offset.
    #[serde(default)]
    pub from: u64,
    /// How many records at most (capped at [`MAX_READ_RECORDS`]).
    #[serde(default = "default_max")]
    pub max: usize,
    /// Whether to wait for ReadIndex first.
    #[serde(default = "default_linearizable")]
    pub linearizable: bool,
    /// How to write the records.
    #[serde(default)]
    pub encoding: Encoding,
}

fn default_max() -> usize {
    100
}

fn default_linearizable() -> bool {
    true
}

/// `GET /v1/records` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadResponse {
    /// The offset of the first record returned: `from`, or the oldest
    /// offset kept if `from` is older (see `retention_records`).
    pub first: u64,
    /// The records from `first`, in order.
    pub records: Vec<String>,
    /// Records in the log when read: the read saw offsets `0..end`.
    pub end: u64,
}

/// An error answer: `{"error": "..."}` with a status code.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        let code = match e {
            RequestError::NoLeader
            | RequestError::Stopping
            | RequestError::LeaderMoving(_)
            | RequestError::NotLeader(_) => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            RequestError::Refused(_) | RequestError::Sequence(_) => StatusCode::CONFLICT,
        };
        ApiError(code, e.to_string())
    }
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

/// The largest request body taken, and so the largest record.
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// The router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/append", post(append))
        .route("/v1/records", get(read))
        .route("/v1/status", get(status))
        .route("/v1/membership", post(membership))
        .route("/v1/leader", post(transfer_leader))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Serves the API on `listener` (plain TCP, or [`crate::tls::api::TlsListener`])
/// until `stop`.
pub async fn serve<L>(listener: L, state: ApiState, stop: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let server =
        axum::serve(listener, router(state)).with_graceful_shutdown(stop.cancelled_owned());
    if let Err(e) = server.await {
        tracing::error!("API server: {e}");
    }
}

/// Refuses a request without the configured bearer token, comparing in
/// constant time so the answer's timing does not give the token away.
async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
        let valid = presented.is_some_and(|presented| {
            bool::from(subtle::ConstantTimeEq::ct_eq(presented, token.as_bytes()))
        });
        if !valid {
            let refused = ApiError(
                StatusCode::UNAUTHORIZED,
                "this node requires `Authorization: Bearer <token>`".into(),
            );
            return (
                [(header::WWW_AUTHENTICATE, "Bearer")],
                refused.into_response(),
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn append(
    State(state): State<ApiState>,
    body: Result<Json<AppendRequest>, JsonRejection>,
) -> Result<Json<crate::handle::Appended>, ApiError> {
    let Json(request) = body.map_err(|e| bad_request(e.body_text()))?;
    if request.records.is_empty() {
        return Err(bad_request("records must not be empty"));
    }
    let records = match request.encoding {
        Encoding::Utf8 => request.records.into_iter().map(Bytes::from).collect(),
        Encoding::Base64 => request
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                BASE64
                    .decode(r)
                    .map(Bytes::from)
                    .map_err(|e| bad_request(format!("record {i}: {e}")))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Json(state.node.append(records).await?))
}

async fn read(
    State(state): State<ApiState>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Json<ReadResponse>, ApiError> {
    let Query(query) = query.map_err(|e| bad_request(e.body_text()))?;
    if query.linearizable {
        state.node.read_barrier().await?;
    }
    let log = state.log.read().unwrap_or_else(|e| e.into_inner());
    let (first, records) = log.read(query.from, query.max.min(MAX_READ_RECORDS));
    let records = records
        .iter()
        .zip(first..)
        .map(|(r, offset)| match query.encoding {
            Encoding::Base64 => Ok(BASE64.encode(r)),
            Encoding::Utf8 => String::from_utf8(r.to_vec()).map_err(|_| {
                ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "the record at offset {offset} is not UTF-8: read with encoding=base64"
                    ),
                )
            }),
        })
        .collect::<Result<_, _>>()?;
    Ok(Json(ReadResponse {
        first,
        records,
        end: log.end(),
    }))
}

async fn status(State(state): State<ApiState>) -> Result<Json<crate::handle::Status>, ApiError> {
    Ok(Json(state.node.status().await?))
}

async fn membership(
    State(state): State<ApiState>,
    body: Result<Json<MembershipChange>, JsonRejection>,
) -> Result<Json<crate::handle::Membership>, ApiError> {
    let Json(change) = body.map_err(|e| bad_request(e.body_text()))?;
    Ok(Json(state.node.change_membership(change).await?))
}

/// `POST /v1/leader` body and answer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransferLeader {
    /// The voter to lead next.
    pub to: u64,
}

async fn transfer_leader(
    State(state): State<ApiState>,
    body: Result<Json<TransferLeader>, JsonRejection>,
) -> Result<Json<TransferLeader>, ApiError> {
    let Json(request) = body.map_err(|e| bad_request(e.body_text()))?;
    state.node.transfer_leader(request.to).await?;
    Ok(Json(request))
}

async fn metrics(State(state): State<ApiState>) -> String {
    state.metrics.render()
}
