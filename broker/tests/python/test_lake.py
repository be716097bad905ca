"""Feeds land in Iceberg tables (docs/lake.md), checked by readers nobody here wrote.

A topic with `sluice.table.enabled=true` is produced to with confluent-kafka; the
acknowledged (partition, offset) of every record is the truth. pyiceberg loads the
table from the broker's catalog (the embedded sqlite SQL catalog, or Apache Iceberg's
REST catalog server) and DuckDB reads it: every acknowledged record must be there
exactly once, with its key, value, headers, timestamp and lineage, and the snapshots'
summaries must cover exactly the offsets the rows hold. The broker is killed with
SIGKILL mid-window and the REST catalog is stopped under load: no row is lost or
doubled, and producers never notice the catalog is gone.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
import uuid

import duckdb
import pyarrow as pa
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pyiceberg.catalog import load_catalog

from conftest import http_get


def http_send_json(method: str, url: str, body: dict) -> tuple[int, bytes]:
    """A registry API call (POST or PUT with a JSON body): status and body."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# A commit a second: the tests wait for a few.
COMMIT_MS = "1000"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def create_table_topic(broker, topic: str, partitions: int, extra: dict | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})
    config = {
        "sluice.table.enabled": "true",
        "sluice.table.namespace": "security",
        "sluice.table.commit.interval.ms": COMMIT_MS,
        **(extra or {}),
    }
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                       config=config)])
    fs[topic].result(timeout=30)


class Acks:
    """Delivery reports: (partition, offset) -> (key, value) of each acknowledged record."""

    def __init__(self):
        self.ok: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        self.failed: list[str] = []

    def __call__(self, err, msg):
        if err is not None:
            self.failed.append(str(err))
        else:
            self.ok[(msg.partition(), msg.offset())] = (msg.key(), msg.value())


def produce(broker, topic: str, n: int, acks: Acks, start: int = 0, partitions: int = 3) -> None:
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                  "enable.idempotence": True, "message.timeout.ms": 60000})
    for i in range(start, start + n):
        p.produce(topic, key=f"k{i}".encode(), value=json.dumps({"n": i}).encode(),
                  partition=i % partitions,
                  # Spread over three hours: rows land in three hour partitions.
                  timestamp=T0_MS + (i % 3) * 3_600_000 + i,
                  headers=[("source", b"dns"), ("seq", str(i).encode())],
                  on_delivery=acks)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0, "records still unacknowledged after 60 s"


def lake_status(broker, topic: str) -> dict | None:
    status, body = http_get(broker.url("/v1/lake"))
    assert status == 200, body
    return next((t for t in json.loads(body) if t["topic"] == topic), None)


