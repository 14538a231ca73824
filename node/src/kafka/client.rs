//! A Kafka client of the node's own, on the same `kafka-protocol` codec:
//! one request at a time on one connection. The bench's Kafka producers
//! and the tests' hand-made requests use it; real clients (kafka-python,
//! kcat) are what the tests check the listener against.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::MAX_FRAME_BYTES;
use crate::producers::ProducerBatch;

/// The Produce version the client sends.
pub const PRODUCE_VERSION: i16 = 9;

/// Why a request got no answer, or a refusal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed.
    #[error("Kafka connection: {0}")]
    Io(#[from] std::io::Error),
    /// The node closed the connection.
    #[error("the node closed the connection")]
    Closed,
    /// A frame this client could not encode or decode.
    #[error("Kafka codec: {0}")]
    Codec(String),
    /// The node refused the request.
    #[error("refused: {0:?}")]
    Refused(ResponseError),
}

/// One connection to a node's Kafka listener.
pub struct KafkaClient {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    correlation_id: i32,
}

impl KafkaClient {
    /// Connects to `addr`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`].
    pub async fn connect(addr: SocketAddr) -> Result<KafkaClient, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let codec = LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .max_frame_length(MAX_FRAME_BYTES)
            .new_codec();
        Ok(KafkaClient {
            framed: Framed::new(stream, codec),
            correlation_id: 0,
        })
    }

    /// Sends `request` at `version` and reads its response.
    ///
    /// # Errors
    ///
    /// [`ClientError`]: the connection failed or closed, or the frames
    /// did not encode or decode.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let codec = |e: anyhow::Error| ClientError::Codec(e.to_string());
        let frame = self.frame(request, version)?;
        let mut answer = self.send_frame(frame).await?.ok_or(ClientError::Closed)?;
        let header = ResponseHeader::decode(&mut answer, R::Response::header_version(version))
            .map_err(codec)?;
        if header.correlation_id != self.correlation_id {
            return Err(ClientError::Codec(format!(
                "answer to request {} for request {}",
                header.correlation_id, self.correlation_id
            )));
        }
        R::Response::decode(&mut answer, version).map_err(codec)
    }

    /// Sends `request` at `version` and reads no answer: a produce with
    /// `acks=0`.
    ///
    /// # Errors
    ///
    /// [`ClientError`]: the connection failed, or the request did not
    /// encode.
    pub async fn send_unanswered<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<(), ClientError> {
        let frame = self.frame(request, version)?;
        Ok(self.framed.send(frame).await?)
    }

    fn frame<R: Request>(&mut self, request: &R, version: i16) -> Result<Bytes, ClientError> {
        let codec = |e: anyhow::Error| ClientError::Codec(e.to_string());
        self.correlation_id += 1;
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("raft-node")))
            .encode(&mut frame, R::header_version(version))
            .map_err(codec)?;
        request.encode(&mut frame, version).map_err(codec)?;
        Ok(frame.freeze())
    }

    /// Sends `frame` as it is and reads the next frame, `None` if the node
    /// closed the connection instead.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`].
    pub async fn send_frame(&mut self, frame: Bytes) -> Result<Option<Bytes>, ClientError> {
        self.framed.send(frame).await?;
        match self.framed.next().await {
            Some(Ok(frame)) => Ok(Some(frame.freeze())),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(None),
            Some(Err(e)) => Err(e.into()),
            None => Ok(None),
        }
    }

    /// Produces `values` as one batch to partition 0 of `topic` with
    /// `acks=all`; returns the offset of the first.
    ///
    /// # Errors
    ///
    /// [`ClientError`], [`ClientError::Refused`] with the node's error.
    pub async fn produce(
        &mut self,
        topic: &str,
        values: &[Bytes],
        producer: Option<ProducerBatch>,
    ) -> Result<u64, ClientError> {
        let request = produce_request(topic, record_batch(values, producer)?);
        let response = self.send(&request, PRODUCE_VERSION).await?;
        let partition = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| ClientError::Codec("a produce response without a partition".into()))?;
        match ResponseError::try_from_code(partition.error_code) {
            Some(error) => Err(ClientError::Refused(error)),
            None => Ok(partition.base_offset as u64),
        }
    }
}

/// A Produce request of `records` to partition 0 of `topic`, `acks=all`.
pub fn produce_request(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

/// One uncompressed record batch of `values`, numbered as `producer` says
/// (or by no producer).
///
/// # Errors
///
/// [`ClientError::Codec`]: a value too large to encode.
pub fn record_batch(
    values: &[Bytes],
    producer: Option<ProducerBatch>,
) -> Result<Bytes, ClientError> {
    let records: Vec<Record> = values
        .iter()
        .zip(0..)
        .map(|(value, offset)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.map_or(-1, |p| p.id),
            producer_epoch: producer.map_or(-1, |p| p.epoch),
            timestamp_type: TimestampType::Creation,
            offset,
            // Without a producer the batch's base sequence is -1.
            sequence: producer.map_or(offset as i32 - 1, |p| {
                p.first_sequence.wrapping_add(offset as i32)
            }),
            timestamp: 0,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options)
        .map_err(|e| ClientError::Codec(e.to_string()))?;
    Ok(out.freeze())
}
