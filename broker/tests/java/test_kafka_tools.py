"""Sluice driven by Apache Kafka's own command-line tools and Java client.

Each tool runs by its main class from the Kafka jars that
`scripts/tools kafka-jars` fetches (`java -cp "<libs>/*" <MainClass> ...`), the
way bin/kafka-*.sh would run it, and every run is bounded by a timeout. Tests
use their own topics and groups on one broker shared by the session.

Covered: kafka-topics (create with a config, describe, list, alter
partitions, delete), the console producer and consumer (keys, a consumer
group), kafka-verifiable-producer / -consumer (their JSON event output),
kafka-consumer-groups (list, describe and lag, reset to a datetime, delete)
and the Java client with its defaults (ClientCheck.java: idempotent producer,
acks=all, a subscribed consumer committing offsets), its consumer once with
each group protocol.

KIP-848 consumer groups (group.protocol=consumer): two Java consumers
(GroupMember.java) share a topic through the broker's assignor, and
kafka-consumer-groups lists and describes the group (offsets, members, state)
while they run, refuses to reset or delete it then, and resets its offsets
and deletes it once they left.

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
def list_groups_typed(tools, *args: str) -> tuple[dict[str, dict], ToolResult]:
    """kafka-consumer-groups --list --type ARGS...: {group: {"TYPE": .., ...}}."""
    res = tools.groups("--list", "--type", *args)
    return {r["GROUP"]: r for r in parse_table(res.stdout)}, res


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_java_client_defaults(tools, unique, protocol):
    topic, group = unique(f"java-client-{protocol}"), unique(f"java-client-{protocol}-group")
    n = 10_000
    tools.create_topic(topic, 4)
    res = tools.run(
        str(HERE / "ClientCheck.java"), tools.bootstrap, topic, str(n), group, protocol,
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
    assert summary["group_protocol"] == protocol
    # The only member of its group ends up with every partition, as a member
    # (classic: a JoinGroup member id and generation; consumer: a member id
    # of its own and a member epoch from ConsumerGroupHeartbeat).
    assert summary["final_assignment"] == [0, 1, 2, 3], res.describe()
    assert summary["member_id"] and summary["generation"] >= 1, res.describe()

    # The broker keeps the group as a group of that protocol (ListGroups v5
    # with types), also after the member left.
    typed, lres = list_groups_typed(tools)
    want_type = {"classic": "Classic", "consumer": "Consumer"}[protocol]
    assert typed.get(group, {}).get("TYPE") == want_type, lres.describe()


# --------------------------------------------------------------------------
# KIP-848 consumer groups: two group.protocol=consumer members, the tools
# --------------------------------------------------------------------------
KIP848_PARTITIONS = 6
KIP848_RECORDS = 600
KIP848_SHIFT = 5
GROUP_MEMBER = str(HERE / "GroupMember.java")


def member_state(m) -> dict:
    """What a GroupMember.java process reported so far: its latest assignment
    event, the records it consumed (partition, offset, key, value), its
    closed event."""
    st = {"assignment": None, "records": [], "closed": None}
    for e in m.json_lines():
        if e["event"] == "assignment":
            st["assignment"] = e
        elif e["event"] == "records":
            st["records"].extend(tuple(r) for r in e["records"])
        elif e["event"] == "closed":
            st["closed"] = e
    return st


def spawn_member(tools, topic: str, group: str, client_id: str, protocol: str = "consumer"):
    return tools.spawn(
        GROUP_MEMBER, tools.bootstrap, topic, group, client_id, protocol, name=client_id,
    )


def wait_members(members, pred, timeout: float, what: str):
    """wait_until() for running GroupMember processes: fails at once, with
    their output, when one of them exits, and shows their output on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        for m in members:
            if not m.running():
                pytest.fail(f"{m.name} exited while waiting for {what}\n{m.describe()}")
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            outs = "\n".join(m.describe() for m in members)
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{outs}")
        time.sleep(0.3)


def stop_member(m, timeout: float = 60) -> dict:
    """Close the member's stdin (it commits, close()s and leaves the group)
    and wait for it; its final state."""
    m.close_stdin()
    rc = m.wait(timeout)
    st = member_state(m)
    assert st["closed"] is not None and st["closed"]["ok"] and rc == 0, m.describe()
    return st


def group_state(tools, group: str) -> tuple[dict, ToolResult]:
    """kafka-consumer-groups --describe --state --verbose: the group's row."""
    res = tools.groups("--describe", "--group", group, "--state", "--verbose")
    rows = [r for r in parse_table(res.stdout) if r.get("GROUP") == group]
    return (rows[0] if rows else {}), res