def wait_caught_up(broker, topic: str, rows: int, timeout: float = 90.0) -> dict:
    """Until the broker says its partitions of `topic` have no lag and it committed
    `rows` rows in all."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = lake_status(broker, topic)
        if last and last["partitions"] and all(p["lag"] == 0 for p in last["partitions"].values()):
            if last["rows_committed"] >= rows:
                return last
        time.sleep(0.3)
    pytest.fail(f"lake writer of {topic} not caught up within {timeout}s: {last}\n"
                f"{broker.log_tail()}", pytrace=False)


def table_rows(catalog, name: str) -> pa.Table:
    return catalog.load_table(name).scan().to_arrow()


def wait_table_rows(catalog, name: str, rows: int, timeout: float = 120.0) -> None:
    """Until the table holds at least `rows` rows (it may not exist yet)."""
    deadline = time.monotonic() + timeout
    have = 0
    while time.monotonic() < deadline:
        try:
            have = len(table_rows(catalog, name))
        except Exception:  # noqa: BLE001 - not created (again) yet
            have = 0
        if have >= rows:
            return
        time.sleep(0.3)
    pytest.fail(f"table {name} has {have} of {rows} rows after {timeout}s", pytrace=False)


def check_exactly_once(catalog, name: str, topic: str, acks: Acks,
                       rows_expected: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Every acknowledged record is in the table once, with its lineage; the snapshot
    summaries' offset ranges tile each partition's offsets. `rows_expected` (default:
    every acknowledged record) leaves out records that are not rows (dead-lettered)."""
    expected = acks.ok if rows_expected is None else rows_expected
    rows = table_rows(catalog, name)
    con = duckdb.connect()
    con.register("t", rows)
    dupes = con.execute("select sluice_partition, sluice_offset, count(*) c from t "
                        "group by all having c > 1 limit 5").fetchall()
    assert dupes == [], f"rows written twice: {dupes}"
    got = {(p, o): (k, v) for p, o, k, v in con.execute(
        "select sluice_partition, sluice_offset, key, value from t").fetchall()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    assert not missing, f"{len(missing)} acknowledged records not in the table: {missing[:10]}"
    assert not extra, f"{len(extra)} rows that should not be there: {extra[:10]}"
    assert got == expected, "a row's key or value differs from what was acknowledged"
    assert con.execute("select distinct sluice_topic from t").fetchall() == [(topic,)]
    # Lineage and record: timestamp, headers, no schema id (no framing on these values).
    row = con.execute("select sluice_timestamp, headers, sluice_schema_id from t "
                      "where key = 'k7'::blob").fetchone()
    if rows_expected is None:
        assert row is not None
        ts, headers, schema_id = row
        # A UTC timestamp without zone (what Glue and Athena handle).
        assert int(ts.replace(tzinfo=dt.timezone.utc).timestamp() * 1000) == T0_MS + 3_600_000 + 7
        assert [(h["key"], h["value"]) for h in headers] == [("source", b"dns"), ("seq", b"7")]
        assert schema_id is None
    # The summaries: per partition, the ranges added tile [0, last acknowledged].
    table = catalog.load_table(name)
    covered: dict[int, list[tuple[int, int]]] = {}
    for snap in table.snapshots():
        props = snap.summary.additional_properties
        for k, v in props.items():
            if k.startswith("sluice.offsets."):
                a, b = v.split("-")
                covered.setdefault(int(k.rsplit(".", 1)[1]), []).append((int(a), int(b)))
    for part in {p for p, _ in acks.ok}:
        ranges = sorted(covered.get(part, []))
        assert ranges and ranges[0][0] == 0, (part, ranges)
        for (a1, b1), (a2, _) in zip(ranges, ranges[1:]):
            assert a2 == b1 + 1, f"partition {part}: ranges overlap or leave a gap: {ranges}"
        assert ranges[-1][1] == max(o for p, o in acks.ok if p == part), (part, ranges)
    current = table.current_snapshot().summary.additional_properties
    for part in {p for p, _ in acks.ok}:
        assert int(current[f"sluice.next.{part}"]) == 1 + max(o for p, o in acks.ok if p == part)
    return con


def sql_catalog(broker, timeout: float = 30.0):
    """The broker's embedded catalog, once the broker has created its database."""
    data = broker.data_dir.resolve()
    deadline = time.monotonic() + timeout
    while not (data / "tables" / "catalog.db").exists():
        assert time.monotonic() < deadline, f"no catalog database after {timeout}s"
        time.sleep(0.1)
    return load_catalog("sluice", type="sql", uri=f"sqlite:///{data}/tables/catalog.db",
                        warehouse=f"file://{data}/tables")


def test_table_from_the_embedded_sql_catalog_holds_every_record_once(broker_factory):
    broker = broker_factory.start()
    topic = f"dns-{uuid.uuid4().hex[:6]}"
    create_table_topic(broker, topic, 3)
    acks = Acks()
    produce(broker, topic, 3000, acks)
    assert not acks.failed, acks.failed[:3]
    status = wait_caught_up(broker, topic, 3000)
    assert status["table"] == f"security.{topic.replace('-', '_')}"
    assert status["error"] is None, status
    catalog = sql_catalog(broker)
    name = f"security.{topic.replace('-', '_')}"
    con = check_exactly_once(catalog, name, topic, acks)
    # Hour partitions: three hours of timestamps, three partition values.
    hours = con.execute("select count(distinct date_trunc('hour', sluice_timestamp)) from t").fetchone()
    assert hours == (3,)
    table = catalog.load_table(name)
    assert [f.name for f in table.spec().fields] == ["sluice_timestamp_hour"]


def test_sigkill_mid_window_loses_and_doubles_nothing_on_a_rest_catalog(broker_factory, iceberg_rest):
    args = ["--lake-catalog", iceberg_rest.uri]
    broker = broker_factory.start(extra_args=args)
    topic = f"auth-{uuid.uuid4().hex[:6]}"
    create_table_topic(broker, topic, 2, {"sluice.table.partitioning": "day"})
    acks = Acks()
    produce(broker, topic, 1000, acks, partitions=2)
    wait_caught_up(broker, topic, 1000)
    # Kill it with records read but not committed (a window in flight) and again right
    # after a restart, then let it catch up.
    for round_ in range(3):
        produce(broker, topic, 700, acks, start=1000 + round_ * 700, partitions=2)
        time.sleep(0.4 * round_)
        broker.kill()
        broker.start()
    assert not acks.failed, acks.failed[:3]
    catalog = load_catalog("rest", type="rest", uri=iceberg_rest.uri)
    name = f"security.{topic.replace('-', '_')}"
    wait_table_rows(catalog, name, len(acks.ok))
    check_exactly_once(catalog, name, topic, acks)


def test_a_catalog_outage_never_stops_producers_and_the_table_catches_up(broker_factory, iceberg_rest):
    broker = broker_factory.start(extra_args=["--lake-catalog", iceberg_rest.uri])
    topic = f"edr-{uuid.uuid4().hex[:6]}"
    create_table_topic(broker, topic, 1)
    acks = Acks()
    produce(broker, topic, 300, acks, partitions=1)
    wait_caught_up(broker, topic, 300)
    iceberg_rest.shutdown()
    # Producers keep going while the catalog is away; the writer reports why it lags.
    produce(broker, topic, 900, acks, start=300, partitions=1)
    assert not acks.failed, acks.failed[:3]
    deadline = time.monotonic() + 30
    status = lake_status(broker, topic)
    while not (status and status["error"]) and time.monotonic() < deadline:
        time.sleep(0.3)
        status = lake_status(broker, topic)
    assert status["error"], status
    assert sum(p["lag"] for p in status["partitions"].values()) > 0, status
    # The catalog comes back on the same port: the writer commits what it held.
    port = iceberg_rest.port
    iceberg_rest.start(port=port)
    status = wait_caught_up(broker, topic, 1200, timeout=120)
    assert status["error"] is None, status
    catalog = load_catalog("rest", type="rest", uri=iceberg_rest.uri)
    check_exactly_once(catalog, f"security.{topic.replace('-', '_')}", topic, acks)


def live_files(table) -> list[str]:
    return [t.file.file_path for t in table.scan().plan_files()]


def test_compaction_merges_small_files_and_keeps_every_row_once(broker_factory, iceberg_rest):
    """Commits every second leave small files; the table's upkeep (every 2 s here)
    merges each hour partition's into one through a Replace snapshot, built by Sluice
    and accepted by Apache Iceberg's REST catalog server. pyiceberg then reads the same
    rows, each once, from fewer files, and the table still says where every partition
    stands; the old files stay for the snapshots that still reach them."""
    broker = broker_factory.start(extra_args=["--lake-catalog", iceberg_rest.uri])
    topic = f"compact-{uuid.uuid4().hex[:6]}"
    create_table_topic(broker, topic, 3, {"sluice.table.maintenance.interval.ms": "60000"})
    acks = Acks()
    catalog = load_catalog("rest", type="rest", uri=iceberg_rest.uri)
    name = f"security.{topic.replace('-', '_')}"
    for burst in range(6):
        produce(broker, topic, 300, acks, start=burst * 300)
        wait_caught_up(broker, topic, len(acks.ok))
    assert not acks.failed, acks.failed[:3]
    small = live_files(catalog.load_table(name))
    # Three hour partitions, a file each per window: at least 5 per hour partition.
    assert len(small) >= 15, small
    # Upkeep every 2 s from now on: the next round compacts.
    enable_maintenance = {"sluice.table.maintenance.interval.ms": "2000"}
    alter_topic(broker, topic, enable_maintenance)
    deadline = time.monotonic() + 60
    status = lake_status(broker, topic)
    while status["files_compacted"] == 0 and time.monotonic() < deadline:
        time.sleep(0.3)
        status = lake_status(broker, topic)
    assert status["files_compacted"] >= 15, f"{status}\n{broker.log_tail()}"
    table = catalog.load_table(name)
    assert table.current_snapshot().summary.operation.value == "replace"
    after = live_files(table)
    assert len(after) <= 3 + (len(small) - status["files_compacted"]), (len(small), after)
    check_exactly_once(catalog, name, topic, acks)
    # Writing goes on after the compaction, from the positions it carried over.
    produce(broker, topic, 300, acks, start=1800)
    wait_table_rows(catalog, name, len(acks.ok))
    check_exactly_once(catalog, name, topic, acks)


def alter_topic(broker, topic: str, configs: dict) -> None:
    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
               for k, v in configs.items()]
    fs = admin.incremental_alter_configs([ConfigResource("TOPIC", topic, incremental_configs=entries)])
    for f in fs.values():
        f.result(timeout=30)


