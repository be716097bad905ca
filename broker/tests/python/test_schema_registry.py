"""The broker's Schema Registry API and validation on produce, driven by the real
confluent-kafka clients: `SchemaRegistryClient` against the registry every broker
serves on its HTTP port (the `--metrics-listen` address, Confluent's paths from the
root), and `AvroSerializer`/`JSONSerializer` producing into topics whose
`sluice.schema.*` configs make the broker validate what lands
(docs/schema-validation.md).

Every test uses its own subjects and topics on one shared broker. Expected registry
behaviour is Confluent's documented behaviour (status and error codes included), so
a difference a client would notice fails here. Every wait is bounded.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.schema_registry_client import (
    ConfigCompatibilityLevel,
    ServerConfig,
)
from confluent_kafka.serialization import MessageField, SerializationContext

REQUEST_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def registry(broker) -> SchemaRegistryClient:
    """A new client (so nothing is answered from an earlier client's cache)."""
    return SchemaRegistryClient({"url": f"http://{broker.metrics_addr}"})


@pytest.fixture
def sr(broker):
    client = registry(broker)
    yield client
    client.close()


def expect_error(http_status: int, error_code: int, fn, *args, **kwargs) -> SchemaRegistryError:
    """Calls fn and checks it fails with Confluent's (HTTP status, error code)."""
    with pytest.raises(SchemaRegistryError) as info:
        fn(*args, **kwargs)
    e = info.value
    assert (e.http_status_code, e.error_code) == (http_status, error_code), (
        f"{getattr(fn, '__name__', fn)}{args}: expected HTTP {http_status} / {error_code}, "
        f"got HTTP {e.http_status_code} / {e.error_code}: {e.error_message}"
    )
    return e


def same_schema(a: str, b: str) -> bool:
    """Schema texts equal as JSON (the registry may hand back a canonical form)."""
    return json.loads(a) == json.loads(b)


def create_topic(broker, topic: str, partitions: int = 1, config: dict | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})
    fs = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=REQUEST_TIMEOUT_S,
        operation_timeout=REQUEST_TIMEOUT_S,
    )
    try:
        fs[topic].result(timeout=REQUEST_TIMEOUT_S)
    except KafkaException as e:
        pytest.fail(f"create_topics({topic}, {config}) failed: {e.args[0]}")
    deadline = time.monotonic() + 10
    while True:
        t = admin.list_topics(timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{topic} not in metadata with {partitions} partitions")
        time.sleep(0.1)


def schema_topic(broker, topic: str, subject: str, fmt: str, mode: str,
                 level: str = "full", dead_letter: str = "") -> None:
    config = {
        "sluice.schema.subject": subject,
        "sluice.schema.format": fmt,
        "sluice.schema.level": level,
        "sluice.schema.mode": mode,
    }
    if dead_letter:
        config["sluice.dead.letter.topic"] = dead_letter
    create_topic(broker, topic, 1, config)


class Deliveries:
    """Delivery-report callback that records every outcome, in order."""

    def __init__(self):
        self.ok: list = []  # (partition, offset, value)
        self.failed: list = []  # (value, KafkaError)

    def __call__(self, err, msg):
        if err is not None:
            self.failed.append((msg.value(), err))
        else:
            self.ok.append((msg.partition(), msg.offset(), msg.value()))


def make_producer(broker, **overrides) -> Producer:
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 30000,
        "socket.timeout.ms": 10000,
    }
    conf.update(overrides)
    return Producer(conf)


def flush(producer: Producer, timeout: float = 60.0) -> None:
    left = producer.flush(timeout)
    assert left == 0, f"{left} messages still undelivered after {timeout}s"


def read_all(broker, topic: str, partition: int = 0, timeout: float = 30.0) -> list:
    """Every message of topic/partition from the beginning up to its current high
    watermark (a control batch at the end is skipped without a message)."""
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": uniq("sluice-sr-reader"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
    })
    try:
        tp = TopicPartition(topic, partition)
        _, high = c.get_watermark_offsets(tp, timeout=10, cached=False)
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        out = []
        position = 0
        deadline = time.monotonic() + timeout
        while position < high:
            assert time.monotonic() < deadline, (
                f"reading {topic}[{partition}] up to {high} timed out at {position}; got {len(out)}"
            )
            m = c.poll(0.2)
            if m is None:
                pos = c.position([tp])[0].offset
                if pos >= high:
                    break
                continue
            assert m.error() is None, f"consuming {topic}: {m.error()}"
            out.append(m)
            position = m.offset() + 1
        return out
    finally:
        c.close()


