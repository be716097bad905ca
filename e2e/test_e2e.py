"""End-to-end scenarios: the chart, the operator and real brokers on a real API server.

The scenarios run in order and build on each other (one cluster `lake` in namespace
`e2e` through its life): install → cluster Ready → Feed → produce/consume → scale →
invalid input → deletion. Each is bounded in time.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from conftest import OPERATOR_NS, ROOT, tool
from harness.kube import condition, is_true

NS = "e2e"
CLUSTER = "lake"
FEED = "dns"
RECORDS = 600

pytestmark = pytest.mark.timeout(300)

# What the scenarios produced, checked again after scaling and moves.
STATE: dict = {"produced": {}}


def needs_kafka(env):
    if not env.kafka_reachable:
        pytest.skip("brokers are not reachable from here (SLUICE_E2E_KAFKA_REACHABLE=1 "
                    "when the suite runs where cluster DNS resolves)")


def cluster_yaml(name: str, replicas: int, policy: str) -> str:
    return f"""
apiVersion: sluice.dev/v1alpha1
kind: SecurityLakeCluster
metadata: {{name: {name}, namespace: {NS}}}
spec:
  provider: local
  replicas: {replicas}
  minReplicas: 1
  maxReplicas: 5
  storage:
    bucket: {{size: 1Gi, accessMode: ReadWriteMany}}
    deletionPolicy: {policy}
  wal: {{lingerMs: 5}}
"""


def feed_yaml(name: str, partitions: int, policy: str = "Delete", cluster: str = CLUSTER,
              topic: str | None = None, extra: str = "") -> str:
    topic_line = f"  topicName: {topic}\n" if topic else ""
    return f"""
apiVersion: sluice.dev/v1alpha1
kind: Feed
metadata: {{name: {name}, namespace: {NS}}}
spec:
  clusterRef: {{name: {cluster}}}
{topic_line}  partitions: {partitions}
  retention: {{time: 3d, bytesPerPartition: 1073741824}}
  owner: {{team: detection, contact: "#detection-oncall"}}
  deletionPolicy: {policy}
{extra}"""


# -- addressing -------------------------------------------------------------------

def bootstrap(env, cluster: str = CLUSTER) -> str:
    """The cluster's bootstrap address as a client can use it here. On a real cluster
    `status.bootstrap` (cluster DNS); locally the bootstrap Service resolved as cluster
    DNS would answer (and as the operator's --resolve-via-api does): the IP of a ready
    pod its selector picks. (EndpointSlices refuse the pods' loopback IPs.)"""
    slc = env.kubectl.get("securitylakecluster", cluster, NS)
    addr = slc["status"]["bootstrap"]
    if not env.local:
        return addr
    host, port = addr.rsplit(":", 1)
    svc = env.kubectl.get("service", host.split(".")[0], NS)
    selector = ",".join(f"{k}={v}" for k, v in svc["spec"]["selector"].items())
    pods = env.kubectl.get("pods", ns=NS, selector=selector)["items"]
    ips = sorted(p["status"]["podIP"] for p in pods
                 if not p["metadata"].get("deletionTimestamp") and p["status"].get("podIP")
                 and any(c["type"] == "Ready" and c["status"] == "True"
                         for c in p["status"].get("conditions", [])))
    assert ips, f"no ready pod behind {svc['metadata']['name']}"
    return f"{ips[0]}:{port}"


def admin(env, cluster: str = CLUSTER) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap(env, cluster), "socket.timeout.ms": 10000})


def metadata(env, topic: str | None = None, cluster: str = CLUSTER):
    return admin(env, cluster).list_topics(topic=topic, timeout=15)


def broker_pods(env, cluster: str = CLUSTER) -> list[dict]:
    pods = env.kubectl.get("pods", ns=NS, selector=f"app.kubernetes.io/instance={cluster}")
    return sorted(pods["items"], key=lambda p: p["metadata"]["name"])


def metrics_url(env, pod: dict) -> str:
    return f"http://{pod['status']['podIP']}:9644"


def fleet(env) -> dict:
    pod = [p for p in broker_pods(env) if not p["metadata"].get("deletionTimestamp")][0]
    return requests.get(metrics_url(env, pod) + "/v1/cluster", timeout=5).json()


def produce(env, topic: str, n: int, tag: str) -> dict[str, str]:
    return produce_with({"bootstrap.servers": bootstrap(env)}, topic, n, tag)