def describe_members(tools, group: str, *extra: str) -> tuple[dict[str, dict], ToolResult]:
    """kafka-consumer-groups --describe --members: {consumer id: row}."""
    res = tools.groups("--describe", "--group", group, "--members", *extra)
    rows = {r["CONSUMER-ID"]: r for r in parse_table(res.stdout) if r.get("GROUP") == group}
    return rows, res


@pytest.fixture(scope="module")
def kip848_group(tools):
    """Two GroupMember.java consumers (group.protocol=consumer) in one group
    on a 6-partition topic: once the broker split the partitions between them,
    records are produced, and when both consumed everything the tools run
    against the group while it is active. Then both members stop (they leave
    the group) and the tools run again against the empty group.

    Returns the members' states and the tool results; the tests below
    check them (and go on with the group: reset its offsets, delete it)."""
    tag = f"{int(time.time() * 1000) % 10**8}"
    topic, group = f"kip848-{tag}", f"kip848-g-{tag}"
    tools.create_topic(topic, KIP848_PARTITIONS)
    names = ("kip848-member-a", "kip848-member-b")
    members = [spawn_member(tools, topic, group, name) for name in names]
    try:
        # Both joined, and the uniform assignor gave each 3 partitions: wait
        # for it before producing, so that no record is read before the split.
        def split():
            a = [member_state(m)["assignment"] for m in members]
            if any(x is None for x in a):
                return None
            if sorted(len(x["partitions"]) for x in a) != [3, 3]:
                return None
            return a

        assignments_seen = wait_members(members, split, 90, "a 3/3 assignment of the two members")

        lines = [f"k{i}:v{i}" for i in range(KIP848_RECORDS)]
        assert {key_partition(f"k{i}", KIP848_PARTITIONS) for i in range(KIP848_RECORDS)} == set(
            range(KIP848_PARTITIONS)
        )
        console_produce(tools, topic, lines)
        wait_members(
            members,
            lambda: sum(len(member_state(m)["records"]) for m in members) >= KIP848_RECORDS,
            60,
            f"{KIP848_RECORDS} records consumed by the two members",
        )

        running: dict = {}
        # The group settles in Stable once both members own their target
        # partitions (the tool then prints no "is rebalancing" warning).
        running["state"] = wait_until(
            lambda: (lambda r: r if r[0].get("STATE") == "Stable" else None)(group_state(tools, group)),
            30,
            f"{group} in state Stable",
        )
        running["describe"] = describe_group(tools, group)
        running["members"] = describe_members(tools, group)
        running["members_verbose"] = describe_members(tools, group, "--verbose")
        running["list"] = list_groups(tools)
        running["list_consumer"] = list_groups_typed(tools, "consumer")
        running["list_classic"] = list_groups_typed(tools, "classic")
        running["list_consumer_state"] = list_groups_typed(tools, "consumer", "--state")
        # Both refused while members are active.
        running["reset"] = tools.groups(
            "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute",
            check=False,
        )
        running["delete"] = tools.groups("--delete", "--group", group, check=False)
        assignments = [member_state(m)["assignment"] for m in members]
        # Stop both at once (the one left over would get all partitions).
        for m in members:
            m.close_stdin()
        stopped = [stop_member(m) for m in members]

        # Closing a member sends a leave heartbeat (member epoch -1): the
        # group is empty right away, no session timeout involved.
        after: dict = {}
        after["state"] = wait_until(
            lambda: (lambda r: r if r[0].get("STATE") == "Empty" else None)(group_state(tools, group)),
            30,
            f"{group} in state Empty after both members left",
        )
        after["describe"] = describe_group(tools, group)
    finally:
        for m in members:
            m.kill()
    return {
        "topic": topic,
        "group": group,
        "lines": lines,
        "members": members,
        "names": names,
        "assignments_seen": assignments_seen,
        "assignments": assignments,
        "stopped": stopped,
        "running": running,
        "after": after,
    }


def kip848_ends(g) -> dict[int, int]:
    """Log end offsets per partition from what the members consumed."""
    ends = {p: 0 for p in range(KIP848_PARTITIONS)}
    for st in g["stopped"]:
        for p, o, _k, _v in st["records"]:
            ends[p] = max(ends[p], o + 1)
    return ends