def headers_of(msg) -> dict[str, str]:
    hs = msg.headers() or []
    keys = [k for k, _ in hs]
    assert len(keys) == len(set(keys)), f"repeated header names: {keys}"
    return {k: (v.decode() if v is not None else None) for k, v in hs}


def framed(schema_id: int, payload: bytes) -> bytes:
    """Confluent's wire framing: magic byte 0, 4-byte big-endian schema id, payload."""
    return b"\x00" + schema_id.to_bytes(4, "big") + payload


# --------------------------------------------------------------------------
# the compatibility table
# --------------------------------------------------------------------------
def avro_record(fields: list, name: str = "User") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "sluice.test", "fields": fields})


AVRO_BASE = avro_record([
    {"name": "name", "type": "string"},
    {"name": "count", "type": "int"},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
])


def avro_with(replace: dict | None = None, add: list | None = None, drop: tuple = (),
              name: str = "User") -> str:
    fields = [f for f in json.loads(AVRO_BASE)["fields"] if f["name"] not in drop]
    fields = [(replace or {}).get(f["name"], f) for f in fields]
    return avro_record(fields + (add or []), name=name)


JSON_BASE = json.dumps({
    "type": "object",
    "properties": {"user": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["user"],
    "additionalProperties": False,
})


def json_with(props: dict | None = None, required: list | None = None, drop: tuple = (),
              closed: bool = True) -> str:
    base = json.loads(JSON_BASE)
    for p in drop:
        del base["properties"][p]
    base["properties"].update(props or {})
    if required is not None:
        base["required"] = required
    if not closed:
        del base["additionalProperties"]
    return json.dumps(base)


# (name, schema type, level, old schema, new schema, compatible)
COMPATIBILITY_TABLE = [
    # Avro, by Avro's schema resolution rules.
    ("avro-add-field-with-default", "AVRO", "BACKWARD", AVRO_BASE,
     avro_with(add=[{"name": "age", "type": "int", "default": 0}]), True),
    ("avro-add-field-with-default-full", "AVRO", "FULL", AVRO_BASE,
     avro_with(add=[{"name": "age", "type": "int", "default": 0}]), True),
    ("avro-add-field-without-default", "AVRO", "BACKWARD", AVRO_BASE,
     avro_with(add=[{"name": "age", "type": "int"}]), False),
    ("avro-add-field-without-default-forward", "AVRO", "FORWARD", AVRO_BASE,
     avro_with(add=[{"name": "age", "type": "int"}]), True),
    ("avro-remove-field-backward", "AVRO", "BACKWARD", AVRO_BASE, avro_with(drop=("count",)), True),
    ("avro-remove-field-forward", "AVRO", "FORWARD", AVRO_BASE, avro_with(drop=("count",)), False),
    ("avro-change-type", "AVRO", "BACKWARD", AVRO_BASE,
     avro_with(replace={"name": {"name": "name", "type": "int"}}), False),
    ("avro-change-type-none", "AVRO", "NONE", AVRO_BASE,
     avro_with(replace={"name": {"name": "name", "type": "int"}}), True),
    ("avro-promote-int-to-long", "AVRO", "BACKWARD", AVRO_BASE,
     avro_with(replace={"count": {"name": "count", "type": "long"}}), True),
    ("avro-promote-int-to-long-forward", "AVRO", "FORWARD", AVRO_BASE,
     avro_with(replace={"count": {"name": "count", "type": "long"}}), False),
    ("avro-enum-symbol-added", "AVRO", "BACKWARD", AVRO_BASE,
     avro_with(replace={"kind": {"name": "kind", "type": {
         "type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}}}), True),
    ("avro-enum-symbol-added-forward", "AVRO", "FORWARD", AVRO_BASE,
     avro_with(replace={"kind": {"name": "kind", "type": {
         "type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}}}), False),
    ("avro-record-renamed", "AVRO", "BACKWARD", AVRO_BASE, avro_with(name="Person"), False),
    # JSON Schema, by Confluent's JSON Schema rules (closed content model: additionalProperties false).
    ("json-add-optional-property", "JSON", "BACKWARD", JSON_BASE,
     json_with(props={"host": {"type": "string"}}), True),
    # FORWARD half of FULL: the old closed model refuses the new property.
    ("json-add-optional-property-full", "JSON", "FULL", JSON_BASE,
     json_with(props={"host": {"type": "string"}}), False),
    ("json-add-optional-property-forward", "JSON", "FORWARD", JSON_BASE,
     json_with(props={"host": {"type": "string"}}), False),
    ("json-make-property-required", "JSON", "BACKWARD", JSON_BASE,
     json_with(required=["user", "n"]), False),
    ("json-drop-required", "JSON", "BACKWARD", JSON_BASE, json_with(required=[]), True),
    ("json-change-type", "JSON", "BACKWARD", JSON_BASE,
     json_with(props={"user": {"type": "integer"}}), False),
    ("json-change-type-none", "JSON", "NONE", JSON_BASE,
     json_with(props={"user": {"type": "integer"}}), True),
    ("json-widen-integer-to-number", "JSON", "BACKWARD", JSON_BASE,
     json_with(props={"n": {"type": "number"}}), True),
    ("json-widen-integer-to-number-forward", "JSON", "FORWARD", JSON_BASE,
     json_with(props={"n": {"type": "number"}}), False),
    ("json-remove-property-closed-model", "JSON", "BACKWARD", JSON_BASE, json_with(drop=("n",)), False),
    ("json-add-property-to-open-model", "JSON", "BACKWARD", json_with(closed=False),
     json_with(props={"host": {"type": "string"}}, closed=False), False),
]


@pytest.mark.parametrize(
    "schema_type,level,old,new,compatible",
    [pytest.param(*row[1:], id=row[0]) for row in COMPATIBILITY_TABLE],
)
def test_compatibility_table(broker, sr, schema_type, level, old, new, compatible):
    subject = uniq("compat")
    assert sr.set_compatibility(subject, level) == {"compatibility": level}
    assert sr.get_compatibility(subject) == level
    old_id = sr.register_schema(subject, Schema(old, schema_type))

    assert sr.test_compatibility(subject, Schema(new, schema_type)) is compatible
    assert sr.test_compatibility(subject, Schema(new, schema_type), version=1) is compatible
    if compatible:
        new_id = sr.register_schema(subject, Schema(new, schema_type))
        assert new_id != old_id
        assert registry(broker).get_versions(subject) == [1, 2]
    else:
        expect_error(409, 409, sr.register_schema, subject, Schema(new, schema_type))
        assert registry(broker).get_versions(subject) == [1]


# --------------------------------------------------------------------------
# a subject's life: config, listing, lookups, soft and hard deletes, ids
# --------------------------------------------------------------------------
def lifecycle_schemas(schema_type: str, tag: str) -> dict[str, str]:
    """The lifecycle's schemas, made unique by `tag` (an Avro namespace, a JSON title) so
    that no other test registers the same schema and shares its ids."""
    out = {}
    for name, text in LIFECYCLE[schema_type].items():
        try:
            doc = json.loads(text)
        except ValueError:
            out[name] = text  # the invalid one
            continue
        if schema_type == "AVRO":
            doc["namespace"] = f"sluice.test.{tag}"
        else:
            doc["title"] = tag
        out[name] = json.dumps(doc)
    return out


LIFECYCLE = {
    "AVRO": dict(
        v1=AVRO_BASE,
        v2=avro_with(add=[{"name": "age", "type": "int", "default": 0}]),
        incompatible=avro_with(replace={"name": {"name": "name", "type": "int"}}),
        unregistered=avro_with(add=[{"name": "zone", "type": "string", "default": "eu"}]),
        invalid='{"type": "record", "name": "Broken", "fields": [{"name": "x", "type": "nope"}]}',
        v3=avro_record([{"name": "other", "type": "string"}], name="Other"),
    ),
    "JSON": dict(
        v1=JSON_BASE,
        v2=json_with(props={"host": {"type": "string"}}),
        incompatible=json_with(required=["user", "n"]),
        unregistered=json_with(props={"zone": {"type": "string"}}),
        invalid='{"type": "object", "properties": ',
        v3=json.dumps({"type": "object", "properties": {"other": {"type": "string"}}}),
    ),
}


@pytest.mark.parametrize("schema_type", ["AVRO", "JSON"])
def test_subject_lifecycle(broker, sr, schema_type):
    subject = uniq(f"life-{schema_type.lower()}")
    tag = subject.replace("-", "_")
    s = {k: Schema(v, schema_type) for k, v in lifecycle_schemas(schema_type, tag).items()}
    other = subject + "-copy"

    assert schema_type in sr.get_schema_types()
    expect_error(404, 40401, sr.get_versions, subject)
    expect_error(404, 40401, sr.get_latest_version, subject)
    # No subject-level config yet: Confluent's 40408 (without defaultToGlobal).
    expect_error(404, 40408, sr.get_config, subject)

    # Per-subject config through set_config/get_config.
    sr.set_config(subject, ServerConfig(compatibility=ConfigCompatibilityLevel.BACKWARD))
    assert sr.get_config(subject).compatibility_level == ConfigCompatibilityLevel.BACKWARD

    id1 = sr.register_schema(subject, s["v1"])
    # Registering is idempotent (asked of a client with an empty cache).
    assert registry(broker).register_schema(subject, s["v1"]) == id1
    # The same schema written differently (whitespace, indentation) is the same schema.
    reformatted = Schema(json.dumps(json.loads(s["v1"].schema_str), indent=2), schema_type)
    assert registry(broker).register_schema(subject, reformatted) == id1
    assert registry(broker).get_versions(subject) == [1]
    # Ids are global: the same schema under another subject has the same id.
    assert registry(broker).register_schema(other, s["v1"]) == id1
    assert sorted(registry(broker).get_subjects_by_schema_id(id1)) == sorted([subject, other])

    # Evolve compatibly, refuse an incompatible change under BACKWARD.
    assert sr.test_compatibility(subject, s["v2"]) is True
    id2 = sr.register_schema(subject, s["v2"])
    assert id2 > id1
    assert sr.test_compatibility(subject, s["incompatible"]) is False
    expect_error(409, 409, sr.register_schema, subject, s["incompatible"])
    # NONE lets it through the check; BACKWARD again refuses it.
    assert sr.set_compatibility(subject, "NONE") == {"compatibility": "NONE"}
    assert sr.get_compatibility(subject) == "NONE"
    assert sr.test_compatibility(subject, s["incompatible"]) is True
    sr.set_config(subject, ServerConfig(compatibility=ConfigCompatibilityLevel.BACKWARD))
    assert sr.test_compatibility(subject, s["incompatible"]) is False
    # Deleting the subject's config falls back to the global level.
    deleted = sr.delete_config(subject)
    assert deleted.compatibility_level == ConfigCompatibilityLevel.BACKWARD
    expect_error(404, 40408, sr.get_config, subject)
    assert sr.get_config().compatibility_level == ConfigCompatibilityLevel.BACKWARD
    # An invalid schema: 42201.
    expect_error(422, 42201, sr.register_schema, subject, s["invalid"])

    # Listing and reading.
    r = registry(broker)
    assert r.get_versions(subject) == [1, 2]
    assert subject in r.get_subjects() and other in r.get_subjects()
    latest = r.get_latest_version(subject)
    assert (latest.subject, latest.version, latest.schema_id) == (subject, 2, id2)
    assert latest.schema.schema_type == schema_type
    assert same_schema(latest.schema.schema_str, s["v2"].schema_str)
    first = r.get_version(subject, 1)
    assert (first.version, first.schema_id) == (1, id1)
    assert same_schema(first.schema.schema_str, s["v1"].schema_str)
    by_id = r.get_schema(id2)
    assert by_id.schema_type == schema_type
    assert same_schema(by_id.schema_str, s["v2"].schema_str)
    versions = r.get_schema_versions(id1)
    assert sorted((v.subject, v.version) for v in versions) == sorted([(subject, 1), (other, 1)])
    found = r.lookup_schema(subject, s["v1"])
    assert (found.subject, found.version, found.schema_id) == (subject, 1, id1)
    expect_error(404, 40403, registry(broker).lookup_schema, subject, s["unregistered"])
    expect_error(404, 40401, registry(broker).lookup_schema, uniq("nobody"), s["v1"])
    expect_error(404, 40402, registry(broker).get_version, subject, 7)
    expect_error(404, 40403, registry(broker).get_schema, 2**31 - 1)

    # Soft delete of version 1, then a hard delete; a hard delete first is refused.
    assert sr.delete_version(subject, 1) == 1
    r = registry(broker)
    assert r.get_versions(subject) == [2]
    assert r.get_versions(subject, deleted=True) == [1, 2]
    expect_error(404, 40402, registry(broker).get_version, subject, 1)
    assert registry(broker).get_version(subject, 1, deleted=True).schema_id == id1
    assert r.get_latest_version(subject).version == 2
    expect_error(404, 40406, sr.delete_version, subject, 1)  # already soft-deleted
    expect_error(404, 40407, sr.delete_version, subject, 2, permanent=True)
    assert sr.delete_version(subject, 1, permanent=True) == 1
    r = registry(broker)
    assert r.get_versions(subject, deleted=True) == [2]
    expect_error(404, 40402, registry(broker).get_version, subject, 1, deleted=True)
    # id1 is still used by the other subject.
    assert same_schema(registry(broker).get_schema(id1).schema_str, s["v1"].schema_str)

    # Soft delete of the subject, then a hard delete; a hard delete first is refused.
    expect_error(404, 40405, sr.delete_subject, subject, permanent=True)
    assert sr.delete_subject(subject) == [2]
    r = registry(broker)
    assert subject not in r.get_subjects()
    assert subject in r.get_subjects(deleted=True)
    expect_error(404, 40401, registry(broker).get_versions, subject)
    expect_error(404, 40401, registry(broker).get_latest_version, subject)
    expect_error(404, 40404, sr.delete_subject, subject)  # already soft-deleted
    assert sr.delete_subject(subject, permanent=True) == [2]
    r = registry(broker)
    assert subject not in r.get_subjects(deleted=True)
    expect_error(404, 40401, registry(broker).get_versions, subject, deleted=True)
    # id2 was only under the hard-deleted subject: gone.
    expect_error(404, 40403, registry(broker).get_schema, id2)

    # Ids are never reused: a new schema gets a new id, and the subject starts over at 1.
    id3 = sr.register_schema(subject, s["v3"])
    assert id3 not in (id1, id2) and id3 > max(id1, id2)
    latest = registry(broker).get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (1, id3)

    # Clean up the copy: soft then hard.
    assert sr.delete_subject(other) == [1]
    assert sr.delete_subject(other, permanent=True) == [1]


# --------------------------------------------------------------------------
# validation on produce
# --------------------------------------------------------------------------
USER_AVRO = avro_record([
    {"name": "name", "type": "string"},
    {"name": "count", "type": "int"},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
])


def test_avro_serializer_into_a_reject_topic(broker, sr):
    topic = uniq("avro-reject")
    subject = f"{topic}-value"
    serializer = AvroSerializer(sr, USER_AVRO)
    ctx = SerializationContext(topic, MessageField.VALUE)
    users = [{"name": f"user{i}", "count": i, "tags": ["a"] * i} for i in range(5)]
    # The serializer registers the schema under <topic>-value on first use.
    values = [serializer(u, ctx) for u in users]
    schema_id = registry(broker).get_latest_version(subject).schema_id
    assert all(v[:5] == framed(schema_id, b"") for v in values)
    schema_topic(broker, topic, subject, "avro", "reject", level="full")

    producer = make_producer(broker, **{"enable.idempotence": False, "linger.ms": 50})
    dr = Deliveries()
    for i, v in enumerate(values):
        producer.produce(topic, value=v, key=f"k{i}".encode(), on_delivery=dr)
    flush(producer)
    assert dr.failed == []
    assert [o for _, o, _ in dr.ok] == list(range(len(values)))

    # Refused, each in its own batch: bad framing; an Avro payload that does not decode
    # (a string length past the end; bytes left over); an id of another subject; an
    # id nobody registered.
    other_id = sr.register_schema(uniq("other-value"), Schema(AVRO_BASE, "AVRO"))
    good = values[0][5:]
    refused = [
        b"\x01" + values[0][1:],
        b"not avro at all",
        framed(schema_id, b"\x10ab"),
        framed(schema_id, good + b"\x00\x01\x02"),
        framed(other_id, good),
        framed(2**31 - 2, good),
    ]
    for v in refused:
        one = Deliveries()
        producer.produce(topic, value=v, on_delivery=one)
        flush(producer)
        assert one.ok == [], f"{v!r} landed"
        assert [e.code() for _, e in one.failed] == [KafkaError.INVALID_RECORD], (
            f"{v!r}: {[str(e) for _, e in one.failed]}"
        )

    # A batch with a valid and an invalid record: nothing of it lands.
    mixed = Deliveries()
    producer.produce(topic, value=values[1], on_delivery=mixed)
    producer.produce(topic, value=framed(schema_id, b"\x10ab"), on_delivery=mixed)
    flush(producer)
    assert mixed.ok == []
    assert [e.code() for _, e in mixed.failed] == [KafkaError.INVALID_RECORD] * 2

    # What landed reads back equal through AvroDeserializer (writer schema from the registry).
    deserializer = AvroDeserializer(registry(broker))
    landed = read_all(broker, topic)
    assert [m.value() for m in landed] == values
    assert [deserializer(m.value(), ctx) for m in landed] == users


JSON_SCHEMA = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Login",
    "type": "object",
    "properties": {
        "user": {"type": "string"},
        "n": {"type": "integer"},
        "ok": {"type": "boolean"},
    },
    "required": ["user"],
    "additionalProperties": False,
})


def assert_dlq_headers(msg, *, reason, topic, subject, schema_id, index, producer_id, client_id):
    h = headers_of(msg)
    assert h["sluice.dlq.reason"] == reason, h
    assert h["sluice.dlq.error"], h
    assert h["sluice.dlq.topic"] == topic, h
    assert h["sluice.dlq.partition"] == "0", h
    assert h["sluice.dlq.subject"] == subject, h
    if schema_id is None:
        # No id was named (no framing, or a broken one): no header.
        assert "sluice.dlq.schema.id" not in h, h
    else:
        assert h["sluice.dlq.schema.id"] == str(schema_id), h
    assert h["sluice.dlq.batch.index"] == str(index), h
    assert h["sluice.dlq.producer.id"] == str(producer_id), h
    assert h["sluice.dlq.client.id"] == client_id, h
    return h


def test_json_schema_serializer_into_a_dead_letter_topic(broker, sr):
    topic = uniq("logins")
    dlq = topic + "-dlq"
    subject = f"{topic}-value"
    client_id = uniq("login-service")
    schema_id = sr.register_schema(subject, Schema(JSON_SCHEMA, "JSON"))
    other_id = sr.register_schema(uniq("other-value"), Schema(json_with(), "JSON"))
    create_topic(broker, dlq, 2)
    schema_topic(broker, topic, subject, "json-schema", "dead-letter", dead_letter=dlq)

    serializer = JSONSerializer(JSON_SCHEMA, sr)
    ctx = SerializationContext(topic, MessageField.VALUE)
    good = [{"user": "alice", "n": 1, "ok": True}, {"user": "bob"}, {"user": "carol", "n": 3}]
    good_bytes = [serializer(g, ctx) for g in good]
    assert all(b[:5] == framed(schema_id, b"") for b in good_bytes)
    # The serializer validates, so invalid records are framed by hand.
    wrong_type = framed(schema_id, json.dumps({"user": 7}).encode())
    missing = framed(schema_id, json.dumps({"n": 2}).encode())
    extra = framed(schema_id, json.dumps({"user": "x", "admin": True}).encode())
    unframed = json.dumps({"user": "dave"}).encode()
    unknown = framed(2**31 - 3, json.dumps({"user": "erin"}).encode())
    wrong_subject = framed(other_id, json.dumps({"user": "frank"}).encode())
    not_json = framed(schema_id, b"user=grace")

    producer = make_producer(broker, **{
        "enable.idempotence": True,
        "client.id": client_id,
        # One batch per flush, so that batch indexes are known.
        "linger.ms": 500,
        "batch.num.messages": 1000,
        "compression.type": "zstd",
    })
    dr = Deliveries()
    first_batch = [
        (good_bytes[0], None),
        (wrong_type, "schema"),
        (good_bytes[1], None),
        (missing, "schema"),
        (extra, "schema"),
        (unframed, "framing"),
        (unknown, "unknown_id"),
        (wrong_subject, "wrong_subject"),
        (not_json, "not_json"),
        (None, "no_value"),
    ]
    ts0 = 1_700_000_000_000
    for i, (v, _) in enumerate(first_batch):
        producer.produce(topic, value=v, key=f"k{i}".encode(), timestamp=ts0 + i,
                         headers=[("trace", f"t{i}".encode())], on_delivery=dr)
    flush(producer)
    # A batch with no valid record (lands as a control batch), then a valid one: the
    # producer's sequence stays in order.
    producer.produce(topic, value=wrong_type, key=b"all-bad", on_delivery=dr)
    flush(producer)
    producer.produce(topic, value=good_bytes[2], key=b"after", on_delivery=dr)
    flush(producer)
    # The producer sees success for every record.
    assert dr.failed == []
    assert len(dr.ok) == len(first_batch) + 2

    # The valid records land once, readable through JSONDeserializer.
    landed = read_all(broker, topic)
    assert [m.value() for m in landed] == good_bytes
    assert [m.key() for m in landed] == [b"k0", b"k2", b"after"]
    offsets = [m.offset() for m in landed]
    assert len(set(offsets)) == len(offsets)
    deserializer = JSONDeserializer(None, schema_registry_client=registry(broker))
    assert [deserializer(m.value(), ctx) for m in landed] == good

    # The invalid ones land once in the dead-letter topic (source partition 0 → 0).
    dead = read_all(broker, dlq, 0)
    assert read_all(broker, dlq, 1) == []
    expected = [(i, v, reason) for i, (v, reason) in enumerate(first_batch) if reason]
    expected.append((0, wrong_type, "schema"))
    assert [m.value() for m in dead] == [v for _, v, _ in expected], [
        (m.value(), headers_of(m).get("sluice.dlq.reason")) for m in dead
    ]
    producer_ids = {headers_of(m)["sluice.dlq.producer.id"] for m in dead}
    assert len(producer_ids) == 1, producer_ids
    producer_id = int(producer_ids.pop())
    assert producer_id >= 0, "an idempotent producer has a producer id"
    ids = {"schema": schema_id, "not_json": schema_id, "unknown_id": 2**31 - 3,
           "wrong_subject": other_id, "framing": None, "no_value": None}
    for m, (index, value, reason) in zip(dead, expected):
        h = assert_dlq_headers(m, reason=reason, topic=topic, subject=subject,
                               schema_id=ids[reason], index=index,
                               producer_id=producer_id, client_id=client_id)
        if m.key() != b"all-bad":
            # The original key, headers and timestamp are kept.
            assert m.key() == f"k{index}".encode()
            assert h["trace"] == f"t{index}"
            assert m.timestamp()[1] == ts0 + index
    # A schema failure names what failed.
    assert "user" in headers_of(dead[0])["sluice.dlq.error"]  # the wrong type
    assert "user" in headers_of(dead[1])["sluice.dlq.error"]  # the missing required property
    assert "admin" in headers_of(dead[2])["sluice.dlq.error"]  # the property not allowed


def test_plain_json_from_a_log_shipper_into_a_dead_letter_topic(broker, sr):
    topic = uniq("syslog")
    dlq = topic + "-dlq"
    subject = f"{topic}-value"
    client_id = uniq("shipper")
    schema_id = sr.register_schema(subject, Schema(json_with(closed=False), "JSON"))
    create_topic(broker, dlq, 1)
    schema_topic(broker, topic, subject, "json", "dead-letter", dead_letter=dlq)

    # A log shipper: plain JSON lines, no framing, compressed batches, no idempotence.
    producer = make_producer(broker, **{
        "enable.idempotence": False,
        "client.id": client_id,
        "linger.ms": 500,
        "compression.type": "gzip",
    })
    lines = [
        (b'{"user":"alice","n":1}', None),
        (b"user=carol action=login", "not_json"),
        (b'{"user":"bob"}', None),
        (b'{"user":7}', "schema"),
        (b'{"user":"dave","n":"many"}', "schema"),
        (b'  {"user":"erin"}\n', None),
    ]
    dr = Deliveries()
    for v, _ in lines:
        producer.produce(topic, value=v, on_delivery=dr)
    flush(producer)
    assert dr.failed == []

    landed = read_all(broker, topic)
    assert [m.value() for m in landed] == [v for v, r in lines if r is None]
    dead = read_all(broker, dlq)
    expected = [(i, v, r) for i, (v, r) in enumerate(lines) if r]
    assert [m.value() for m in dead] == [v for _, v, _ in expected]
    for m, (index, _, reason) in zip(dead, expected):
        # No framing names an id: the header carries the id validated against (the
        # subject's latest), for a value that is not JSON too.
        assert_dlq_headers(m, reason=reason, topic=topic, subject=subject, schema_id=schema_id,
                           index=index, producer_id=-1, client_id=client_id)
