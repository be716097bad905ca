"""The authorisation matrix (docs/security.md, Authorisation): each API a client uses,
for each kind of caller, against the error code Apache Kafka gives in the same case.
The callers:

- anonymous (PLAINTEXT, no credentials);
- a wrong password;
- bob, authenticated with no ACL;
- alice, with PREFIXED ACLs on `feed-` topics and `g-` groups, and a DENY on
  `feed-secret` that overrides her prefixed ALLOW;
- the super user admin.

The table of observed results is printed (pytest -s) for the closing note.
"""

from __future__ import annotations

import gc
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewPartitions, NewTopic, ResourcePatternType,
                                   ResourceType)

from conftest import _PROCS, BrokerFactory, free_ports
import kafka_wire as wire

ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")
BOB = ("bob", "bob-secret")
OK = "OK"


def setup_cluster(c) -> None:
    """Topics, ACLs and records the matrix needs, made by the super user."""
    admin = AdminClient(c.conf(ADMIN))
    for f in admin.create_topics([NewTopic(t, 2) for t in
                                  ("feed-a", "feed-b", "feed-secret", "private")]).values():
        f.result(timeout=30)
    acl = lambda kind, name, pattern, op, perm=AclPermissionType.ALLOW, who="User:alice": \
        AclBinding(kind, name, pattern, who, "*", op, perm)
    P, L = ResourcePatternType.PREFIXED, ResourcePatternType.LITERAL
    grants = [
        acl(ResourceType.TOPIC, "feed-", P, AclOperation.WRITE),
        acl(ResourceType.TOPIC, "feed-", P, AclOperation.READ),
        acl(ResourceType.GROUP, "g-", P, AclOperation.READ),
        acl(ResourceType.TOPIC, "feed-secret", L, AclOperation.READ, AclPermissionType.DENY,
            who="User:*"),
        acl(ResourceType.GROUP, "bob-group", L, AclOperation.READ, who="User:bob"),
    ]
    for f in admin.create_acls(grants).values():
        f.result(timeout=10)
    time.sleep(1.0)
    pr = Producer(c.conf(ADMIN))
    for t in ("feed-a", "feed-secret"):
        for i in range(5):
            pr.produce(t, value=f"{t}-{i}".encode(), partition=0)
    assert pr.flush(30) == 0


class Cluster:
    """The conf of each kind of caller: anonymous on the PLAINTEXT listener, the others
    with SCRAM on the SASL_PLAINTEXT one."""

    def conf(self, user=None, **extra) -> dict:
        if user is None:
            return {"bootstrap.servers": f"127.0.0.1:{self.plain}", **extra}
        return {"bootstrap.servers": f"127.0.0.1:{self.sasl}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user[0],
                "sasl.password": user[1], **extra}


class SluiceCluster(Cluster):
    def __init__(self, factory, tmp):
        self.plain, metrics, self.sasl = free_ports(3)
        users = tmp / "users.txt"
        users.write_text("".join(f"{u}={p}\n" for u, p in (ADMIN, ALICE, BOB)))
        self.broker = factory.start([
            "--listeners", f"PLAINTEXT://127.0.0.1:{self.plain},SASL_PLAINTEXT://127.0.0.1:{self.sasl}",
            "--sasl-bootstrap-users-file", str(users),
            "--super-users", "User:admin",
            "--failed-authentication-delay-ms", "10",
            "--auto-create-topics", "false",
        ], ports=(self.plain, metrics))
        setup_cluster(self)

    def log_tail(self) -> str:
        return self.broker.log_tail(40)


