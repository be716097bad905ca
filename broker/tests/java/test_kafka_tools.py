"""Sluice driven by Apache Kafka's own command-line tools and Java client.

Each tool runs by its main class from the Kafka jars that
scripts/kafka-tools-jars fetches (`java -cp "<libs>/*" <MainClass> ...`), the
way bin/kafka-*.sh would run it, and every run is bounded by a timeout. Tests
use their own topics and groups on one broker shared by the session.

Covered: kafka-topics (create with a config, describe, list, alter
partitions, delete), the console producer and consumer (keys, a consumer
group), kafka-verifiable-producer / -consumer (their JSON event output),
kafka-consumer-groups (list, describe and lag, reset to a datetime, delete)
and the Java client with its defaults (ClientCheck.java: idempotent producer,
acks=all, a subscribed consumer committing offsets).

Set KAFKA_BOOTSTRAP to run the same suite against another broker, e.g. a real
Apache Kafka (see conftest.py).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import time

import pytest

from conftest import (
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    HERE,
    VERIFIABLE_CONSUMER,
    VERIFIABLE_PRODUCER,
    ToolResult,
)


# --------------------------------------------------------------------------
# output parsers
# --------------------------------------------------------------------------
def parse_topic_describe(out: str) -> dict:
    """kafka-topics --describe output of one topic:
    {"PartitionCount": int, "Configs": {k: v}, "partitions": {p: {"Leader": .., ...}}}"""
    info: dict = {"partitions": {}}
    for line in out.splitlines():
        if "Topic:" not in line:
            continue
        fields = {}
        for part in line.strip().split("\t"):
            if ":" in part:
                k, _, v = part.partition(":")
                fields[k.strip()] = v.strip()
        if "Partition" in fields:
            info["partitions"][int(fields["Partition"])] = fields
        elif "PartitionCount" in fields:
            info["PartitionCount"] = int(fields["PartitionCount"])
            configs = fields.get("Configs", "")
            info["Configs"] = dict(
                c.split("=", 1) for c in configs.split(",") if "=" in c
            )
    return info


def parse_table(out: str, first_header: str = "GROUP") -> list[dict]:
    """Rows of a kafka-consumer-groups table (whitespace separated, with a
    header line starting with `first_header`)."""
    rows: list[dict] = []
    header = None
    for line in out.splitlines():
        cols = line.split()
        if not cols:
            continue
        if cols[0] == first_header:
            header = cols
            continue
        if header is not None and len(cols) >= len(header) - 3:
            rows.append(dict(zip(header, cols)))
    return rows


def json_events(res: ToolResult) -> list[dict]:
    events = []
    for line in res.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise AssertionError(f"bad JSON line {line!r}: {e}\n{res.describe()}")
    return events


def iso_utc(ms: int) -> str:
    """The --to-datetime format: YYYY-MM-DDTHH:mm:SS.sss with a zone."""
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def wait_until(pred, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), unsigned."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & ~3
    rem = length % 4
    if rem == 3:
        h ^= data[tail + 2] << 16
    if rem >= 2:
        h ^= data[tail + 1] << 8
    if rem >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def key_partition(key: str, partitions: int) -> int:
    """The partition the Java client's default partitioner picks for `key`."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def console_produce(tools, topic: str, lines: list[str]) -> ToolResult:
    """Keyed lines 'key:value' through the console producer (acks=all)."""
    return tools.run(
        CONSOLE_PRODUCER,
        "--topic", topic,
        "--property", "parse.key=true",
        "--property", "key.separator=:",
        "--request-required-acks", "-1",
        input="".join(line + "\n" for line in lines),
    )


SEP = "|"


