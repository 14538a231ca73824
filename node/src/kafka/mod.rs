//! Kafka's wire protocol, beside the HTTP API: the record log is a topic
//! with one partition (0), whose leader is the raft leader, so Kafka
//! producers and consumers (kafka-python, librdkafka and kcat) reach it
//! unchanged. The codec is the `kafka-protocol` crate, generated from
//! Kafka's own message schemas.
//!
//! | API | versions | what it does here |
//! |---|---|---|
//! | ApiVersions | 0-3 | the table in [`apis::SERVED`] |
//! | Metadata | 0-12 | the members with a Kafka address as brokers; raft's leader, term and voters as the partition's leader, epoch and replicas |
//! | Produce | 0-12 (3-12 taken) | one record batch is one raft entry, answered once applied |
//! | Fetch | 4-12 | the records from an offset, as one batch |
//! | ListOffsets | 1-7 | earliest and latest offsets |
//! | InitProducerId | 0-4 | a producer id no other producer had |
//!
//! Produce is advertised from version 0 (librdkafka reads a minimum above
//! 0 as no Produce at all, KAFKA-18659); versions 0-2 carry the old
//! message format, which no client this serves still sends, and close
//! the connection.
//!
//! A connection's requests are answered in order, several in flight at
//! once; a produce reaches the Ready loop before the next request is read,
//! so an idempotent producer's pipelined batches are proposed in their
//! order.

mod apis;
mod bounds;
pub mod client;
mod fetch;
mod produce;
mod request;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesOrdered;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::handle::NodeHandle;
use crate::state_machine::RecordLog;
use crate::tls::api::TlsListener;

/// The largest frame read or written; a larger one closes the connection.
/// A produce request carries one batch of at most [`MAX_BATCH_BYTES`],
/// and a fetch answer stays under it.
pub const MAX_FRAME_BYTES: usize = MAX_BATCH_BYTES + (2 << 20);
/// The largest record batch stored, as the HTTP API's largest body: a
/// larger one is answered `MESSAGE_TOO_LARGE`.
pub const MAX_BATCH_BYTES: usize = crate::api::MAX_BODY_BYTES;
/// Requests of one connection read ahead of their answers.
const IN_FLIGHT_PER_CONNECTION: usize = 64;
/// Client connections at once; past them a new one is closed at once.
const CONNECTIONS: usize = 1024;
/// Bytes of requests read and not yet answered, across all connections,
/// each request counted with the most its answer can take
/// ([`answer_reserve`]): a connection reads its next request once it
/// fits. With the frame each connection may be reading, this bounds what
/// clients can make the node hold.
const IN_FLIGHT_BYTES: usize = 256 << 20;
/// A new connection must send its first request within this.
const FIRST_REQUEST: Duration = Duration::from_secs(10);
/// A connection that sends nothing for this long is closed (Kafka's
/// `connections.max.idle.ms` is 10 minutes).
const IDLE: Duration = Duration::from_secs(600);

/// What every connection shares.
#[derive(Clone)]
pub struct KafkaState {
    /// The Ready loop.
    pub node: NodeHandle,
    /// The applied records.
    pub log: Arc<RwLock<RecordLog>>,
    /// This node's raft id, its broker id.
    pub id: u64,
    /// The listener, the topic and the brokers.
    pub config: Arc<KafkaConfig>,
    /// The cluster's name, Metadata's cluster id.
    pub cluster_name: Arc<str>,
}

impl KafkaState {
    fn read_log(&self) -> std::sync::RwLockReadGuard<'_, RecordLog> {
        self.log.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves Kafka clients on `listener` until `stop`; with TLS (the API's
/// certificate and client CA) when `listener` is a [`TlsListener`].
pub async fn serve(
    mut listener: Either<TlsListener, TcpListener>,
    state: KafkaState,
    stop: CancellationToken,
) {
    let connections = Arc::new(Semaphore::new(CONNECTIONS));
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_BYTES));
    let mut warned: Option<std::time::Instant> = None;
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = accept(&mut listener) => accepted,
        };
        let Some((stream, peer)) = stream else {
            continue;
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                tracing::warn!("Kafka client {peer}: closed, {CONNECTIONS} connections open");
                warned = Some(std::time::Instant::now());
            }
            continue;
        };
        let state = state.clone();
        let stop = stop.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = stop.cancelled() => {}
                result = connection(stream, &state, &in_flight) => {
                    if let Err(why) = result {
                        tracing::debug!("Kafka client {peer}: closed: {why}");
                    }
                }
            }
        });
    }
}

type ClientStream =
    Either<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, tokio::net::TcpStream>;

async fn accept(
    listener: &mut Either<TlsListener, TcpListener>,
) -> Option<(ClientStream, SocketAddr)> {
    match listener {
        Either::Left(tls) => {
            let (stream, peer) = axum::serve::Listener::accept(tls).await;
            Some((Either::Left(stream), peer))
        }
        Either::Right(plain) => match plain.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                Some((Either::Right(stream), peer))
            }
            Err(e) => {
                tracing::warn!("Kafka listener: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                None
            }
        },
    }
}

/// The most a request's answer can take: a fetch answer fills at most a
/// frame, any other a few bytes per topic and partition it names.
fn answer_reserve(frame: &[u8]) -> usize {
    let fetch = kafka_protocol::messages::ApiKey::Fetch as i16;
    if frame.get(..2) == Some(&fetch.to_be_bytes()) {
        MAX_FRAME_BYTES
    } else {
        64 << 10
    }
}

/// Reads a connection's requests and writes their answers in order,
/// until the client closes it or sends a frame that is not a request.
async fn connection<S>(
    stream: S,
    state: &KafkaState,
    in_flight: &Arc<Semaphore>,
) -> Result<(), request::Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let codec = LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec();
    let mut framed = Framed::new(stream, codec);
    let mut answers = FuturesOrdered::new();
    let mut wait = FIRST_REQUEST;
    loop {
        tokio::select! {
            frame = tokio::time::timeout(wait, framed.next()), if answers.len() < IN_FLIGHT_PER_CONNECTION => {
                let frame = frame.map_err(|_| request::Close(format!("nothing sent for {wait:?}")))?;
                let Some(frame) = frame else { break };
                let frame = frame.map_err(|e| request::Close(e.to_string()))?;
                wait = IDLE;
                let reserve = (frame.len() + answer_reserve(&frame)) as u32;
                // Write this connection's own answers while waiting for
                // room: they hold some of it.
                let permit = loop {
                    if let Ok(permit) = in_flight.clone().try_acquire_many_owned(reserve) {
                        break permit;
                    }
                    match answers.next().await {
                        Some((answer, permit)) => {
                            send(&mut framed, answer?).await?;
                            drop(permit);
                        }
                        None => {
                            break in_flight
                                .clone()
                                .acquire_many_owned(reserve)
                                .await
                                .expect("the semaphore is never closed")
                        }
                    }
                };
                let answer = request::start(state, frame.freeze()).await?;
                answers.push_back(async move { (answer.await, permit) });
            }
            Some((answer, permit)) = answers.next() => {
                send(&mut framed, answer?).await?;
                drop(permit);
            }
        }
    }
    while let Some((answer, _permit)) = answers.next().await {
        send(&mut framed, answer?).await?;
    }
    Ok(())
}

async fn send<S>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    answer: Option<BytesMut>,
) -> Result<(), request::Close>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match answer {
        Some(answer) => framed
            .send(Bytes::from(answer))
            .await
            .map_err(|e| request::Close(e.to_string())),
        None => Ok(()),
    }
}
