"""Approved replays replace a window's rows in the feed's table (docs/replay.md).

The drill in small: a feed in schema mode whose first schema version lacks a field the
producers send (the "parser bug": the table has no column for it, so the rows lose
it); the schema is fixed; a replay of the incident window, approved, is handed to the
broker as `sluice.table.replays`. pyiceberg and DuckDB then read the table: the
window's rows carry the field, the rows outside it are untouched, every acknowledged
record is there once, and one `overwrite` snapshot names the replay and the offsets
it replaced. A restart does not replay again.
"""

from __future__ import annotations

import json
import time
import uuid

import duckdb
from confluent_kafka import Producer

from test_lake import (T0_MS, Acks, alter_topic, create_table_topic, http_send_json, lake_status,
                       sql_catalog, table_rows, wait_table_rows)

HOUR = 3_600_000


def register(broker, subject: str, schema: dict) -> None:
    status, body = http_send_json("POST", broker.url(f"/subjects/{subject}/versions"),
                                  {"schemaType": "JSON", "schema": json.dumps(schema)})
    assert status == 200, body


def produce_hour(p: Producer, topic: str, hour: int, first: int, n: int, acks: Acks) -> None:
    for i in range(first, first + n):
        p.produce(topic, value=json.dumps({"user": f"u{i}", "n": i, "src": "vpn"}).encode(),
                  partition=i % 2, timestamp=T0_MS + hour * HOUR + i, on_delivery=acks)
    assert p.flush(60) == 0


def wait_replay(broker, topic: str, replay_id: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    replay = None
    while time.monotonic() < deadline:
        status = lake_status(broker, topic) or {}
        replay = next((r for r in status.get("replays", []) if r["id"] == replay_id), None)
        if replay and replay["phase"] == "Succeeded":
            return replay
        assert not (replay and replay["phase"] == "Failed"), replay
        time.sleep(0.3)
    raise AssertionError(f"replay {replay_id} not done after {timeout}s: {replay}\n{broker.log_tail()}")


def test_an_approved_replay_fixes_the_window_and_nothing_else(broker_factory):
    broker = broker_factory.start()
    topic = f"vpn-{uuid.uuid4().hex[:4]}"
    subject = f"{topic}-value"
    v1 = {"type": "object", "properties": {"user": {"type": "string"}, "n": {"type": "integer"}},
          "required": ["user", "n"]}
    assert http_send_json("PUT", broker.url(f"/config/{subject}"), {"compatibility": "NONE"})[0] == 200
    register(broker, subject, v1)
    create_table_topic(broker, topic, 2, {
        "sluice.table.mode": "schema",
        "sluice.schema.subject": subject,
        "sluice.schema.format": "json",
    })
    acks = Acks()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for hour in range(3):
        produce_hour(p, topic, hour, hour * 100, 100, acks)
    catalog, name = sql_catalog(broker), f"security.{topic.replace('-', '_')}"
    wait_table_rows(catalog, name, 300)

    # The fix: the field becomes a column; new records fill it from now on.
    register(broker, subject, {**v1, "properties": {**v1["properties"], "src": {"type": "string"}}})
    produce_hour(p, topic, 3, 300, 20, acks)
    assert not acks.failed, acks.failed[:3]
    wait_table_rows(catalog, name, 320)

    replay = {"id": "fix-src", "fromMs": T0_MS + HOUR, "toMs": T0_MS + 2 * HOUR,
              "reason": "src dropped by schema v1", "requestedBy": "alice",
              "approvedBy": "detection-engineering"}
    alter_topic(broker, topic, {"sluice.table.replays": json.dumps([replay])})
    done = wait_replay(broker, topic, "fix-src")

    # The window's offsets, per partition, from what the producer was acknowledged.
    in_window = {k for k, (_, v) in acks.ok.items() if 100 <= json.loads(v)["n"] < 200}
    want_ranges = {str(part): [min(o for q, o in in_window if q == part),
                               max(o for q, o in in_window if q == part)] for part in (0, 1)}
    assert done["ranges"] == want_ranges, done
    assert done["rows_removed"] == 100 and done["rows_added"] == 100, done
    assert len(done["snapshot_ids"]) == 1, done

    con = duckdb.connect()
    con.register("t", table_rows(catalog, name))
    got = {(part, off): src for part, off, src in con.execute(
        "select sluice_partition, sluice_offset, src from t").fetchall()}
    assert len(got) == len(acks.ok) == 320, "a row is missing or doubled"
    for key, (_, value) in acks.ok.items():
        n = json.loads(value)["n"]
        want = "vpn" if 100 <= n < 200 or n >= 300 else None
        assert got[key] == want, (key, n, got[key])

    table = catalog.load_table(name)
    snap = table.snapshot_by_id(done["snapshot_ids"][0])
    assert snap.summary.operation.value == "overwrite"
    props = snap.summary.additional_properties
    assert props["sluice.replay.id"] == "fix-src"
    assert props["sluice.replay.approved-by"] == "detection-engineering"
    for part, (a, b) in want_ranges.items():
        assert props[f"sluice.replaced.{part}"] == f"{a}-{b}"
        assert table.properties[f"sluice.replay.fix-src.{part}"] == f"{a}-{b}"

    # Re-applying the same spec (a restart reads it again) replays nothing.
    snapshots = len(table.snapshots())
    broker.kill()
    broker.start()
    time.sleep(3)
    status = lake_status(broker, topic)
    replay_state = next(r for r in status["replays"] if r["id"] == "fix-src")
    assert replay_state["phase"] == "Succeeded", replay_state
    assert len(catalog.load_table(name).snapshots()) == snapshots


def test_a_replay_config_that_does_not_parse_is_refused(broker_factory):
    broker = broker_factory.start()
    topic = f"bad-{uuid.uuid4().hex[:4]}"
    create_table_topic(broker, topic, 1)
    from confluent_kafka import KafkaException
    try:
        alter_topic(broker, topic, {"sluice.table.replays": json.dumps(
            [{"id": "r", "fromMs": 2, "toMs": 1, "reason": "x", "requestedBy": "a",
              "approvedBy": "b"}])})
    except KafkaException as e:
        assert "not before" in str(e), e
    else:
        raise AssertionError("a replay whose window ends before it starts was accepted")