def console_consume(tools, topic: str, group: str, n: int, *extra: str) -> tuple[list[dict], ToolResult]:
    """Read `n` records from the beginning in consumer group `group`; returns
    [{"ts", "partition", "offset", "key", "value"}] and the tool result."""
    res = tools.run(
        CONSOLE_CONSUMER,
        "--topic", topic,
        "--group", group,
        "--from-beginning",
        "--max-messages", str(n),
        "--timeout-ms", "30000",
        "--property", "print.timestamp=true",
        "--property", "print.partition=true",
        "--property", "print.offset=true",
        "--property", "print.key=true",
        "--property", f"key.separator={SEP}",
        *extra,
    )
    records = []
    for line in res.stdout.splitlines():
        if not line.startswith("CreateTime:"):
            continue
        ts, part, off, key, value = line.split(SEP, 4)
        records.append({
            "ts": int(ts.split(":", 1)[1]),
            "partition": int(part.split(":", 1)[1]),
            "offset": int(off.split(":", 1)[1]),
            "key": key,
            "value": value,
        })
    assert len(records) == n, f"consumed {len(records)} of {n}\n{res.describe()}"
    assert f"Processed a total of {n} messages" in res.stderr, res.describe()
    return records, res


def end_offsets(records: list[dict], partitions: int) -> dict[int, int]:
    """Log end offsets per partition of a topic holding exactly `records`."""
    ends = {p: 0 for p in range(partitions)}
    for r in records:
        ends[r["partition"]] = max(ends[r["partition"]], r["offset"] + 1)
    return ends


def describe_group(tools, group: str) -> tuple[dict[int, dict], ToolResult]:
    res = tools.groups("--describe", "--group", group)
    rows = {int(r["PARTITION"]): r for r in parse_table(res.stdout) if r.get("GROUP") == group}
    return rows, res


def list_groups(tools) -> list[str]:
    res = tools.groups("--list")
    return [line.strip() for line in res.stdout.splitlines() if line.strip()]


# --------------------------------------------------------------------------
# kafka-topics
# --------------------------------------------------------------------------
RETENTION_MS = "7200000"


@pytest.fixture(scope="module")
def admin_topic(tools):
    topic = f"tools-topic-{int(time.time() * 1000) % 10**8}"
    res = tools.topics(
        "--create", "--topic", topic,
        "--partitions", "8",
        "--replication-factor", "1",
        "--config", f"retention.ms={RETENTION_MS}",
    )
    return topic, res


def test_topics_create(admin_topic):
    topic, res = admin_topic
    assert f"Created topic {topic}." in res.stdout, res.describe()


def test_topics_describe(tools, admin_topic):
    topic, _ = admin_topic
    res = tools.topics("--describe", "--topic", topic)
    info = parse_topic_describe(res.stdout)
    assert info.get("PartitionCount") == 8, res.describe()
    assert sorted(info["partitions"]) == list(range(8)), res.describe()
    leaders = {p: f.get("Leader") for p, f in info["partitions"].items()}
    assert set(leaders.values()) == {str(tools.node_id)}, res.describe()
    for p, f in info["partitions"].items():
        assert f.get("Replicas") == str(tools.node_id), res.describe()
        assert f.get("Isr") == str(tools.node_id), res.describe()
    assert info["Configs"].get("retention.ms") == RETENTION_MS, res.describe()


def test_topics_list(tools, admin_topic):
    topic, _ = admin_topic
    res = tools.topics("--list")
    assert topic in res.stdout.split(), res.describe()


def test_topics_alter_partitions(tools, admin_topic):
    topic, _ = admin_topic
    tools.topics("--alter", "--topic", topic, "--partitions", "10")

    def described():
        r = tools.topics("--describe", "--topic", topic)
        info = parse_topic_describe(r.stdout)
        return info if info.get("PartitionCount") == 10 else None

    info = wait_until(described, 30, "10 partitions in --describe")
    assert sorted(info["partitions"]) == list(range(10))
    assert {f.get("Leader") for f in info["partitions"].values()} == {str(tools.node_id)}


def test_topics_delete(tools, admin_topic):
    topic, _ = admin_topic
    tools.topics("--delete", "--topic", topic)
    wait_until(
        lambda: topic not in tools.topics("--list").stdout.split(),
        30,
        f"{topic} gone from --list",
    )
    res = tools.topics("--describe", "--topic", topic, check=False)
    assert res.returncode != 0, res.describe()
    assert "does not exist" in res.stderr + res.stdout, res.describe()


