"""Sluice driven by confluent-kafka (librdkafka), the way a collector or a
detection service would use it.

Consumer groups are not implemented yet: every consumer here sets a group.id
(librdkafka wants one) but only uses assign() with explicit offsets and never
commits.

Every wait is bounded: polls have timeouts, loops have deadlines, and the
broker fixtures (conftest.py) bound start-up and shutdown.
"""

from __future__ import annotations

import collections
import signal
import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from conftest import http_get

try:  # confluent-kafka >= 2.3
    from confluent_kafka.admin import OffsetSpec
except ImportError:  # pragma: no cover - depends on the installed client
    OffsetSpec = None

REQUEST_TIMEOUT_S = 30.0
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(pred, timeout: float, what: str, interval: float = 0.2):
    """Poll `pred` until it returns a truthy value; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def admin_client(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})


def make_producer(broker, **overrides) -> Producer:
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 30000,
        "socket.timeout.ms": 10000,
    }
    conf.update(overrides)
    return Producer(conf)


def make_consumer(broker, **overrides) -> Consumer:
    conf = {
        "bootstrap.servers": broker.bootstrap,
        # Groups are not implemented yet: a group.id is set, but the tests only
        # assign() and never commit.
        "group.id": f"sluice-pytest-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
    }
    conf.update(overrides)
    return Consumer(conf)


def future_error(fut, timeout: float = REQUEST_TIMEOUT_S):
    """The KafkaError a (admin) future failed with, or None when it succeeded."""
    try:
        fut.result(timeout=timeout)
    except KafkaException as e:
        return e.args[0]
    return None


def topic_metadata(admin: AdminClient, topic: str):
    """Metadata of `topic` from a request for *all* topics (a request naming
    the topic could auto-create it), or None when it does not exist."""
    md = admin.list_topics(timeout=10)
    return md.topics.get(topic)


def partition_count(admin: AdminClient, topic: str):
    t = topic_metadata(admin, topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


def create_topic(admin: AdminClient, topic: str, partitions: int, config=None) -> None:
    fs = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=REQUEST_TIMEOUT_S,
        operation_timeout=REQUEST_TIMEOUT_S,
    )
    err = future_error(fs[topic])
    assert err is None, f"create_topics({topic}) failed: {err}"
    wait_until(lambda: partition_count(admin, topic) == partitions, 10,
               f"{topic} to show {partitions} partitions in metadata")


class Deliveries:
    """Delivery-report callback that records every outcome."""

    def __init__(self):
        self.ok: list[tuple[int, int, bytes, bytes]] = []  # (partition, offset, key, value)
        self.failed: list[tuple[bytes, bytes, KafkaError]] = []

    def __call__(self, err, msg):
        if err is not None:
            self.failed.append((msg.key(), msg.value(), err))
        else:
            self.ok.append((msg.partition(), msg.offset(), msg.key(), msg.value()))

    @property
    def resolved(self) -> int:
        return len(self.ok) + len(self.failed)


def produce(producer: Producer, topic: str, dr: Deliveries, value: bytes, key=None,
            partition=None, timestamp=None, timeout: float = 30.0) -> None:
    """producer.produce() that waits (bounded) for room in the local queue."""
    kwargs = {"value": value, "key": key, "on_delivery": dr}
    if partition is not None:
        kwargs["partition"] = partition
    if timestamp is not None:
        kwargs["timestamp"] = timestamp
    deadline = time.monotonic() + timeout
    while True:
        try:
            producer.produce(topic, **kwargs)
            producer.poll(0)
            return
        except BufferError:
            if time.monotonic() >= deadline:
                raise
            producer.poll(0.1)


def flush(producer: Producer, timeout: float = 60.0) -> None:
    remaining = producer.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"


def get_watermarks(c: Consumer, topic: str, p: int, timeout: float = 15.0) -> tuple[int, int]:
    """(low, high) of a partition. Retries, bounded, on the transient errors a
    client sees while a partition (re)gets its leader, e.g. just after a restart."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return tuple(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False))
        except KafkaException as e:
            err = e.args[0]
            transient = err.retriable() or err.code() in (
                KafkaError.NOT_LEADER_FOR_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError._TIMED_OUT,
            )
            if not transient or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def watermarks(broker, topic: str, partitions) -> dict[int, tuple[int, int]]:
    c = make_consumer(broker)
    try:
        return {p: get_watermarks(c, topic, p) for p in partitions}
    finally:
        c.close()