def test_kip848_members_split_partitions(kip848_group):
    g = kip848_group
    parts = [a["partitions"] for a in g["assignments"]]
    assert sorted(len(p) for p in parts) == [3, 3], parts
    assert sorted(parts[0] + parts[1]) == list(range(KIP848_PARTITIONS)), parts
    ids = [a["member_id"] for a in g["assignments"]]
    assert all(ids) and ids[0] != ids[1], ids
    assert all(a["epoch"] >= 1 for a in g["assignments"]), g["assignments"]
    # The assignment the members had when they were stopped is the one they
    # had when the records were produced: no rebalance in between.
    assert [a["partitions"] for a in g["assignments_seen"]] == parts


def test_kip848_every_record_once(kip848_group):
    g = kip848_group
    seen = collections.Counter()
    for st, a in zip(g["stopped"], g["assignments"]):
        assert st["records"], f"a member consumed nothing: {st['closed']}"
        for p, o, k, v in st["records"]:
            assert p in a["partitions"], f"record of partition {p} read by a member owning {a['partitions']}"
            seen[(p, o)] += 1
    dup = [k for k, c in seen.items() if c > 1]
    assert not dup, f"{len(dup)} records consumed more than once, e.g. {dup[:5]}"
    got = sorted(f"{k}:{v}" for st in g["stopped"] for _p, _o, k, v in st["records"])
    assert got == sorted(g["lines"])
    for p, end in kip848_ends(g).items():
        offs = sorted(o for (pp, o) in seen if pp == p)
        assert offs == list(range(end)), f"partition {p}: offsets not 0..{end - 1}"


def test_kip848_describe_offsets_while_running(kip848_group):
    g = kip848_group
    rows, res = g["running"]["describe"]
    assert sorted(rows) == list(range(KIP848_PARTITIONS)), res.describe()
    owner = {}
    for a, name in zip(g["assignments"], g["names"]):
        for p in a["partitions"]:
            owner[p] = (a["member_id"], name)
    ends = kip848_ends(g)
    for p, r in rows.items():
        assert r["TOPIC"] == g["topic"], res.describe()
        assert (r["CONSUMER-ID"], r["CLIENT-ID"]) == owner[p], res.describe()
        assert int(r["LOG-END-OFFSET"]) == ends[p], res.describe()
        assert int(r["CURRENT-OFFSET"]) == ends[p] and r["LAG"] == "0", res.describe()
    assert "rebalancing" not in res.stdout + res.stderr, res.describe()
    assert "no active members" not in res.stdout + res.stderr, res.describe()


def test_kip848_describe_members_while_running(kip848_group):
    g = kip848_group
    rows, res = g["running"]["members"]
    want = {a["member_id"]: (name, a) for a, name in zip(g["assignments"], g["names"])}
    assert sorted(rows) == sorted(want), res.describe()
    for mid, r in rows.items():
        name, _a = want[mid]
        assert r["CLIENT-ID"] == name, res.describe()
        assert r["#PARTITIONS"] == "3", res.describe()

    rows, res = g["running"]["members_verbose"]
    assert sorted(rows) == sorted(want), res.describe()
    for mid, r in rows.items():
        _name, a = want[mid]
        assigned = f"{g['topic']}:" + ",".join(str(p) for p in a["partitions"])
        assert r["CURRENT-ASSIGNMENT"] == assigned, res.describe()
        assert r["TARGET-ASSIGNMENT"] == assigned, res.describe()
        assert r["CURRENT-EPOCH"] == r["TARGET-EPOCH"], res.describe()


def test_kip848_describe_state_while_running(kip848_group):
    g = kip848_group
    row, res = g["running"]["state"]
    assert row.get("STATE") == "Stable", res.describe()
    assert row.get("ASSIGNMENT-STRATEGY") == "uniform", res.describe()
    assert row.get("#MEMBERS") == "2", res.describe()
    assert row.get("GROUP-EPOCH") == row.get("TARGET-ASSIGNMENT-EPOCH"), res.describe()
    assert int(row["GROUP-EPOCH"]) >= 2, res.describe()  # at least one epoch per join
    # In a Stable group every member has reconciled to the target assignment
    # of the current group epoch.
    rows, mres = g["running"]["members_verbose"]
    assert {r["CURRENT-EPOCH"] for r in rows.values()} == {row["GROUP-EPOCH"]}, (res.describe(), mres.describe())