def enable_table(broker, topic: str) -> None:
    alter_topic(broker, topic, {
        "sluice.table.enabled": "true",
        "sluice.table.namespace": "security",
        "sluice.table.commit.interval.ms": COMMIT_MS,
    })


@pytest.mark.parametrize("point", ["window-read", "files-written", "committed"])
def test_crash_points_keep_every_record_exactly_once(broker_factory, point):
    """The crash-point matrix (docs/lake.md): the broker aborts with rows in open
    files, with files uploaded but not committed, and with a commit landed that the
    writer never learnt of; after a restart the table has every record once."""
    broker = broker_factory.start(extra_args=["--inject-lake-crash", point])
    topic = f"crash-{point}-{uuid.uuid4().hex[:4]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    acks = Acks()
    produce(broker, topic, 1500, acks)
    enable_table(broker, topic)
    deadline = time.monotonic() + 60
    while broker.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert broker.proc.returncode == -signal.SIGABRT, \
        f"the broker did not abort at {point}: {broker.proc.returncode}\n{broker.log_tail()}"
    broker.extra_args = []
    broker.start()
    produce(broker, topic, 600, acks, start=1500)
    assert not acks.failed, acks.failed[:3]
    catalog, name = sql_catalog(broker), f"security.{topic.replace('-', '_')}"
    wait_table_rows(catalog, name, len(acks.ok))
    check_exactly_once(catalog, name, topic, acks)