def consume_all(broker, topic: str, partitions, timeout: float = 60.0):
    """Read every partition from the beginning up to its current high watermark.

    Returns (watermarks, records) with records[p] = [(offset, key, value, timestamp)]
    in the order they were delivered.
    """
    partitions = list(partitions)
    c = make_consumer(broker)
    try:
        marks = {p: get_watermarks(c, topic, p) for p in partitions}
        records = {p: [] for p in partitions}
        pending = {p for p, (lo, hi) in marks.items() if hi > lo}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, (
                f"timed out reading {topic}: partitions {sorted(pending)} incomplete; "
                f"watermarks {marks}; got { {p: len(r) for p, r in records.items()} }"
            )
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                pytest.fail(f"consumer error on {topic}: {msg.error()}")
            p = msg.partition()
            records[p].append((msg.offset(), msg.key(), msg.value(), msg.timestamp()))
            if msg.offset() >= marks[p][1] - 1:
                pending.discard(p)
        return marks, records
    finally:
        c.close()


def assert_dense(topic: str, marks, records, start=None) -> None:
    """Offsets of each partition are exactly low..high-1, in order, once each."""
    for p, recs in records.items():
        lo, hi = marks[p]
        if start is not None:
            assert lo == start.get(p, 0), f"{topic}[{p}] low watermark {lo}"
        offsets = [r[0] for r in recs]
        assert offsets == list(range(lo, hi)), (
            f"{topic}[{p}]: offsets not dense/in order from {lo} to {hi}: "
            f"first {offsets[:5]} last {offsets[-5:]} count {len(offsets)}"
        )


# --------------------------------------------------------------------------
# admin
# --------------------------------------------------------------------------
def test_metrics_endpoints(broker):
    assert http_get(broker.url("/healthz"))[0] == 200
    assert http_get(broker.url("/readyz"))[0] == 200
    status, body = http_get(broker.url("/metrics"))
    assert status == 200
    assert body.strip(), "/metrics is empty"


def test_admin_topic_lifecycle(broker):
    admin = admin_client(broker)
    topic = unique_topic("admin")

    create_topic(admin, topic, 8, {"retention.ms": "3600000"})
    md = topic_metadata(admin, topic)
    assert sorted(md.partitions) == list(range(8))
    for p in md.partitions.values():
        assert p.leader >= 0, f"partition {p.id} has no leader"

    # describe_configs returns what we set
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([res], request_timeout=REQUEST_TIMEOUT_S)[res].result(
        timeout=REQUEST_TIMEOUT_S)
    assert "retention.ms" in configs, sorted(configs)
    assert configs["retention.ms"].value == "3600000"

    # The legacy AlterConfigs (librdkafka's alter_configs) replaces the whole set: what
    # it does not name goes back to its default; a bad value is refused, changing nothing.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.bytes": "1048576"})
    admin.alter_configs([res], request_timeout=REQUEST_TIMEOUT_S)[res].result(
        timeout=REQUEST_TIMEOUT_S)
    configs = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)],
                                     request_timeout=REQUEST_TIMEOUT_S)
    configs = next(iter(configs.values())).result(timeout=REQUEST_TIMEOUT_S)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.ms"].value == str(7 * 24 * 3600 * 1000), configs["retention.ms"]
    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "soon"})
    err = future_error(admin.alter_configs([bad], request_timeout=REQUEST_TIMEOUT_S)[bad])
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err

    # creating it again is refused
    fs = admin.create_topics([NewTopic(topic, num_partitions=8, replication_factor=1)],
                             request_timeout=REQUEST_TIMEOUT_S)
    err = future_error(fs[topic])
    assert err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS, err

    # grow to 10 partitions
    fs = admin.create_partitions([NewPartitions(topic, 10)], request_timeout=REQUEST_TIMEOUT_S)
    err = future_error(fs[topic])
    assert err is None, f"create_partitions failed: {err}"
    wait_until(lambda: partition_count(admin, topic) == 10, 10, "10 partitions")

    # shrinking is refused, as in Kafka
    fs = admin.create_partitions([NewPartitions(topic, 5)], request_timeout=REQUEST_TIMEOUT_S)
    err = future_error(fs[topic])
    assert err is not None and err.code() == KafkaError.INVALID_PARTITIONS, err
    assert partition_count(admin, topic) == 10

    # delete
    fs = admin.delete_topics([topic], request_timeout=REQUEST_TIMEOUT_S,
                             operation_timeout=REQUEST_TIMEOUT_S)
    err = future_error(fs[topic])
    assert err is None, f"delete_topics failed: {err}"
    wait_until(lambda: topic_metadata(admin, topic) is None, 10, f"{topic} to disappear")


