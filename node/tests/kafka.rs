//! The Kafka listener against real Kafka clients: the crash report's test
//! plan with kafka-python (PyPI) and kcat (Debian's `kcat`, librdkafka),
//! which `.ci/run` installs; then a producer's retried batch, and bad
//! input, through the node's own `kafka-protocol` client.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::ListOffsetsRequest;
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, FetchRequest, InitProducerIdRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use raft_node::client::Client;
use raft_node::cluster::{self, LocalCluster};
use raft_node::kafka::client::{produce_request, record_batch, ClientError, KafkaClient};
use raft_node::producers::ProducerBatch;
use serde::Deserialize;

const TOPIC: &str = "records";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-node"))
}

/// Runs a script of `tests/kafka/` with python3; its standard output.
fn python(script: &str, args: &[String]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kafka")
        .join(script);
    run(Command::new("python3").arg(path).args(args))
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (`.ci/run` installs kcat and kafka-python)"));
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn bootstrap(nodes: &LocalCluster) -> String {
    nodes
        .ids()
        .iter()
        .map(|&id| nodes.kafka(id).unwrap().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
struct Acked {
    offset: u64,
    value: String,
}

/// kafka-python produces `count` messages named `prefix-i` with its
/// default settings; the acknowledged ones.
fn produce(nodes: &LocalCluster, prefix: &str, count: usize) -> Vec<Acked> {
    let args = [
        bootstrap(nodes),
        TOPIC.into(),
        prefix.into(),
        count.to_string(),
    ];
    python("produce.py", &args)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

async fn wait_for_records(api: SocketAddr, records: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = match Client::connect(api).await {
            Ok(mut c) => c.status().await.map(|s| s.records).unwrap_or(0),
            Err(_) => 0,
        };
        if held >= records {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{api} holds {held} of {records} records"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn log_of(api: SocketAddr) -> Vec<String> {
    let (first, log) = Client::connect(api)
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    assert_eq!(first, 0);
    log
}

/// Three nodes started under `dir`, and their leader.
async fn three_nodes(dir: &Path) -> (LocalCluster, u64) {
    let mut nodes = LocalCluster::start(binary(), cluster::plan(3, dir).unwrap()).unwrap();
    let leader = nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    (nodes, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crash_report_test_plan_with_kafka_python_and_kcat() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = three_nodes(dir.path()).await;

    // Test 1: kafka-python sees the three brokers and the partition leader.
    #[derive(Deserialize)]
    struct Seen {
        brokers: std::collections::BTreeMap<u64, String>,
        leader: u64,
        replicas: Vec<u64>,
        isr: Vec<u64>,
    }
    let seen: Seen =
        serde_json::from_str(&python("metadata.py", &[bootstrap(&nodes), TOPIC.into()])).unwrap();
    let expected: std::collections::BTreeMap<u64, String> = nodes
        .ids()
        .into_iter()
        .map(|id| (id, nodes.kafka(id).unwrap().to_string()))
        .collect();
    assert_eq!(seen.brokers, expected);
    assert_eq!(seen.leader, leader);
    assert_eq!((seen.replicas, seen.isr), (vec![1, 2, 3], vec![1, 2, 3]));

    // Test 2: SIGKILL node 3; produce 100, then 10,000 messages and flush;
    // restart node 3.
    nodes.kill(3);
    let leader = nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let mut acked = produce(&nodes, "first", 100);
    acked.extend(produce(&nodes, "second", 10_000));
    assert_eq!(acked.len(), 10_100);
    nodes.restart(3).unwrap();
    let leader_log = log_of(nodes.api(leader)).await;
    wait_for_records(nodes.api(3), leader_log.len() as u64).await;
    assert!(
        nodes.is_up(3),
        "node 3 exited: see {}",
        nodes.log_path(3).display()
    );
    assert_eq!(
        log_of(nodes.api(3)).await,
        leader_log,
        "node 3's log is the leader's"
    );

    // kcat consumes the partition from offset 0: every acknowledged
    // message is there once, in order, at its offset.
    let consumed = run(Command::new("kcat").args([
        "-C",
        "-b",
        &bootstrap(&nodes),
        "-t",
        TOPIC,
        "-p",
        "0",
        "-o",
        "0",
        "-e",
        "-q",
        "-f",
        "%o %s\\n",
    ]));
    let consumed: Vec<(u64, &str)> = consumed
        .lines()
        .map(|line| {
            let (offset, value) = line.split_once(' ').unwrap();
            (offset.parse().unwrap(), value)
        })
        .collect();
    assert_eq!(consumed.len(), leader_log.len());
    for (i, (offset, value)) in consumed.iter().enumerate() {
        assert_eq!((*offset, *value), (i as u64, leader_log[i].as_str()));
    }
    for a in &acked {
        assert_eq!(consumed[a.offset as usize].1, a.value, "{a:?}");
    }
    let mut values: Vec<&str> = consumed.iter().map(|(_, v)| *v).collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), consumed.len(), "no message twice");
    nodes.stop(Duration::from_secs(5));
}

/// A Fetch from offset 0 naming the partition `copies` times.
fn fetch_request(copies: usize) -> FetchRequest {
    let partition = FetchPartition::default().with_partition_max_bytes(1 << 20);
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![partition; copies])])
}

/// A client of node `id`'s Kafka listener.
async fn kafka_client(nodes: &LocalCluster, id: u64) -> KafkaClient {
    KafkaClient::connect(nodes.kafka(id).unwrap())
        .await
        .unwrap()
}

fn refusal(result: Result<u64, ClientError>) -> ResponseError {
    match result {
        Err(ClientError::Refused(error)) => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_stored_once_even_at_a_new_leader() {
    let dir = tempfile::tempdir().unwrap();
    // A snapshot every 2 entries: a restarted node rebuilds the producers'
    // state from one.
    let mut configs = cluster::plan(3, dir.path()).unwrap();
    for c in &mut configs {
        c.snapshot_entries = 2;
    }
    let mut nodes = LocalCluster::start(binary(), configs).unwrap();
    let leader = nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let mut client = kafka_client(&nodes, leader).await;
    let init = client
        .send(
            &InitProducerIdRequest::default().with_transactional_id(None),
            4,
        )
        .await
        .unwrap();
    assert_eq!(init.error_code, 0);
    assert!(init.producer_id.0 > 0);
    let producer = |first_sequence| ProducerBatch {
        id: init.producer_id.0,
        epoch: init.producer_epoch,
        first_sequence,
    };
    let batch = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
    let offset = client
        .produce(TOPIC, &batch, Some(producer(0)))
        .await
        .unwrap();
    // The answer was lost: the client sends the same batch again.
    assert_eq!(
        client
            .produce(TOPIC, &batch, Some(producer(0)))
            .await
            .unwrap(),
        offset
    );
    assert_eq!(
        refusal(client.produce(TOPIC, &batch, Some(producer(5))).await),
        ResponseError::OutOfOrderSequenceNumber
    );

    // The leader dies before the client hears; the client retries at the
    // next leader, which knows the batch from the replicated state.
    nodes.kill(leader);
    let next = nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let mut client = kafka_client(&nodes, next).await;
    assert_eq!(
        client
            .produce(TOPIC, &batch, Some(producer(0)))
            .await
            .unwrap(),
        offset
    );
    let third = [Bytes::from_static(b"c")];
    assert_eq!(
        client
            .produce(TOPIC, &third, Some(producer(2)))
            .await
            .unwrap(),
        offset + 2
    );
    let (first, records) = Client::connect(nodes.api(next))
        .await
        .unwrap()
        .read_bytes(0, 100)
        .await
        .unwrap();
    assert_eq!(first, 0);
    let stored = vec![batch[0].clone(), batch[1].clone(), third[0].clone()];
    assert_eq!(records, stored);

    // The old leader restarts from its snapshot and leads again: the
    // producers' state it restored knows both batches.
    nodes.restart(leader).unwrap();
    wait_for_records(nodes.api(leader), 3).await;
    let mut http = Client::connect(nodes.api(next)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap()
        != leader
    {
        assert!(
            Instant::now() < deadline,
            "node {leader} does not take over"
        );
        let _ = http.transfer_leader(leader).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut client = kafka_client(&nodes, leader).await;
    for (values, first, at) in [(&batch[..], 0, offset), (&third[..], 2, offset + 2)] {
        let retried = client.produce(TOPIC, values, Some(producer(first))).await;
        assert_eq!(retried.unwrap(), at);
    }
    let (_, records) = Client::connect(nodes.api(leader))
        .await
        .unwrap()
        .read_bytes(0, 100)
        .await
        .unwrap();
    assert_eq!(records, stored);
    nodes.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_kafka_input_is_refused_with_kafka_errors_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = three_nodes(dir.path()).await;
    let follower = nodes.ids().into_iter().find(|&id| id != leader).unwrap();
    let mut client = kafka_client(&nodes, leader).await;
    let value = [Bytes::from_static(b"\x00\xffnot utf-8")];

    // Records are bytes, shared with the HTTP API both ways.
    assert_eq!(client.produce(TOPIC, &value, None).await.unwrap(), 0);
    let mut http = Client::connect(nodes.api(leader)).await.unwrap();
    assert_eq!(http.read_bytes(0, 10).await.unwrap(), (0, value.to_vec()));
    let err = http.read(0, 10, true).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422), "{err}");
    let from_http = [Bytes::from_static(b"\x01\x02")];
    assert_eq!(http.append_bytes(&from_http).await.unwrap().offset, 1);

    let batch = record_batch(&value, None).unwrap();
    let mut corrupt = batch.to_vec();
    *corrupt.last_mut().unwrap() ^= 1;
    let oversized = record_batch(&[Bytes::from(vec![7; 3 << 20])], None).unwrap();
    for (topic, records, expected) in [
        (
            "other",
            batch.clone(),
            ResponseError::UnknownTopicOrPartition,
        ),
        (TOPIC, Bytes::from(corrupt), ResponseError::CorruptMessage),
        (TOPIC, oversized, ResponseError::MessageTooLarge),
    ] {
        let response = client
            .send(&produce_request(topic, records), 9)
            .await
            .unwrap();
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, expected.code(), "{expected:?}");
    }
    let mut at_follower = kafka_client(&nodes, follower).await;
    assert_eq!(
        refusal(at_follower.produce(TOPIC, &value, None).await),
        ResponseError::NotLeaderOrFollower
    );
    let response = at_follower.send(&fetch_request(1), 12).await.unwrap();
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
    // ApiVersions at a version the node does not know: answered at
    // version 0 with UNSUPPORTED_VERSION and the versions it serves.
    let mut frame = bytes::BytesMut::new();
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&99i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.extend_from_slice(&[0]);
    let mut answer = client.send_frame(frame.freeze()).await.unwrap().unwrap();
    use kafka_protocol::protocol::Decodable;
    let _header = kafka_protocol::messages::ResponseHeader::decode(&mut answer, 0).unwrap();
    let versions = ApiVersionsResponse::decode(&mut answer, 0).unwrap();
    assert_eq!(
        versions.error_code,
        ResponseError::UnsupportedVersion.code()
    );
    assert_eq!(versions.api_keys.len(), 6);
    let ok = client
        .send(&ApiVersionsRequest::default(), 3)
        .await
        .unwrap();
    assert_eq!(ok.error_code, 0);

    // A frame that is no request closes the connection; so does a
    // Produce v2, whose old message format the node does not decode.
    assert!(client
        .send_frame(Bytes::from_static(b"\x00\x00\xff"))
        .await
        .unwrap()
        .is_none());
    let mut client = kafka_client(&nodes, leader).await;
    let mut v2 = bytes::BytesMut::new();
    v2.extend_from_slice(&0i16.to_be_bytes());
    v2.extend_from_slice(&2i16.to_be_bytes());
    v2.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff, 0, 1]);
    assert!(client.send_frame(v2.freeze()).await.unwrap().is_none());

    // acks=1 is answered once stored, as acks=all is; acks=2 is no acks.
    let mut client = kafka_client(&nodes, leader).await;
    let one = Bytes::from_static(b"acks=1");
    let mut request = produce_request(
        TOPIC,
        record_batch(std::slice::from_ref(&one), None).unwrap(),
    );
    request.acks = 1;
    let response = client.send(&request, 9).await.unwrap();
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, 2));
    request.acks = 2;
    let response = client.send(&request, 9).await.unwrap();
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRequiredAcks.code()
    );
    // acks=0 gets no answer; refused (at a follower), it closes the
    // connection, so the client looks for the leader again.
    request.acks = 0;
    client.send_unanswered(&request, 9).await.unwrap();
    at_follower.send_unanswered(&request, 9).await.unwrap();
    assert!(matches!(
        at_follower.send(&ApiVersionsRequest::default(), 3).await,
        Err(ClientError::Closed)
    ));
    // ListOffsets: earliest and latest at the leader; not at a follower.
    let list = |timestamps: &[i64]| {
        ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(
                timestamps
                    .iter()
                    .map(|&t| ListOffsetsPartition::default().with_timestamp(t))
                    .collect(),
            )])
    };
    // The acks=0 record is stored unanswered: wait for it.
    wait_for_records(nodes.api(leader), 4).await;
    let offsets = client.send(&list(&[-2, -1, 0]), 7).await.unwrap();
    let offsets: Vec<(i16, i64)> = offsets.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.offset))
        .collect();
    assert_eq!(offsets, vec![(0, 0), (0, 4), (0, -1)]);
    let mut at_follower = kafka_client(&nodes, follower).await;
    let refused = at_follower.send(&list(&[-1]), 7).await.unwrap();
    assert_eq!(
        refused.topics[0].partitions[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );

    // A fetch naming the partition three times gets its records once; one
    // naming it 1,025 times is closed unanswered.
    let response = client.send(&fetch_request(3), 12).await.unwrap();
    let partitions = &response.responses[0].partitions;
    let mut first = partitions[0].records.clone().unwrap();
    let fetched = kafka_protocol::records::RecordBatchDecoder::decode(&mut first).unwrap();
    assert_eq!(fetched.records.len(), 4);
    assert_eq!(fetched.records[0].value, Some(value[0].clone()));
    for again in &partitions[1..] {
        assert_eq!(
            (again.error_code, again.records.as_ref().map(Bytes::len)),
            (0, Some(0))
        );
    }
    assert!(matches!(
        client.send(&fetch_request(1025), 12).await,
        Err(ClientError::Closed)
    ));

    // A version the node does not advertise, which the client did not
    // negotiate (Fetch 13 names topics by id): closed unread, as Kafka
    // brokers do.
    let mut client = kafka_client(&nodes, leader).await;
    assert!(matches!(
        client.send(&fetch_request(1), 13).await,
        Err(ClientError::Closed)
    ));
    // A Metadata request declaring 2^31 topics in four bytes: refused
    // before the codec reserves room for them.
    let mut client = kafka_client(&nodes, leader).await;
    let mut huge = bytes::BytesMut::new();
    huge.extend_from_slice(&3i16.to_be_bytes());
    huge.extend_from_slice(&1i16.to_be_bytes());
    huge.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff]);
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(client.send_frame(huge.freeze()).await.unwrap().is_none());

    // Nothing else was stored, and every node is up.
    let status = http.status().await.unwrap();
    assert_eq!(status.records, 4);
    for id in nodes.ids() {
        assert!(nodes.is_up(id), "node {id} exited");
    }
    nodes.stop(Duration::from_secs(5));
}