FLEET_ARGS = ["--heartbeat-interval-ms", "200", "--session-timeout-ms", "2000",
              "--metadata-poll-ms", "50", "--offsets-topic-partitions", "6"]


def test_a_fleet_writes_one_table_and_failover_loses_and_doubles_nothing(broker_factory, tmp_path):
    """Three brokers on one bucket each write the partitions they lead into the same
    table (their commits race; the loser re-reads and commits on top); one is killed
    with SIGKILL mid-stream and its partitions' new leaders continue where the table
    stands."""
    bucket = tmp_path / "bucket"
    fleet = [broker_factory.start(extra_args=["--node-id", str(i), *FLEET_ARGS],
                                  name=f"node{i}", data_dir=bucket) for i in range(3)]
    topic = f"fleet-{uuid.uuid4().hex[:6]}"
    create_table_topic(fleet[0], topic, 6)
    acks = Acks()
    produce(fleet[0], topic, 3000, acks, partitions=6)
    fleet[1].kill()
    produce(fleet[0], topic, 3000, acks, start=3000, partitions=6)
    assert not acks.failed, acks.failed[:3]
    catalog = sql_catalog(fleet[0])
    name = f"security.{topic.replace('-', '_')}"
    wait_table_rows(catalog, name, len(acks.ok))
    check_exactly_once(catalog, name, topic, acks)
    writers = {snap.summary.additional_properties.get("sluice.writer")
               for snap in catalog.load_table(name).snapshots()}
    assert len({w.split("/")[0] for w in writers if w}) >= 2, f"one broker wrote everything: {writers}"


def test_a_table_dropped_behind_the_writer_is_created_again_and_refilled(broker_factory):
    broker = broker_factory.start()
    topic = f"drop-{uuid.uuid4().hex[:6]}"
    create_table_topic(broker, topic, 2)
    acks = Acks()
    produce(broker, topic, 400, acks, partitions=2)
    wait_caught_up(broker, topic, 400)
    catalog = sql_catalog(broker)
    name = f"security.{topic.replace('-', '_')}"
    catalog.drop_table(name)
    produce(broker, topic, 400, acks, start=400, partitions=2)
    wait_table_rows(catalog, name, len(acks.ok))
    check_exactly_once(catalog, name, topic, acks)