def test_auto_create_on_produce(broker):
    """Auto-creation is on by default, with --default-partitions (1) partitions."""
    topic = unique_topic("autocreate")
    dr = Deliveries()
    p = make_producer(broker)
    produce(p, topic, dr, b"hello", key=b"k")
    flush(p)
    assert not dr.failed, dr.failed
    assert [(part, off) for part, off, _, _ in dr.ok] == [(0, 0)]
    assert partition_count(admin_client(broker), topic) == 1


# --------------------------------------------------------------------------
# produce / consume
# --------------------------------------------------------------------------
@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec(broker, codec):
    admin = admin_client(broker)
    topic = unique_topic(f"codec-{codec}")
    nparts, n = 8, 1000
    create_topic(admin, topic, nparts)

    dr = Deliveries()
    p = make_producer(broker, **{"compression.type": codec, "linger.ms": 20})
    produced = []
    for i in range(n):
        key = f"key-{i}".encode()
        # Some values compress well, some don't.
        value = (f"{codec}-value-{i}-" + "x" * (i % 200)).encode()
        produced.append((key, value))
        produce(p, topic, dr, value, key=key)
    flush(p)

    assert not dr.failed, f"{len(dr.failed)} delivery errors, first: {dr.failed[:3]}"
    assert len(dr.ok) == n
    assert {part for part, _, _, _ in dr.ok} == set(range(nparts)), "keys did not spread"

    marks, records = consume_all(broker, topic, range(nparts))
    assert_dense(topic, marks, records, start={})
    assert sum(hi for _, hi in marks.values()) == n

    got = [(k, v) for recs in records.values() for _, k, v, _ in recs]
    assert collections.Counter(got) == collections.Counter(produced)

    # Each record sits exactly where its delivery report said it was.
    where = {(part, off): (k, v) for part, recs in records.items() for off, k, v, _ in recs}
    for part, off, k, v in dr.ok:
        assert where.get((part, off)) == (k, v), f"delivery ({part},{off}) mismatch"

    # Per key (hence per partition), records come back in produce order.
    for part, recs in records.items():
        idx = [int(k.decode().split("-")[1]) for _, k, _, _ in recs]
        assert idx == sorted(idx), f"partition {part} out of produce order"


def test_timestamps_offsets_for_times(broker):
    admin = admin_client(broker)
    topic = unique_topic("timestamps")
    create_topic(admin, topic, 1)
    n = 100
    base = (int(time.time()) - 3600) * 1000  # an hour ago, well inside retention
    ts = [base + i * 1000 for i in range(n)]

    dr = Deliveries()
    p = make_producer(broker)
    for i in range(n):
        produce(p, topic, dr, f"ts-{i}".encode(), key=b"k", partition=0, timestamp=ts[i])
        if i % 10 == 9:  # several batches, several records per batch
            flush(p)
    flush(p)
    assert not dr.failed, dr.failed[:3]
    assert [off for _, off, _, _ in dr.ok] == list(range(n))

    # Stored timestamps are the producer's CreateTime.
    marks, records = consume_all(broker, topic, [0])
    assert_dense(topic, marks, records, start={})
    assert [r[3] for r in records[0]] == [(TIMESTAMP_CREATE_TIME, t) for t in ts]

    c = make_consumer(broker)
    try:
        queries = {
            base - 5000: 0,          # before everything -> first record
            base: 0,
            base + 1: 1,             # first record with timestamp >= target
            base + 2500: 3,
            base + 55000: 55,        # exact match inside a batch
            base + 54999: 55,
            base + (n - 1) * 1000: n - 1,
            base + n * 1000: -1,     # after everything -> end (-1)
        }
        for target, want in queries.items():
            res = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert res[0].error is None, res[0].error
            assert res[0].offset == want, f"offsets_for_times({target - base:+d}ms): {res[0].offset} != {want}"
    finally:
        c.close()


@pytest.mark.skipif(OffsetSpec is None or not hasattr(AdminClient, "list_offsets"),
                    reason="confluent-kafka too old for AdminClient.list_offsets")
def test_admin_list_offsets(broker):
    admin = admin_client(broker)
    topic = unique_topic("listoffsets")
    create_topic(admin, topic, 1)
    n = 50
    base = (int(time.time()) - 600) * 1000
    dr = Deliveries()
    p = make_producer(broker)
    for i in range(n):
        produce(p, topic, dr, f"lo-{i}".encode(), partition=0, timestamp=base + i * 10)
    flush(p)
    assert not dr.failed, dr.failed[:3]

    tp = TopicPartition(topic, 0)

    def ask(spec):
        fs = admin.list_offsets({tp: spec}, request_timeout=REQUEST_TIMEOUT_S)
        return fs[tp].result(timeout=REQUEST_TIMEOUT_S)

    assert ask(OffsetSpec.earliest()).offset == 0
    assert ask(OffsetSpec.latest()).offset == n
    assert ask(OffsetSpec.for_timestamp(base + 105)).offset == 11

    latest_ts = ask(OffsetSpec.max_timestamp())
    assert latest_ts.offset == n - 1
    assert latest_ts.timestamp == base + (n - 1) * 10