# --------------------------------------------------------------------------
# console producer / consumer
# --------------------------------------------------------------------------
def test_console_producer_consumer_group(tools, unique):
    topic, group = unique("console"), unique("g1")
    tools.create_topic(topic, 3)
    lines = [f"key-{i}:value-{i} {'x' * (i % 7)}" for i in range(200)]
    console_produce(tools, topic, lines)

    records, res = console_consume(tools, topic, group, len(lines))
    got = sorted(f"{r['key']}:{r['value']}" for r in records)
    assert got == sorted(lines), res.describe()
    # Per partition: offsets 0..n-1 once each.
    by_part = collections.defaultdict(list)
    for r in records:
        by_part[r["partition"]].append(r["offset"])
    for p, offs in by_part.items():
        assert sorted(offs) == list(range(len(offs))), (p, offs)
    # Each key landed in one partition only (the keyed partitioner).
    parts_of_key = collections.defaultdict(set)
    for r in records:
        parts_of_key[r["key"]].add(r["partition"])
    assert all(len(s) == 1 for s in parts_of_key.values())

    # The group committed its position at the end of each partition.
    rows, dres = describe_group(tools, group)
    ends = end_offsets(records, 3)
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == ends, dres.describe()


# --------------------------------------------------------------------------
# kafka-verifiable-producer / kafka-verifiable-consumer
# --------------------------------------------------------------------------
def test_verifiable_producer_consumer(tools, unique):
    topic, group = unique("verifiable"), unique("verifiable-group")
    n = 5000
    tools.create_topic(topic, 4)

    pres = tools.run(
        VERIFIABLE_PRODUCER,
        "--topic", topic,
        "--max-messages", str(n),
        "--acks", "-1",
        "--repeating-keys", "16",
        timeout=180,
    )
    pev = json_events(pres)
    names = collections.Counter(e["name"] for e in pev)
    assert names["producer_send_error"] == 0, [e for e in pev if e["name"] == "producer_send_error"][:5]
    sent = [e for e in pev if e["name"] == "producer_send_success"]
    assert len(sent) == n, (names, pres.describe())
    assert names["shutdown_complete"] == 1, pres.describe()
    produced = {(e["partition"], e["offset"]): (e["key"], e["value"]) for e in sent}
    assert len(produced) == n, "two sends acknowledged at the same partition/offset"
    assert sorted(int(v) for _, v in produced.values()) == list(range(n))
    per_part = collections.Counter(p for p, _ in produced)
    for p, count in per_part.items():
        offs = sorted(o for (pp, o) in produced if pp == p)
        assert offs == list(range(count)), f"partition {p}: offsets not 0..{count - 1}"

    cres = tools.run(
        VERIFIABLE_CONSUMER,
        "--topic", topic,
        "--group-id", group,
        "--max-messages", str(n),
        "--verbose",
        "--reset-policy", "earliest",
        timeout=90,
    )
    cev = json_events(cres)
    cnames = collections.Counter(e["name"] for e in cev)
    assert cnames["startup_complete"] == 1, cres.describe()
    assert cnames["shutdown_complete"] == 1, cres.describe()
    assigned = [e for e in cev if e["name"] == "partitions_assigned"]
    assert assigned, cres.describe()
    assert {(a["topic"], a["partition"]) for a in assigned[-1]["partitions"]} == {
        (topic, p) for p in range(4)
    }, assigned[-1]

    data = [e for e in cev if e["name"] == "record_data"]
    seen = collections.Counter((e["partition"], e["offset"]) for e in data)
    dup = [k for k, c in seen.items() if c > 1]
    assert not dup, f"{len(dup)} records consumed more than once, e.g. {dup[:5]}"
    consumed = {(e["partition"], e["offset"]): (e["key"], e["value"]) for e in data}
    missing = set(produced) - set(consumed)
    extra = set(consumed) - set(produced)
    assert not missing, f"{len(missing)} acknowledged records not consumed, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} unexpected records consumed, e.g. {sorted(extra)[:5]}"
    wrong = [k for k in produced if produced[k] != consumed[k]]
    assert not wrong, f"key/value differ at {wrong[:5]}"

    # records_consumed events: the per-poll summaries add up to n and their
    # offset ranges cover what was produced.
    batches = [e for e in cev if e["name"] == "records_consumed"]
    assert sum(b["count"] for b in batches) == n
    ranges = collections.defaultdict(int)
    for b in batches:
        for part in b["partitions"]:
            assert part["topic"] == topic
            assert part["maxOffset"] - part["minOffset"] + 1 == part["count"], part
            ranges[part["partition"]] += part["count"]
    assert dict(ranges) == dict(per_part)

    commits = [e for e in cev if e["name"] == "offsets_committed"]
    assert commits, cres.describe()
    failed = [c for c in commits if not c.get("success")]
    assert not failed, failed[:3]
    last = {}
    for c in commits:
        for o in c["offsets"]:
            last[o["partition"]] = max(last.get(o["partition"], 0), o["offset"])
    assert last == dict(per_part), f"last committed {last} != end offsets {dict(per_part)}"


