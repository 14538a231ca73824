//! Produce: each record batch a client sends is checked here, then
//! proposed as one raft entry of its records; its offsets are assigned
//! when the entry is applied. A batch is answered once this node, the
//! leader, has applied it: raft has committed it on a majority of the
//! voters, each of which fsynced it. So `acks=1` waits for what `acks=all`
//! does; raft has nothing weaker to wait for. `acks=0` gets no answer, as
//! in Kafka, and a refusal closes the connection, as Kafka does, so that
//! the client refreshes its metadata instead of writing on to a follower.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{BatchDecodeInfo, Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError;

use super::apis::request_error;
use super::{bounds, KafkaState, MAX_BATCH_BYTES};
use crate::handle::Origin;
use crate::producers::ProducerBatch;

/// The smallest record a batch can hold: seven one-byte fields.
const MIN_RECORD_BYTES: usize = 7;
/// Bytes of a batch before its first record.
const BATCH_HEADER_BYTES: usize = 61;

/// A batch refused before it reaches raft, with the reason.
#[derive(Debug)]
struct Refusal(ResponseError, String);

/// The records of a batch the node stores, and its producer numbers.
#[derive(Debug)]
struct Batch {
    values: Vec<Bytes>,
    producer: Option<ProducerBatch>,
}

/// Checks `records`, one partition's record set: a single uncompressed
/// batch of the current format, whose CRC matches, of plain records (a
/// value, no key, no headers), within [`MAX_BATCH_BYTES`].
fn check(records: Option<Bytes>) -> Result<Batch, Refusal> {
    let refuse = |error, why: String| Err(Refusal(error, why));
    let Some(records) = records else {
        return refuse(ResponseError::InvalidRecord, "no record batch".into());
    };
    if records.len() > MAX_BATCH_BYTES {
        return refuse(
            ResponseError::MessageTooLarge,
            format!("{} bytes, over {MAX_BATCH_BYTES}", records.len()),
        );
    }
    if records.len() > 16 && records[16] != 2 {
        return refuse(
            ResponseError::UnsupportedForMessageFormat,
            format!("message format v{}; only v2 record batches", records[16]),
        );
    }
    // Base offset, then the batch's length from the next field on.
    let declared = records
        .get(8..12)
        .map(|len| 12 + i32::from_be_bytes(len.try_into().expect("4 bytes")) as i64);
    if declared != Some(records.len() as i64) {
        return refuse(
            ResponseError::CorruptMessage,
            format!(
                "{} bytes for a batch of {}; one batch per partition and request",
                records.len(),
                declared.unwrap_or(0)
            ),
        );
    }
    let infos = RecordBatchDecoder::decode_batch_info(&mut records.clone())
        .map_err(|e| Refusal(ResponseError::CorruptMessage, e.to_string()))?;
    let [info] = infos.as_slice() else {
        return refuse(
            ResponseError::CorruptMessage,
            format!("{} record batches in one", infos.len()),
        );
    };
    check_header(info, records.len())?;
    let last_offset_delta = i32::from_be_bytes(records[23..27].try_into().expect("4 bytes"));
    if i64::from(last_offset_delta) != i64::from(info.record_count) - 1 {
        return refuse(
            ResponseError::CorruptMessage,
            format!(
                "{} records with a last offset delta of {last_offset_delta}",
                info.record_count
            ),
        );
    }
    bounds::check_records(&records[BATCH_HEADER_BYTES..], info.record_count as usize)
        .map_err(|e| Refusal(ResponseError::CorruptMessage, e.to_string()))?;
    let set = RecordBatchDecoder::decode(&mut records.clone())
        .map_err(|e| Refusal(ResponseError::CorruptMessage, e.to_string()))?;
    let mut values = Vec::with_capacity(set.records.len());
    for record in set.records {
        if record.key.is_some() || !record.headers.is_empty() {
            return refuse(
                ResponseError::InvalidRecord,
                "records with keys or headers: the log keeps values only".into(),
            );
        }
        let Some(value) = record.value else {
            return refuse(ResponseError::InvalidRecord, "a null value".into());
        };
        values.push(value);
    }
    let producer = (info.producer_id >= 0).then_some(ProducerBatch {
        id: info.producer_id,
        epoch: info.producer_epoch,
        first_sequence: info.base_sequence,
    });
    Ok(Batch { values, producer })
}

