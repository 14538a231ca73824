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
/// How often a fetch waiting for records looks again.
const WAIT_STEP: Duration = Duration::from_millis(5);
/// The longest a fetch waits for records, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Answers `request`: records from each partition's fetch offset, waiting
/// up to the request's `max_wait_ms` while there are none yet.
pub async fn fetch(state: &KafkaState, request: FetchRequest) -> FetchResponse {
    let leads = matches!(state.node.status().await, Ok(s) if s.leader == state.id);
    let error_for = |topic: &str, partition: i32| {
        (topic != state.config.topic || partition != 0)
            .then_some(ResponseError::UnknownTopicOrPartition)
            .or((!leads).then_some(ResponseError::NotLeaderOrFollower))
    };
    let waits_for = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.as_str(), p)))
        .filter(|(topic, p)| error_for(topic, p.partition).is_none())
        .map(|(_, p)| p.fetch_offset)
        .max();
    if let Some(offset) = waits_for {
        let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
        wait_for_records(state, offset, wait.min(MAX_WAIT)).await;
    }
    let log = state.read_log();
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
                    let (start, end) = (log.start() as i64, log.end() as i64);
                    let response = response
                        .with_high_watermark(end)
                        .with_last_stable_offset(end)
                        .with_log_start_offset(start)
                        .with_aborted_transactions(Some(Vec::new()));
                    if !(start..=end).contains(&p.fetch_offset) {
                        return response.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    let max_bytes = usize::try_from(p.partition_max_bytes).unwrap_or(0);
                    let (first, records) = log.read(p.fetch_offset as u64, MAX_FETCH_RECORDS);
                    response.with_records(Some(batch(first, &records, max_bytes)))
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

/// Waits until the log holds a record at `offset`, at most `wait`.
async fn wait_for_records(state: &KafkaState, offset: i64, wait: Duration) {
    let deadline = Instant::now() + wait;
    while (state.read_log().end() as i64) <= offset && Instant::now() < deadline {
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// One record batch of `records` from offset `first`, as many as fit in
/// `max_bytes` of values but at least one, as Kafka returns a first batch
/// larger than the limit rather than none.
fn batch(first: u64, records: &[Bytes], max_bytes: usize) -> Bytes {
    let mut bytes = 0;
    let taken = records
        .iter()
        .take_while(|r| {
            bytes += r.len();
            bytes <= max_bytes
        })
        .count()
        .max(1)
        .min(records.len());
    if taken == 0 {
        return Bytes::new();
    }
    let records: Vec<Record> = records[..taken]
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
    let mut out = BytesMut::with_capacity(bytes.min(max_bytes) + 64 + 16 * taken);
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options)
        .expect("values under the batch limit encode uncompressed");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;

    #[test]
    fn a_batch_starts_at_the_first_offset_and_keeps_to_the_byte_limit() {
        let records: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i; 10])).collect();
        let set = RecordBatchDecoder::decode(&mut batch(40, &records, 25)).unwrap();
        let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![40, 41]);
        assert_eq!(set.records[1].value, Some(records[1].clone()));
        let one = RecordBatchDecoder::decode(&mut batch(0, &records, 1)).unwrap();
        assert_eq!(one.records.len(), 1, "at least one record");
        assert!(batch(7, &[], 100).is_empty());
    }
}