@pytest.mark.skipif(not hasattr(AdminClient, "delete_records"),
                    reason="confluent-kafka too old for AdminClient.delete_records")
def test_delete_records(broker):
    admin = admin_client(broker)
    topic = unique_topic("deleterecords")
    create_topic(admin, topic, 2)
    dr = Deliveries()
    p = make_producer(broker)
    for i in range(100):
        produce(p, topic, dr, f"p0-{i}".encode(), partition=0)
        if i % 25 == 24:
            flush(p)
    for i in range(50):
        produce(p, topic, dr, f"p1-{i}".encode(), partition=1)
    flush(p)
    assert not dr.failed, dr.failed[:3]
    assert watermarks(broker, topic, [0, 1]) == {0: (0, 100), 1: (0, 50)}

    # Delete below offset 40 (inside a batch) on p0, and everything on p1
    # (offset -1 = up to the high watermark, as in Kafka).
    fs = admin.delete_records([TopicPartition(topic, 0, 40), TopicPartition(topic, 1, -1)],
                              request_timeout=REQUEST_TIMEOUT_S)
    lows = {tp.partition: f.result(timeout=REQUEST_TIMEOUT_S).low_watermark for tp, f in fs.items()}
    assert lows == {0: 40, 1: 50}

    assert watermarks(broker, topic, [0, 1]) == {0: (40, 100), 1: (50, 50)}

    marks, records = consume_all(broker, topic, [0, 1])
    assert_dense(topic, marks, records, start={0: 40, 1: 50})
    assert [v for _, _, v, _ in records[0]] == [f"p0-{i}".encode() for i in range(40, 100)]
    assert records[1] == []

    # Deleting below the start offset changes nothing.
    fs = admin.delete_records([TopicPartition(topic, 0, 10)], request_timeout=REQUEST_TIMEOUT_S)
    (f,) = fs.values()
    assert f.result(timeout=REQUEST_TIMEOUT_S).low_watermark == 40

    # Deleting past the high watermark is refused.
    fs = admin.delete_records([TopicPartition(topic, 0, 1000)], request_timeout=REQUEST_TIMEOUT_S)
    (f,) = fs.values()
    err = future_error(f)
    assert err is not None and err.code() == KafkaError.OFFSET_OUT_OF_RANGE, err
    assert watermarks(broker, topic, [0]) == {0: (40, 100)}


# --------------------------------------------------------------------------
# restarts and crashes
# --------------------------------------------------------------------------
def test_sigterm_restart(broker_factory):
    b = broker_factory.start()
    admin = admin_client(b)
    topic = unique_topic("sigterm")
    nparts, n = 4, 2000
    create_topic(admin, topic, nparts, {"retention.ms": "86400000"})

    dr = Deliveries()
    p = make_producer(b, **{"compression.type": "zstd"})
    for i in range(n):
        produce(p, topic, dr, f"term-{i}".encode(), key=f"k{i % 61}".encode())
    flush(p)
    assert not dr.failed, dr.failed[:3]
    assert len(dr.ok) == n
    before = watermarks(b, topic, range(nparts))
    del p

    t0 = time.monotonic()
    rc = b.stop(signal.SIGTERM, timeout=15)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"broker exited with {rc} after SIGTERM ({elapsed:.1f}s)"

    b.start()
    admin = admin_client(b)
    assert partition_count(admin, topic) == nparts
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([res], request_timeout=REQUEST_TIMEOUT_S)[res].result(
        timeout=REQUEST_TIMEOUT_S)
    assert configs["retention.ms"].value == "86400000"

    marks, records = consume_all(b, topic, range(nparts))
    assert marks == before
    assert_dense(topic, marks, records, start={})
    where = {(part, off): v for part, recs in records.items() for off, _, v, _ in recs}
    assert len(where) == n
    for part, off, _, v in dr.ok:
        assert where[(part, off)] == v

    # New writes continue right after the recovered offsets.
    dr2 = Deliveries()
    p2 = make_producer(b)
    for part in range(nparts):
        produce(p2, topic, dr2, f"after-{part}".encode(), partition=part)
    flush(p2)
    assert not dr2.failed, dr2.failed
    assert sorted((part, off) for part, off, _, _ in dr2.ok) == [
        (part, before[part][1]) for part in range(nparts)
    ]