# --------------------------------------------------------------------------
# kafka-consumer-groups
# --------------------------------------------------------------------------
GROUP_PARTITIONS = 3


@pytest.fixture(scope="module")
def consumed_group(tools):
    """A topic with batch A, then (time T later) batch B, read to the end by a
    console consumer in a group that is inactive afterwards. Batch B has no
    record in the last partition, so that --to-datetime T finds no offset
    there (the tool then takes the log end offset)."""
    tag = f"{int(time.time() * 1000) % 10**8}"
    topic, group = f"groups-{tag}", f"groups-g-{tag}"
    tools.create_topic(topic, GROUP_PARTITIONS)
    batch_a = [f"a{i}:A-{i}" for i in range(60)]
    last = GROUP_PARTITIONS - 1
    b_keys = [k for k in (f"b{i}" for i in range(200)) if key_partition(k, GROUP_PARTITIONS) != last]
    batch_b = [f"{k}:B-{k}" for k in b_keys[:60]]
    console_produce(tools, topic, batch_a)
    time.sleep(1.0)
    t_ms = int(time.time() * 1000)
    time.sleep(1.0)
    console_produce(tools, topic, batch_b)
    n = len(batch_a) + len(batch_b)
    records, _ = console_consume(tools, topic, group, n)
    for r in records:
        if r["value"].startswith("A-"):
            assert r["ts"] < t_ms, r
        else:
            assert r["ts"] > t_ms, r
            assert r["partition"] != last, ("the default partitioner differs from key_partition()", r)
        assert r["partition"] == key_partition(r["key"], GROUP_PARTITIONS), r
    assert {r["partition"] for r in records} == set(range(GROUP_PARTITIONS))
    return {
        "topic": topic,
        "group": group,
        "records": records,
        "t_ms": t_ms,
        "ends": end_offsets(records, GROUP_PARTITIONS),
    }


def test_consumer_groups_list(tools, consumed_group):
    assert consumed_group["group"] in list_groups(tools)


def test_consumer_groups_describe_lag_zero(tools, consumed_group):
    g = consumed_group
    rows, res = describe_group(tools, g["group"])
    assert sorted(rows) == list(range(GROUP_PARTITIONS)), res.describe()
    for p, r in rows.items():
        assert r["TOPIC"] == g["topic"], res.describe()
        assert int(r["LOG-END-OFFSET"]) == g["ends"][p], res.describe()
        assert r["CURRENT-OFFSET"] == r["LOG-END-OFFSET"], res.describe()
        assert r["LAG"] == "0", res.describe()
    assert "has no active members" in res.stdout + res.stderr, res.describe()


