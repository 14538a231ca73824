"""Test 1 of the crash report: kafka-python sees the brokers and the
partition leader. Prints {"brokers": {id: "host:port"}, "leader": id,
"replicas": [id], "isr": [id]}."""
import json
import sys

from kafka import KafkaConsumer, TopicPartition

bootstrap, topic = sys.argv[1].split(","), sys.argv[2]
consumer = KafkaConsumer(bootstrap_servers=bootstrap)
partitions = consumer.partitions_for_topic(topic)
assert partitions == {0}, partitions
cluster = consumer._client.cluster
print(json.dumps({
    "brokers": {b.node_id: f"{b.host}:{b.port}" for b in cluster.brokers()},
    "leader": cluster.leader_for_partition(TopicPartition(topic, 0)),
    "replicas": sorted(cluster._partitions[topic][0].replica_nodes),
    "isr": sorted(cluster._partitions[topic][0].isr_nodes),
}))
consumer.close()
