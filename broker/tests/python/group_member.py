"""One consumer-group member for test_consumer_groups.py, run as its own process so a
test can kill -9 it. Prints one JSON line per consumed record and per commit:
{"c": [partition, offset, value], "t": unix time} and {"commit": [[partition, offset], ...]}."""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException

bootstrap, group, topic, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
protocol = sys.argv[5] if len(sys.argv) > 5 else "classic"
config = {
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "group.protocol": protocol,
}
if protocol == "classic":
    # With KIP-848 ("consumer") the broker decides these.
    config.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
consumer = Consumer(config)
consumer.subscribe([topic])
end = time.time() + seconds
since_commit = 0
while time.time() < end:
    m = consumer.poll(0.2)
    if m is None or m.error():
        continue
    print(json.dumps({"c": [m.partition(), m.offset(), m.value().decode()], "t": time.time()}), flush=True)
    since_commit += 1
    if since_commit >= 20:
        try:
            parts = consumer.commit(asynchronous=False)
            print(json.dumps({"commit": [[p.partition, p.offset] for p in parts]}), flush=True)
        except KafkaException:
            pass  # a rebalance is in progress; the next commit covers it
        since_commit = 0
    time.sleep(0.002)  # keep the group busy long enough for the test to kill a member
try:
    parts = consumer.commit(asynchronous=False)
    print(json.dumps({"commit": [[p.partition, p.offset] for p in parts]}), flush=True)
except KafkaException:
    pass
consumer.close()
