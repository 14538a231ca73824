//! The APIs that describe the partition rather than move records:
//! ApiVersions, Metadata, InitProducerId and ListOffsets.

use std::ops::RangeInclusive;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProducerId,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::request::code;
use super::KafkaState;
use crate::handle::{Origin, RequestError, Status};

/// The APIs served and the versions advertised. Produce starts at 0 for
/// librdkafka's sake (KAFKA-18659); versions below 3 close the connection,
/// as `kafka-protocol` decodes none of them. The upper bounds stop before
/// topic ids replace topic names.
pub const SERVED: [(ApiKey, RangeInclusive<i16>); 6] = [
    (ApiKey::Produce, 0..=12),
    (ApiKey::Fetch, 4..=12),
    (ApiKey::ListOffsets, 1..=7),
    (ApiKey::Metadata, 0..=12),
    (ApiKey::ApiVersions, 0..=3),
    (ApiKey::InitProducerId, 0..=4),
];

/// The versions of `api` this node advertises, if it serves it.
pub fn served(api: ApiKey) -> Option<RangeInclusive<i16>> {
    SERVED
        .iter()
        .find(|(served, _)| *served == api)
        .map(|(_, range)| range.clone())
}

/// ApiVersions: the table above.
pub fn api_versions(refused: Option<ResponseError>) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(code(refused))
        .with_api_keys(
            SERVED
                .iter()
                .map(|(api, range)| {
                    ApiVersion::default()
                        .with_api_key(*api as i16)
                        .with_min_version(*range.start())
                        .with_max_version(*range.end())
                })
                .collect(),
        )
}

/// The error that answers a partition request at a node that does not
/// lead, or cannot tell.
fn leader_error(status: &Status, me: u64) -> Option<ResponseError> {
    (status.leader != me).then_some(ResponseError::NotLeaderOrFollower)
}

fn broker(id: u64) -> BrokerId {
    BrokerId(i32::try_from(id).unwrap_or(-1))
}

fn epoch(status: &Status) -> i32 {
    i32::try_from(status.term).unwrap_or(i32::MAX)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// Metadata: the members with a Kafka address as brokers; the topic with
/// raft's leader, term and voters as its partition's leader, leader epoch,
/// replicas and in-sync replicas (raft commits only on a majority of them,
/// and a follower cannot tell which of them keep up).
pub async fn metadata(
    state: &KafkaState,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let topic = state.config.topic.as_str();
    // Version 0 asks for every topic with an empty list, later ones with
    // none.
    let asked: Vec<Option<String>> = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => topics
            .into_iter()
            .map(|t| t.name.map(|n| n.0.to_string()))
            .collect(),
        _ => vec![Some(topic.to_owned())],
    };
    let status = match state.node.status().await {
        Ok(status) => Some(status),
        Err(e) => {
            tracing::debug!("Kafka Metadata: {e}");
            None
        }
    };
    let members: Vec<u64> = status
        .iter()
        .flat_map(|s| s.membership.voters.iter().chain(&s.membership.learners))
        .copied()
        .collect();
    let mut addresses = state.config.brokers.clone();
    addresses.insert(state.id, state.config.listen);
    let brokers = addresses
        .iter()
        .filter(|(id, _)| members.contains(id))
        .map(|(&id, addr)| {
            MetadataResponseBroker::default()
                .with_node_id(broker(id))
                .with_host(StrBytes::from_string(addr.ip().to_string()))
                .with_port(i32::from(addr.port()))
        })
        .collect();
    let topics = asked
        .into_iter()
        .map(|name| {
            let ours = name.as_deref() == Some(topic);
            let response = MetadataResponseTopic::default()
                .with_name(name.map(|n| topic_name(&n)))
                .with_is_internal(false);
            let error = (!ours)
                .then_some(ResponseError::UnknownTopicOrPartition)
                .or(status
                    .is_none()
                    .then_some(ResponseError::LeaderNotAvailable));
            match (error, &status) {
                (None, Some(status)) => response.with_partitions(vec![partition(status)]),
                (error, _) => response.with_error_code(code(error)),
            }
        })
        .collect();
    let controller = status.as_ref().map_or(-1, |s| broker(s.leader).0);
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(state.cluster_name.to_string())))
        .with_controller_id(BrokerId(if controller == 0 { -1 } else { controller }))
        .with_topics(topics)
}

fn partition(status: &Status) -> MetadataResponsePartition {
    let voters: Vec<BrokerId> = status
        .membership
        .voters
        .iter()
        .map(|&v| broker(v))
        .collect();
    let partition = MetadataResponsePartition::default()
        .with_partition_index(0)
        .with_leader_epoch(epoch(status))
        .with_replica_nodes(voters.clone())
        .with_isr_nodes(voters);
    match status.leader {
        0 => partition
            .with_error_code(ResponseError::LeaderNotAvailable.code())
            .with_leader_id(BrokerId(-1)),
        leader => partition.with_leader_id(broker(leader)),
    }
}

/// InitProducerId: the id is the raft index of an empty entry committed
/// for it, which no other entry has, so ids are unique across the cluster
/// and its restarts without a counter of their own. Any node answers, as
/// any Kafka broker does for a producer without a transactional id.
pub async fn init_producer_id(
    state: &KafkaState,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default().with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return response.with_error_code(super::produce::TRANSACTIONS_REFUSED.code());
    }
    match state.node.append_from(Vec::new(), Origin::default()).await {
        Ok(appended) => response
            .with_producer_id(ProducerId(i64::try_from(appended.index).unwrap_or(-1)))
            .with_producer_epoch(0),
        Err(e) => response.with_error_code(request_error(&e).code()),
    }
}

/// The Kafka error a request that reached the Ready loop answers with.
pub fn request_error(e: &RequestError) -> ResponseError {
    use crate::producers::SequenceError;
    match e {
        RequestError::NoLeader
        | RequestError::LeaderMoving(_)
        | RequestError::NotLeader(_)
        | RequestError::Stopping => ResponseError::NotLeaderOrFollower,
        RequestError::Timeout => ResponseError::RequestTimedOut,
        RequestError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        RequestError::Sequence(SequenceError::FencedEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        RequestError::Refused(_) => ResponseError::UnknownServerError,
    }
}

/// ListOffsets: the earliest (-2) and latest (-1) offsets. Records carry
/// no timestamp here, so a search by timestamp finds no record (offset
/// -1), as Kafka answers when none is that recent.
pub async fn list_offsets(
    state: &KafkaState,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let status = state.node.status().await.ok();
    let not_leader = match &status {
        Some(status) => leader_error(status, state.id),
        None => Some(ResponseError::NotLeaderOrFollower),
    };
    let (start, end) = {
        let log = state.read_log();
        (log.start(), log.end())
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let ours = topic.name.0.as_str() == state.config.topic;
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let known = ours && p.partition_index == 0;
                    let error = (!known)
                        .then_some(ResponseError::UnknownTopicOrPartition)
                        .or(not_leader);
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(error));
                    if error.is_some() {
                        return response;
                    }
                    let offset = match p.timestamp {
                        -2 => start as i64,
                        -1 => end as i64,
                        _ => -1,
                    };
                    let response = response.with_offset(offset).with_timestamp(-1);
                    match (&status, version >= 4) {
                        (Some(status), true) => response.with_leader_epoch(epoch(status)),
                        _ => response,
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