def test_consumer_groups_reset_to_datetime(tools, consumed_group):
    g = consumed_group
    # Expected: per partition the first offset of batch B (the first record
    # at or after T); the log end offset where batch B has no record.
    want = dict(g["ends"])
    for r in g["records"]:
        if r["value"].startswith("B-"):
            want[r["partition"]] = min(want[r["partition"]], r["offset"])
    when = iso_utc(g["t_ms"])

    dry = tools.groups(
        "--reset-offsets", "--group", g["group"], "--topic", g["topic"],
        "--to-datetime", when, "--dry-run",
    )
    planned = {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in parse_table(dry.stdout)}
    assert planned == want, f"--to-datetime {when}\n{dry.describe()}"
    rows, _ = describe_group(tools, g["group"])
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == g["ends"], "dry run changed offsets"

    res = tools.groups(
        "--reset-offsets", "--group", g["group"], "--topic", g["topic"],
        "--to-datetime", when, "--execute",
    )
    done = {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in parse_table(res.stdout)}
    assert done == want, res.describe()

    rows, dres = describe_group(tools, g["group"])
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == want, dres.describe()
    for p, r in rows.items():
        assert int(r["LAG"]) == g["ends"][p] - want[p], dres.describe()

    # The group now resumes at batch B: exactly batch B is read again.
    n_b = sum(1 for r in g["records"] if r["value"].startswith("B-"))
    again, _ = console_consume(tools, g["topic"], g["group"], n_b)
    assert sorted(r["value"] for r in again) == sorted(
        r["value"] for r in g["records"] if r["value"].startswith("B-")
    )


def test_consumer_groups_delete(tools, consumed_group):
    g = consumed_group
    res = tools.groups("--delete", "--group", g["group"])
    assert f"Deletion of requested consumer groups ('{g['group']}') was successful." in res.stdout, res.describe()
    assert g["group"] not in list_groups(tools)
    # Gone for --describe too: DescribeGroups v6+ answers GROUP_ID_NOT_FOUND
    # (the tool shows a GroupIdNotFoundException), older versions a group in
    # state Dead (the tool says it "does not exist").
    dres = tools.groups("--describe", "--group", g["group"], check=False)
    out = dres.stdout + dres.stderr
    assert "GroupIdNotFoundException" in out or f"Consumer group '{g['group']}' does not exist" in out, dres.describe()


def test_consumer_groups_delete_offsets(tools, unique):
    topic, group = unique("delete-offsets"), unique("delete-offsets-group")
    tools.create_topic(topic, 2)
    lines = [f"k{i}:v{i}" for i in range(20)]
    console_produce(tools, topic, lines)
    records, _ = console_consume(tools, topic, group, len(lines))
    rows, _ = describe_group(tools, group)
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == end_offsets(records, 2)

    res = tools.groups("--delete-offsets", "--group", group, "--topic", topic)
    status = {int(r["PARTITION"]): r["STATUS"] for r in parse_table(res.stdout, "TOPIC")}
    assert status == {0: "Successful", 1: "Successful"}, res.describe()
    rows, dres = describe_group(tools, group)
    assert rows == {}, dres.describe()
    # Without committed offsets the group starts over (--from-beginning only
    # applies when there is no committed offset).
    again, _ = console_consume(tools, topic, group, len(lines))
    assert sorted((r["partition"], r["offset"]) for r in again) == sorted(
        (r["partition"], r["offset"]) for r in records
    )


# --------------------------------------------------------------------------
# the Java client with its defaults
# --------------------------------------------------------------------------
def test_java_client_defaults(tools, unique):
    topic, group = unique("java-client"), unique("java-client-group")
    n = 10_000
    tools.create_topic(topic, 4)
    res = tools.run(
        str(HERE / "ClientCheck.java"), tools.bootstrap, topic, str(n), group,
        bootstrap=False, timeout=180, check=False,
    )
    # ClientCheck prints its JSON summary last, also when a check failed (exit 1).
    lines = res.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("{"), res.describe()
    summary = json.loads(lines[-1])
    assert summary["producer_enable_idempotence"] is True
    assert summary["producer_acks"] in ("all", "-1")
    assert summary["failures"] == [], res.describe()
    assert summary["acked"] == n and summary["send_errors"] == 0
    assert summary["consumed"] == n
    assert summary["duplicates"] == 0 and summary["missing"] == 0 and summary["unexpected"] == 0
    assert summary["committed"] == summary["end_offsets"]
    assert sum(summary["end_offsets"].values()) == n
    assert summary["ok"] is True and res.returncode == 0, res.describe()