@pytest.mark.parametrize(
    "checkpoint_ms", [None, 300], ids=["wal-replay", "segments-and-wal"]
)
def test_sigkill_restart(broker_factory, checkpoint_ms):
    """kill -9 in the middle of a produce stream: after restart every
    acknowledged record is there exactly once, where its ack said, in order;
    nothing is duplicated; offsets are dense and new writes continue after them."""
    extra = [] if checkpoint_ms is None else ["--checkpoint-interval-ms", str(checkpoint_ms)]
    b = broker_factory.start(extra)
    admin = admin_client(b)
    topic = unique_topic("sigkill")
    nparts = 4
    create_topic(admin, topic, nparts)

    seq_of: dict[bytes, int] = {}
    dr = Deliveries()
    p = make_producer(b, **{"message.timeout.ms": 5000, "linger.ms": 2})

    def send(seq: int) -> None:
        value = f"v-{seq}".encode()
        seq_of[value] = seq
        produce(p, topic, dr, value, key=f"k{seq % 37}".encode())

    # Phase 1: a first batch, all acknowledged.
    seq = 0
    for _ in range(1000):
        send(seq)
        seq += 1
    flush(p)
    assert not dr.failed, dr.failed[:3]
    if checkpoint_ms is not None:
        time.sleep(1.5)  # let at least one checkpoint write segments

    # Phase 2: keep up to 500 records in flight, kill -9 once 300 more are acked.
    target = len(dr.ok) + 300
    deadline = time.monotonic() + 60
    while len(dr.ok) < target:
        assert time.monotonic() < deadline, f"only {len(dr.ok)} acks before the deadline"
        assert not dr.failed, dr.failed[:3]
        if seq - dr.resolved < 500:
            send(seq)
            seq += 1
            p.poll(0)
        else:
            p.poll(0.005)
    rc = b.kill()
    assert rc == -signal.SIGKILL, rc
    # Let the producer settle every outstanding record (acked or timed out)
    # before the broker comes back, so nothing is retried into the new one.
    flush(p, timeout=30)
    print(f"sent {seq}; acked {len(dr.ok)}; failed after kill -9 {len(dr.failed)}")
    acked = {v: (part, off) for part, off, _, v in dr.ok}
    assert len(acked) == len(dr.ok)
    # Destroy the old producer now (the closure holds it too), so it cannot
    # reconnect to the restarted broker on the same port.
    del send, p

    b.start()
    marks, records = consume_all(b, topic, range(nparts))
    assert_dense(topic, marks, records, start={})

    counts = collections.Counter(v for recs in records.values() for _, _, v, _ in recs)
    dupes = [v for v, c in counts.items() if c > 1]
    assert not dupes, f"duplicated records: {dupes[:5]}"
    lost = [v for v in acked if v not in counts]
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {lost[:5]}"
    where = {(part, off): v for part, recs in records.items() for off, _, v, _ in recs}
    for v, (part, off) in acked.items():
        assert where[(part, off)] == v, f"{v!r} acked at ({part},{off}) reads back elsewhere"
    for part, recs in records.items():
        seqs = [seq_of[v] for _, _, v, _ in recs]
        assert seqs == sorted(seqs), f"partition {part} out of produce order"

    # New writes go right after what was recovered.
    dr2 = Deliveries()
    p2 = make_producer(b)
    for part in range(nparts):
        produce(p2, topic, dr2, f"after-{part}".encode(), partition=part)
    flush(p2)
    assert not dr2.failed, dr2.failed
    assert sorted((part, off) for part, off, _, _ in dr2.ok) == [
        (part, marks[part][1]) for part in range(nparts)
    ]


def test_unknown_topic_without_auto_create(broker_factory):
    b = broker_factory.start(["--auto-create-topics", "false"])
    topic = unique_topic("nonexistent")
    dr = Deliveries()
    p = make_producer(b, **{
        "message.timeout.ms": 5000,
        # librdkafka waits this long for a missing topic to appear before it
        # fails its messages with the broker's error (default 30 s).
        "topic.metadata.propagation.max.ms": 1000,
    })
    produce(p, topic, dr, b"nobody-home", key=b"k")
    flush(p, timeout=20)
    assert not dr.ok, f"produce to a missing topic succeeded: {dr.ok}"
    assert len(dr.failed) == 1
    err = dr.failed[0][2]
    assert err.code() != KafkaError._MSG_TIMED_OUT, (
        "message timed out instead of failing with UNKNOWN_TOPIC_OR_PART")
    assert err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), err
    assert topic_metadata(admin_client(b), topic) is None, "topic was created anyway"
