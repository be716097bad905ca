"""Apache Kafka's own tools on a SASL_SSL listener: SCRAM users and client quotas
managed with `kafka-configs.sh` (ConfigCommand: Alter/DescribeUserScramCredentials,
Alter/DescribeClientQuotas), ACLs with `kafka-acls.sh` (AclCommand), then the console producer and consumer logging in as
the new user with the Java client's SCRAM and a PEM trust store, and refused with a
wrong password (docs/security.md)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from conftest import CONSOLE_CONSUMER, CONSOLE_PRODUCER, TOPICS, KafkaTools, ToolError, _fx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from tls_certs import Certs  # noqa: E402

CONFIG_COMMAND = "kafka.admin.ConfigCommand"
ACL_COMMAND = "org.apache.kafka.tools.AclCommand"


def client_properties(path: Path, ca: str, mechanism: str, user: str, password: str) -> str:
    path.write_text(
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={mechanism}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={ca}\n"
    )
    return str(path)


@pytest.fixture
def sasl_ssl_broker(broker_bin, tmp_path):
    certs = Certs(tmp_path)
    kafka, metrics, sasl = _fx.free_ports(3)
    users = tmp_path / "users.txt"
    users.write_text("admin=admin-secret\n")
    args = [
        "--listeners", f"PLAINTEXT://127.0.0.1:{kafka},SASL_SSL://127.0.0.1:{sasl}",
        "--ssl-certificate-file", certs.server, "--ssl-key-file", certs.server_key,
        "--sasl-bootstrap-users-file", str(users),
        "--super-users", "User:admin",
    ]
    factory = _fx.BrokerFactory(broker_bin, tmp_path / "broker")
    try:
        factory.start(args, name="sluice-sasl", ports=(kafka, metrics))
        yield certs, f"127.0.0.1:{sasl}"
    finally:
        factory.close()


def test_scram_users_with_kafka_configs_and_console_tools(kafka_libs, sasl_ssl_broker, tmp_path):
    if not any(kafka_libs.glob("kafka_2.13-*.jar")):
        pytest.fail(f"no kafka_2.13 jar (ConfigCommand) in {kafka_libs}: "
                    "SLUICE_KAFKA_LIBS must be `scripts/tools kafka-server-jars`", pytrace=False)
    certs, bootstrap = sasl_ssl_broker
    tools = KafkaTools(kafka_libs, bootstrap, 0)
    admin = client_properties(tmp_path / "admin.properties", certs.ca, "SCRAM-SHA-512",
                              "admin", "admin-secret")
    users = ("--entity-type", "users", "--entity-name", "bob")
    tools.run(CONFIG_COMMAND, "--command-config", admin, "--alter", "--add-config",
              "SCRAM-SHA-256=[iterations=8192,password=bob-secret]", *users)
    tools.run(CONFIG_COMMAND, "--command-config", admin, "--alter", "--add-config",
              "producer_byte_rate=1048576,consumer_byte_rate=2097152", *users)
    tools.run(CONFIG_COMMAND, "--command-config", admin, "--alter", "--add-config",
              "request_percentage=200", "--entity-type", "clients", "--entity-default")
    described = tools.run(CONFIG_COMMAND, "--command-config", admin, "--describe", *users)
    out = described.stdout
    assert "SCRAM-SHA-256=iterations=8192" in out, described.describe()
    assert "producer_byte_rate=1048576" in out and "consumer_byte_rate=2097152" in out, \
        described.describe()
    clients = tools.run(CONFIG_COMMAND, "--command-config", admin, "--describe",
                        "--entity-type", "clients", "--entity-default")
    assert "request_percentage=200" in clients.stdout, clients.describe()
    # Kafka's own validation message for a key Sluice does not enforce.
    with pytest.raises(ToolError) as refused:
        tools.run(CONFIG_COMMAND, "--command-config", admin, "--alter", "--add-config",
                  "controller_mutation_rate=10", *users)
    assert "not a supported quota" in str(refused.value), str(refused.value)

    bob = client_properties(tmp_path / "bob.properties", certs.ca, "SCRAM-SHA-256",
                            "bob", "bob-secret")
    for rule in (("--topic", "scram-", "--operation", "All"),
                 ("--group", "g-scram-", "--operation", "Read")):
        tools.run(ACL_COMMAND, "--command-config", admin, "--add", "--allow-principal",
                  "User:bob", "--resource-pattern-type", "prefixed", *rule)
    topic = f"scram-{uuid.uuid4().hex[:8]}"
    tools.run(TOPICS, "--command-config", bob, "--create", "--topic", topic,
              "--partitions", "1")
    lines = [f"line-{i}" for i in range(20)]
    tools.run(CONSOLE_PRODUCER, "--producer.config", bob, "--topic", topic,
              "--request-required-acks", "-1", input="".join(x + "\n" for x in lines))
    res = tools.run(CONSOLE_CONSUMER, "--consumer.config", bob, "--topic", topic,
                    "--from-beginning", "--max-messages", str(len(lines)),
                    "--timeout-ms", "30000", "--group", f"g-{topic}")
    assert res.stdout.split() == lines, res.describe()

    # kafka-acls.sh: bob may read nothing until an ACL says so.
    acls = ("--command-config", admin)
    tools.run(ACL_COMMAND, *acls, "--add", "--allow-principal", "User:bob", "--operation",
              "Read", "--topic", "audit-", "--resource-pattern-type", "prefixed")
    listed = tools.run(ACL_COMMAND, *acls, "--list", "--topic", "audit-",
                       "--resource-pattern-type", "prefixed")
    assert "principal=User:bob" in listed.stdout and "operation=READ" in listed.stdout, \
        listed.describe()
    tools.run(ACL_COMMAND, *acls, "--remove", "--force", "--allow-principal", "User:bob",
              "--operation", "Read", "--topic", "audit-", "--resource-pattern-type", "prefixed")
    listed = tools.run(ACL_COMMAND, *acls, "--list", "--topic", "audit-",
                       "--resource-pattern-type", "prefixed")
    assert "User:bob" not in listed.stdout, listed.describe()

    wrong = client_properties(tmp_path / "wrong.properties", certs.ca, "SCRAM-SHA-256",
                              "bob", "not-bob")
    with pytest.raises(ToolError) as refused:
        tools.run(TOPICS, "--command-config", wrong, "--list", timeout=60)
    assert "Authentication failed" in str(refused.value), str(refused.value)

    tools.run(CONFIG_COMMAND, "--command-config", admin, "--alter", "--delete-config",
              "SCRAM-SHA-256", *users)
    described = tools.run(CONFIG_COMMAND, "--command-config", admin, "--describe", *users)
    assert "SCRAM-SHA-256" not in described.stdout, described.describe()
