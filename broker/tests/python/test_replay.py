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
import os
import subprocess
import time
import uuid
from pathlib import Path

import duckdb
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import http_get
from test_lake import (T0_MS, USER_V1, Acks, alter_topic, create_table_topic, lake_status,
                       register, sql_catalog, table_rows, wait_table_rows)

HOUR = 3_600_000


INVALID = json.dumps({"user": "bad", "n": "x"}).encode()


def produce_hour(p: Producer, topic: str, hour: int, first: int, n: int, acks: Acks,
                 invalid_every: int = 0) -> None:
    """Records `first`.. of one hour; with `invalid_every`, also an invalid record (the
    schema wants `n` an integer) after every that many, inside the hour."""
    for i in range(first, first + n):
        ts = T0_MS + hour * HOUR + i
        p.produce(topic, value=json.dumps({"user": f"u{i}", "n": i, "src": "vpn"}).encode(),
                  partition=i % 2, timestamp=ts, on_delivery=acks)
        if invalid_every and i % invalid_every == invalid_every // 2:
            p.produce(topic, value=INVALID, partition=i % 2, timestamp=ts, on_delivery=acks)
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
    v1 = USER_V1
    register(broker, subject, v1, compatibility="NONE")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})
    admin.create_topics([NewTopic(f"{topic}-dlq", num_partitions=1, replication_factor=1)])[
        f"{topic}-dlq"].result(30)
    create_table_topic(broker, topic, 2, {
        "sluice.table.mode": "schema",
        "sluice.schema.subject": subject,
        "sluice.schema.format": "json",
        "sluice.schema.mode": "dead-letter",
        "sluice.dead.letter.topic": f"{topic}-dlq",
        "sluice.feed.owner": "detection-engineering",
    })
    acks = Acks()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for hour in range(3):
        # The incident hour also brings ten records the schema refuses.
        produce_hour(p, topic, hour, hour * 100, 100, acks, invalid_every=10 if hour == 1 else 0)
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
    valid = {k: v for k, v in acks.ok.items() if v[1] != INVALID}
    assert len(acks.ok) - len(valid) == 10
    in_window = {k for k, (_, v) in valid.items() if 100 <= json.loads(v)["n"] < 200}
    want_ranges = {str(part): [min(o for q, o in in_window if q == part),
                               max(o for q, o in in_window if q == part)] for part in (0, 1)}
    assert done["ranges"] == want_ranges, done
    assert done["rows_removed"] == 100 and done["rows_added"] == 100, done
    assert len(done["snapshot_ids"]) == 1, done

    con = duckdb.connect()
    con.register("t", table_rows(catalog, name))
    got = {(part, off): src for part, off, src in con.execute(
        "select sluice_partition, sluice_offset, src from t").fetchall()}
    assert len(got) == len(valid) == 320, "a row is missing or doubled"
    for key, (_, value) in valid.items():
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

    check_evidence(broker, topic, name, want_ranges, done)

    # Re-applying the same spec (a restart reads it again) replays nothing.
    snapshots = len(table.snapshots())
    broker.kill()
    broker.start()
    time.sleep(3)
    status = lake_status(broker, topic)
    replay_state = next(r for r in status["replays"] if r["id"] == "fix-src")
    assert replay_state["phase"] == "Succeeded", replay_state
    assert len(catalog.load_table(name).snapshots()) == snapshots


def check_evidence(broker, topic: str, table: str, want_ranges: dict, replay: dict) -> None:
    """The evidence report of the incident window names every figure the test knows,
    and finds nothing amiss; `sluice evidence` prints the same report."""
    query = f"/v1/evidence?topic={topic}&from={T0_MS + HOUR}&to={T0_MS + 2 * HOUR}"
    status, body = http_get(broker.url(query))
    assert status == 200, body
    report = json.loads(body)
    assert report["topic"] == topic and report["table"] == table
    assert report["owner"] == "detection-engineering"
    assert report["findings"] == [], report["findings"]
    parts = {str(p["partition"]): p for p in report["partitions"]}
    for part, (a, b) in want_ranges.items():
        p = parts[part]
        assert (p["first_offset"], p["last_offset"]) == (a, b), p
        assert p["records"] == 50 and p["table_rows"] == 50, p
        assert p["table_position"] > b, p
    dl = report["dead_letters"]
    assert dl["topic"] == f"{topic}-dlq" and dl["count"] == 10, dl
    assert sum(dl["reasons"].values()) == 10 and len(dl["records"]) == 10, dl
    # The invalid records went to odd-numbered partitions: n % 2 == 1 for n % 10 == 5.
    assert {r["source_partition"] for r in dl["records"]} == {1}, dl
    replays = {s["replay_id"]: s for s in report["snapshots"] if s["replay_id"]}
    assert replays["fix-src"]["operation"] == "overwrite"
    assert replays["fix-src"]["snapshot_id"] == replay["snapshot_ids"][0]
    assert {k: list(v) for k, v in replays["fix-src"]["ranges"].items()} == want_ranges
    appends = [s for s in report["snapshots"] if s["operation"] == "append"]
    assert appends, report["snapshots"]
    [r] = report["replays"]
    assert r["spec"]["approvedBy"] == "detection-engineering" and r["spec"]["requestedBy"] == "alice"
    assert r["status"]["phase"] == "Succeeded" and r["status"]["rows_added"] == 100, r

    cli = Path(os.environ["SLUICE_BROKER_BIN"]).with_name("sluice")
    run = subprocess.run([str(cli), "evidence", "--broker", broker.url(""), "--topic", topic,
                          "--from", "2026-01-01T01:00:00Z", "--to", "2026-01-01T02:00:00Z",
                          "-o", "json"], capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr.decode()
    printed = json.loads(run.stdout)
    assert printed["partitions"] == report["partitions"] and printed["snapshots"] == report["snapshots"]
    table_out = subprocess.run([str(cli), "evidence", "--broker", broker.url(""), "--topic", topic,
                                "--from", str(T0_MS + HOUR), "--to", str(T0_MS + 2 * HOUR)],
                               capture_output=True, timeout=60)
    assert table_out.returncode == 0, table_out.stderr.decode()
    assert b"fix-src" in table_out.stdout and b"detection-engineering" in table_out.stdout


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
