"""The broker's security boundary (docs/security.md) with real clients: named listeners
with their own protocols and advertised ports, TLS with mTLS and principal mapping,
SASL PLAIN and SCRAM-SHA-256/512 over SASL_SSL and SASL_PLAINTEXT, credentials managed
through the Admin API (KIP-554), KIP-368 re-authentication and certificate reload; and
clients that misbehave: requests before a login, tokens out of order, replayed SCRAM
messages, garbage and stalled handshakes, oversized tokens, wrong passwords in a row.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)
from cryptography import x509
from cryptography.x509.oid import NameOID

from conftest import free_ports, http_get
import kafka_wire as wire
from tls_certs import Certs

ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")
MAPPING = r"RULE:^CN=([^,]+),OU=ServiceUsers.*$/$1/L,DEFAULT"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


class SecureBroker:
    """A broker with four listeners: PLAINTEXT (the fixture's own port), SASL_SSL,
    SASL_PLAINTEXT, and MTLS (SSL, client certificates requested)."""

    def __init__(self, factory, certs: Certs, tmp: Path, extra=(), client_auth="requested",
                 open_acls=True):
        kafka, metrics, self.sasl_ssl, self.sasl_plain, self.mtls = free_ports(5)
        users = tmp / "users.txt"
        users.write_text(f"# bootstrap users\n{ADMIN[0]}={ADMIN[1]}\n{ALICE[0]}={ALICE[1]}\n")
        # The broker reads these through symlinks, so a test can swap what they point at.
        self.cert_link, self.key_link = tmp / "tls.crt", tmp / "tls.key"
        for link, target in ((self.cert_link, certs.server), (self.key_link, certs.server_key)):
            if link.exists() or link.is_symlink():
                link.unlink()
            link.symlink_to(target)
        args = [
            "--listeners", f"PLAINTEXT://127.0.0.1:{kafka},SASL_SSL://127.0.0.1:{self.sasl_ssl},"
                           f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_plain},MTLS://127.0.0.1:{self.mtls}",
            "--listener-security-protocol-map", "MTLS:SSL",
            "--ssl-certificate-file", str(self.cert_link),
            "--ssl-key-file", str(self.key_link),
            "--ssl-client-ca-file", certs.ca,
            "--ssl-client-auth", client_auth,
            "--ssl-principal-mapping-rules", MAPPING,
            "--ssl-reload-interval-ms", "200",
            "--sasl-bootstrap-users-file", str(users),
            "--authentication-timeout-ms", "2000",
            "--failed-authentication-delay-ms", "50",
            "--super-users", "User:admin",
            *extra,
        ]
        self.certs = certs
        self.broker = factory.start(args, ports=(kafka, metrics))
        if open_acls:
            # Everyone may use every topic and group here; the authorisation matrix
            # below has a broker of its own with narrow ACLs.
            admin = AdminClient(self.conf("SCRAM-SHA-512", user=ADMIN, listener="SASL_PLAINTEXT"))
            grants = [AclBinding(kind, "*", ResourcePatternType.LITERAL, "User:*", "*",
                                 AclOperation.ALL, AclPermissionType.ALLOW)
                      for kind in (ResourceType.TOPIC, ResourceType.GROUP)]
            for f in admin.create_acls(grants).values():
                f.result(timeout=10)
            time.sleep(0.3)

    def conf(self, mechanism="SCRAM-SHA-256", user=ALICE, listener="SASL_SSL", **extra) -> dict:
        port = {"SASL_SSL": self.sasl_ssl, "SASL_PLAINTEXT": self.sasl_plain}[listener]
        c = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": listener,
             "sasl.mechanism": mechanism, "sasl.username": user[0], "sasl.password": user[1]}
        if listener == "SASL_SSL":
            c["ssl.ca.location"] = self.certs.ca
        c.update(extra)
        return c

    def metric(self, name: str, **labels) -> float:
        _, body = http_get(self.broker.url("/metrics"))
        total = 0.0
        for line in body.decode().splitlines():
            if not line.startswith(f"sluice_{name}") and not line.startswith(name):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(scope="module")
def secure(broker_bin, certs, tmp_path_factory):
    from conftest import BrokerFactory
    base = tmp_path_factory.mktemp("secure")
    factory = BrokerFactory(broker_bin, base)
    try:
        yield SecureBroker(factory, certs, base)
    finally:
        factory.close()


def produce_and_consume(conf: dict, n: int = 50) -> None:
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    errors = []
    p = Producer({**conf, "linger.ms": 5, "error_cb": errors.append})
    delivered = []
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(),
                  on_delivery=lambda err, msg: delivered.append(err))
    assert p.flush(30) == 0, f"undelivered; client errors: {errors}"
    assert delivered == [None] * n
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == [f"v{i}".encode() for i in range(n)]


def auth_errors(conf: dict) -> list[KafkaError]:
    """The errors a producer reports while its login is refused (at most 10 s)."""
    errors: list[KafkaError] = []
    p = Producer({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + 10
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) \
            and time.monotonic() < deadline:
        p.poll(0.2)
    return errors


# -- logins that work -----------------------------------------------------------------
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_produce_and_consume_over_sasl_ssl(secure, mechanism):
    before = secure.metric("authentications_total", listener="SASL_SSL", mechanism=mechanism,
                           result="ok")
    produce_and_consume(secure.conf(mechanism))
    after = secure.metric("authentications_total", listener="SASL_SSL", mechanism=mechanism,
                          result="ok")
    assert after > before


def test_sasl_plaintext_and_advertised_listeners(secure):
    produce_and_consume(secure.conf("SCRAM-SHA-512", listener="SASL_PLAINTEXT"))
    # Metadata sends a client to the listener it came through, not the first one.
    for listener, port in (("SASL_SSL", secure.sasl_ssl), ("SASL_PLAINTEXT", secure.sasl_plain)):
        md = AdminClient(secure.conf(listener=listener)).list_topics(timeout=10)
        assert [b.port for b in md.brokers.values()] == [port]
    md = AdminClient({"bootstrap.servers": secure.broker.bootstrap}).list_topics(timeout=10)
    assert [b.port for b in md.brokers.values()] == [secure.broker.kafka_port]


def test_mtls_principal_from_the_certificate(secure, certs):
    conf = {"bootstrap.servers": f"127.0.0.1:{secure.mtls}", "security.protocol": "SSL",
            "ssl.ca.location": certs.ca, "ssl.certificate.location": certs.alice,
            "ssl.key.location": certs.alice_key}
    produce_and_consume(conf, n=10)
    # CN=Alice,OU=ServiceUsers,... mapped by the rule, lower-cased by its /L flag.
    log = secure.broker.log_path.read_text()
    assert re.search(r"mechanism=\"?SSL\"?.*principal=User:alice|principal=User:alice.*mechanism=\"?SSL", log), \
        secure.broker.log_tail()
    assert secure.metric("authentications_total", listener="MTLS", mechanism="SSL",
                         result="ok") >= 1
    # Requested, not required: no certificate is User:ANONYMOUS, still served.
    produce_and_consume({k: v for k, v in conf.items() if "certificate" not in k
                         and "key" not in k}, n=5)


def test_client_certificate_of_an_unknown_ca_is_refused(secure, certs):
    before = secure.metric("authentications_total", listener="MTLS", mechanism="SSL",
                           result="failed")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        conn = wire.Conn(secure.mtls, certs.context((certs.rogue, certs.rogue_key)))
        # TLS 1.3 reports the refusal of the client certificate on the first read.
        conn.api_versions()
    assert secure.metric("authentications_total", listener="MTLS", mechanism="SSL",
                         result="failed") > before


# -- logins that fail -----------------------------------------------------------------
def test_wrong_password_and_unknown_user_fail_alike(secure):
    before = secure.metric("authentications_total", listener="SASL_SSL", result="failed")
    wrong = auth_errors(secure.conf(user=("alice", "nope")))
    unknown = auth_errors(secure.conf(user=("mallory", "nope")))
    for errors in (wrong, unknown):
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
        assert any("Authentication failed" in e.str() for e in errors), errors
    assert secure.metric("authentications_total", listener="SASL_SSL", result="failed") \
        >= before + 2


def test_sasl_rules_on_the_wire(secure):
    # ApiVersions is served before a login; anything else closes the connection.
    c = wire.Conn(secure.sasl_plain)
    assert c.api_versions() == 0
    c.metadata_request()
    assert c.closed_by_peer()
    # A mechanism not offered: refused, with the list of those that are.
    c = wire.Conn(secure.sasl_plain)
    err, names = c.handshake("GSSAPI")
    assert err == wire.UNSUPPORTED_SASL_MECHANISM
    assert set(names) == {"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"}
    # A token without a handshake: ILLEGAL_SASL_STATE, then closed.
    c = wire.Conn(secure.sasl_plain)
    err, _, _, _ = c.authenticate(b"\0alice\0alice-secret")
    assert err == wire.ILLEGAL_SASL_STATE
    assert c.closed_by_peer()
    # SASL on a listener without SASL: ILLEGAL_SASL_STATE, the connection stays usable.
    c = wire.Conn(secure.broker.kafka_port)
    err, _ = c.handshake("PLAIN")
    assert err == wire.ILLEGAL_SASL_STATE
    assert c.api_versions() == 0


def test_replayed_scram_final_message_is_refused(secure):
    c = wire.Conn(secure.sasl_plain)
    (err, msg, server_final, _), client, final = wire.scram_login(c, *ALICE)
    assert err == 0, msg
    assert server_final.startswith(b"v=")
    c.close()
    # The same client-first and the recorded client-final on a new connection: the
    # broker's nonce differs, so the proof no longer matches.
    c = wire.Conn(secure.sasl_plain)
    assert c.handshake("SCRAM-SHA-256")[0] == 0
    err, _, _, _ = c.authenticate(client.first())
    assert err == 0
    err, msg, _, _ = c.authenticate(final)
    assert err == wire.SASL_AUTHENTICATION_FAILED, msg
    assert c.closed_by_peer()


def test_failed_logins_in_a_row_are_slowed_down(secure):
    took = []
    for _ in range(4):
        c = wire.Conn(secure.sasl_plain)
        assert c.handshake("PLAIN")[0] == 0
        start = time.monotonic()
        err, _, _, _ = c.authenticate(b"\0alice\0guess")
        took.append(time.monotonic() - start)
        assert err == wire.SASL_AUTHENTICATION_FAILED
        assert c.closed_by_peer()
    # 50 ms, doubling: the fourth waits 400 ms.
    assert took[3] >= 0.35 and took[3] > took[0], took
    _, body = http_get(secure.broker.url("/v1/security/logins"))
    sources = json.loads(body)["failed_logins"]
    assert sources[0]["source"] == "127.0.0.1" and sources[0]["failures"] >= 4, sources
    # A good login ends the run.
    c = wire.Conn(secure.sasl_plain)
    (err, _, _, _), _, _ = wire.scram_login(c, *ALICE)
    assert err == 0


def test_hostile_handshakes_are_closed_and_bounded(secure, certs):
    # A stalled client is closed at the authentication timeout (2 s here).
    for port in (secure.sasl_plain, secure.sasl_ssl):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        start = time.monotonic()
        assert s.recv(1) == b""
        assert 1.5 < time.monotonic() - start < 8
        s.close()
    # Garbage instead of a TLS ClientHello, and a truncated one.
    for junk in (os.urandom(300), b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
        s = socket.create_connection(("127.0.0.1", secure.sasl_ssl), timeout=10)
        s.sendall(junk)
        try:
            assert s.recv(4096) is not None
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
    # An oversized token before a login: refused without reading it.
    c = wire.Conn(secure.sasl_plain)
    assert c.handshake("PLAIN")[0] == 0
    c.sock.sendall(b"\x00\x10\x00\x00" + b"\0" * 1024)
    assert c.closed_by_peer()
    assert secure.metric("protocol_errors_total") >= 1
    # Still serving.
    produce_and_consume(secure.conf("PLAIN"), n=5)


# -- credentials through the Admin API (kafka-configs.sh --entity-type users) ------------
def test_scram_credentials_admin_api(secure):
    admin = AdminClient(secure.conf("SCRAM-SHA-512", user=ADMIN))
    bob = ("bob", "bob-secret")
    up = UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                      bob[1].encode())
    for f in admin.alter_user_scram_credentials([up]).values():
        f.result(timeout=10)
    described = admin.describe_user_scram_credentials(["bob"])["bob"].result(timeout=10)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == \
        [(ScramMechanism.SCRAM_SHA_512, 8192)]
    # Every broker follows the credential store within a metadata poll.
    time.sleep(0.5)
    produce_and_consume(secure.conf("SCRAM-SHA-512", user=bob), n=5)
    produce_and_consume(secure.conf("PLAIN", user=bob), n=5)
    # No SHA-256 credential for bob.
    assert any(e.code() == KafkaError._AUTHENTICATION
               for e in auth_errors(secure.conf("SCRAM-SHA-256", user=bob)))
    # Kafka's limits: too few iterations is UNACCEPTABLE_CREDENTIAL.
    weak = UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100),
                                        b"x")
    with pytest.raises(KafkaException) as e:
        admin.alter_user_scram_credentials([weak])["carol"].result(timeout=10)
    assert e.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL
    # Deleting an unknown credential is RESOURCE_NOT_FOUND.
    gone = UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)
    with pytest.raises(KafkaException) as e:
        admin.alter_user_scram_credentials([gone])["carol"].result(timeout=10)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    # Deleting bob's credential ends his logins.
    delete = UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([delete])["bob"].result(timeout=10)
    time.sleep(0.5)
    assert any(e.code() == KafkaError._AUTHENTICATION
               for e in auth_errors(secure.conf("SCRAM-SHA-512", user=bob)))
    everyone = admin.describe_user_scram_credentials().result(timeout=10)
    assert set(everyone) == {"admin", "alice"}


# -- re-authentication and certificate reload ------------------------------------------
def test_reauthentication(broker_bin, certs, tmp_path):
    from conftest import BrokerFactory
    factory = BrokerFactory(broker_bin, tmp_path)
    try:
        sb = SecureBroker(factory, certs, tmp_path, extra=["--connections-max-reauth-ms", "1000"])
        # A login lasts 1 s: librdkafka logs in again on the same connection (KIP-368)
        # and every record keeps being acknowledged.
        conf = sb.conf("SCRAM-SHA-256")
        errors = []
        p = Producer({**conf, "linger.ms": 5, "error_cb": errors.append})
        acked = []
        deadline = time.monotonic() + 4.5
        i = 0
        while time.monotonic() < deadline:
            p.produce("reauth", value=str(i).encode(), on_delivery=lambda e, m: acked.append(e))
            p.poll(0.05)
            i += 1
        assert p.flush(30) == 0
        assert acked == [None] * i, errors
        oks = sb.metric("authentications_total", listener="SASL_SSL", result="ok")
        assert oks >= 4, f"{oks} logins in 4.5 s with 1 s sessions"
        # A client that does not log in again is closed at its next request.
        c = wire.Conn(sb.sasl_plain)
        (err, _, _, lifetime), _, _ = wire.scram_login(c, *ALICE)
        assert err == 0 and lifetime == 1000
        time.sleep(1.2)
        c.metadata_request()
        assert c.closed_by_peer()
    finally:
        factory.close()


def test_certificate_reload_without_restart(secure, certs):
    def served_cn() -> str:
        with socket.create_connection(("127.0.0.1", secure.sasl_ssl), timeout=10) as s:
            with certs.context().wrap_socket(s, server_hostname="localhost") as t:
                der = t.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value

    assert served_cn() == "broker-server"
    new_cert, new_key = certs.issue_server("renewed")
    # Swap both links at once, as a Secret volume update does.
    tmp_c = secure.cert_link.with_name("tls.crt.new")
    tmp_k = secure.key_link.with_name("tls.key.new")
    tmp_c.symlink_to(new_cert)
    tmp_k.symlink_to(new_key)
    os.replace(tmp_k, secure.key_link)
    os.replace(tmp_c, secure.cert_link)
    deadline = time.monotonic() + 10
    while served_cn() != "broker-renewed":
        assert time.monotonic() < deadline, secure.broker.log_tail()
        time.sleep(0.1)
    # A broken file keeps the previous certificate in use.
    broken = secure.cert_link.with_suffix(".broken")
    broken.write_text("not a certificate")
    os.replace(broken, secure.cert_link)
    time.sleep(0.6)
    assert served_cn() == "broker-renewed"
    assert "cannot be used" in secure.broker.log_path.read_text()
    tmp_c.symlink_to(new_cert)
    os.replace(tmp_c, secure.cert_link)


def test_required_client_certificate(broker_bin, certs, tmp_path):
    from conftest import BrokerFactory
    factory = BrokerFactory(broker_bin, tmp_path)
    try:
        sb = SecureBroker(factory, certs, tmp_path, client_auth="required")
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            wire.Conn(sb.mtls, certs.context()).api_versions()
        c = wire.Conn(sb.mtls, certs.context((certs.alice, certs.alice_key)))
        assert c.api_versions() == 0
    finally:
        factory.close()


# -- client quotas --------------------------------------------------------------------
def test_produce_byte_rate_quota_throttles_only_its_user(secure):
    admin = wire.Conn(secure.sasl_plain)
    (err, _, _, _), _, _ = wire.scram_login(admin, *ADMIN)
    assert err == 0
    # Refused like Kafka: an unsupported key, a non-positive value, ip entities.
    assert wire.alter_client_quotas(admin, [("user", "alice")],
                                    [("controller_mutation_rate", 1.0)])[0] == 42
    assert wire.alter_client_quotas(admin, [("user", "alice")],
                                    [("producer_byte_rate", -5.0)])[0] == 42
    assert wire.alter_client_quotas(admin, [("ip", None)],
                                    [("producer_byte_rate", 5.0)])[0] == 42
    assert wire.alter_client_quotas(admin, [("user", "alice")],
                                    [("producer_byte_rate", 300_000.0)]) == (0, None)
    time.sleep(0.5)
    throttles = []

    def produce_timed(user) -> float:
        topic = f"quota-{uuid.uuid4().hex[:8]}"
        p = Producer({**secure.conf("SCRAM-SHA-256", user=user), "linger.ms": 5,
                      "batch.size": 100_000, "throttle_cb": throttles.append})
        start = time.monotonic()
        for i in range(120):
            p.produce(topic, value=os.urandom(10_000))
            p.poll(0)
        assert p.flush(60) == 0
        return time.monotonic() - start

    fast = produce_timed(ADMIN)
    assert not throttles
    slow = produce_timed(ALICE)
    print(f"\n1.2 MB: admin (no quota) {fast:.2f} s, alice (300 KB/s) {slow:.2f} s, "
          f"largest throttle_time {max(t.throttle_time for t in throttles):.2f} s")
    # 1.2 MB at 300 KB/s cannot take much under 3 s; the admin, without a quota, is
    # not slowed down.
    assert slow > 2.5 and slow > 3 * fast, (slow, fast)
    assert throttles and max(t.throttle_time for t in throttles) > 0
    assert secure.metric("throttled_total", quota="producer_byte_rate") > 0
    assert wire.alter_client_quotas(admin, [("user", "alice")],
                                    [("producer_byte_rate", None)]) == (0, None)