/// What the batch header alone refuses, before the records are decoded:
/// a record count the bytes cannot hold (decoding would reserve room for
/// it), compression, transactions and control batches.
fn check_header(info: &BatchDecodeInfo, len: usize) -> Result<(), Refusal> {
    let records = usize::try_from(info.record_count).unwrap_or(usize::MAX);
    if records == 0 || records > len.saturating_sub(BATCH_HEADER_BYTES) / MIN_RECORD_BYTES {
        return Err(Refusal(
            ResponseError::CorruptMessage,
            format!("{records} records in {len} bytes"),
        ));
    }
    if info.compression != Compression::None {
        return Err(Refusal(
            ResponseError::UnsupportedCompressionType,
            format!(
                "{:?} compression; send batches uncompressed",
                info.compression
            ),
        ));
    }
    if info.transactional || info.control {
        return Err(Refusal(
            TRANSACTIONS_REFUSED,
            "transactional or control batch: transactions are not served".into(),
        ));
    }
    if info.producer_id >= 0 && (info.producer_epoch < 0 || info.base_sequence < 0) {
        return Err(Refusal(
            ResponseError::InvalidRecord,
            format!(
                "producer {} with epoch {} and base sequence {}",
                info.producer_id, info.producer_epoch, info.base_sequence
            ),
        ));
    }
    Ok(())
}

type PartitionAnswer = BoxFuture<'static, PartitionProduceResponse>;

/// The error transactions get, at InitProducerId and Produce alike: not
/// retriable, so a client gives up at once rather than retry until its
/// timeout.
pub const TRANSACTIONS_REFUSED: ResponseError = ResponseError::TransactionalIdAuthorizationFailed;

/// What a produce comes to.
pub enum Produced {
    /// The response to send.
    Answer(ProduceResponse),
    /// Nothing to send (`acks=0`, all stored).
    Nothing,
    /// An `acks=0` produce refused: close the connection.
    Close(ResponseError),
}

/// Checks each partition's batch and hands the stored ones to the Ready
/// loop, in order; the future returned is what to answer.
pub async fn start(state: &KafkaState, request: ProduceRequest) -> BoxFuture<'static, Produced> {
    let acks = request.acks;
    let refused = (!matches!(acks, -1..=1))
        .then_some(ResponseError::InvalidRequiredAcks)
        .or(request
            .transactional_id
            .is_some()
            .then_some(TRANSACTIONS_REFUSED));
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let ours = topic.name.0.as_str() == state.config.topic;
        let mut partitions: Vec<PartitionAnswer> = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            let response = PartitionProduceResponse::default().with_index(index);
            let known = ours && index == 0;
            let batch = match (refused, known) {
                (Some(error), _) => Err(Refusal(error, String::new())),
                (None, false) => Err(Refusal(
                    ResponseError::UnknownTopicOrPartition,
                    format!("one topic, `{}`, with one partition, 0", state.config.topic),
                )),
                (None, true) => check(data.records),
            };
            let answer = match batch {
                Err(refusal) => ready(refused_with(response, refusal)),
                Ok(batch) => propose(state, batch, response).await,
            };
            partitions.push(answer);
        }
        topics.push((topic.name, partitions));
    }
    async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, partitions) in topics {
            let partitions = futures::future::join_all(partitions).await;
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(partitions),
            );
        }
        let refused = responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .find_map(|p| ResponseError::try_from_code(p.error_code));
        match (acks, refused) {
            (0, Some(error)) => Produced::Close(error),
            (0, None) => Produced::Nothing,
            _ => Produced::Answer(ProduceResponse::default().with_responses(responses)),
        }
    }
    .boxed()
}

fn ready(response: PartitionProduceResponse) -> PartitionAnswer {
    futures::future::ready(response).boxed()
}

fn refused_with(response: PartitionProduceResponse, refusal: Refusal) -> PartitionProduceResponse {
    let Refusal(error, why) = refusal;
    if !why.is_empty() {
        tracing::debug!("Kafka produce refused: {error}: {why}");
    }
    response
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_error_message((!why.is_empty()).then(|| StrBytes::from_string(why)))
}

