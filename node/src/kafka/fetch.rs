//! Fetch: the applied records from an offset, at the leader, as one record
//! batch whose base offset is the first record's. The records carry no
//! key, no headers and no timestamp (-1): the log keeps values only.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_TIMESTAMP,
};
use kafka_protocol::ResponseError;

use super::request::code;
use super::KafkaState;

/// Records returned per partition and fetch at most.
const MAX_FETCH_RECORDS: usize = crate::api::MAX_READ_RECORDS;
/// Bytes of records one fetch returns at most, whatever the client asks,
/// each record counted with [`RECORD_OVERHEAD`]: with the one record a
/// fetch returns past its limit (at most [`super::MAX_BATCH_BYTES`]), the
/// response stays under [`super::MAX_FRAME_BYTES`].
const MAX_FETCH_BYTES: usize = 1 << 20;
/// What a record adds to its value in a batch, at most: its length,
/// attributes, deltas, key and header count.
const RECORD_OVERHEAD: usize = 16;
/// How often a fetch waiting for records looks again.
const WAIT_STEP: Duration = Duration::from_millis(5);
/// The longest a fetch waits for records, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Answers `request`: records from each partition's fetch offset, waiting
/// up to the request's `max_wait_ms` while there are none yet. Within
/// the request's `max_bytes` (at most [`MAX_FETCH_BYTES`]); a request
/// naming the partition more than once gets its records once, in the
/// first. The batch is encoded outside the log's lock, so a fetch never
/// holds up the Ready loop's apply.
pub async fn fetch(state: &KafkaState, request: FetchRequest) -> FetchResponse {
    let leads = matches!(state.node.status().await, Ok(s) if s.leader == state.id);
    let error_for = |topic: &str, partition: i32| {
        (topic != state.config.topic || partition != 0)
            .then_some(ResponseError::UnknownTopicOrPartition)
            .or((!leads).then_some(ResponseError::NotLeaderOrFollower))
    };
    let at_end = |offset: i64| offset == state.read_log().end() as i64;
    let waits = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.as_str(), p)))
        .any(|(topic, p)| error_for(topic, p.partition).is_none() && at_end(p.fetch_offset));
    if waits {
        let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
        wait_for_records(state, wait.min(MAX_WAIT)).await;
    }
    let budget = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(MAX_FETCH_BYTES);
    let mut served = false;
    let responses = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let response = PartitionData::default().with_partition_index(p.partition);
                    if let Some(error) = error_for(topic.topic.0.as_str(), p.partition) {
                        return response.with_error_code(code(Some(error)));
                    }
                    let duplicate = std::mem::replace(&mut served, true);
                    let (start, end, first, records) = {
                        let log = state.read_log();
                        let (start, end) = (log.start() as i64, log.end() as i64);
                        let (first, records) =
                            if !duplicate && (start..=end).contains(&p.fetch_offset) {
                                log.read(p.fetch_offset as u64, MAX_FETCH_RECORDS)
                            } else {
                                (0, Vec::new())
                            };
                        (start, end, first, records)
                    };
                    let response = response
                        .with_high_watermark(end)
                        .with_last_stable_offset(end)
                        .with_log_start_offset(start)
                        .with_aborted_transactions(Some(Vec::new()));
                    if !(start..=end).contains(&p.fetch_offset) {
                        return response.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    if duplicate {
                        return response.with_records(Some(Bytes::new()));
                    }
                    let limit = usize::try_from(p.partition_max_bytes)
                        .unwrap_or(0)
                        .min(budget);
                    match batch(first, &records[..within(&records, limit)]) {
                        Ok(batch) => response.with_records(Some(batch)),
                        Err(error) => response.with_error_code(error.code()),
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

/// Waits until the log grows, at most `wait`.
async fn wait_for_records(state: &KafkaState, wait: Duration) {
    let deadline = Instant::now() + wait;
    let end = state.read_log().end();
    while state.read_log().end() == end && Instant::now() < deadline {
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// How many of `records` fit in `limit` bytes, each counted with
/// [`RECORD_OVERHEAD`]; at least one, as Kafka returns a first batch whole
/// even past the limit rather than nothing.
fn within(records: &[Bytes], limit: usize) -> usize {
    let mut bytes = 0;
    let fit = records
        .iter()
        .take_while(|r| {
            bytes += r.len() + RECORD_OVERHEAD;
            bytes <= limit
        })
        .count();
    fit.max(1).min(records.len())
}

/// One record batch of `records` from offset `first`, empty for none.
///
/// # Errors
///
/// `UNKNOWN_SERVER_ERROR` if the codec refuses the records (values under
/// the batch limit never are), so the consumer sees an error rather than
/// fetching the same offset forever.
fn batch(first: u64, records: &[Bytes]) -> Result<Bytes, ResponseError> {
    if records.is_empty() {
        return Ok(Bytes::new());
    }
    let records: Vec<Record> = records
        .iter()
        .zip(first as i64..)
        .map(|(value, offset)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // No producer: the batch's base sequence is -1; the encoder
            // keeps records in one batch while offset minus sequence holds.
            sequence: (offset - first as i64) as i32 - 1,
            timestamp: NO_TIMESTAMP,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let bytes: usize = records
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(Bytes::len)
        .sum();
    let mut out = BytesMut::with_capacity(bytes + 64 + 16 * records.len());
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options)
        .map(|()| out.freeze())
        .map_err(|e| {
            tracing::error!("Kafka fetch: encoding {} records: {e}", records.len());
            ResponseError::UnknownServerError
        })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;

    #[test]
    fn a_batch_starts_at_the_first_offset_and_keeps_to_the_byte_limit() {
        let records: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i; 10])).collect();
        assert_eq!(within(&records, 2 * (10 + RECORD_OVERHEAD)), 2);
        assert_eq!(within(&records, 1), 1, "at least one record");
        assert_eq!(within(&[], 100), 0);
        assert_eq!(batch(7, &[]), Ok(Bytes::new()));
        let set = RecordBatchDecoder::decode(&mut batch(40, &records[..2]).unwrap()).unwrap();
        let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![40, 41]);
        assert_eq!(set.records[1].value, Some(records[1].clone()));
    }
}
