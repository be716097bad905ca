"""Security from YAML (issue 21), end to end: a SecurityLakeCluster whose kafka listener
takes TLS from a Secret and SCRAM-SHA-512 logins, Feeds whose `spec.access` the operator
turns into ACLs and generated credentials, and what a person does afterwards: take a
consumer away, rotate a password, renew the certificate, all with real clients running.

The scenarios run in order and build on each other (cluster `vault` in namespace
`e2e-sec`, its own, so nothing of `test_e2e.py` is in the way); each is bounded in time.
After `vault` is deleted, cluster `issued` takes its certificate from cert-manager
(`tls.issuerRef`), the test playing cert-manager (s11-s14).
They need the local control plane: clients reach brokers by pod IP (the certificate
names the Services' DNS names, so librdkafka clients verify the chain against the CA
with `ssl.endpoint.identification.algorithm=none`; Python's ssl checks the names), and
the certificate-rotation scenario reads what the kubelet stand-in did.

Run alone: `E2E_PYTEST_ARGS="-k security" scripts/e2e` (the chart and the operator are
installed here when `test_e2e.py` did not run first).
"""

from __future__ import annotations

import base64
import datetime
import gc
import ipaddress
import json
import socket
import ssl
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import test_e2e as base
from conftest import OPERATOR_NS
from harness.kube import condition, is_true

NS = "e2e-sec"
CLUSTER = "vault"
FEED = "alerts"
TLS_SECRET = f"{CLUSTER}-tls"
KAFKA_PORT, CONTROL_PORT, METRICS_PORT = 9092, 9093, 9644
DOMAIN = "cluster.local"
BOOTSTRAP_HOST = f"{CLUSTER}-bootstrap.{NS}.svc.{DOMAIN}"
BROKERS_DOMAIN = f"{CLUSTER}-brokers.{NS}.svc.{DOMAIN}"
OPERATOR_USER = "sluice-operator"
RECORDS = 300
OK = "OK"
T, G = "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED"
AUTH = "SASL_AUTHENTICATION_FAILED"

pytestmark = pytest.mark.timeout(300)

# What the scenarios share: the PKI, the admin user's conf, every acknowledged record.
STATE: dict = {"acked": {}, "timings": {}}


# -- the PKI ------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sluice e2e"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Pki:
    """A CA and the brokers' server certificates it issues (as cert-manager would: the
    bootstrap Service and every broker's name, `*.<cluster>-brokers...`)."""

    def __init__(self, dir_: Path):
        self.dir = dir_
        dir_.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca = (x509.CertificateBuilder().subject_name(_name("Sluice e2e CA"))
                   .issuer_name(_name("Sluice e2e CA")).public_key(self.ca_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(self.ca_key, hashes.SHA256()))
        self.ca_pem = self.ca.public_bytes(serialization.Encoding.PEM)
        self.ca_path = str(dir_ / "ca.crt")
        Path(self.ca_path).write_bytes(self.ca_pem)

    def server(self, ips: list[str] = (), dns_names: list[str] | None = None,
               cluster: str = CLUSTER) -> tuple[x509.Certificate, bytes, bytes]:
        """(certificate, its PEM, the key's PEM). IP SANs only when given: pod IPs are
        known once the pods exist, and 127.0.0.0/8 cannot be named as a range. DNS
        names: `dns_names`, or those of cluster `vault`."""
        key = ec.generate_private_key(ec.SECP256R1())
        if dns_names is None:
            dns_names = [BOOTSTRAP_HOST, f"*.{BROKERS_DOMAIN}", f"{CLUSTER}-bootstrap.{NS}.svc",
                         f"*.{CLUSTER}-brokers.{NS}.svc"]
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name(f"{cluster} brokers"))
                .issuer_name(self.ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        return cert, cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def tls_secret(name: str, cert_pem: bytes, key_pem: bytes, ca_pem: bytes,
               annotations: dict | None = None) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                       "metadata": {"name": name, "namespace": NS,
                                    "annotations": annotations or {}},
                       "data": {"tls.crt": b64(cert_pem), "tls.key": b64(key_pem),
                                "ca.crt": b64(ca_pem)}})


# -- manifests ----------------------------------------------------------------------

def cluster_yaml(name: str, tls: str, secured: bool = True) -> str:
    """A 2-broker cluster whose listener has `tls` (a flow mapping: `{secretName: x}` or
    `{issuerRef: {name: y}}`); `secured`: SCRAM-SHA-512 logins and a super user."""
    security = """
      authentication: {type: scram-sha-512}
  authorization:
    superUsers: ["User:admin"]""" if secured else ""
    return f"""
apiVersion: sluice.dev/v1alpha1
kind: SecurityLakeCluster
metadata: {{name: {name}, namespace: {NS}}}
spec:
  provider: local
  replicas: 2
  minReplicas: 1
  maxReplicas: 3
  storage:
    bucket: {{size: 1Gi, accessMode: ReadWriteMany}}
    deletionPolicy: Delete
  wal: {{lingerMs: 5}}
  listeners:
    kafka:
      port: {KAFKA_PORT}
      tls: {tls}{security}
"""


def feed_yaml(name: str, access: dict | None, policy: str = "Delete",
              cluster: str = CLUSTER) -> str:
    spec: dict = {"clusterRef": {"name": cluster}, "partitions": 4,
                  "retention": {"time": "3d", "bytesPerPartition": 1073741824},
                  "owner": {"team": "detection", "contact": "#detection-oncall"},
                  "deletionPolicy": policy}
    if access is not None:
        spec["access"] = access
    return yaml.safe_dump({"apiVersion": "sluice.dev/v1alpha1", "kind": "Feed",
                           "metadata": {"name": name, "namespace": NS}, "spec": spec})


COLLECTOR = {"user": "collector", "credentials": "scram"}
SIEM = {"user": "siem", "credentials": "scram",
        "groups": [{"name": "siem-main"}, {"prefix": "siem-adhoc-"}]}


def acl(principal: str, operation: str, resource_type: str, pattern: str, name: str) -> tuple:
    return (principal, operation, resource_type, pattern, name)


COLLECTOR_ACLS = {acl("User:collector", "WRITE", "TOPIC", "LITERAL", FEED),
                  acl("User:collector", "DESCRIBE", "TOPIC", "LITERAL", FEED)}
SIEM_ACLS = {acl("User:siem", "READ", "TOPIC", "LITERAL", FEED),
             acl("User:siem", "DESCRIBE", "TOPIC", "LITERAL", FEED),
             acl("User:siem", "READ", "GROUP", "LITERAL", "siem-main"),
             acl("User:siem", "READ", "GROUP", "PREFIXED", "siem-adhoc-")}


def entries(items: list[dict] | None) -> set[tuple]:
    return {acl(e["principal"], e["operation"], e["resourceType"], e["patternType"],
                e["resourceName"]) for e in items or []}


# -- the API side -------------------------------------------------------------------

def feed(env, name: str = FEED) -> dict | None:
    return env.kubectl.get("feed", name, NS)


def access_status(env, name: str = FEED) -> dict:
    return ((feed(env, name) or {}).get("status") or {}).get("access") or {}


def secret(env, name: str) -> dict | None:
    return env.kubectl.get("secret", name, NS)


def secret_data(env, name: str) -> dict[str, str]:
    s = secret(env, name)
    assert s is not None, f"Secret {NS}/{name} does not exist"
    return {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}


def events(env, name: str, reason: str | None = None) -> list[dict]:
    items = json.loads(env.kubectl.run("get", "events", "-n", NS, "-o", "json").stdout)["items"]
    return [e for e in items if e["involvedObject"].get("name") == name
            and (reason is None or e["reason"] == reason)]


def wait_stalled(env, kind: str, name: str, reason: str, timeout: float = 60) -> dict:
    def stalled():
        obj = env.kubectl.get(kind, name, NS)
        c = condition(obj, "Stalled")
        return c and c["status"] == "True" and c["reason"] == reason and obj
    try:
        return env.kubectl.wait_for(f"{kind} {name} Stalled/{reason}", stalled, timeout)
    except AssertionError as e:
        obj = env.kubectl.get(kind, name, NS) or {}
        raise AssertionError(f"{e}; conditions: {obj.get('status', {}).get('conditions')}") from None


