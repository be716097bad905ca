"""Consumer groups with librdkafka (confluent-kafka): three members share 12 partitions,
one is killed with SIGKILL, the survivors take its partitions; nothing is skipped and
nothing is consumed twice beyond the killed member's last commit. Committed offsets
survive a broker restart."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MEMBER = str(Path(__file__).with_name("group_member.py"))
PARTITIONS = 12
RECORDS = 6000


def produce(bootstrap, topic, n):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, key=str(i % 97), value=f"r{i}")
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def create(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(30)


def start_member(bootstrap, group, topic, seconds, log, protocol="classic"):
    return subprocess.Popen(
        [sys.executable, MEMBER, bootstrap, group, topic, str(seconds), protocol],
        stdout=open(log, "w"),
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def read_log(path, with_time=False):
    consumed, commits = [], []
    for line in Path(path).read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line cut by SIGKILL
        if "c" in e:
            consumed.append(tuple(e["c"]) + ((e["t"],) if with_time else ()))
        else:
            commits.append({p: o for p, o in e["commit"]})
    return consumed, commits


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_killed_member_partitions_move_to_survivors(broker_factory, tmp_path, protocol):
    # Session timeout 6 s either way: the client's for classic, the broker's for KIP-848.
    broker = broker_factory.start(
        extra_args=["--group-consumer-session-timeout-ms", "6000", "--group-consumer-heartbeat-interval-ms", "500"]
    )
    bs = broker.bootstrap
    create(bs, "groups-kill", PARTITIONS)
    produce(bs, "groups-kill", RECORDS)
    logs = [tmp_path / f"m{i}.jsonl" for i in range(3)]
    members = [start_member(bs, "g-kill", "groups-kill", 40, logs[i], protocol) for i in range(3)]
    try:
        # Wait until the victim has consumed and committed something, then kill it.
        deadline = time.time() + 30
        while time.time() < deadline and not read_log(logs[0])[1]:
            time.sleep(0.1)
        assert read_log(logs[0])[1], "member 0 never committed"
        killed_at = time.time()
        members[0].send_signal(signal.SIGKILL)
        members[0].wait(10)
        victim_consumed = read_log(logs[0])[0]
        victim_partitions = {p for p, _, _ in victim_consumed}

        # The survivors take over the victim's partitions once its session expires.
        taken = {}
        deadline = time.time() + 40
        while time.time() < deadline and set(taken) != victim_partitions:
            for p, _, _, t in read_log(logs[1], True)[0] + read_log(logs[2], True)[0]:
                if p in victim_partitions and t > killed_at:
                    taken[p] = min(taken.get(p, t), t)
            time.sleep(0.2)
        assert set(taken) == victim_partitions, "survivors did not consume the victim's partitions"
        print(
            f"crash to consumption of the victim's partitions: first {min(taken.values()) - killed_at:.1f} s, "
            f"all {max(taken.values()) - killed_at:.1f} s ({protocol} protocol, session timeout 6 s, heartbeat 500 ms)"
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            done = {(p, o) for log in logs for p, o, _ in read_log(log)[0]}
            if len(done) >= RECORDS:
                break
            time.sleep(0.2)
    finally:
        for m in members:
            if m.poll() is None:
                os.killpg(m.pid, signal.SIGTERM)
        for m in members:
            m.wait(30)

    consumed = [read_log(log)[0] for log in logs]
    everything = [r for c in consumed for r in c]
    by_position = {}
    for p, o, v in everything:
        by_position.setdefault((p, o), set()).add(v)
    # Nothing skipped: every offset of every partition was consumed by someone.
    assert len(by_position) == RECORDS, f"{RECORDS - len(by_position)} records never consumed"
    # Nothing consumed twice beyond a commit: whenever a partition changes hands, the new
    # owner restarts exactly at a committed offset, so every run of re-consumed offsets
    # starts at an offset some member committed (or 0 before any commit).
    committed_values = {}
    for log in logs:
        for c in read_log(log)[1]:
            for p, o in c.items():
                committed_values.setdefault(int(p), set()).add(o)
    counts = {}
    for p, o, _ in everything:
        counts[(p, o)] = counts.get((p, o), 0) + 1
    doubles = sorted(k for k, n in counts.items() if n > 1)
    for i, (p, o) in enumerate(doubles):
        run_start = i == 0 or doubles[i - 1] != (p, o - 1)
        if run_start:
            assert o == 0 or o in committed_values.get(p, set()), f"{p}/{o} re-consumed without a commit there"
    print(f"records consumed twice (after a handoff, from the last commit): {len(doubles)}")


def test_committed_offsets_survive_restart(broker_factory):
    b = broker_factory.start()
    create(b.bootstrap, "groups-restart", 3)
    produce(b.bootstrap, "groups-restart", 300)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-restart", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["groups-restart"])
    got = 0
    deadline = time.time() + 30
    while got < 150 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    committed = {tp.partition: tp.offset for tp in c.commit(asynchronous=False)}
    c.close()
    assert sum(o for o in committed.values() if o >= 0) == got

    b.kill()
    b.start()
    c = Consumer(
        {"bootstrap.servers": b.bootstrap, "group.id": "g-restart", "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    after = c.committed([TopicPartition("groups-restart", p) for p in range(3)], timeout=20)
    assert {tp.partition: tp.offset for tp in after} == committed, "committed offsets survive kill -9"
    c.subscribe(["groups-restart"])
    rest = 0
    deadline = time.time() + 30
    while rest < 300 - got and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            rest += 1
            assert m.offset() >= max(committed.get(m.partition(), 0), 0), "resumed below the committed offset"
    c.close()
    assert rest == 300 - got