def test_kip848_list_by_type(kip848_group):
    g = kip848_group
    assert g["group"] in g["running"]["list"]
    typed, res = g["running"]["list_consumer"]
    assert typed.get(g["group"], {}).get("TYPE") == "Consumer", res.describe()
    assert all(r.get("TYPE") == "Consumer" for r in typed.values()), res.describe()
    typed, res = g["running"]["list_classic"]
    assert g["group"] not in typed, res.describe()
    assert all(r.get("TYPE") == "Classic" for r in typed.values()), res.describe()
    typed, res = g["running"]["list_consumer_state"]
    assert typed.get(g["group"], {}).get("STATE") == "Stable", res.describe()


def test_kip848_reset_and_delete_refused_while_active(kip848_group):
    g = kip848_group
    res = g["running"]["reset"]
    assert (
        f"Assignments can only be reset if the group '{g['group']}' is inactive, "
        "but the current state is Stable." in res.stdout
    ), res.describe()
    res = g["running"]["delete"]
    out = res.stdout + res.stderr
    assert "Deletion of some consumer groups failed" in out, res.describe()
    assert "GroupNotEmptyException" in out or "The group is not empty" in out, res.describe()
    # Nothing changed: the group kept its offsets (checked after the members
    # left, below, and here while running).
    rows, dres = g["running"]["describe"]
    assert all(r["LAG"] == "0" for r in rows.values()), dres.describe()


def test_kip848_empty_after_members_left(kip848_group):
    g = kip848_group
    row, res = g["after"]["state"]
    assert row.get("STATE") == "Empty" and row.get("#MEMBERS") == "0", res.describe()
    rows, dres = g["after"]["describe"]
    ends = kip848_ends(g)
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == ends, dres.describe()
    assert all(r["CONSUMER-ID"] == "-" for r in rows.values()), dres.describe()
    assert "has no active members" in dres.stdout + dres.stderr, dres.describe()


def test_kip848_reset_offsets(tools, kip848_group):
    g = kip848_group
    group, topic = g["group"], g["topic"]
    ends = kip848_ends(g)
    want = {p: max(0, e - KIP848_SHIFT) for p, e in ends.items()}

    dry = tools.groups(
        "--reset-offsets", "--group", group, "--topic", topic, "--shift-by", f"-{KIP848_SHIFT}", "--dry-run",
    )
    planned = {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in parse_table(dry.stdout)}
    assert planned == want, dry.describe()
    rows, _ = describe_group(tools, group)
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == ends, "dry run changed offsets"

    res = tools.groups(
        "--reset-offsets", "--group", group, "--topic", topic, "--shift-by", f"-{KIP848_SHIFT}", "--execute",
    )
    done = {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in parse_table(res.stdout)}
    assert done == want, res.describe()
    rows, dres = describe_group(tools, group)
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == want, dres.describe()
    assert {p: int(r["LAG"]) for p, r in rows.items()} == {p: ends[p] - want[p] for p in ends}, dres.describe()

    # A new consumer-protocol member gets all six partitions and resumes at
    # the reset offsets (OffsetFetch): exactly the last records of each.
    m = spawn_member(tools, topic, group, "kip848-member-c")
    try:
        n_want = sum(ends[p] - want[p] for p in ends)
        wait_members(
            [m],
            lambda: (lambda st: st["assignment"] is not None
                     and len(st["assignment"]["partitions"]) == KIP848_PARTITIONS
                     and len(st["records"]) >= n_want)(member_state(m)),
            60,
            f"the new member assigned all partitions and {n_want} records",
        )
        time.sleep(1.0)  # anything read beyond that shows up in the check below
        st = stop_member(m)
    finally:
        m.kill()
    got = sorted((p, o) for p, o, _k, _v in st["records"])
    assert got == sorted((p, o) for p in ends for o in range(want[p], ends[p])), m.describe()
    rows, dres = describe_group(tools, group)
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == ends, dres.describe()


def test_kip848_delete(tools, kip848_group):
    g = kip848_group
    group = g["group"]
    row, sres = group_state(tools, group)
    assert row.get("STATE") == "Empty", sres.describe()
    res = tools.groups("--delete", "--group", group)
    assert f"Deletion of requested consumer groups ('{group}') was successful." in res.stdout, res.describe()
    assert group not in list_groups(tools)
    typed, lres = list_groups_typed(tools, "consumer")
    assert group not in typed, lres.describe()
    dres = tools.groups("--describe", "--group", group, check=False)
    out = dres.stdout + dres.stderr
    assert "GroupIdNotFoundException" in out or f"Consumer group '{group}' does not exist" in out, dres.describe()