def produce_with(client: dict, topic: str, n: int, tag: str) -> dict[str, str]:
    """`n` idempotent records keyed `<tag>-<i>`, every one acknowledged; key → value."""
    sent: dict[str, str] = {}
    errors: list = []
    p = Producer({**client, "enable.idempotence": True,
                  "acks": "all", "linger.ms": 5, "message.timeout.ms": 60000})

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            sent[msg.key().decode()] = msg.value().decode()
    for i in range(n):
        key = f"{tag}-{i}"
        p.produce(topic, key=key, value=json.dumps({"n": i, "tag": tag}), on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(90) == 0, "records left unacknowledged"
    assert not errors, f"delivery errors: {errors[:5]}"
    assert len(sent) == n
    return sent


def consume_all(env, topic: str, expect: int, timeout: float = 90,
                cluster: str = CLUSTER) -> dict[str, str]:
    """Reads the whole topic from the beginning (partition by partition, no group)."""
    md = metadata(env, topic, cluster).topics[topic]
    c = Consumer({"bootstrap.servers": bootstrap(env, cluster), "group.id": f"e2e-{uuid.uuid4()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
    got: dict[str, str] = {}
    offsets: dict[int, list[int]] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expect and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error():
                continue
            got[msg.key().decode()] = msg.value().decode()
            offsets.setdefault(msg.partition(), []).append(msg.offset())
    finally:
        c.close()
    for part, offs in offsets.items():
        assert offs == sorted(offs), f"partition {part} read out of order"
        assert len(offs) == len(set(offs)), f"partition {part} has duplicates"
    return got


# -- scenarios ---------------------------------------------------------------------

def test_01_install_chart_crds_rbac_and_operator(env):
    """The chart's manifests (helm template): CRDs, ServiceAccount, ClusterRole and
    binding are applied to the real API server; the operator runs with that
    ServiceAccount's token (locally; in a cluster it would be the chart's Deployment)."""
    helm = tool("HELM")
    server = json.loads(env.kubectl.run("version", "-o", "json").stdout)["serverVersion"]
    args = [helm, "template", "sluice", str(ROOT / "charts/sluice"),
            "--namespace", OPERATOR_NS, "--include-crds",
            "--kube-version", server["gitVersion"].split("+")[0]]
    if env.local_operator:
        # The operator runs as a local process (kwok runs no containers): it resolves
        # Service names through the API, which the chart grants with outOfCluster.
        args += ["--set", "outOfCluster=true"]
    rendered = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = sorted({d["kind"] for d in docs})
    assert "CustomResourceDefinition" in kinds and "ClusterRole" in kinds
    if env.local_operator:
        docs = [d for d in docs if d["kind"] != "Deployment"]
    env.kubectl.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {OPERATOR_NS}}}\n")
    env.kubectl.apply("\n---\n".join(yaml.safe_dump(d) for d in docs))
    for crd in ("securitylakeclusters.sluice.dev", "feeds.sluice.dev"):
        env.kubectl.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    # The API server serves the kinds, with the printer columns and the scale subresource.
    res = env.kubectl.run("api-resources", "--api-group=sluice.dev", "-o", "name").stdout
    assert "securitylakeclusters.sluice.dev" in res and "feeds.sluice.dev" in res
    env.kubectl.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n")

    sa = next(d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount")
    if env.local_operator:
        env.start_operator(sa)
        env.kubectl.wait_for("the operator's /healthz", lambda: requests.get(
            env.operator_metrics + "/healthz", timeout=2).ok, 60)
    else:
        env.kubectl.run("rollout", "status", f"deployment/{sa}", "-n", OPERATOR_NS,
                        "--timeout=120s")


def test_02_cluster_becomes_ready_and_serves_metadata(env):
    env.kubectl.apply(cluster_yaml(CLUSTER, 3, "Delete"))

    def ready():
        slc = env.kubectl.get("securitylakecluster", CLUSTER, NS)
        st = slc.get("status", {}) if slc else {}
        return (is_true(slc, "Ready") and st.get("readyReplicas") == 3
                and st.get("observedGeneration") == slc["metadata"]["generation"]) and slc
    slc = env.kubectl.wait_for("SecurityLakeCluster lake Ready with 3 brokers", ready, 180)
    st = slc["status"]
    assert st["bootstrap"] == f"{CLUSTER}-bootstrap.{NS}.svc.cluster.local:9092"
    assert st["storageUrl"] == "file:///var/lib/sluice/bucket"
    assert st["selector"]

    # What the reconciler created, with owner references (garbage collection).
    for kind, name in [("serviceaccount", f"{CLUSTER}-broker"), ("configmap", f"{CLUSTER}-config"),
                       ("service", f"{CLUSTER}-brokers"), ("service", f"{CLUSTER}-bootstrap"),
                       ("statefulset", f"{CLUSTER}-broker"),
                       ("poddisruptionbudget", f"{CLUSTER}-broker"),
                       ("networkpolicy", f"{CLUSTER}-broker")]:
        obj = env.kubectl.get(kind, name, NS)
        assert obj is not None, f"{kind}/{name} missing"
        owners = obj["metadata"].get("ownerReferences") or []
        assert any(o["kind"] == "SecurityLakeCluster" and o.get("controller") for o in owners), \
            f"{kind}/{name} is not owned by the cluster"
    pvc = env.kubectl.get("pvc", f"{CLUSTER}-bucket", NS)
    assert pvc["status"]["phase"] == "Bound"
    assert not pvc["metadata"].get("ownerReferences")

    if env.local:
        # One real broker process per pod, on the pod's IP, node id = pod ordinal.
        env.kubectl.wait_for("3 broker processes", lambda: len(env.kubelet.running()) == 3, 60)
        for pod in broker_pods(env):
            env.kubectl.wait_for(f"{pod['metadata']['name']} /readyz", lambda: requests.get(
                metrics_url(env, pod) + "/readyz", timeout=2).ok, 60)
    needs_kafka(env)
    md = env.kubectl.wait_for("Metadata with 3 brokers", lambda: (
        (m := metadata(env)) and len(m.brokers) == 3 and m), 60)
    assert sorted(md.brokers) == [0, 1, 2]
    if env.local:
        ips = {int(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"]): p["status"]["podIP"]
               for p in broker_pods(env)}
        assert {b.id: b.host for b in md.brokers.values()} == ips


def test_03_feed_creates_topic_with_partitions_and_configs(env):
    needs_kafka_topic = env.kafka_reachable
    env.kubectl.apply(feed_yaml(FEED, 6, "Delete",
                                extra="  deadLetter:\n    partitions: 2\n"
                                      "  table:\n    commitInterval: 2s\n"))

    def ready():
        f = env.kubectl.get("feed", FEED, NS)
        # Ready comes with the partitions: the operator waits for the topic to show in
        # Metadata after CreateTopics (this once reported Ready without them).
        return is_true(f, "Ready") and f
    feed = env.kubectl.wait_for("Feed dns Ready", ready, 120)
    st = feed["status"]
    assert st["topic"] == FEED and st["partitions"] == 6
    assert st.get("deadLetterTopic") == f"{FEED}.dlq"
    if not needs_kafka_topic:
        return
    md = metadata(env)
    assert len(md.topics[FEED].partitions) == 6
    assert len(md.topics[f"{FEED}.dlq"].partitions) == 2
    res = ConfigResource(ResourceType.TOPIC, FEED)
    client = admin(env)  # kept alive until the future resolves
    configs = client.describe_configs([res])[res].result(timeout=15)
    assert configs["retention.ms"].value == str(3 * 24 * 3600 * 1000)
    assert configs["retention.bytes"].value == "1073741824"
    # spec.table: the brokers write the topic to an Iceberg table (their default sqlite
    # catalog in the bucket).
    assert configs["sluice.table.enabled"].value == "true"
    assert configs["sluice.table.commit.interval.ms"].value == "2000"
    assert configs["sluice.table.name"].value == FEED
    # Leaders spread over the fleet.
    leaders = {p.leader for p in md.topics[FEED].partitions.values()}
    assert len(leaders) == 3, f"6 partitions led by {leaders}"


def test_04_produce_and_consume_with_a_real_client(env):
    needs_kafka(env)
    sent = produce(env, FEED, RECORDS, "before-scale")
    STATE["produced"].update(sent)
    got = consume_all(env, FEED, len(STATE["produced"]))
    assert got == STATE["produced"]
    # A consumer group commits; the operator reads the lag from the brokers.
    c = Consumer({"bootstrap.servers": bootstrap(env), "group.id": "detections",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([FEED])
    n = 0
    deadline = time.monotonic() + 60
    while n < 100 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            n += 1
    c.commit(asynchronous=False)
    c.close()
    assert n == 100

    # Every record reaches the feed's Iceberg table; the Feed's status says so, from the
    # brokers' /v1/lake as the cluster reconciler scrapes it.
    def table_written():
        f = env.kubectl.get("feed", FEED, NS)
        table = f.get("status", {}).get("table", {})
        return table.get("rows", 0) >= RECORDS and table.get("lag") == 0 and f
    feed = env.kubectl.wait_for("Feed dns table rows", table_written, 120)
    table = feed["status"]["table"]
    assert table["name"] == f"sluice.{FEED}"
    assert table["rows"] == RECORDS, table
    assert table.get("lastSnapshotId") and table.get("lastCommitTime"), table
    lake = condition(feed, "LakeCommitFailing")
    assert lake and lake["status"] == "False", lake


DRILL_FEED = "vpn"
HOUR_MS = 3_600_000
DRILL_T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DRILL_PER_HOUR = 2000
DRILL_INVALID = 40


def drill_feed_yaml(schema: dict, replays: str = "") -> str:
    schema_json = json.dumps(json.dumps(schema))
    return feed_yaml(DRILL_FEED, 4, extra=f"""  deadLetter:
    partitions: 1
  schema:
    format: json
    mode: deadLetter
    compatibility: NONE
    schema: {schema_json}
  table:
    mode: schema
    commitInterval: 2s
{replays}""")


def test_04b_recovery_drill_replay_and_evidence(env):
    """The mission's drill on the real API server and real brokers: a feed with a
    schema whose first version lacks a field the producers send (the parser bug), an
    incident hour with records the schema refuses (dead-lettered); the schema is fixed,
    a replay of the hour is declared, refused while unapproved, run once approved; then
    `kubectl sluice evidence` names the offsets, records, table snapshots, dead letters,
    owner and approver of the hour, and finds nothing amiss."""
    needs_kafka(env)
    v1 = {"type": "object", "required": ["user", "n"],
          "properties": {"user": {"type": "string"}, "n": {"type": "integer"}}}
    env.kubectl.apply(drill_feed_yaml(v1))
    env.kubectl.wait_for("Feed vpn Ready", lambda: is_true(env.kubectl.get("feed", DRILL_FEED, NS),
                                                           "Ready"), 120)
    acked: dict[tuple[int, int], int] = {}
    invalid: set[tuple[int, int]] = set()
    errors: list = []
    p = Producer({"bootstrap.servers": bootstrap(env), "enable.idempotence": True,
                  "acks": "all", "linger.ms": 5, "message.timeout.ms": 60000})

    def on_delivery(n):
        def cb(err, msg):
            if err is not None:
                errors.append(err)
            elif n is None:
                invalid.add((msg.partition(), msg.offset()))
            else:
                acked[(msg.partition(), msg.offset())] = n
        return cb
    for hour in range(3):
        for i in range(DRILL_PER_HOUR):
            n = hour * DRILL_PER_HOUR + i
            ts = DRILL_T0 + hour * HOUR_MS + i
            p.produce(DRILL_FEED, value=json.dumps({"user": f"u{n}", "n": n, "src": "vpn"}),
                      partition=n % 4, timestamp=ts, on_delivery=on_delivery(n))
            if hour == 1 and i % (DRILL_PER_HOUR // DRILL_INVALID) == 7:
                p.produce(DRILL_FEED, value=json.dumps({"user": "bad", "n": "x"}),
                          partition=n % 4, timestamp=ts, on_delivery=on_delivery(None))
            p.poll(0)
    assert p.flush(90) == 0 and not errors, errors[:5]
    assert len(invalid) == DRILL_INVALID

    def table_rows(rows):
        def check():
            t = env.kubectl.get("feed", DRILL_FEED, NS).get("status", {}).get("table", {})
            return t.get("rows", 0) >= rows and t.get("lag") == 0
        return check
    env.kubectl.wait_for("vpn table written", table_rows(len(acked)), 180)

    # The fix: version 2 knows the field. An unapproved replay of the incident hour is
    # refused and reaches no broker.
    v2 = {**v1, "properties": {**v1["properties"], "src": {"type": "string"}}}
    replay = """  replays:
  - id: fix-src
    from: "2026-01-01T01:00:00Z"
    to: "2026-01-01T02:00:00Z"
    reason: src dropped by schema v1
    requestedBy: alice
"""
    env.kubectl.apply(drill_feed_yaml(v2, replay))

    def refused():
        f = env.kubectl.get("feed", DRILL_FEED, NS)
        c = condition(f, "ReplayRefused")
        return c and c["status"] == "True" and c
    c = env.kubectl.wait_for("ReplayRefused", refused, 60)
    assert "fix-src" in c["message"], c
    res = ConfigResource(ResourceType.TOPIC, DRILL_FEED)
    client = admin(env)
    configs = client.describe_configs([res])[res].result(timeout=15)
    assert not configs["sluice.table.replays"].value, configs["sluice.table.replays"].value

    # Approved by the owning team: the brokers replace the hour's rows.
    env.kubectl.apply(drill_feed_yaml(v2, replay + "    approvedBy: detection\n"))

    seen: list = []

    def succeeded():
        f = env.kubectl.get("feed", DRILL_FEED, NS)
        rs = f.get("status", {}).get("replays", [])
        seen[:] = [rs, f.get("status", {}).get("conditions")]
        return rs and rs[0].get("phase") == "Succeeded" and rs[0]
    try:
        done = env.kubectl.wait_for("replay Succeeded", succeeded, 180)
    except AssertionError as e:
        raise AssertionError(f"{e}; status.replays and conditions: {seen}") from None
    in_hour = {k for k, n in acked.items() if DRILL_PER_HOUR <= n < 2 * DRILL_PER_HOUR}
    assert done["rowsRemoved"] == done["rowsAdded"] == len(in_hour), done
    assert done["snapshotIds"], done

    pod = [p for p in broker_pods(env) if not p["metadata"].get("deletionTimestamp")][0]
    cli = Path(tool("SLUICE_BROKER_BIN")).with_name("kubectl-sluice")
    run = subprocess.run(
        [str(cli), "evidence", DRILL_FEED, "-n", NS, "--broker", metrics_url(env, pod),
         "--from", "2026-01-01T01:00:00Z", "--to", "2026-01-01T02:00:00Z", "-o", "json"],
        capture_output=True, timeout=120, env=dict(os.environ, KUBECONFIG=env.kubectl.kubeconfig))
    assert run.returncode == 0, (run.returncode, run.stderr.decode(), run.stdout[:2000])
    report = json.loads(run.stdout)
    assert report["topic"] == DRILL_FEED and report["owner"] == "detection"
    assert report["findings"] == [], report["findings"]
    for part in report["partitions"]:
        mine = sorted(o for (q, o) in in_hour if q == part["partition"])
        assert (part["first_offset"], part["last_offset"]) == (mine[0], mine[-1]), part
        assert part["records"] == part["table_rows"] == len(mine), part
    assert sum(p["records"] for p in report["partitions"]) == len(in_hour)
    assert report["dead_letters"]["count"] == DRILL_INVALID, report["dead_letters"]
    assert sorted(report["dead_letters"]["reasons"].values()) == [DRILL_INVALID]
    replayed = [s for s in report["snapshots"] if s["replay_id"] == "fix-src"]
    assert {s["snapshot_id"] for s in replayed} == set(done["snapshotIds"]), report["snapshots"]
    assert all(s["operation"] == "overwrite" for s in replayed)
    [r] = report["replays"]
    assert r["spec"]["approvedBy"] == "detection" and r["spec"]["requestedBy"] == "alice"
    assert r["status"]["phase"] == "Succeeded"
    # The report as a person reads it, in the suite's log.
    began = time.monotonic()
    table = subprocess.run(
        [str(cli), "evidence", DRILL_FEED, "-n", NS, "--broker", metrics_url(env, pod),
         "--from", "2026-01-01T01:00:00Z", "--to", "2026-01-01T02:00:00Z"],
        capture_output=True, timeout=120, env=dict(os.environ, KUBECONFIG=env.kubectl.kubeconfig))
    assert table.returncode == 0, table.stderr.decode()
    print(f"\n--- kubectl sluice evidence ({time.monotonic() - began:.2f} s) ---\n"
          f"{table.stdout.decode()}")


def test_05_scale_out_and_in_moves_partitions_metadata_only(env):
    """replicas 3 → 4 → 2 through the scale subresource. A new broker joins the fleet
    and takes partitions by metadata-only moves (the broker's drain of node 0, the
    operator has no balancer yet); scale-in stops brokers 3 and 2 (SIGTERM: they hand
    their partitions over). Nothing acknowledged is lost."""
    env.kubectl.run("scale", f"securitylakecluster/{CLUSTER}", "-n", NS, "--replicas=4")
    env.kubectl.wait_for("4 ready brokers", lambda: env.kubectl.get(
        "securitylakecluster", CLUSTER, NS)["status"].get("readyReplicas") == 4, 120)
    sts = env.kubectl.get("statefulset", f"{CLUSTER}-broker", NS)
    assert sts["spec"]["replicas"] == 4
    slc = env.kubectl.get("securitylakecluster", CLUSTER, NS)
    ev = slc["status"].get("lastScaleEvent") or {}
    assert (ev.get("fromReplicas"), ev.get("toReplicas")) == (3, 4)
    needs_kafka(env)
    if env.local:
        env.kubectl.wait_for("4 broker processes", lambda: len(env.kubelet.running()) == 4, 60)
    env.kubectl.wait_for("Metadata with 4 brokers", lambda: len(metadata(env).brokers) == 4, 60)

    if env.local:
        # Move node 0's partitions (metadata only) to the others, the new one included.
        pod0 = [p for p in broker_pods(env) if p["metadata"]["name"].endswith("-0")][0]
        base = metrics_url(env, pod0)
        t0 = time.monotonic()
        r = requests.post(base + "/v1/nodes/0/drain", timeout=10)
        assert r.ok, r.text

        def drained():
            f = fleet(env)
            n0 = [n for n in f["nodes"] if n["id"] == 0][0]
            return n0["partitions_led"] == 0 and not f.get("partitions_moving")
        env.kubectl.wait_for("node 0 drained", drained, 60)
        moved_in = time.monotonic() - t0
        leaders = {p.leader for p in metadata(env, FEED).topics[FEED].partitions.values()}
        assert 0 not in leaders
        assert requests.delete(base + "/v1/nodes/0/drain", timeout=10).ok
        print(f"drain of node 0 (metadata-only moves): {moved_in:.1f}s")
        n3 = [n for n in fleet(env)["nodes"] if n["id"] == 3][0]
        assert n3["partitions_led"] > 0, "the new broker took no partition"

    # Produce while scaling in, then read everything back.
    STATE["produced"].update(produce(env, FEED, 200, "during-scale-out"))
    env.kubectl.run("scale", f"securitylakecluster/{CLUSTER}", "-n", NS, "--replicas=2")
    env.kubectl.wait_for("2 broker pods", lambda: len(broker_pods(env)) == 2, 120)
    if env.local:
        env.kubectl.wait_for("2 broker processes", lambda: len(env.kubelet.running()) == 2, 90)

    def settled():
        md = metadata(env, FEED)
        leaders = {p.leader for p in md.topics[FEED].partitions.values()}
        return len(md.brokers) == 2 and leaders <= {0, 1} and md
    env.kubectl.wait_for("partitions led by brokers 0 and 1", settled, 120)
    STATE["produced"].update(produce(env, FEED, 200, "after-scale-in"))
    got = consume_all(env, FEED, len(STATE["produced"]))
    missing = set(STATE["produced"]) - set(got)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    assert got == STATE["produced"]
    env.kubectl.wait_for("cluster Ready with 2 brokers", lambda: (
        s := env.kubectl.get("securitylakecluster", CLUSTER, NS)) and is_true(s, "Ready")
        and s["status"].get("readyReplicas") == 2, 120)


def test_06_invalid_input_is_refused_and_deletes_nothing(env):
    # Schema/CEL: fewer partitions, a bad topic name, a bad retention, no owner.
    bad = {
        "fewer partitions": feed_yaml(FEED, 2, "Delete", extra="  deadLetter:\n    partitions: 2\n"),
        "bad topic name": feed_yaml("bad-name", 1, topic="no spaces allowed"),
        "bad retention": feed_yaml("bad-retention", 1).replace("time: 3d", "time: 3 days"),
        "replicas above max": cluster_yaml("toobig", 9, "Retain"),
    }
    for what, manifest in bad.items():
        p = env.kubectl.apply(manifest, check=False)
        assert p.returncode != 0, f"{what} was accepted"
        assert "Invalid" in p.stderr or "invalid" in p.stderr, f"{what}: {p.stderr}"
    for name in ("bad-name", "bad-retention"):
        assert env.kubectl.get("feed", name, NS) is None
    feed = env.kubectl.get("feed", FEED, NS)
    assert feed["spec"]["partitions"] == 6

    # Accepted but wrong: an unknown cluster, and a second Feed claiming topic dns.
    env.kubectl.apply(feed_yaml("orphan", 1, cluster="no-such-cluster"))
    env.kubectl.apply(feed_yaml("copycat", 1, "Delete", topic=FEED))
    for name, reason in (("orphan", "ClusterNotFound"), ("copycat", "TopicClaimed")):
        env.kubectl.wait_for(f"Feed {name} Stalled/{reason}", lambda: (
            c := condition(env.kubectl.get("feed", name, NS), "Stalled"))
            and c["status"] == "True" and c["reason"] == reason, 60)
    events = env.kubectl.run("get", "events", "-n", NS, "--field-selector",
                             "involvedObject.name=orphan", "-o", "json").stdout
    assert "detection" in events or "#detection-oncall" in events, "Warning Event names no owner"
    # Deleting the claimant (policy Delete) must not delete the topic it never managed.
    env.kubectl.run("delete", "feed", "copycat", "orphan", "-n", NS, "--timeout=60s")
    if env.kafka_reachable:
        md = metadata(env, FEED)
        assert len(md.topics[FEED].partitions) == 6
        got = consume_all(env, FEED, len(STATE["produced"]))
        assert got == STATE["produced"]


def test_07_feed_deletion_honours_its_policy(env):
    # Retain: the topic outlives the Feed.
    env.kubectl.apply(feed_yaml("audit", 2, "Retain"))
    env.kubectl.wait_for("Feed audit Ready", lambda: is_true(env.kubectl.get("feed", "audit", NS),
                                                             "Ready"), 120)
    env.kubectl.run("delete", "feed", "audit", "-n", NS, "--timeout=60s")
    # Delete: the topic and its dead-letter topic go with it.
    env.kubectl.run("delete", "feed", FEED, "-n", NS, "--timeout=90s")
    assert env.kubectl.get("feed", FEED, NS) is None
    events = env.kubectl.run("get", "events", "-n", NS, "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"TopicDeleted", "TopicRetained"} <= reasons, reasons
    if env.kafka_reachable:
        topics = env.kubectl.wait_for("dns and dns.dlq deleted", lambda: (
            t := set(metadata(env).topics)) and FEED not in t and f"{FEED}.dlq" not in t and t, 60)
        assert "audit" in topics


def test_08_cluster_deletion_honours_its_policy(env):
    # A second cluster with Retain keeps its bucket claim.
    env.kubectl.apply(cluster_yaml("lab", 1, "Retain"))
    env.kubectl.wait_for("cluster lab Ready", lambda: is_true(
        env.kubectl.get("securitylakecluster", "lab", NS), "Ready"), 180)
    for name in ("lab", CLUSTER):
        env.kubectl.run("delete", "securitylakecluster", name, "-n", NS, "--timeout=120s")
        assert env.kubectl.get("securitylakecluster", name, NS) is None
    # Garbage collection (kube-controller-manager) removes what the clusters owned.
    env.kubectl.wait_for("broker pods gone", lambda: not env.kubectl.get(
        "pods", ns=NS, selector="app.kubernetes.io/name=sluice-broker")["items"], 120)
    for kind in ("statefulset", "service", "configmap", "poddisruptionbudget", "networkpolicy"):
        env.kubectl.wait_for(f"{kind} of {CLUSTER} collected", lambda: env.kubectl.get(
            kind, f"{CLUSTER}-broker" if kind in ("statefulset", "poddisruptionbudget",
                                                  "networkpolicy") else
            (f"{CLUSTER}-config" if kind == "configmap" else f"{CLUSTER}-bootstrap"), NS) is None, 60)
    # deletionPolicy: Delete removed lake's claim, Retain kept lab's.
    env.kubectl.wait_for("lake-bucket deleted", lambda: env.kubectl.get(
        "pvc", f"{CLUSTER}-bucket", NS) is None, 60)
    assert env.kubectl.get("pvc", "lab-bucket", NS) is not None
    reasons = {e["reason"] for e in json.loads(env.kubectl.run(
        "get", "events", "-n", NS, "-o", "json").stdout)["items"]}
    assert {"BucketDeleted", "BucketRetained"} <= reasons, reasons
    if env.local:
        env.kubectl.wait_for("every broker process stopped",
                             lambda: not env.kubelet.running(), 90)


# -- the autoscaler ----------------------------------------------------------------

SURGE = "surge"
SURGE_FEED = "edr"


class SpikeProducer:
    """A real producer (librdkafka) at a steady byte rate in a thread, keeping every
    acknowledged key, so the test can prove that nothing acknowledged was lost while
    the fleet scaled under it."""

    def __init__(self, bootstrap_servers: str, topic: str, bytes_per_second: int):
        self.topic = topic
        self.rate = bytes_per_second
        self.acked: dict[str, str] = {}
        self.errors: list = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 20,
                                  "message.timeout.ms": 120000})

    def _run(self):
        value = "x" * 1000
        sent = 0
        start = time.monotonic()
        while not self.stop:
            # Keep to the rate: 1 KB records, in 20 ms slices.
            due = int((time.monotonic() - start) * self.rate / 1024)
            while sent < due:
                key = f"spike-{sent}"
                self.producer.produce(self.topic, key=key, value=value,
                                      on_delivery=self._delivered)
                sent += 1
            self.producer.poll(0.02)

    def _delivered(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.acked[msg.key().decode()] = msg.value().decode()

    def start(self):
        self.thread.start()

    def finish(self) -> dict[str, str]:
        self.stop = True
        self.thread.join(30)
        assert self.producer.flush(120) == 0, "records left unacknowledged"
        assert not self.errors, f"delivery errors: {self.errors[:5]}"
        return self.acked


def autoscaling(env) -> dict:
    slc = env.kubectl.get("securitylakecluster", SURGE, NS) or {}
    return slc.get("status", {}).get("autoscaling") or {}


def wait_autoscaling(env, what: str, pred, timeout: float) -> dict:
    """Waits until `pred(status.autoscaling)`; a timeout shows the last status."""
    seen: list[dict] = [{}]

    def check():
        seen[0] = autoscaling(env)
        return pred(seen[0])
    try:
        env.kubectl.wait_for(what, check, timeout)
    except AssertionError as e:
        slc = env.kubectl.get("securitylakecluster", SURGE, NS) or {}
        raise AssertionError(f"{e}; status: {slc.get('status')}") from None
    return seen[0]


def events(env, reason: str) -> list[dict]:
    items = json.loads(env.kubectl.run("get", "events", "-n", NS, "-o", "json").stdout)["items"]
    return [e for e in items if e["reason"] == reason
            and e["involvedObject"].get("name") == SURGE]


@pytest.mark.timeout(480)
def test_09_autoscaler_scales_out_balances_and_scales_in(env):
    """A quiet feed spikes: the operator scales the fleet out from the throughput
    signal, its balancer moves partition leadership onto the new brokers (metadata
    only), and once the load is gone and the stabilisation window has passed it drains
    the extra brokers and removes them. A real producer runs through all of it; every
    record it had acknowledged is read back."""
    needs_kafka(env)
    env.kubectl.apply(f"""
apiVersion: sluice.dev/v1alpha1
kind: SecurityLakeCluster
metadata: {{name: {SURGE}, namespace: {NS}}}
spec:
  provider: local
  replicas: 1
  minReplicas: 1
  maxReplicas: 3
  storage:
    bucket: {{size: 1Gi, accessMode: ReadWriteMany}}
    deletionPolicy: Delete
  wal: {{lingerMs: 5}}
  autoscaling:
    targetBytesPerSecondPerBroker: 131072
    lagThreshold: 0
    scaleDownStabilizationSeconds: 20
    intervalSeconds: 3
    balancer: {{tolerancePercent: 20, maxConcurrentMoves: 4}}
""")
    env.kubectl.wait_for("cluster surge Ready with 1 broker", lambda: (
        s := env.kubectl.get("securitylakecluster", SURGE, NS)) and is_true(s, "Ready")
        and s["status"].get("readyReplicas") == 1, 180)
    env.kubectl.apply(feed_yaml(SURGE_FEED, 6, cluster=SURGE))
    env.kubectl.wait_for("Feed edr Ready", lambda: is_true(
        env.kubectl.get("feed", SURGE_FEED, NS), "Ready"), 120)
    leaders = {p.leader for p in metadata(env, SURGE_FEED, SURGE).topics[SURGE_FEED]
               .partitions.values()}
    assert leaders == {0}, leaders
    quiet = autoscaling(env)
    assert quiet.get("desiredReplicas") == 1, quiet

    # The spike: ~600 KB/s against 128 KiB/s per broker wants 5, capped at 3.
    timings = {}
    spike = SpikeProducer(bootstrap(env, SURGE), SURGE_FEED, 600_000)
    t0 = time.monotonic()
    spike.start()
    try:
        wait_autoscaling(env, "the autoscaler wants 3 brokers",
                         lambda st: st.get("desiredReplicas") == 3, 90)
        timings["decision"] = time.monotonic() - t0
        st = autoscaling(env)
        assert st["signal"] == "Throughput", st
        env.kubectl.wait_for("3 ready brokers", lambda: env.kubectl.get(
            "securitylakecluster", SURGE, NS)["status"].get("readyReplicas") == 3, 120)
        timings["capacity"] = time.monotonic() - t0

        def spread():
            md = metadata(env, SURGE_FEED, SURGE)
            led = {p.leader for p in md.topics[SURGE_FEED].partitions.values()}
            return len(led) == 3 and led
        env.kubectl.wait_for("partition leaders on all 3 brokers", spread, 120)
        timings["balanced"] = time.monotonic() - t0
        assert events(env, "Balancing"), "no Balancing event"
        assert autoscaling(env).get("lastMoves"), autoscaling(env)
        # Load is now carried by every broker (as the balancer measures it).
        wait_autoscaling(env, "load on all 3 brokers", lambda st: len([
            v for v in st.get("brokerLoad", {}).values() if v > 0]) == 3, 60)
    finally:
        acked = spike.finish()
    t1 = time.monotonic()
    assert len(acked) > 1000, f"only {len(acked)} records acknowledged"

    # The load is gone: after the stabilisation window, drain and shrink to 1.
    wait_autoscaling(env, "the autoscaler wants 1 broker",
                     lambda st: st.get("desiredReplicas") == 1, 120)
    timings["scale-in decision after load stop"] = time.monotonic() - t1
    env.kubectl.wait_for("1 broker pod", lambda: len(broker_pods(env, SURGE)) == 1, 120)
    timings["scale-in done after load stop"] = time.monotonic() - t1
    assert events(env, "DrainingBrokers"), "brokers were removed without a drain"
    env.kubectl.wait_for("every partition led by broker 0", lambda: {
        p.leader for p in metadata(env, SURGE_FEED, SURGE).topics[SURGE_FEED]
        .partitions.values()} == {0}, 60)
    got = consume_all(env, SURGE_FEED, len(acked), cluster=SURGE)
    missing = set(acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    print("autoscaler e2e timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
          + f"; {len(acked)} records acknowledged, all read back")
    (env.work / "autoscale-timings.txt").write_text(
        "".join(f"{k} {v:.2f}s\n" for k, v in timings.items()))
    env.kubectl.run("delete", "feed", SURGE_FEED, "-n", NS, "--timeout=60s")
    env.kubectl.run("delete", "securitylakecluster", SURGE, "-n", NS, "--timeout=120s")
