"""Test 2 of the crash report: kafka-python's default producer (acks=all,
idempotent) sends COUNT messages named PREFIX-i and flushes. Prints every
acknowledged message as {"offset": o, "value": v}, one per line; a message
that fails fails the script."""
import json
import sys

from kafka import KafkaProducer

bootstrap, topic, prefix, count = sys.argv[1].split(","), sys.argv[2], sys.argv[3], int(sys.argv[4])
producer = KafkaProducer(bootstrap_servers=bootstrap)
assert producer.config["enable_idempotence"], "kafka-python's default producer is idempotent"
sent = [(f"{prefix}-{i}", producer.send(topic, f"{prefix}-{i}".encode())) for i in range(count)]
producer.flush()
for value, future in sent:
    print(json.dumps({"offset": future.get(timeout=30).offset, "value": value}))
producer.close()
