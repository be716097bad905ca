"""Fixtures for the Apache Kafka tools suite: the Kafka jars, a broker, and a
runner for the tools' main classes.

The broker is the real `sluice-broker` binary (SLUICE_BROKER_BIN), started by
the fixtures of the confluent-kafka suite (broker/tests/python/conftest.py,
loaded here under its own module name so that both suites keep working alone
and together): free loopback ports, storage in a pytest tmp dir, readiness
through /readyz, SIGTERM then SIGKILL at teardown.

Environment:
  SLUICE_BROKER_BIN      the broker binary (required unless KAFKA_BOOTSTRAP is set)
  SLUICE_KAFKA_LIBS      folder with the Kafka jars; default: what
                         `scripts/tools kafka-server-jars` prints (it downloads them
                         once into ~/.cache/sluice/kafka-<version>/server-libs): the
                         clients and tools, plus kafka_2.13 for ConfigCommand
                         (kafka-configs.sh)
  KAFKA_BOOTSTRAP        run against an already running broker instead (e.g. a
                         real Apache Kafka, to check the suite itself); its node
                         id is KAFKA_NODE_ID (default 0)
  SLUICE_JAVA_TOOL_TIMEOUT_S  default bound of one tool run (default 120)

The sluice broker runs with short KIP-848 consumer group timings
(BROKER_ARGS) so that consumer-protocol members join, rebalance and time out
quickly. A broker given by KAFKA_BOOTSTRAP keeps its own settings.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LOG4J_CONFIG = HERE / "log4j2.properties"
TOOL_TIMEOUT_S = float(os.environ.get("SLUICE_JAVA_TOOL_TIMEOUT_S", "120"))
OUTPUT_TAIL_CHARS = 6000


def _load_python_fixtures():
    """broker/tests/python/conftest.py as module `sluice_broker_fixtures`."""
    name = "sluice_broker_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    path = HERE.parent / "python" / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_fx = _load_python_fixtures()
# Re-exported: the binary fixture and the hook that attaches broker logs to
# the report of a failing test.
broker_bin = _fx.broker_bin
pytest_runtest_makereport = _fx.pytest_runtest_makereport


# Main classes of the tools in Kafka 4.x (the bin/kafka-*.sh wrappers run these).
TOPICS = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
VERIFIABLE_PRODUCER = "org.apache.kafka.tools.VerifiableProducer"
VERIFIABLE_CONSUMER = "org.apache.kafka.tools.VerifiableConsumer"


# The shared sluice broker: KIP-848 (group.protocol=consumer) members are told
# to heartbeat every 500 ms and are removed after 6 s without one (the broker
# defaults are 5 s and 45 s, as in Apache Kafka).
BROKER_ARGS = (
    "--group-consumer-session-timeout-ms", "6000",
    "--group-consumer-heartbeat-interval-ms", "500",
)


def _tail(text: str, n: int = OUTPUT_TAIL_CHARS) -> str:
    return text if len(text) <= n else "[...]\n" + text[-n:]


class ToolError(AssertionError):
    pass


@dataclass
class ToolResult:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def __repr__(self) -> str:  # short: the details are in describe()
        return f"<ToolResult {self.cmd[self.cmd.index('-cp') + 2]} exit {self.returncode}>"

    def describe(self) -> str:
        return (
            f"$ {shlex.join(self.cmd)}\n"
            f"exit {self.returncode} after {self.seconds:.1f}s\n"
            f"----- stdout -----\n{_tail(self.stdout)}\n"
            f"----- stderr -----\n{_tail(self.stderr)}"
        )


class JavaProcess:
    """A Java program running in the background (KafkaTools.spawn): stdin is a
    pipe, stdout and stderr are collected line by line by reader threads."""

    def __init__(self, cmd: list[str], name: str):
        self.cmd = cmd
        self.name = name
        self.start_time = time.monotonic()
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=HERE,
            start_new_session=True,  # own process group: killpg reaches only it
        )
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout_lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _pump(self, stream, into: list[str]) -> None:
        for line in stream:
            with self._lock:
                into.append(line.rstrip("\n"))

    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def stdout(self) -> str:
        with self._lock:
            return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        with self._lock:
            return "\n".join(self.stderr_lines)

    def json_lines(self) -> list[dict]:
        """The stdout lines that are JSON objects, parsed."""
        with self._lock:
            lines = list(self.stdout_lines)
        out = []
        for line in lines:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def describe(self) -> str:
        rc = self.proc.poll()
        state = "running" if rc is None else f"exit {rc}"
        return (
            f"$ {shlex.join(self.cmd)}\n"
            f"[{self.name}] {state} after {time.monotonic() - self.start_time:.1f}s\n"
            f"----- stdout -----\n{_tail(self.stdout)}\n"
            f"----- stderr -----\n{_tail(self.stderr)}"
        )

    def close_stdin(self) -> None:
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout: float) -> int:
        """Wait up to `timeout` s for the exit; ToolError (after a kill) if it
        does not exit in time."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ToolError(f"{self.name} did not exit within {timeout:.0f}s (killed)\n{self.describe()}") from None
        for t in self._readers:
            t.join(timeout=5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.close_stdin()


class KafkaTools:
    """Runs Kafka's tools (and single-file Java programs) with the jars in `libs`."""

    def __init__(self, libs: Path, bootstrap: str, node_id: int):
        self.libs = Path(libs)
        self.bootstrap = bootstrap
        self.node_id = node_id
        self.spawned: list[JavaProcess] = []
        self.java = shutil.which("java")
        if self.java is None:
            pytest.fail("java not found on PATH (the suite needs Java 17+)", pytrace=False)

    def java_cmd(self, *args: str) -> list[str]:
        return [
            self.java,
            # Short-lived tools: fast start-up matters more than peak speed.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Xmx512m",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{self.libs}/*",
            *args,
        ]

    def run(
        self,
        main: str,
        *args: str,
        input: str | None = None,
        timeout: float = TOOL_TIMEOUT_S,
        check: bool = True,
        bootstrap: bool = True,
    ) -> ToolResult:
        """Run `main` (a class name or a .java file) with `args`, bounded by
        `timeout` seconds. `--bootstrap-server` is added unless bootstrap=False.
        Raises ToolError with the full command output when it fails (exit code
        != 0 and check=True) or times out."""
        argv = list(args)
        if bootstrap:
            argv = ["--bootstrap-server", self.bootstrap, *argv]
        cmd = self.java_cmd(main, *argv)
        start = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=HERE,
            )
        except subprocess.TimeoutExpired as e:
            res = ToolResult(
                cmd,
                -9,
                _decode(e.stdout),
                _decode(e.stderr),
                time.monotonic() - start,
            )
            raise ToolError(f"timed out after {timeout:.0f}s (killed)\n{res.describe()}") from None
        res = ToolResult(cmd, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
        if check and proc.returncode != 0:
            raise ToolError(f"tool failed\n{res.describe()}")
        return res

    def spawn(self, main: str, *args: str, name: str | None = None) -> JavaProcess:
        """Start `main` (a class name or a .java file) with `args` in the
        background. The caller stops it (JavaProcess.close_stdin/wait/kill);
        whatever still runs is killed at the end of the session."""
        proc = JavaProcess(self.java_cmd(main, *args), name or Path(main).name)
        self.spawned.append(proc)
        return proc

    def kill_spawned(self) -> None:
        for p in self.spawned:
            p.kill()

    # -- conveniences --------------------------------------------------------
    def topics(self, *args: str, **kw) -> ToolResult:
        return self.run(TOPICS, *args, **kw)

    def groups(self, *args: str, check: bool = True, **kw) -> ToolResult:
        """kafka-consumer-groups. It exits 0 even when the command failed and
        prints "Error: ..." instead; with check=True that is a ToolError too."""
        res = self.run(CONSUMER_GROUPS, *args, check=check, **kw)
        if check and any(line.startswith("Error:") for line in res.stdout.splitlines()):
            raise ToolError(f"kafka-consumer-groups reported an error\n{res.describe()}")
        return res

    def create_topic(self, topic: str, partitions: int, *extra: str) -> None:
        res = self.topics(
            "--create", "--topic", topic,
            "--partitions", str(partitions),
            "--replication-factor", "1",
            *extra,
        )
        if f"Created topic {topic}." not in res.stdout:
            raise ToolError(f"no 'Created topic {topic}.'\n{res.describe()}")


def _decode(b) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


class ExternalBroker:
    """A broker that runs elsewhere (KAFKA_BOOTSTRAP): nothing to start or stop."""

    name = "external"

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def log_tail(self) -> str:
        return "[external broker: no log]"


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    env = os.environ.get("SLUICE_KAFKA_LIBS")
    if env:
        libs = Path(env)
    else:
        script = REPO / "scripts" / "tools"
        try:
            proc = subprocess.run(
                [str(script), "kafka-server-jars"], capture_output=True, text=True, timeout=900,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{script} did not finish within 900s", pytrace=False)
        if proc.returncode != 0:
            pytest.fail(
                f"{script} failed ({proc.returncode}):\n{_tail(proc.stderr)}", pytrace=False
            )
        # One NAME=PATH line, the path quoted for the shell.
        printed = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        libs = Path(shlex.split(printed["KAFKA_SERVER_LIBS"])[0])
    if not any(libs.glob("kafka-tools-*.jar")) or not any(libs.glob("kafka-clients-*.jar")):
        pytest.fail(f"no kafka-tools/kafka-clients jars in {libs}", pytrace=False)
    return libs


@pytest.fixture(scope="session")
def target(request, tmp_path_factory):
    """The broker under test, shared by the whole session (tests use their own
    topics and groups): the sluice binary, or KAFKA_BOOTSTRAP when set."""
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield ExternalBroker(external), int(os.environ.get("KAFKA_NODE_ID", "0"))
        return
    binary = request.getfixturevalue("broker_bin")
    factory = _fx.BrokerFactory(binary, tmp_path_factory.mktemp("kafka-tools-broker"))
    try:
        # Its log goes into failure reports.
        broker = factory.start(extra_args=BROKER_ARGS, name="sluice")
        yield broker, 0  # --node-id defaults to 0
    finally:
        factory.close()


@pytest.fixture(scope="session")
def tools(kafka_libs, target) -> KafkaTools:
    broker, node_id = target
    t = KafkaTools(kafka_libs, broker.bootstrap, node_id)
    try:
        yield t
    finally:
        t.kill_spawned()


@pytest.fixture
def unique():
    """unique('name') -> 'name-<random>', for topics and groups."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"


def pytest_report_header(config):
    if os.environ.get("KAFKA_BOOTSTRAP"):
        return f"broker: external at {os.environ['KAFKA_BOOTSTRAP']}"
    return f"sluice-broker: {os.environ.get('SLUICE_BROKER_BIN', '<SLUICE_BROKER_BIN unset>')}"