def test_dead_lettered_records_are_not_rows(broker_factory):
    """A topic validated in dead-letter mode: the table holds exactly the valid records;
    the invalid ones are in the dead-letter topic, their offsets covered by the
    snapshot ranges but without rows (docs/lake.md, "Columns")."""
    broker = broker_factory.start()
    topic = f"auth-dl-{uuid.uuid4().hex[:4]}"
    subject = f"{topic}-value"
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    status, body = http_send_json("POST", broker.url(f"/subjects/{subject}/versions"),
                                  {"schemaType": "JSON", "schema": json.dumps(schema)})
    assert status == 200, body
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})
    admin.create_topics([NewTopic(f"{topic}-dlq", num_partitions=1, replication_factor=1)])[
        f"{topic}-dlq"].result(30)
    create_table_topic(broker, topic, 3, {
        "sluice.schema.subject": subject,
        "sluice.schema.format": "json",
        "sluice.schema.mode": "dead-letter",
        "sluice.dead.letter.topic": f"{topic}-dlq",
    })
    acks = Acks()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                  "enable.idempotence": True})
    invalid = set()
    for i in range(900):
        bad = i % 7 == 0
        value = json.dumps({"n": "x" if bad else i}).encode()
        p.produce(topic, key=f"k{i}".encode(), value=value, partition=i % 3, on_delivery=acks)
        if bad:
            invalid.add(value)
    assert p.flush(60) == 0
    assert not acks.failed, acks.failed[:3]
    valid = {k: v for k, v in acks.ok.items() if v[1] not in invalid}
    assert 0 < len(valid) < len(acks.ok)
    catalog, name = sql_catalog(broker), f"security.{topic.replace('-', '_')}"
    wait_table_rows(catalog, name, len(valid))
    # Give a dead-lettered record's would-be row time to show up wrongly.
    time.sleep(2.5)
    check_exactly_once(catalog, name, topic, acks, rows_expected=valid)


# The schema-mode tests' first version: a user and a number.
USER_V1 = {"type": "object", "properties": {"user": {"type": "string"}, "n": {"type": "integer"}},
           "required": ["user", "n"]}


def register(broker, subject: str, schema: dict, compatibility: str | None = None) -> None:
    """Registers a JSON Schema version (after setting the subject's compatibility)."""
    if compatibility:
        status, body = http_send_json("PUT", broker.url(f"/config/{subject}"),
                                      {"compatibility": compatibility})
        assert status == 200, body
    status, body = http_send_json("POST", broker.url(f"/subjects/{subject}/versions"),
                                  {"schemaType": "JSON", "schema": json.dumps(schema)})
    assert status == 200, body


def test_schema_mode_columns_follow_the_subject_and_evolve(broker_factory):
    """sluice.table.mode=schema: the table's columns are the feed's JSON Schema
    properties; a new version adding a field adds a column before any row carrying it
    is written; rows from before have it null."""
    broker = broker_factory.start()
    topic = f"login-{uuid.uuid4().hex[:4]}"
    subject = f"{topic}-value"
    register(broker, subject, USER_V1, compatibility="NONE")
    create_table_topic(broker, topic, 2, {
        "sluice.table.mode": "schema",
        "sluice.schema.subject": subject,
        "sluice.schema.format": "json",
    })
    acks = Acks()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for i in range(200):
        p.produce(topic, value=json.dumps({"user": f"u{i}", "n": i}).encode(),
                  partition=i % 2, on_delivery=acks)
    assert p.flush(60) == 0
    catalog, name = sql_catalog(broker), f"security.{topic.replace('-', '_')}"
    wait_table_rows(catalog, name, 200)

    register(broker, subject, {**USER_V1, "properties": {**USER_V1["properties"],
                                                          "src": {"type": "string"}}})
    for i in range(200, 300):
        p.produce(topic, value=json.dumps({"user": f"u{i}", "n": i, "src": "vpn"}).encode(),
                  partition=i % 2, on_delivery=acks)
    assert p.flush(60) == 0
    assert not acks.failed, acks.failed[:3]
    wait_table_rows(catalog, name, 300)

    con = duckdb.connect()
    con.register("t", table_rows(catalog, name))
    cols = [c[0] for c in con.execute("describe t").fetchall()]
    assert cols[:6] == ["sluice_topic", "sluice_partition", "sluice_offset", "sluice_timestamp",
                        "sluice_schema_id", "sluice_principal"], cols
    assert {"user", "n", "src"} <= set(cols), cols
    got = {(part, off): (user, n, src) for part, off, user, n, src in con.execute(
        "select sluice_partition, sluice_offset, \"user\", n, src from t").fetchall()}
    assert len(got) == 300, "a row is missing or doubled"
    want = {}
    for (part, off), (_, value) in acks.ok.items():
        doc = json.loads(value)
        want[(part, off)] = (doc["user"], doc["n"], doc.get("src"))
    assert got == want