async fn propose(
    state: &KafkaState,
    batch: Batch,
    response: PartitionProduceResponse,
) -> PartitionAnswer {
    let origin = Origin {
        producer: batch.producer,
        at_leader_only: true,
    };
    let answer = state.node.send_append(batch.values, origin).await;
    let log = state.log.clone();
    async move {
        let appended = match answer {
            Ok(answer) => answer.await,
            Err(e) => Err(e),
        };
        match appended {
            Ok(appended) => {
                let start = log.read().unwrap_or_else(|e| e.into_inner()).start();
                response
                    .with_base_offset(appended.offset as i64)
                    .with_log_start_offset(start as i64)
            }
            Err(e) => refused_with(response, Refusal(request_error(&e), e.to_string())),
        }
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    use super::*;

    fn record(value: &[u8]) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 9,
            producer_epoch: 1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: 4,
            timestamp: 0,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
        }
    }

    fn encode(records: &[Record]) -> Bytes {
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
        buf.freeze()
    }

    fn refusal(records: Bytes) -> ResponseError {
        check(Some(records)).unwrap_err().0
    }

    #[test]
    fn a_plain_batch_is_taken_with_its_producer_numbers() {
        let mut second = record(b"\xff\x00");
        second.offset = 1;
        second.sequence = 5;
        let batch = check(Some(encode(&[record(b"a"), second]))).unwrap();
        assert_eq!(
            batch.values,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"\xff\x00")]
        );
        assert_eq!(
            batch.producer,
            Some(ProducerBatch {
                id: 9,
                epoch: 1,
                first_sequence: 4
            })
        );
    }

    #[test]
    fn bad_batches_are_refused_with_kafka_s_errors() {
        let good = encode(&[record(b"value")]);
        let mut flipped = good.to_vec();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(refusal(flipped.into()), ResponseError::CorruptMessage);
        let mut old_format = good.to_vec();
        old_format[16] = 1;
        assert_eq!(
            refusal(old_format.into()),
            ResponseError::UnsupportedForMessageFormat
        );
        let huge = encode(&[record(&vec![0; MAX_BATCH_BYTES])]);
        assert_eq!(refusal(huge), ResponseError::MessageTooLarge);
        let mut keyed = record(b"v");
        keyed.key = Some(Bytes::from_static(b"k"));
        assert_eq!(refusal(encode(&[keyed])), ResponseError::InvalidRecord);
        let two = [good.clone(), good.clone()].concat();
        assert_eq!(refusal(two.into()), ResponseError::CorruptMessage);
        let mut trailing = good.to_vec();
        trailing.extend_from_slice(&[0; 20]);
        assert_eq!(refusal(trailing.into()), ResponseError::CorruptMessage);
        let mut null = record(b"");
        null.value = None;
        assert_eq!(refusal(encode(&[null])), ResponseError::InvalidRecord);
        let mut headed = record(b"v");
        headed.headers.insert(
            kafka_protocol::protocol::StrBytes::from_static_str("h"),
            None,
        );
        assert_eq!(refusal(encode(&[headed])), ResponseError::InvalidRecord);
        let mut unnumbered = record(b"v");
        unnumbered.sequence = -1;
        assert_eq!(refusal(encode(&[unnumbered])), ResponseError::InvalidRecord);
        // Attributes: compression (bits 0-2), then transactional (bit 4);
        // then the last offset delta. The CRC covers them: recompute it.
        for (at, bit, expected) in [
            (22, 1, ResponseError::UnsupportedCompressionType),
            (22, 1 << 4, TRANSACTIONS_REFUSED),
            (26, 1, ResponseError::CorruptMessage),
        ] {
            let mut batch = good.to_vec();
            batch[at] |= bit;
            let crc = crc32c::crc32c(&batch[21..]);
            batch[17..21].copy_from_slice(&crc.to_be_bytes());
            assert_eq!(refusal(batch.into()), expected, "byte {at}");
        }
        assert_eq!(
            refusal(good.slice(..good.len() - 1)),
            ResponseError::CorruptMessage
        );
        assert_eq!(check(None).unwrap_err().0, ResponseError::InvalidRecord);
    }

    #[test]
    fn a_record_count_the_bytes_cannot_hold_is_refused_before_decoding() {
        let mut batch = encode(&[record(b"value")]).to_vec();
        // The record count is the header's last field, before the records;
        // the CRC covers it, so recompute the CRC after.
        let count_at = BATCH_HEADER_BYTES - 4;
        batch[count_at..count_at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(refusal(batch.into()), ResponseError::CorruptMessage);
    }
}
