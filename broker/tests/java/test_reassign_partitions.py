"""Apache Kafka's kafka-reassign-partitions against a fleet of two sluice
brokers on one bucket: --execute moves partitions (metadata only: the bucket is
the only replica, so a replica list names one broker, the next leader),
--verify reports completion, Metadata shows the new leaders, and the records
written before the move are all still there afterwards."""

from __future__ import annotations

import json

import pytest

from conftest import KafkaTools, _fx
from test_kafka_tools import console_consume, console_produce, parse_topic_describe, wait_until

REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
FLEET_ARGS = (
    "--heartbeat-interval-ms", "200",
    "--session-timeout-ms", "2000",
    "--metadata-poll-ms", "50",
    "--offsets-topic-partitions", "4",
)


@pytest.fixture(scope="module")
def fleet(broker_bin, kafka_libs, tmp_path_factory):
    base = tmp_path_factory.mktemp("fleet")
    factory = _fx.BrokerFactory(broker_bin, base)
    try:
        brokers = [
            factory.start(extra_args=("--node-id", str(i), *FLEET_ARGS), name=f"node{i}", data_dir=base / "bucket")
            for i in (1, 2)
        ]
        tools = KafkaTools(kafka_libs, ",".join(b.bootstrap for b in brokers), 1)
        yield tools
        tools.kill_spawned()
    finally:
        factory.close()


def leaders(tools, topic: str) -> dict[int, int]:
    described = parse_topic_describe(tools.topics("--describe", "--topic", topic).stdout)
    return {p: int(row["Leader"]) for p, row in described["partitions"].items()}


def test_reassign_partitions_execute_verify(fleet, unique, tmp_path):
    topic = unique("moved")
    fleet.create_topic(topic, 4)
    before = leaders(fleet, topic)
    assert sorted(before.values()) == [1, 1, 2, 2], before
    lines = [f"k{i}:r{i}" for i in range(40)]
    console_produce(fleet, topic, lines)

    plan = {"version": 1, "partitions": [
        {"topic": topic, "partition": p, "replicas": [3 - leader]} for p, leader in before.items()
    ]}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    res = fleet.run(REASSIGN, "--reassignment-json-file", str(plan_file), "--execute")
    assert "Successfully started partition reassignment" in res.stdout, res.describe()

    def verified():
        out = fleet.run(REASSIGN, "--reassignment-json-file", str(plan_file), "--verify")
        return all(f"Reassignment of partition {topic}-{p} is completed" in out.stdout for p in before)

    wait_until(verified, 60, "kafka-reassign-partitions --verify reports every move complete")
    after = leaders(fleet, topic)
    assert after == {p: 3 - leader for p, leader in before.items()}, after

    records, _ = console_consume(fleet, topic, unique("after-move"), len(lines))
    assert sorted(f"{r['key']}:{r['value']}" for r in records) == sorted(lines)


def test_reassign_to_an_unknown_broker_is_refused(fleet, unique, tmp_path):
    topic = unique("refused")
    fleet.create_topic(topic, 1)
    before = leaders(fleet, topic)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "replicas": [1, 2]}]}))
    res = fleet.run(REASSIGN, "--reassignment-json-file", str(plan_file), "--execute", check=False)
    assert res.returncode != 0, res.describe()
    assert leaders(fleet, topic) == before