class KafkaCluster(Cluster):
    """Apache Kafka (KRaft, one combined node) with the same listeners, SCRAM users made
    at format time and the StandardAuthorizer; the controller listener uses SASL/PLAIN
    so that no PLAINTEXT principal needs to be a super user."""

    def __init__(self, libs: str, tmp):
        self.plain, self.sasl, ctl = free_ports(3)
        self.log = tmp / "kafka.log"
        props = tmp / "server.properties"
        scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="admin-secret";'
        plain = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
                 'username="admin" password="admin-secret" user_admin="admin-secret";')
        props.write_text("\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{ctl}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.plain},SASL_PLAINTEXT://127.0.0.1:{self.sasl},"
            f"CONTROLLER://127.0.0.1:{ctl}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.plain},SASL_PLAINTEXT://127.0.0.1:{self.sasl}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
            "CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name=SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256",
            f"listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={scram}",
            f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram}",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.controller.protocol=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin",
            f"log.dirs={tmp / 'logs'}",
            "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0", "auto.create.topics.enable=false", "",
        ]))
        java = [shutil.which("java") or "java", "-Xmx512m", "-cp", f"{libs}/*"]
        users = [a for u, p in (ADMIN, ALICE, BOB)
                 for a in ("--add-scram", f"SCRAM-SHA-256=[name={u},password={p}]")]
        fmt = subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t",
                              "q1Sh-9_ISia_zwGINzRvyQ", "-c", str(props), *users],
                             capture_output=True, text=True, timeout=120)
        assert fmt.returncode == 0, fmt.stdout + fmt.stderr
        self.out = open(self.log, "wb")
        self.proc = subprocess.Popen([*java, "kafka.Kafka", str(props)], stdout=self.out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        _PROCS.add(self.proc)
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, self.log_tail()
            try:
                socket.create_connection(("127.0.0.1", self.sasl), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Kafka did not listen\n" + self.log_tail()
                time.sleep(0.5)
        setup_cluster(self)

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.out.close()


def kafka_server_libs() -> str:
    """Apache Kafka's server jars: SLUICE_KAFKA_SERVER_LIBS, or what `scripts/tools
    kafka-server-jars` prints (downloaded once, cached per version)."""
    libs = os.environ.get("SLUICE_KAFKA_SERVER_LIBS")
    if libs:
        return libs
    script = Path(__file__).resolve().parents[3] / "scripts" / "tools"
    out = subprocess.run([str(script), "kafka-server-jars"], capture_output=True, text=True,
                         timeout=1800, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return shlex.split(printed["KAFKA_SERVER_LIBS"])[0]


@pytest.fixture(scope="module")
def cluster(broker_bin, tmp_path_factory):
    base = tmp_path_factory.mktemp("authz")
    factory = BrokerFactory(broker_bin, base)
    try:
        yield SluiceCluster(factory, base)
    finally:
        factory.close()


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    k = KafkaCluster(kafka_server_libs(), tmp_path_factory.mktemp("kafka-authz"))
    try:
        yield k
    finally:
        k.stop()


def code_name(e) -> str:
    if isinstance(e, KafkaException):
        e = e.args[0]
    return e.name() if isinstance(e, KafkaError) else type(e).__name__


# -- one probe per API; each returns OK or the error code's name ----------------------
def produce(conf, topic="feed-a") -> str:
    errors, results = [], []
    p = Producer({**conf, "error_cb": errors.append, "message.timeout.ms": 5000})
    p.produce(topic, value=b"x", on_delivery=lambda err, msg: results.append(err))
    p.flush(8)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    if auth:
        return "SASL_AUTHENTICATION_FAILED"
    return OK if results == [None] else code_name(results[0]) if results else "NO_ANSWER"


def fetch(conf, topic="feed-a", group="g-1") -> str:
    errors = []
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                  "error_cb": errors.append})
    c.subscribe([topic])
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
                return "SASL_AUTHENTICATION_FAILED"
            if m is None:
                continue
            if m.error() is None:
                # Committed, so the group is listed afterwards.
                c.commit(message=m, asynchronous=False)
                return OK
            if m.error().code() != KafkaError._PARTITION_EOF:
                return code_name(m.error())
        return "NO_ANSWER"
    finally:
        c.close()


def fetch_assigned(conf, topic, group="g-assign") -> str:
    """A read of an assigned partition (no subscription, no commits): with a group the
    caller may use, only the topic's READ counts."""
    c = Consumer({**conf, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            return OK if m.error() is None else code_name(m.error())
        return "NO_ANSWER"
    finally:
        c.close()


def metadata_sees(conf, topic) -> str:
    md = AdminClient(conf).list_topics(timeout=10)
    return OK if topic in md.topics else "HIDDEN"


def admin_call(conf, call) -> str:
    try:
        call(AdminClient(conf))
        return OK
    except Exception as e:  # noqa: BLE001 - the error is the result
        return code_name(e)


def create_topic(conf) -> str:
    name = f"feed-new-{uuid.uuid4().hex[:6]}"
    return admin_call(conf, lambda a: a.create_topics([NewTopic(name, 1)])[name].result(timeout=10))


def delete_topic(conf, topic="private") -> str:
    return admin_call(conf, lambda a: a.delete_topics([topic])[topic].result(timeout=10))


def add_partitions(conf, topic="feed-b") -> str:
    return admin_call(conf, lambda a: a.create_partitions(
        [NewPartitions(topic, 3)])[topic].result(timeout=10))


def describe_cluster(conf) -> str:
    return admin_call(conf, lambda a: a.describe_cluster().result(timeout=10))


def create_acl(conf) -> str:
    b = AclBinding(ResourceType.TOPIC, "x", ResourcePatternType.LITERAL, "User:bob", "*",
                   AclOperation.READ, AclPermissionType.ALLOW)
    return admin_call(conf, lambda a: list(a.create_acls([b]).values())[0].result(timeout=10))


def describe_acls(cluster, user) -> str:
    """On the wire: librdkafka's describe_acls returns an empty list instead of the
    response's error code (with Apache Kafka as well)."""
    conn = wire.Conn(cluster.sasl)
    (err, *_), _, _ = wire.scram_login(conn, *user)
    assert err == 0
    err = wire.describe_acls(conn)
    return OK if err == 0 else {31: "CLUSTER_AUTHORIZATION_FAILED"}.get(err, str(err))


def describe_cluster_wire(cluster, user) -> str:
    conn = wire.Conn(cluster.sasl)
    (err, *_), _, _ = wire.scram_login(conn, *user)
    assert err == 0
    err = wire.describe_cluster(conn)
    return OK if err == 0 else {31: "CLUSTER_AUTHORIZATION_FAILED"}.get(err, str(err))


def list_groups_sees(conf, group) -> str:
    admin = AdminClient(conf)
    deadline = time.monotonic() + 5
    while True:
        groups = admin.list_consumer_groups().result(timeout=10)
        if group in [g.group_id for g in groups.valid]:
            return OK
        if time.monotonic() > deadline:
            return "HIDDEN"
        time.sleep(0.5)


def matrix(cluster) -> list[tuple[str, str, str, str]]:
    """(API, caller, the answer expected from Kafka's documentation, the answer got)."""
    anon, wrong = cluster.conf(), cluster.conf(("alice", "wrong"))
    bob, alice, admin = cluster.conf(BOB), cluster.conf(ALICE), cluster.conf(ADMIN)
    T, G, C = ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED",
               "CLUSTER_AUTHORIZATION_FAILED")
    cases = [
        ("Produce", "anonymous", lambda: produce(anon), T),
        ("Produce", "wrong password", lambda: produce(wrong), "SASL_AUTHENTICATION_FAILED"),
        ("Produce", "bob, no ACL", lambda: produce(bob), T),
        ("Produce", "alice, prefixed ACL", lambda: produce(alice), OK),
        ("Produce", "alice, prefixed ACL, other topic", lambda: produce(alice, "private"), T),
        ("Produce", "alice, DENY READ leaves WRITE", lambda: produce(alice, "feed-secret"), OK),
        ("Fetch", "bob, group ACL only", lambda: fetch(bob, "feed-a", "bob-group"), T),
        ("Fetch", "alice, prefixed ACL", lambda: fetch_assigned(alice, "feed-a"), OK),
        ("Fetch", "alice, DENY overrides ALLOW", lambda: fetch_assigned(alice, "feed-secret"), T),
        ("JoinGroup+Fetch", "alice, group g-*", lambda: fetch(alice, "feed-a", "g-1"), OK),
        ("JoinGroup", "alice, group outside g-*", lambda: fetch(alice, "feed-a", "other"), G),
        ("JoinGroup", "bob, no ACL", lambda: fetch(bob, "feed-a", "g-2"), G),
        ("Metadata (all topics)", "bob, no ACL", lambda: metadata_sees(bob, "feed-a"), "HIDDEN"),
        ("Metadata (all topics)", "alice", lambda: metadata_sees(alice, "feed-a"), OK),
        ("Metadata (all topics)", "alice, unrelated topic",
         lambda: metadata_sees(alice, "private"), "HIDDEN"),
        ("ListGroups", "bob, no ACL", lambda: list_groups_sees(bob, "g-1"), "HIDDEN"),
        ("ListGroups", "alice", lambda: list_groups_sees(alice, "g-1"), OK),
        ("CreateTopics", "alice, no CREATE", lambda: create_topic(alice), T),
        ("CreateTopics", "admin (super user)", lambda: create_topic(admin), OK),
        ("DeleteTopics", "bob, no ACL", lambda: delete_topic(bob), T),
        ("CreatePartitions", "alice, no ALTER", lambda: add_partitions(alice), T),
        # librdkafka's describe_cluster is a Metadata request, which is not gated.
        ("describe_cluster (Metadata)", "bob, no ACL", lambda: describe_cluster(bob), OK),
        # Open to all, like Metadata.
        ("DescribeCluster", "bob, no ACL", lambda: describe_cluster_wire(cluster, BOB), OK),
        ("DescribeCluster", "admin", lambda: describe_cluster_wire(cluster, ADMIN), OK),
        ("CreateAcls", "alice", lambda: create_acl(alice), C),
        ("DescribeAcls", "bob", lambda: describe_acls(cluster, BOB), C),
        ("DescribeAcls", "admin", lambda: describe_acls(cluster, ADMIN), OK),
        ("CreateAcls", "admin", lambda: create_acl(admin), OK),
        ("DeleteTopics", "admin", lambda: delete_topic(admin), OK),
    ]
    rows = []
    for api, caller, probe, expected in cases:
        rows.append((api, caller, expected, probe()))
        # Free each probe's clients now: left to a later collection, librdkafka's
        # Python binding has been seen to leave an error behind for the next client.
        gc.collect()
    return rows


def test_authorisation_matrix_matches_apache_kafka(cluster, kafka):
    """The same probes, in the same order, against Sluice and against Apache Kafka."""
    ours, theirs = matrix(cluster), matrix(kafka)
    rows = [f"| {api} | {caller} | {k} | {s} |"
            for (api, caller, _, s), (_, _, _, k) in zip(ours, theirs)]
    print("\n| API | caller | Apache Kafka 4.1 | Sluice |\n|---|---|---|---|\n" + "\n".join(rows))
    # Kafka itself gives what its documentation says, so the expectations are right...
    off_kafka = [r for r, (_, _, want, got) in zip(rows, theirs) if got != want]
    assert not off_kafka, "Kafka differs from the expectation:\n" + "\n".join(off_kafka) \
        + "\n" + kafka.log_tail()
    # ...and Sluice gives what Kafka gives.
    differ = [r for r, (_, _, _, a), (_, _, _, b) in zip(rows, ours, theirs) if a != b]
    assert not differ, "\n".join(differ) + "\n" + cluster.log_tail()


def test_acls_through_the_admin_api(cluster):
    admin = AdminClient(cluster.conf(ADMIN))
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    listed = admin.describe_acls(everything).result(timeout=10)
    assert any(b.name == "feed-" and b.resource_pattern_type == ResourcePatternType.PREFIXED
               for b in listed)
    # MATCH finds the ACLs that apply to one name: the prefixed ALLOW and the DENY.
    matching = AclBindingFilter(ResourceType.TOPIC, "feed-secret", ResourcePatternType.MATCH,
                                None, None, AclOperation.ANY, AclPermissionType.ANY)
    found = admin.describe_acls(matching).result(timeout=10)
    assert {(b.name, b.permission_type) for b in found} == {
        ("feed-", AclPermissionType.ALLOW), ("feed-secret", AclPermissionType.DENY)}
    # Deleting the DENY opens feed-secret to alice within a poll.
    deny = AclBindingFilter(ResourceType.TOPIC, "feed-secret", ResourcePatternType.LITERAL,
                            None, None, AclOperation.ANY, AclPermissionType.DENY)
    deleted = admin.delete_acls([deny])[deny].result(timeout=10)
    assert len(deleted) == 1
    time.sleep(0.5)
    assert fetch_assigned(cluster.conf(ALICE), "feed-secret") == OK
    # An ACL only the broker can refuse (librdkafka checks the rest itself): the cluster
    # resource under another name is INVALID_REQUEST.
    bad = AclBinding(ResourceType.BROKER, "not-the-cluster", ResourcePatternType.LITERAL,
                     "User:bob", "*", AclOperation.ALTER, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException) as e:
        list(admin.create_acls([bad]).values())[0].result(timeout=10)
    assert e.value.args[0].name() == "INVALID_REQUEST"
