//! One frame in, one answer out: the request header and body decoded with
//! `kafka-protocol`, the handler chosen by API key, the answer encoded at
//! the request's version behind its correlation id.

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;

use super::produce::Produced;
use super::{apis, bounds, fetch, produce, KafkaState};

/// Why a connection is closed: a frame that is not a request this node
/// can answer. Kafka brokers close the connection then too.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Close(pub String);

/// A request's answer, once ready: the encoded response, or nothing for a
/// produce with `acks=0`.
pub type Answer = BoxFuture<'static, Result<Option<BytesMut>, Close>>;

/// Decodes `frame` and starts answering it. A produce reaches the Ready
/// loop before this returns, so the connection's next request is proposed
/// after it.
///
/// # Errors
///
/// [`Close`]: the frame is not a request of an API and version this node
/// decodes.
pub async fn start(state: &KafkaState, mut frame: Bytes) -> Result<Answer, Close> {
    if frame.len() < 4 {
        return Err(Close(format!("a {}-byte frame", frame.len())));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|()| Close(format!("unknown API key {key}")))?;
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| Close(format!("{api:?} v{version} request header: {e}")))?;
    let reply = Reply {
        api,
        version,
        correlation_id: header.correlation_id,
    };
    let served = apis::served(api).is_some_and(|range| range.contains(&version));
    if api == ApiKey::ApiVersions && !served {
        // A version this node does not know is refused at version 0,
        // which every client reads (KIP-511).
        let reply = Reply {
            version: 0,
            ..reply
        };
        return Ok(ready(reply.encode(&apis::api_versions(Some(
            ResponseError::UnsupportedVersion,
        )))));
    }
    if !served {
        // Kafka brokers close the connection too: the client did not
        // negotiate this version, and its body is not decoded.
        return Err(Close(format!("{api:?} v{version} is not served")));
    }
    bounds::check(api, version, &frame)
        .map_err(|e| Close(format!("{api:?} v{version} request: {e}")))?;
    let state = state.clone();
    Ok(match api {
        ApiKey::ApiVersions => ready(reply.encode(&apis::api_versions(None))),
        ApiKey::Metadata => {
            let request = decode(&mut frame, reply)?;
            async move { reply.encode(&apis::metadata(&state, request, version).await) }.boxed()
        }
        ApiKey::InitProducerId => {
            let request = decode(&mut frame, reply)?;
            async move { reply.encode(&apis::init_producer_id(&state, request).await) }.boxed()
        }
        ApiKey::ListOffsets => {
            let request = decode(&mut frame, reply)?;
            async move { reply.encode(&apis::list_offsets(&state, request, version).await) }.boxed()
        }
        ApiKey::Produce => {
            let request = decode(&mut frame, reply)?;
            let answer = produce::start(&state, request).await;
            async move {
                match answer.await {
                    Produced::Answer(response) => reply.encode(&response),
                    Produced::Nothing => Ok(None),
                    Produced::Close(error) => {
                        Err(Close(format!("an acks=0 produce refused: {error}")))
                    }
                }
            }
            .boxed()
        }
        ApiKey::Fetch => {
            let request = decode(&mut frame, reply)?;
            async move { reply.encode(&fetch::fetch(&state, request).await) }.boxed()
        }
        other => return Err(Close(format!("{other:?} is not served here"))),
    })
}

fn ready(answer: Result<Option<BytesMut>, Close>) -> Answer {
    futures::future::ready(answer).boxed()
}

fn decode<T: Decodable>(frame: &mut Bytes, reply: Reply) -> Result<T, Close> {
    T::decode(frame, reply.version)
        .map_err(|e| Close(format!("{:?} v{} request: {e}", reply.api, reply.version)))
}

/// What the answer to a request is encoded with.
#[derive(Debug, Clone, Copy)]
struct Reply {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
}

impl Reply {
    /// The response frame's body: header, then `response` at the
    /// request's version.
    fn encode<T: Encodable>(&self, response: &T) -> Result<Option<BytesMut>, Close> {
        let version = self.version;
        let mut out = BytesMut::with_capacity(64);
        ResponseHeader::default()
            .with_correlation_id(self.correlation_id)
            .encode(&mut out, self.api.response_header_version(version))
            .and_then(|()| response.encode(&mut out, version))
            .map_err(|e| Close(format!("{:?} v{version} response: {e}", self.api)))?;
        Ok(Some(out))
    }
}

/// The code Kafka sends for `error`, 0 for none.
pub fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}