# -- addressing ---------------------------------------------------------------------

def broker_pods(env, cluster: str = CLUSTER) -> list[dict]:
    pods = env.kubectl.get("pods", ns=NS, selector=f"app.kubernetes.io/instance={cluster}")
    return sorted((p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")),
                  key=lambda p: p["metadata"]["name"])


def pod_ips(env, cluster: str = CLUSTER) -> dict[str, str]:
    """Ready broker pods' names → IPs (the bootstrap Service resolved as cluster DNS
    would answer; EndpointSlices refuse the pods' loopback IPs)."""
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in broker_pods(env, cluster)
            if p["status"].get("podIP") and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", []))}


def bootstrap(env, cluster: str = CLUSTER) -> str:
    ips = sorted(pod_ips(env, cluster).values())
    assert ips, f"no ready pod of {cluster}"
    return ",".join(f"{ip}:{KAFKA_PORT}" for ip in ips)


# -- Kafka clients ------------------------------------------------------------------

def conf(env, user: str, password: str, **extra) -> dict:
    return {"bootstrap.servers": bootstrap(env), "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
            "ssl.ca.location": STATE["pki"].ca_path,
            # By pod IP: the certificate names the Services' DNS names, not the IPs. The
            # chain is still verified against the CA.
            "ssl.endpoint.identification.algorithm": "none",
            "socket.timeout.ms": 10000, **extra}


def conf_from_secret(env, name: str, **extra) -> dict:
    """A client configured from the user's credentials Secret only (its ca.crt, its
    protocol and mechanism), at the pods' IPs instead of its bootstrap.servers."""
    d = secret_data(env, name)
    ca = env.work / "security" / f"{name}-ca.crt"
    ca.parent.mkdir(parents=True, exist_ok=True)
    ca.write_text(d["ca.crt"])
    return {"bootstrap.servers": bootstrap(env), "security.protocol": d["security.protocol"],
            "sasl.mechanism": d["sasl.mechanism"], "sasl.username": d["username"],
            "sasl.password": d["password"], "ssl.ca.location": str(ca),
            "ssl.endpoint.identification.algorithm": "none", "socket.timeout.ms": 10000,
            **extra}


def code_name(e) -> str:
    if isinstance(e, KafkaException):
        e = e.args[0]
    return e.name() if isinstance(e, KafkaError) else type(e).__name__


def probe_produce(c: dict, topic: str = FEED) -> str:
    """One record, not idempotent (an idempotent producer without WRITE fails earlier,
    at InitProducerId, with CLUSTER_AUTHORIZATION_FAILED)."""
    errors, results = [], []
    p = Producer({**c, "error_cb": errors.append, "acks": "all", "enable.idempotence": False,
                  "message.timeout.ms": 10000})
    p.produce(topic, key=b"probe", value=b"x", on_delivery=lambda err, msg: results.append(err))
    p.flush(15)
    if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
        return AUTH
    return OK if results == [None] else code_name(results[0]) if results else "NO_ANSWER"


def probe_fetch(c: dict, group: str, topic: str = FEED) -> str:
    """Subscribes in `group`: OK once a record arrives (and is committed), or the error."""
    errors = []
    consumer = Consumer({**c, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "error_cb": errors.append})
    consumer.subscribe([topic])
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
                return AUTH
            if m is None:
                continue
            if m.error() is None:
                consumer.commit(message=m, asynchronous=False)
                return OK
            if m.error().code() != KafkaError._PARTITION_EOF:
                return code_name(m.error())
        return "NO_ANSWER"
    finally:
        consumer.close()


def probe_fetch_assigned(c: dict, topic: str = FEED) -> str:
    consumer = Consumer({**c, "group.id": f"probe-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            return OK if m.error() is None else code_name(m.error())
        return "NO_ANSWER"
    finally:
        consumer.close()


def probe_login(c: dict, topic: str = FEED, timeout: float = 15) -> str:
    """A fresh client's Metadata for the topic: OK, SASL_AUTHENTICATION_FAILED, or the
    topic's error (HIDDEN when left out)."""
    errors: list[KafkaError] = []
    a = AdminClient({**c, "error_cb": errors.append})
    try:
        md = a.list_topics(topic=topic, timeout=min(timeout, 5))
        t = md.topics.get(topic)
        if t is None:
            return "HIDDEN"
        return OK if t.error is None else t.error.name()
    except KafkaException as e:
        if e.args[0].code() == KafkaError._AUTHENTICATION:
            return AUTH
        # The refusal of a login reaches the error callback (after the broker's delay
        # for failed logins, which grows with failures in a row).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(x.code() == KafkaError._AUTHENTICATION for x in errors):
                return AUTH
            a.poll(0.2)
        return code_name(e)


def probes(fn, *args) -> str:
    out = fn(*args)
    # Free the probe's clients now (librdkafka's binding can leave an error behind for
    # the next client when they are collected later).
    gc.collect()
    return out


def produce(c: dict, n: int, tag: str, topic: str = FEED) -> dict[str, str]:
    return base.produce_with(c, topic, n, tag)


def read_all(c: dict, expect: dict[str, str], topic: str = FEED,
             timeout: float = 90) -> dict[str, str]:
    """The whole topic from the beginning (assigned partitions, no group), until every
    expected key is there."""
    md = AdminClient(c).list_topics(topic=topic, timeout=15)
    parts = md.topics[topic].partitions
    consumer = Consumer({**c, "group.id": f"e2e-read-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    got: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    try:
        while not set(expect) <= set(got) and time.monotonic() < deadline:
            m = consumer.poll(1.0)
            if m is None or m.error():
                continue
            got[m.key().decode()] = m.value().decode()
    finally:
        consumer.close()
    return got


def assert_nothing_lost(env, acked: dict[str, str]) -> None:
    got = read_all(STATE["admin"], acked)
    missing = set(acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    assert {k: got[k] for k in acked} == acked


class SteadyProducer:
    """A producer (librdkafka, idempotent, acks=all) at a steady rate in a thread,
    keeping every acknowledged record and every error its client reports."""

    def __init__(self, c: dict, tag: str, per_second: int = 100):
        self.tag = tag
        self.rate = per_second
        self.acked: dict[str, str] = {}
        self.errors: list = []          # delivery errors
        self.client_errors: list = []   # error_cb: connection, login, ...
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.producer = Producer({**c, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 5, "message.timeout.ms": 60000,
                                  "error_cb": self.client_errors.append})

    def _run(self):
        sent = 0
        start = time.monotonic()
        while not self.stop:
            due = int((time.monotonic() - start) * self.rate)
            while sent < due:
                key = f"{self.tag}-{sent}"
                self.producer.produce(FEED, key=key, value=json.dumps({"n": sent}),
                                      on_delivery=self._delivered)
                sent += 1
            self.producer.poll(0.02)

    def _delivered(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.acked[msg.key().decode()] = msg.value().decode()

    def start(self) -> "SteadyProducer":
        self.thread.start()
        return self

    def wait_acked(self, n: int, what: str, timeout: float = 60) -> None:
        """Until `n` records are acknowledged; fails at the first delivery error."""
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            assert not self.errors, (f"{what}: delivery errors {self.errors[:3]}; "
                                     f"client errors {self.client_errors[:3]}")
            assert time.monotonic() < deadline, (
                f"{what}: {len(self.acked)} of {n} acknowledged after {timeout:.0f}s; "
                f"client errors {self.client_errors[:3]}")
            time.sleep(0.1)

    def finish(self) -> dict[str, str]:
        self.stop = True
        self.thread.join(30)
        assert self.producer.flush(90) == 0, "records left unacknowledged"
        assert not self.errors, f"delivery errors: {self.errors[:5]}"
        return dict(self.acked)


def peer_certificate(ip: str, port: int, server_name: str) -> x509.Certificate:
    """The certificate a new TLS connection gets, verified against the CA and checked
    against `server_name` (a DNS name, or an IP the certificate must name)."""
    ctx = ssl.create_default_context(cafile=STATE["pki"].ca_path)
    with socket.create_connection((ip, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            der = s.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def acls_on_cluster(principals: set[str]) -> set[tuple]:
    """The cluster's ACLs of these principals, as the super user admin lists them."""
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    admin = AdminClient(STATE["admin"])  # kept alive until the future resolves
    listed = admin.describe_acls(everything).result(timeout=15)
    return {acl(b.principal, b.operation.name, b.restype.name, b.resource_pattern_type.name,
                b.name) for b in listed if b.principal in principals
            and b.permission_type == AclPermissionType.ALLOW}


def timing(name: str, seconds: float) -> None:
    STATE["timings"][name] = seconds
    print(f"\n[security e2e] {name}: {seconds:.2f}s")


# -- the environment ----------------------------------------------------------------

@pytest.fixture(scope="module")
def sec(env):
    """The chart and operator installed (by test_e2e.py's first scenario when it did not
    run), the chart able to do what this needs, the namespace and the PKI."""
    if not env.local:
        pytest.skip("the security scenarios need the local control plane (clients reach "
                    "brokers by pod IP, certificate rotation is checked through the kubelet "
                    "stand-in); see e2e/README.md")
    if env.operator is None:
        base.test_01_install_chart_crds_rbac_and_operator(env)
    # The chart must carry what the operator now needs; say so rather than time out.
    def schema(crd: str) -> dict:
        obj = env.kubectl.get("crd", crd)
        version = next(v for v in obj["spec"]["versions"] if v.get("storage"))
        return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    feed_spec = schema("feeds.sluice.dev")
    cluster_spec = schema("securitylakeclusters.sluice.dev")
    kafka = cluster_spec.get("listeners", {}).get("properties", {}).get("kafka", {}) \
        .get("properties", {})
    missing = [what for what, ok in (
        ("Feed spec.access", "access" in feed_spec),
        ("SecurityLakeCluster spec.listeners.kafka.tls", "tls" in kafka),
        ("SecurityLakeCluster spec.listeners.kafka.authentication", "authentication" in kafka),
        ("SecurityLakeCluster spec.authorization", "authorization" in cluster_spec)) if not ok]
    if missing:
        pytest.fail("charts/sluice/crds/sluice.dev.yaml lacks " + ", ".join(missing)
                    + ": regenerate the chart's CRDs from the operator")
    env.kubectl.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n")
    accounts = [a["metadata"]["name"] for a in
                env.kubectl.get("serviceaccounts", ns=OPERATOR_NS)["items"]
                if a["metadata"]["name"] != "default"]
    assert len(accounts) == 1, f"the chart's ServiceAccount in {OPERATOR_NS}: {accounts}"
    who = f"system:serviceaccount:{OPERATOR_NS}:{accounts[0]}"
    # get, patch (server-side apply creates too) and delete: what the operator calls.
    refused = [verb for verb in ("get", "patch", "delete")
               if env.kubectl.run("auth", "can-i", verb, "secrets", "-n", NS, "--as", who,
                                  check=False).stdout.strip() != "yes"]
    if refused:
        pytest.fail(f"the chart's ClusterRole does not let the operator {'/'.join(refused)} "
                    "Secrets (the operator's and users' credentials Secrets, the TLS Secret): "
                    "charts/sluice/templates/rbac.yaml")
    STATE.setdefault("pki", Pki(env.work / "security"))
    yield STATE
    (env.work / "security-timings.txt").write_text(
        "".join(f"{k} {v:.2f}s\n" for k, v in STATE["timings"].items()))


# -- scenarios ----------------------------------------------------------------------

def test_s01_missing_tls_secret_stalls_and_creates_no_brokers(env, sec):
    """A cluster naming a TLS Secret that does not exist: Stalled (and not Ready) with
    reason TlsSecretInvalid, and no StatefulSet: no broker would start without it."""
    env.kubectl.apply(cluster_yaml("nocert", "{secretName: no-such-secret}"))
    slc = wait_stalled(env, "securitylakecluster", "nocert", "TlsSecretInvalid", 90)
    ready = condition(slc, "Ready")
    assert ready and ready["status"] == "False" and ready["reason"] == "TlsSecretInvalid", ready
    assert "no-such-secret" in condition(slc, "Stalled")["message"]
    assert env.kubectl.get("statefulset", "nocert-broker", NS) is None
    time.sleep(3)  # another reconcile would not create it either
    assert env.kubectl.get("statefulset", "nocert-broker", NS) is None
    assert not broker_pods(env, "nocert")
    env.kubectl.run("delete", "securitylakecluster", "nocert", "-n", NS, "--timeout=120s")


def test_s02_secured_cluster_from_yaml(env, sec):
    """A TLS Secret and a cluster with TLS and SCRAM-SHA-512: Ready with 2 brokers that
    serve SASL_SSL on the client and control listeners with the Secret's certificate,
    configured as the operator promises."""
    pki: Pki = STATE["pki"]
    cert, cert_pem, key_pem = pki.server()
    STATE["cert"] = cert
    env.kubectl.apply(tls_secret(TLS_SECRET, cert_pem, key_pem, pki.ca_pem))
    t0 = time.monotonic()
    env.kubectl.apply(cluster_yaml(CLUSTER, f"{{secretName: {TLS_SECRET}}}"))

    def ready():
        slc = env.kubectl.get("securitylakecluster", CLUSTER, NS)
        st = (slc or {}).get("status", {})
        return (is_true(slc, "Ready") and st.get("readyReplicas") == 2
                and st.get("observedGeneration") == slc["metadata"]["generation"]) and slc
    try:
        slc = env.kubectl.wait_for(f"SecurityLakeCluster {CLUSTER} Ready with 2 brokers", ready, 180)
    except AssertionError as e:
        slc = env.kubectl.get("securitylakecluster", CLUSTER, NS) or {}
        raise AssertionError(f"{e}; conditions: {slc.get('status', {}).get('conditions')}; "
                             f"kubelet errors: {env.kubelet.errors[-5:]}") from None
    timing("secured cluster Ready", time.monotonic() - t0)
    assert slc["status"]["bootstrap"] == f"{BOOTSTRAP_HOST}:{KAFKA_PORT}"

    # What the operator made: the brokers' settings...
    cm = env.kubectl.get("configmap", f"{CLUSTER}-config", NS)["data"]
    expected = {
        "SLUICE_LISTENERS": f"CLIENT://0.0.0.0:{KAFKA_PORT},CONTROL://0.0.0.0:{CONTROL_PORT}",
        "SLUICE_LISTENER_SECURITY_PROTOCOL_MAP": "CLIENT:SASL_SSL,CONTROL:SASL_SSL",
        "SLUICE_SSL_CERTIFICATE_FILE": "/etc/sluice/tls/tls.crt",
        "SLUICE_SSL_KEY_FILE": "/etc/sluice/tls/tls.key",
        "SLUICE_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512",
        "SLUICE_SASL_BOOTSTRAP_USERS_FILE": "/etc/sluice/operator/users",
        "SLUICE_AUTHORIZER": "on",
        "SLUICE_SUPER_USERS": f"User:{OPERATOR_USER};User:sluice-broker;User:admin",
        # Brokers forward dead letters to each other on CONTROL as their own user.
        "SLUICE_INTER_BROKER_LISTENER_NAME": "CONTROL",
        "SLUICE_INTER_BROKER_USER": "sluice-broker",
        "SLUICE_INTER_BROKER_SSL_CA_FILE": "/etc/sluice/tls/ca.crt",
    }
    assert {k: cm.get(k) for k in expected} == expected
    # ...the pods' listeners, ports and Secret volumes...
    sts = env.kubectl.get("statefulset", f"{CLUSTER}-broker", NS)
    pod_spec = sts["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    env_vars = {e["name"]: e.get("value") for e in container.get("env", [])}
    host = f"$(POD_NAME).{BROKERS_DOMAIN}"
    assert env_vars.get("SLUICE_ADVERTISED_LISTENERS") == \
        f"CLIENT://{host}:{KAFKA_PORT},CONTROL://{host}:{CONTROL_PORT}", env_vars
    assert "SLUICE_ADVERTISE" not in env_vars
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == \
        {"kafka": KAFKA_PORT, "metrics": METRICS_PORT, "control": CONTROL_PORT}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for name, secret_name, path in (("tls", TLS_SECRET, "/etc/sluice/tls"),
                                    ("operator-credentials", f"{CLUSTER}-operator-credentials",
                                     "/etc/sluice/operator")):
        assert volumes[name]["secret"]["secretName"] == secret_name, volumes.get(name)
        assert mounts[name]["mountPath"] == path and mounts[name].get("readOnly"), mounts.get(name)
    # ...the operator's way in, and its credentials.
    svc = env.kubectl.get("service", f"{CLUSTER}-bootstrap", NS)
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == \
        {"kafka": KAFKA_PORT, "control": CONTROL_PORT}
    creds = secret_data(env, f"{CLUSTER}-operator-credentials")
    assert len(creds["password"]) >= 16
    assert creds["users"].strip().splitlines() == [
        f"{OPERATOR_USER}={creds['password']}",
        f"sluice-broker={creds['broker-password']}",
    ]
    STATE["operator"] = (OPERATOR_USER, creds["password"])

    # The broker processes: listeners on the pod IP, files from the Secrets.
    env.kubectl.wait_for("2 broker processes", lambda: len(env.kubelet.brokers_in(NS)) == 2, 60)
    ips = pod_ips(env)
    for b in env.kubelet.brokers_in(NS):
        ip = ips[b.name]
        assert b.env["SLUICE_LISTENERS"] == \
            f"CLIENT://{ip}:{KAFKA_PORT},CONTROL://{ip}:{CONTROL_PORT}", b.env["SLUICE_LISTENERS"]
        assert b.env["SLUICE_ADVERTISED_LISTENERS"] == \
            f"CLIENT://{ip}:{KAFKA_PORT},CONTROL://{ip}:{CONTROL_PORT}"
        assert "--listen" not in b.args and "--advertise" not in b.args, b.args
        assert Path(b.env["SLUICE_SSL_CERTIFICATE_FILE"]).read_bytes() == cert_pem
        users = Path(b.env["SLUICE_SASL_BOOTSTRAP_USERS_FILE"]).read_text()
        assert users.strip() == creds["users"].strip()
        env.kubectl.wait_for(f"{b.name} /readyz", lambda: requests.get(
            f"http://{ip}:{METRICS_PORT}/readyz", timeout=2).ok, 60)
    # Both listeners present the Secret's certificate, valid for the Services' names.
    for name, ip in ips.items():
        for port in (KAFKA_PORT, CONTROL_PORT):
            got = peer_certificate(ip, port, f"{name}.{BROKERS_DOMAIN}")
            assert got.serial_number == cert.serial_number, (name, port)
        assert peer_certificate(ip, CONTROL_PORT, BOOTSTRAP_HOST).serial_number == \
            cert.serial_number
    # A client without TLS and SASL gets nothing.
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": bootstrap(env), "socket.timeout.ms": 3000}) \
            .list_topics(timeout=5)


def test_s03_feed_access_makes_acls_and_credentials(env, sec):
    """A Feed with `spec.access`: the topic, six ACLs recorded in status, and a
    credentials Secret per scram user holding everything a client needs."""
    t0 = time.monotonic()
    env.kubectl.apply(feed_yaml(FEED, {"producers": [COLLECTOR], "consumers": [SIEM]}))
    users = {"collector", "siem"}

    def done():
        f = feed(env)
        st = access_status(env)
        return (is_true(f, "Ready") and len(st.get("acls") or []) == 6
                and {c["user"] for c in st.get("credentials") or []} == users
                and all(secret(env, f"{CLUSTER}-user-{u}") for u in users)) and f
    try:
        f = env.kubectl.wait_for(f"Feed {FEED} Ready with 6 ACLs and 2 credentials", done, 120)
    except AssertionError as e:
        obj = feed(env) or {}
        raise AssertionError(f"{e}; status: {obj.get('status')}") from None
    timing("Feed with access Ready", time.monotonic() - t0)
    st = f["status"]["access"]
    assert entries(st["acls"]) == COLLECTOR_ACLS | SIEM_ACLS, st["acls"]
    assert not st.get("unmanagedAcls") and not st.get("drift"), st
    assert {(c["user"], c["secretName"]) for c in st["credentials"]} == \
        {(u, f"{CLUSTER}-user-{u}") for u in users}
    for user in users:
        d = secret_data(env, f"{CLUSTER}-user-{user}")
        assert d["username"] == user
        assert len(d["password"]) >= 16
        assert d["sasl.mechanism"] == "SCRAM-SHA-512"
        assert d["security.protocol"] == "SASL_SSL"
        assert d["bootstrap.servers"] == f"{BOOTSTRAP_HOST}:{KAFKA_PORT}"
        assert d["ca.crt"].encode() == STATE["pki"].ca_pem
        assert f'username="{user}"' in d["sasl.jaas.config"]
        assert f'password="{d["password"]}"' in d["sasl.jaas.config"]
        labels = secret(env, f"{CLUSTER}-user-{user}")["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/managed-by") == "sluice-operator", labels
    env.kubectl.wait_for("Event AccessChanged", lambda: events(env, FEED, "AccessChanged"), 30)


def test_s04_access_is_enforced_with_real_clients(env, sec):
    """With the credentials of the Secrets: the producer writes, the consumer reads in
    its groups, and everything else is refused as Kafka refuses it."""
    collector = conf_from_secret(env, f"{CLUSTER}-user-collector")
    siem = conf_from_secret(env, f"{CLUSTER}-user-siem")
    sent = produce(collector, RECORDS, "first")
    STATE["acked"].update(sent)

    assert probes(probe_produce, siem) == T, "siem (a consumer) could write"
    # Refused the Fetch, or already the group coordinator for its (undeclared) group.
    assert probes(probe_fetch_assigned, collector) in (T, G), "collector (a producer) could read"
    assert probes(probe_fetch, siem, "other-group") == G, "siem used an undeclared group"
    assert probes(probe_fetch, siem, "siem-adhoc-1") == OK, "siem refused a siem-adhoc- group"
    wrong = {**siem, "sasl.password": siem["sasl.password"] + "x"}
    assert probes(probe_login, wrong) == AUTH, "a wrong password logged in"

    # The consumer reads every record in its group, and commits.
    c = Consumer({**siem, "group.id": "siem-main", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([FEED])
    got: dict[str, str] = {}
    errors: list = []
    deadline = time.monotonic() + 90
    try:
        while not set(sent) <= set(got) and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error() is not None:
                errors.append(m.error())
                continue
            got[m.key().decode()] = m.value().decode()
        if got:
            c.commit(asynchronous=False)
    finally:
        c.close()
    assert {k: got.get(k) for k in sent} == sent, \
        f"siem read {len(got)} of {len(sent)} in group siem-main; errors {errors[:5]}"
    # The operator (logged in on the control listener) sees the group's lag.
    env.kubectl.wait_for("status.consumerLag of siem-main is 0", lambda: any(
        g["group"] == "siem-main" and g["lag"] == 0
        for g in (feed(env).get("status") or {}).get("consumerLag") or []), 60)

    # authorization.superUsers: admin, given a SCRAM credential by the operator's own
    # (super) user, needs no ACL; it reads everything back in the later scenarios.
    password = uuid.uuid4().hex
    op = AdminClient(conf(env, *STATE["operator"]))
    upsert = UserScramCredentialUpsertion(
        "admin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode())
    for fut in op.alter_user_scram_credentials([upsert]).values():
        fut.result(timeout=15)
    STATE["admin"] = conf(env, "admin", password)
    env.kubectl.wait_for("admin logs in", lambda: probes(probe_login, STATE["admin"]) == OK, 30)
    assert_nothing_lost(env, STATE["acked"])
    # The cluster holds exactly the ACLs the status records.
    assert acls_on_cluster({"User:collector", "User:siem"}) == COLLECTOR_ACLS | SIEM_ACLS


def test_s05_drift_is_put_back_and_acls_made_by_hand_are_left_alone(env, sec):
    """An operator-made ACL removed by hand comes back (status.access.drift, a Warning
    Event AccessDrift); an ACL on the topic made by hand is listed in
    status.access.unmanagedAcls and never removed."""
    admin = AdminClient(STATE["admin"])
    by_hand = AclBinding(ResourceType.TOPIC, FEED, ResourcePatternType.LITERAL, "User:auditor",
                         "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    for fut in admin.create_acls([by_hand]).values():
        fut.result(timeout=15)
    removed = AclBindingFilter(ResourceType.TOPIC, FEED, ResourcePatternType.LITERAL,
                               "User:collector", None, AclOperation.DESCRIBE,
                               AclPermissionType.ALLOW)
    deleted = admin.delete_acls([removed])[removed].result(timeout=15)
    assert len(deleted) == 1, deleted
    t0 = time.monotonic()
    env.kubectl.wait_for("collector's DESCRIBE put back", lambda: acl(
        "User:collector", "DESCRIBE", "TOPIC", "LITERAL", FEED) in acls_on_cluster(
        {"User:collector"}), 60)
    timing("drift repaired", time.monotonic() - t0)
    env.kubectl.wait_for("Warning Event AccessDrift", lambda: events(env, FEED, "AccessDrift"), 30)
    auditor = acl("User:auditor", "DESCRIBE", "TOPIC", "LITERAL", FEED)
    env.kubectl.wait_for("the hand-made ACL in status.access.unmanagedAcls", lambda: auditor in
                         entries(access_status(env).get("unmanagedAcls")), 30)
    st = access_status(env)
    assert entries(st["acls"]) == COLLECTOR_ACLS | SIEM_ACLS, "a hand-made ACL became owned"
    assert auditor in acls_on_cluster({"User:auditor"}), "the operator removed a hand-made ACL"
    for fut in admin.delete_acls([AclBindingFilter(
            ResourceType.TOPIC, FEED, ResourcePatternType.LITERAL, "User:auditor", None,
            AclOperation.ANY, AclPermissionType.ANY)]).values():
        fut.result(timeout=15)


def test_s06_bad_access_is_refused_before_anything_is_applied(env, sec):
    """A principal `*` stalls a Feed (InvalidAccess); a second Feed declaring group
    siem-main stalls (GroupClaimed). Neither makes an ACL, a credential or a topic."""
    env.kubectl.apply(feed_yaml("wildcard", {"producers": [{"user": "*"}]}, "Retain"))
    env.kubectl.apply(feed_yaml("copycat", {"consumers": [
        {"user": "soar", "credentials": "scram", "groups": [{"name": "siem-main"}]}]}, "Retain"))
    for name, reason in (("wildcard", "InvalidAccess"), ("copycat", "GroupClaimed")):
        f = wait_stalled(env, "feed", name, reason)
        assert not is_true(f, "Ready"), f["status"]
        assert not (f.get("status") or {}).get("access"), f["status"]
    assert "*" in condition(feed(env, "wildcard"), "Stalled")["message"]
    assert FEED in condition(feed(env, "copycat"), "Stalled")["message"]
    assert acls_on_cluster({"User:*", "User:soar"}) == set()
    assert secret(env, f"{CLUSTER}-user-soar") is None
    topics = AdminClient(STATE["admin"]).list_topics(timeout=15).topics
    assert "wildcard" not in topics and "copycat" not in topics, sorted(topics)
    env.kubectl.run("delete", "feed", "wildcard", "copycat", "-n", NS, "--timeout=60s")


def test_s07_removing_a_consumer_revokes_it_within_one_reconcile(env, sec):
    """siem is taken out of spec.access: its ACLs go (an open session is refused at its
    next request), its credential and Secret go (a new login fails), in one reconcile.
    The seconds from the edit are printed."""
    siem = conf_from_secret(env, f"{CLUSTER}-user-siem")
    session = AdminClient(siem)
    md = session.list_topics(topic=FEED, timeout=15)
    assert md.topics[FEED].error is None, md.topics[FEED].error

    t0 = time.monotonic()
    env.kubectl.apply(feed_yaml(FEED, {"producers": [COLLECTOR]}))
    refused_at = None
    last = None
    while time.monotonic() - t0 < 60:
        try:
            t = session.list_topics(topic=FEED, timeout=5).topics.get(FEED)
            last = "HIDDEN" if t is None else (t.error.name() if t.error else OK)
        except KafkaException as e:
            last = code_name(e)
        if last in (T, "HIDDEN"):
            refused_at = time.monotonic() - t0
            break
        time.sleep(0.2)
    assert refused_at is not None, f"siem's open session still served 60s after the edit: {last}"
    timing("consumer removed -> open session refused", refused_at)

    login_refused_at = None
    while time.monotonic() - t0 < 60:
        last = probes(probe_login, siem, FEED, 8)
        if last in (AUTH, T, "HIDDEN"):
            login_refused_at = time.monotonic() - t0
            break
        time.sleep(0.2)
    assert login_refused_at is not None, f"a new login of siem still served 60s after: {last}"
    timing("consumer removed -> new login refused", login_refused_at)
    assert probes(probe_fetch, siem, "siem-main") != OK

    def revoked():
        st = access_status(env)
        return (entries(st.get("acls")) == COLLECTOR_ACLS
                and [c["user"] for c in st.get("credentials") or []] == ["collector"]
                and secret(env, f"{CLUSTER}-user-siem") is None and st)
    env.kubectl.wait_for("siem's ACLs, credential and Secret gone", revoked, 30)
    assert acls_on_cluster({"User:siem"}) == set()
    assert probes(probe_login, siem) == AUTH, "siem's credential is still on the cluster"
    # The producer is untouched.
    STATE["acked"].update(produce(conf_from_secret(env, f"{CLUSTER}-user-collector"), 50,
                                  "after-revoke"))


@pytest.mark.timeout(360)
def test_s08_password_rotation_with_a_producer_running(env, sec):
    """`sluice.dev/rotate=2` on the collector's Secret: a new password (answered by
    `sluice.dev/rotated=2`); the producer logged in with the old one keeps getting
    acknowledgements; a new login with the old password fails, with the new one works;
    every acknowledged record reads back."""
    name = f"{CLUSTER}-user-collector"
    before = conf_from_secret(env, name)
    p = SteadyProducer(before, "rotation").start()
    try:
        p.wait_acked(50, "the producer runs")
        t0 = time.monotonic()
        env.kubectl.run("annotate", "secret", name, "-n", NS, "sluice.dev/rotate=2",
                        "--overwrite")

        def rotated():
            s = secret(env, name)
            d = secret_data(env, name)
            return ((s["metadata"].get("annotations") or {}).get("sluice.dev/rotated") == "2"
                    and d["password"] != before["sasl.password"] and d)
        d = env.kubectl.wait_for("sluice.dev/rotated=2 with a new password", rotated, 60)
        timing("password rotated (annotation -> answered)", time.monotonic() - t0)
        assert f'password="{d["password"]}"' in d["sasl.jaas.config"]
        n = len(p.acked)
        p.wait_acked(n + 200, "the producer logged in with the old password still acked")
        after = conf_from_secret(env, name)
        env.kubectl.wait_for("a new login with the old password fails",
                             lambda: probes(probe_login, before) == AUTH, 30)
        assert probes(probe_login, after) == OK
        STATE["acked"].update(produce(after, 50, "new-password"))
        n = len(p.acked)
        p.wait_acked(n + 100, "the running producer after the new logins")
    finally:
        acked = p.finish()
    logins = [e for e in p.client_errors if e.code() == KafkaError._AUTHENTICATION]
    assert not logins, f"the running producer had to log in again: {logins[:3]}"
    STATE["acked"].update(acked)
    assert_nothing_lost(env, STATE["acked"])
    print(f"[security e2e] rotation: {len(acked)} records acknowledged by the running "
          "producer, all read back")


@pytest.mark.timeout(360)
def test_s09_certificate_rotation_with_a_producer_running(env, sec):
    """The TLS Secret gets a new certificate (same CA, now also naming the pod IPs):
    the kubelet stand-in rewrites the mounted files, the running brokers serve it to new
    connections on both listeners without a restart, the running producer keeps its
    connections, and nothing acknowledged is lost."""
    pki: Pki = STATE["pki"]
    ips = pod_ips(env)
    assert len(ips) == 2, ips
    cert, cert_pem, key_pem = pki.server(sorted(ips.values()))
    assert cert.serial_number != STATE["cert"].serial_number
    brokers = {b.name: (b.uid, b.starts) for b in env.kubelet.brokers_in(NS)}
    c = conf_from_secret(env, f"{CLUSTER}-user-collector")
    p = SteadyProducer(c, "cert-rotation").start()
    try:
        p.wait_acked(50, "the producer runs")
        t0 = time.monotonic()
        env.kubectl.apply(tls_secret(TLS_SECRET, cert_pem, key_pem, pki.ca_pem))
        for b in env.kubelet.brokers_in(NS):
            path = Path(b.env["SLUICE_SSL_CERTIFICATE_FILE"])
            env.kubectl.wait_for(f"{b.name}'s mounted tls.crt rewritten", lambda: (
                path.read_bytes() == cert_pem), 30, interval=0.2)
            assert Path(b.env["SLUICE_SSL_KEY_FILE"]).read_bytes() == key_pem
        timing("TLS Secret -> files of the running brokers", time.monotonic() - t0)
        for name, ip in ips.items():
            for port in (KAFKA_PORT, CONTROL_PORT):
                env.kubectl.wait_for(f"{name}:{port} serves the new certificate", lambda: (
                    peer_certificate(ip, port, f"{name}.{BROKERS_DOMAIN}").serial_number
                    == cert.serial_number), 60, interval=0.5)
            # The new certificate names the pod IP: verified by IP too.
            assert peer_certificate(ip, KAFKA_PORT, ip).serial_number == cert.serial_number
        timing("TLS Secret -> new certificate served by every broker", time.monotonic() - t0)
        n = len(p.acked)
        p.wait_acked(n + 200, "the running producer after the new certificate")
        # A new client, now with hostname verification against the pod IPs.
        STATE["acked"].update(produce(
            {**c, "ssl.endpoint.identification.algorithm": "https"}, 50, "new-certificate"))
    finally:
        acked = p.finish()
    broken = [e for e in p.client_errors
              if e.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)]
    assert not broken, f"the running producer's connections broke: {broken[:3]}"
    STATE["acked"].update(acked)
    assert {b.name: (b.uid, b.starts) for b in env.kubelet.brokers_in(NS)} == brokers, \
        "a broker was restarted for the new certificate"
    assert {p_["metadata"]["name"]: p_["status"]["podIP"] for p_ in broker_pods(env)} == ips
    # The operator still gets in (it verifies against the Secret's ca.crt): a reconcile
    # after the rotation leaves cluster and Feed Ready.
    time.sleep(6)
    assert is_true(env.kubectl.get("securitylakecluster", CLUSTER, NS), "Ready")
    assert is_true(feed(env), "Ready"), feed(env)["status"].get("conditions")
    assert_nothing_lost(env, STATE["acked"])
    print(f"[security e2e] certificate rotation: {len(acked)} records acknowledged by the "
          f"running producer; {len(STATE['acked'])} acknowledged in all, all read back")


def test_s10_deleting_the_cluster_takes_its_credentials(env, sec):
    env.kubectl.run("delete", "feed", FEED, "-n", NS, "--timeout=90s")
    env.kubectl.run("delete", "securitylakecluster", CLUSTER, "-n", NS, "--timeout=120s")
    env.kubectl.wait_for("the brokers of e2e-sec stopped",
                         lambda: not env.kubelet.brokers_in(NS), 90)
    # Owned by the cluster: garbage collection removes every credentials Secret.
    env.kubectl.wait_for("credentials Secrets collected", lambda: not [
        s["metadata"]["name"] for s in env.kubectl.get("secrets", ns=NS)["items"]
        if s["metadata"]["name"].startswith(f"{CLUSTER}-user-")
        or s["metadata"]["name"] == f"{CLUSTER}-operator-credentials"], 60)
    assert secret(env, TLS_SECRET) is not None, "the user's TLS Secret was deleted"
    env.kubectl.run("delete", "secret", TLS_SECRET, "-n", NS)


# -- cert-manager: tls.issuerRef ----------------------------------------------------
#
# No cert-manager controller runs here: the scenarios play it. They install (and
# remove) a minimal Certificate CRD, write the Certificate's status as cert-manager
# would, and issue the Secret from the test CA. Cluster `issued` in the same namespace,
# after `vault` is gone (nothing of it is in the way). TLS only: no `authentication`,
# so the listener is SSL, without SASL or ACLs.

CM = "issued"
CM_CERT = f"{CM}-kafka-tls"           # the Certificate, and the Secret it is issued into
CM_FEED = "detections"
CM_ISSUER = "soc-ca"
CERT_CRD = "certificates.cert-manager.io"
CERTIFICATE = "certificates.cert-manager.io"   # for kubectl, never ambiguous
CM_DNS_NAMES = [f"{CM}-bootstrap.{NS}.svc.{DOMAIN}", f"{CM}-bootstrap.{NS}.svc",
                f"*.{CM}-brokers.{NS}.svc.{DOMAIN}", f"*.{CM}-brokers.{NS}.svc"]

CERTIFICATE_CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {CERT_CRD}}}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {{plural: certificates, singular: certificate, kind: Certificate,
          listKind: CertificateList}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def issued_cluster_yaml() -> str:
    """TLS only (no authentication), its certificate from cert-manager."""
    return cluster_yaml(CM, f"{{issuerRef: {{name: {CM_ISSUER}}}}}", secured=False)


def cert_manager_served(env) -> bool:
    """Whether discovery lists cert-manager.io certificates (what the operator asks)."""
    out = env.kubectl.run("api-resources", "--api-group=cert-manager.io", "-o", "name",
                          check=False).stdout.split()
    return CERT_CRD in out


def certificate(env) -> dict | None:
    return env.kubectl.get(CERTIFICATE, CM_CERT, NS)


def set_certificate_ready(env, status: str, reason: str, message: str) -> None:
    """The Certificate's Ready condition, written through the status subresource as
    cert-manager writes it."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"status": {"conditions": [{
        "type": "Ready", "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now,
        "observedGeneration": certificate(env)["metadata"]["generation"]}]}}
    env.kubectl.run("patch", CERTIFICATE, CM_CERT, "-n", NS, "--subresource=status",
                    "--type=merge", "-p", json.dumps(patch))


def wait_condition(env, name: str, type_: str, reason: str, timeout: float,
                   message: str | None = None) -> dict:
    """The cluster's condition `type_` True with `reason` (and `message` in its
    message); on timeout, the conditions as they are."""
    def met():
        obj = env.kubectl.get("securitylakecluster", name, NS)
        c = condition(obj, type_)
        return (c and c["status"] == "True" and c["reason"] == reason
                and (message is None or message in c.get("message", "")) and obj)
    try:
        return env.kubectl.wait_for(f"SecurityLakeCluster {name} {type_}/{reason}"
                                    + (f" saying {message!r}" if message else ""), met, timeout)
    except AssertionError as e:
        obj = env.kubectl.get("securitylakecluster", name, NS) or {}
        raise AssertionError(f"{e}; conditions: {obj.get('status', {}).get('conditions')}") \
            from None


def nothing_applied(env, name: str) -> list[str]:
    """What the operator made for cluster `name` (its labelled objects, and the
    StatefulSet, ConfigMap and bootstrap Service by name)."""
    kinds = "statefulsets,services,configmaps,serviceaccounts,poddisruptionbudgets," \
            "networkpolicies,pods"
    found = env.kubectl.run("get", kinds, "-n", NS, "-o", "name",
                            "-l", f"app.kubernetes.io/instance={name}").stdout.split()
    for kind, obj in (("statefulset", f"{name}-broker"), ("configmap", f"{name}-config"),
                      ("service", f"{name}-bootstrap")):
        if env.kubectl.get(kind, obj, NS) is not None:
            found.append(f"{kind}/{obj}")
    return sorted(set(found))


def ssl_conf(env, **extra) -> dict:
    """A client of the TLS-only listener: SSL, the test CA, no login."""
    return {"bootstrap.servers": bootstrap(env, CM), "security.protocol": "SSL",
            "ssl.ca.location": STATE["pki"].ca_path,
            "ssl.endpoint.identification.algorithm": "none",
            "socket.timeout.ms": 10000, **extra}


def broker_failure(env, pod: str) -> str:
    """Why broker `pod` is not serving, from its log: its last `Error:` with what
    caused it, or the log's last lines."""
    with env.kubelet._lock:
        logs = [b.log for b in env.kubelet.brokers.values()
                if b.namespace == NS and b.name == pod]
    if not logs or not logs[0].exists():
        return f"no log of {pod}"
    lines = [ln for ln in logs[0].read_text(errors="replace").splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ln.startswith("Error:")]
    tail = lines[errors[-1]:errors[-1] + 3] if errors else lines[-5:]
    return f"{pod} ({logs[0]}): " + " | ".join(ln.strip() for ln in tail)


def wait_serving(env, ips: dict[str, str], timeout: float = 60) -> None:
    """Every broker answers /readyz (kwok marks pods Ready whatever the process does);
    on timeout, what the broker's log says."""
    for name, ip in ips.items():
        try:
            env.kubectl.wait_for(f"{name} /readyz", lambda: requests.get(
                f"http://{ip}:{METRICS_PORT}/readyz", timeout=2).ok, timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}; {broker_failure(env, name)}") from None


@pytest.fixture(scope="module")
def cert_manager(env, sec):
    """The chart able to do what tls.issuerRef needs; on the way out, whatever a failed
    scenario left (the cluster, its Secret, the Certificate CRD)."""
    kafka = env.kubectl.get("crd", "securitylakeclusters.sluice.dev")
    version = next(v for v in kafka["spec"]["versions"] if v.get("storage"))
    tls = (version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
           ["listeners"]["properties"]["kafka"]["properties"]["tls"]["properties"])
    if "issuerRef" not in tls:
        pytest.fail("charts/sluice/crds/sluice.dev.yaml lacks SecurityLakeCluster "
                    "spec.listeners.kafka.tls.issuerRef: regenerate the chart's CRDs")
    accounts = [a["metadata"]["name"] for a in
                env.kubectl.get("serviceaccounts", ns=OPERATOR_NS)["items"]
                if a["metadata"]["name"] != "default"]
    who = f"system:serviceaccount:{OPERATOR_NS}:{accounts[0]}"

    def allowed(verb: str) -> bool:
        # A SubjectAccessReview: `kubectl auth can-i` does not answer for a resource
        # the API server does not serve (yet).
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": who, "resourceAttributes": {
                      "namespace": NS, "verb": verb, "group": "cert-manager.io",
                      "resource": "certificates"}}}
        out = env.kubectl.run("create", "-o", "json", "-f", "-", input=json.dumps(review))
        return json.loads(out.stdout)["status"].get("allowed", False)
    refused = [verb for verb in ("get", "patch") if not allowed(verb)]
    if refused:
        pytest.fail(f"the chart's ClusterRole does not let the operator {'/'.join(refused)} "
                    "cert-manager Certificates: charts/sluice/templates/rbac.yaml")
    yield
    left = []
    for kind, name in (("feed", CM_FEED), ("securitylakecluster", CM), ("secret", CM_CERT)):
        if env.kubectl.get(kind, name, NS) is not None:
            left.append(f"{kind}/{name}")
            env.kubectl.run("delete", kind, name, "-n", NS, "--timeout=120s", check=False,
                            timeout=150)
    if env.kubectl.get("crd", CERT_CRD) is not None:
        left.append(f"crd/{CERT_CRD}")
        env.kubectl.run("delete", "crd", CERT_CRD, "--timeout=60s", check=False, timeout=90)
    if left:
        print(f"\n[security e2e] cert-manager scenarios left {left}: deleted")


def test_s11_issuer_ref_without_cert_manager_stalls(env, sec, cert_manager):
    """tls.issuerRef while the API server does not serve cert-manager.io/v1
    certificates: Stalled and not Ready with reason CertManagerMissing; nothing applied,
    no broker."""
    assert env.kubectl.get("crd", CERT_CRD) is None, f"{CERT_CRD} is installed already"
    assert not cert_manager_served(env)
    t0 = time.monotonic()
    env.kubectl.apply(issued_cluster_yaml())
    slc = wait_stalled(env, "securitylakecluster", CM, "CertManagerMissing", 60)
    timing("issuerRef without cert-manager -> CertManagerMissing", time.monotonic() - t0)
    ready = condition(slc, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "CertManagerMissing", ready
    assert "cert-manager" in ready["message"] and "issuerRef" in ready["message"], ready
    assert nothing_applied(env, CM) == []
    time.sleep(3)  # another reconcile would not apply anything either
    assert nothing_applied(env, CM) == []
    assert not env.kubelet.brokers_in(NS)


@pytest.mark.timeout(240)
def test_s12_cert_manager_installed_the_cluster_requests_a_certificate_and_waits(
        env, sec, cert_manager):
    """Once cert-manager.io/v1 certificates are served, the operator applies Certificate
    issued-kafka-tls (the bootstrap Service and every broker, the issuer as given) and
    waits for its Secret: Progressing/WaitingForCertificate, still no StatefulSet. An
    issuer that never issues shows in cert-manager's own words."""
    t0 = time.monotonic()
    env.kubectl.apply(CERTIFICATE_CRD)
    env.kubectl.run("wait", "--for=condition=Established", f"crd/{CERT_CRD}", "--timeout=30s",
                    timeout=40)
    env.kubectl.wait_for("cert-manager.io/v1 certificates in discovery",
                         lambda: cert_manager_served(env), 30)
    timing("Certificate CRD installed and served", time.monotonic() - t0)
    # Nothing tells the operator (the cluster is not touched): it looks again itself
    # (60s after a Stalled reconcile).
    t0 = time.monotonic()
    slc = wait_condition(env, CM, "Progressing", "WaitingForCertificate", 90)
    timing("CRD served -> WaitingForCertificate (no touch; the stall's requeue)",
           time.monotonic() - t0)
    conds = {c["type"]: c for c in slc["status"]["conditions"]}
    assert conds["Ready"]["status"] == "False", conds["Ready"]
    assert conds["Ready"]["reason"] == "WaitingForCertificate", conds["Ready"]
    assert conds["Stalled"]["status"] == "False", conds["Stalled"]
    assert conds["Progressing"]["message"] == \
        f"cert-manager Certificate {CM_CERT}: not issued yet", conds["Progressing"]

    cert = certificate(env)
    assert cert is not None, f"no Certificate {CM_CERT}"
    spec = cert["spec"]
    assert spec["secretName"] == CM_CERT, spec
    assert sorted(spec["dnsNames"]) == sorted(CM_DNS_NAMES), spec["dnsNames"]
    assert spec["issuerRef"] == {"name": CM_ISSUER, "kind": "Issuer",
                                 "group": "cert-manager.io"}, spec["issuerRef"]
    owners = cert["metadata"].get("ownerReferences") or []
    assert [(o["kind"], o["name"], o.get("controller")) for o in owners] == \
        [("SecurityLakeCluster", CM, True)], owners
    assert secret(env, CM_CERT) is None
    assert nothing_applied(env, CM) == []

    # An Issuer that does not exist: cert-manager says so on the Certificate, and the
    # cluster repeats it (Certificates are not watched: at the next look, <= 15s).
    t0 = time.monotonic()
    set_certificate_ready(env, "False", "DoesNotExist", f"Issuer {CM_ISSUER} not found")
    slc = wait_condition(env, CM, "Progressing", "WaitingForCertificate", 40,
                         message=f"DoesNotExist: Issuer {CM_ISSUER} not found")
    timing("Certificate Ready=False -> in the cluster's message", time.monotonic() - t0)
    assert condition(slc, "Ready")["message"] == \
        f"cert-manager Certificate {CM_CERT}: DoesNotExist: Issuer {CM_ISSUER} not found"
    # The operator's apply of the Certificate leaves cert-manager's status alone.
    assert (certificate(env)["status"]["conditions"][0]["reason"]) == "DoesNotExist"
    assert nothing_applied(env, CM) == []
    assert not env.kubelet.brokers_in(NS)


@pytest.mark.timeout(300)
def test_s13_issued_certificate_is_served_by_the_brokers(env, sec, cert_manager):
    """The test issues the certificate as cert-manager would (Secret issued-kafka-tls
    from the test CA for the Certificate's dnsNames, then Ready=True): the cluster
    starts, 2 brokers serve SSL with exactly that certificate, the operator reaches them
    (a Feed becomes Ready) and a client over SSL writes and reads back."""
    pki: Pki = STATE["pki"]
    dns_names = certificate(env)["spec"]["dnsNames"]
    cert, cert_pem, key_pem = pki.server(dns_names=dns_names, cluster=CM)
    t0 = time.monotonic()
    env.kubectl.apply(tls_secret(CM_CERT, cert_pem, key_pem, pki.ca_pem, annotations={
        "cert-manager.io/certificate-name": CM_CERT,
        "cert-manager.io/issuer-name": CM_ISSUER, "cert-manager.io/issuer-kind": "Issuer",
        "cert-manager.io/issuer-group": "cert-manager.io"}))
    set_certificate_ready(env, "True", "Ready", "Certificate is up to date and has not expired")

    def ready():
        slc = env.kubectl.get("securitylakecluster", CM, NS)
        st = (slc or {}).get("status", {})
        return (is_true(slc, "Ready") and st.get("readyReplicas") == 2
                and st.get("observedGeneration") == slc["metadata"]["generation"]) and slc
    try:
        slc = env.kubectl.wait_for(f"SecurityLakeCluster {CM} Ready with 2 brokers", ready, 180)
    except AssertionError as e:
        slc = env.kubectl.get("securitylakecluster", CM, NS) or {}
        raise AssertionError(f"{e}; conditions: {slc.get('status', {}).get('conditions')}; "
                             f"kubelet errors: {env.kubelet.errors[-5:]}") from None
    timing("certificate issued -> cluster Ready with 2 brokers", time.monotonic() - t0)
    assert slc["status"]["bootstrap"] == f"{CM}-bootstrap.{NS}.svc.{DOMAIN}:{KAFKA_PORT}"

    # TLS only: one SSL listener, no SASL, no authorizer; the issued Secret mounted.
    cm = env.kubectl.get("configmap", f"{CM}-config", NS)["data"]
    assert {k: cm.get(k) for k in (
        "SLUICE_LISTENERS", "SLUICE_LISTENER_SECURITY_PROTOCOL_MAP",
        "SLUICE_SSL_CERTIFICATE_FILE", "SLUICE_SSL_KEY_FILE")} == {
        "SLUICE_LISTENERS": f"CLIENT://0.0.0.0:{KAFKA_PORT}",
        "SLUICE_LISTENER_SECURITY_PROTOCOL_MAP": "CLIENT:SSL",
        "SLUICE_SSL_CERTIFICATE_FILE": "/etc/sluice/tls/tls.crt",
        "SLUICE_SSL_KEY_FILE": "/etc/sluice/tls/tls.key"}, cm
    assert not [k for k in cm if k.startswith("SLUICE_SASL") or k == "SLUICE_AUTHORIZER"], cm
    assert secret(env, f"{CM}-operator-credentials") is None
    pod_spec = env.kubectl.get("statefulset", f"{CM}-broker", NS)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == CM_CERT, volumes.get("tls")

    ips = pod_ips(env, CM)
    assert len(ips) == 2, ips
    t1 = time.monotonic()
    wait_serving(env, ips)
    timing("issued cluster Ready -> both brokers serve /readyz", time.monotonic() - t1)
    assert len(env.kubelet.brokers_in(NS)) == 2, env.kubelet.brokers_in(NS)
    for b in env.kubelet.brokers_in(NS):
        assert Path(b.env["SLUICE_SSL_CERTIFICATE_FILE"]).read_bytes() == cert_pem
        assert Path(b.env["SLUICE_SSL_KEY_FILE"]).read_bytes() == key_pem
    # Every broker serves the issued certificate, valid for its own name and the
    # bootstrap Service's (checked by Python's ssl against the test CA).
    for name, ip in ips.items():
        got = peer_certificate(ip, KAFKA_PORT, f"{name}.{CM}-brokers.{NS}.svc.{DOMAIN}")
        assert got.serial_number == cert.serial_number, (name, got.serial_number)
        assert peer_certificate(ip, KAFKA_PORT, f"{CM}-bootstrap.{NS}.svc").serial_number \
            == cert.serial_number

    # The operator reaches the brokers over SSL, verifying the issued certificate
    # against its ca.crt: it makes a Feed's topic.
    t0 = time.monotonic()
    env.kubectl.apply(feed_yaml(CM_FEED, None, cluster=CM))

    def feed_ready():
        f = feed(env, CM_FEED)
        return is_true(f, "Ready") and f
    try:
        env.kubectl.wait_for(f"Feed {CM_FEED} Ready", feed_ready, 90)
    except AssertionError as e:
        f = feed(env, CM_FEED) or {}
        raise AssertionError(f"{e}; status: {f.get('status')}") from None
    timing("Feed on the issued cluster Ready", time.monotonic() - t0)
    c = ssl_conf(env)
    sent = produce(c, 100, "issued", topic=CM_FEED)
    got = read_all(c, sent, topic=CM_FEED)
    assert {k: got.get(k) for k in sent} == sent, f"read back {len(got)} of {len(sent)}"
    # A plaintext client gets nothing.
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": bootstrap(env, CM), "socket.timeout.ms": 3000}) \
            .list_topics(timeout=5)
    assert is_true(env.kubectl.get("securitylakecluster", CM, NS), "Ready")


def test_s14_cert_manager_cluster_deleted_and_crd_removed(env, sec, cert_manager):
    """Deleting the cluster stops its brokers and collects its Certificate (owned);
    the issued Secret is cert-manager's and stays until deleted; the CRD goes."""
    t0 = time.monotonic()
    env.kubectl.run("delete", "feed", CM_FEED, "-n", NS, "--timeout=90s", timeout=100)
    env.kubectl.run("delete", "securitylakecluster", CM, "-n", NS, "--timeout=120s",
                    timeout=130)
    env.kubectl.wait_for(f"the brokers of {CM} stopped",
                         lambda: not env.kubelet.brokers_in(NS), 90)
    env.kubectl.wait_for(f"Certificate {CM_CERT} collected",
                         lambda: certificate(env) is None, 60)
    assert secret(env, CM_CERT) is not None, "the issued Secret was deleted with the cluster"
    env.kubectl.run("delete", "secret", CM_CERT, "-n", NS)
    env.kubectl.run("delete", "crd", CERT_CRD, "--timeout=60s", timeout=90)
    env.kubectl.wait_for("cert-manager.io gone from discovery",
                         lambda: not cert_manager_served(env), 30)
    timing("issued cluster, Certificate and CRD removed", time.monotonic() - t0)
