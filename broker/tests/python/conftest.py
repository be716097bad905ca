"""Fixtures that run the real `sluice-broker` binary for the client tests.

The binary comes from the environment variable SLUICE_BROKER_BIN (scripts/test
sets it to the freshly built debug binary). Every broker runs on free loopback
ports with its storage in a pytest tmp dir, is waited for through
`GET /readyz` on its metrics port, and is always stopped at teardown (SIGTERM,
then SIGKILL), with a bound on every wait.

`iceberg_rest` runs Apache Iceberg's REST catalog server the same way, from the
jars in SLUICE_ICEBERG_REST_LIBS (scripts/test sets it from `scripts/tools
iceberg-rest`), ready once `GET /v1/config` says 200; it needs no broker.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# Start-up bound; SLUICE_TEST_READY_TIMEOUT_S raises it on a slow machine.
READY_TIMEOUT_S = float(os.environ.get("SLUICE_TEST_READY_TIMEOUT_S", "30"))
STOP_TIMEOUT_S = 15.0
KILL_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 120

# Every broker process started by this session, so that none outlives pytest
# even when a fixture's teardown never ran (e.g. an interrupted run).
_PROCS: set[subprocess.Popen] = set()
# Brokers (and Iceberg REST servers) owned by fixtures that are still set up;
# their logs are attached to the report of a failing test.
_ACTIVE: list["Broker | IcebergRest"] = []


def _kill_leftovers() -> None:
    for proc in list(_PROCS):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            try:
                proc.wait(timeout=KILL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_leftovers)


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET `url`; returns (status, body). HTTP error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Broker:
    """One `sluice-broker` node with its own storage directory.

    `start()` may be called again after `stop()`/`kill()`: the broker restarts
    on the same storage and, by default, on the same ports.
    """

    def __init__(self, binary: str, workdir: Path, extra_args=(), name: str = "broker",
                 data_dir: Path | None = None):
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Brokers of one fleet share a data dir (one bucket).
        self.data_dir = Path(data_dir) if data_dir else self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.extra_args = [str(a) for a in extra_args]
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_path: Path | None = None
        self.kafka_port: int | None = None
        self.metrics_port: int | None = None
        self._log_file = None

    # -- addresses ---------------------------------------------------------
    @property
    def storage_url(self) -> str:
        # An absolute path gives file:///abs/path.
        return f"file://{self.data_dir.resolve()}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def metrics_addr(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    def url(self, path: str) -> str:
        return f"http://{self.metrics_addr}{path}"

    # -- lifecycle ---------------------------------------------------------
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, new_ports: bool = False) -> "Broker":
        assert not self.running(), "broker already running"
        if self.kafka_port is None or new_ports:
            self.kafka_port, self.metrics_port = free_ports(2)
        self.starts += 1
        self.log_path = self.workdir / f"{self.name}-{self.starts}.log"
        args = [
            self.binary,
            "--listen", self.bootstrap,
            "--metrics-listen", self.metrics_addr,
            "--storage", self.storage_url,
            *self.extra_args,
        ]
        # The broker reads every flag from SLUICE_* too: keep the caller's
        # environment from changing what the test asked for.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env.setdefault("RUST_BACKTRACE", "1")
        self._close_log()
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(("$ " + " ".join(args) + "\n").encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
            start_new_session=True,  # own process group: killpg reaches only it
        )
        _PROCS.add(self.proc)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(
                    f"{self.name} exited with {rc} before it was ready\n{self.log_tail()}",
                    pytrace=False,
                )
            try:
                status, body = http_get(self.url("/readyz"), timeout=1.0)
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:200]!r}"
            except (OSError, urllib.error.URLError) as e:
                last = repr(e)
            time.sleep(0.1)
        self.kill()
        pytest.fail(
            f"{self.name} not ready within {timeout:.0f}s at {self.url('/readyz')} "
            f"(last: {last})\n{self.log_tail()}",
            pytrace=False,
        )

    def send_signal(self, sig: int) -> None:
        if self.running():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Send `sig` and wait up to `timeout` s. Returns the exit code, or None
        when the broker did not exit in time (it is then killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL (kill -9) the broker and reap it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=KILL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def shutdown(self) -> None:
        """Teardown: SIGTERM, bounded wait, then SIGKILL. Never raises."""
        try:
            if self.running():
                self.stop(signal.SIGTERM, STOP_TIMEOUT_S)
            self.kill()
        finally:
            self._close_log()
            if self.proc is not None:
                _PROCS.discard(self.proc)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.log_path is None or not self.log_path.exists():
            return f"[{self.name}: no log]"
        text = self.log_path.read_text(errors="replace").splitlines()
        tail = "\n".join(text[-lines:])
        return f"----- {self.log_path} (last {min(lines, len(text))} lines) -----\n{tail}"


class BrokerFactory:
    """Starts brokers on demand and shuts all of them down at teardown."""

    def __init__(self, binary: str, base: Path):
        self.binary = binary
        self.base = Path(base)
        self.brokers: list[Broker] = []

    def start(self, extra_args=(), name: str | None = None, data_dir: Path | None = None,
              ports: tuple[int, int] | None = None) -> Broker:
        """`ports`: the (Kafka, metrics) ports, when `extra_args` must name them (e.g.
        in `--listeners`); free ones otherwise."""
        name = name or f"broker{len(self.brokers)}"
        b = Broker(self.binary, self.base / name, extra_args, name=name, data_dir=data_dir)
        if ports is not None:
            b.kafka_port, b.metrics_port = ports
        self.brokers.append(b)
        _ACTIVE.append(b)
        return b.start()

    def close(self) -> None:
        for b in self.brokers:
            b.shutdown()
            if b in _ACTIVE:
                _ACTIVE.remove(b)


class IcebergRest:
    """Apache Iceberg's REST catalog server (RESTCatalogServer, run by our launcher
    on 127.0.0.1 only: scripts/iceberg-rest/), on a free port, with its warehouse
    and its sqlite catalog (catalog.db) in `warehouse`, metadata on local files."""

    MAIN = "org.apache.iceberg.rest.SluiceRESTCatalogServer"

    def __init__(self, libs: str, warehouse: Path, log_path: Path):
        self.libs = libs
        self.warehouse = Path(warehouse).resolve()
        self.log_path = Path(log_path)
        self.name = "iceberg-rest"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> "IcebergRest":
        """Starts the server, on `port` when given (a restart on the same address)."""
        java = shutil.which("java")
        if java is None:
            pytest.fail("java not found on PATH (the Iceberg REST server needs Java 17+)",
                        pytrace=False)
        (self.port,) = free_ports(1) if port is None else (port,)
        args = [java, "-cp", f"{self.libs}/*", self.MAIN,
                "--warehouse", str(self.warehouse), "--port", str(self.port)]
        # The server reads catalog properties from CATALOG_*: only the flags count.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_")}
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(("$ " + " ".join(args) + "\n").encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        _PROCS.add(self.proc)
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(f"iceberg REST server exited with {rc} before it answered\n"
                            f"{self.log_tail()}", pytrace=False)
            try:
                status, body = http_get(f"{self.uri}/v1/config", timeout=1.0)
                if status == 200:
                    return self
                last = f"HTTP {status}: {body[:200]!r}"
            except (OSError, urllib.error.URLError) as e:
                last = repr(e)
            time.sleep(0.1)
        self.shutdown()
        pytest.fail(f"iceberg REST server not ready within {READY_TIMEOUT_S:.0f}s at "
                    f"{self.uri}/v1/config (last: {last})\n{self.log_tail()}", pytrace=False)

    def shutdown(self) -> None:
        """SIGTERM, bounded wait, then SIGKILL. Never raises."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                except (OSError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    try:
                        self.proc.wait(timeout=KILL_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        pass
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            if self.proc is not None:
                _PROCS.discard(self.proc)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.exists():
            return f"[{self.name}: no log]"
        text = self.log_path.read_text(errors="replace").splitlines()
        tail = "\n".join(text[-lines:])
        return f"----- {self.log_path} (last {min(lines, len(text))} lines) -----\n{tail}"


@pytest.fixture(scope="session")
def iceberg_rest_libs() -> str:
    libs = os.environ.get("SLUICE_ICEBERG_REST_LIBS")
    if not libs:
        pytest.fail(
            "SLUICE_ICEBERG_REST_LIBS is not set: point it at the jars of "
            "`scripts/tools iceberg-rest` (scripts/test does)",
            pytrace=False,
        )
    if not os.path.isfile(os.path.join(libs, "sluice-iceberg-rest.jar")):
        pytest.fail(f"SLUICE_ICEBERG_REST_LIBS={libs!r} has no sluice-iceberg-rest.jar "
                    "(`scripts/tools iceberg-rest` makes it)", pytrace=False)
    return libs


@pytest.fixture
def iceberg_rest(iceberg_rest_libs, tmp_path) -> IcebergRest:
    """A fresh Iceberg REST catalog; its warehouse is tmp_path/iceberg-warehouse."""
    server = IcebergRest(iceberg_rest_libs, tmp_path / "iceberg-warehouse",
                         tmp_path / "iceberg-rest.log")
    _ACTIVE.append(server)
    try:
        yield server.start()
    finally:
        server.shutdown()
        _ACTIVE.remove(server)


@pytest.fixture(scope="session")
def broker_bin() -> str:
    path = os.environ.get("SLUICE_BROKER_BIN")
    if not path:
        pytest.fail(
            "SLUICE_BROKER_BIN is not set: point it at the sluice-broker binary "
            "(scripts/test does: $CARGO_TARGET_DIR/debug/sluice-broker)",
            pytrace=False,
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"SLUICE_BROKER_BIN={path!r} is not an executable file", pytrace=False)
    return path


@pytest.fixture
def broker_factory(broker_bin, tmp_path):
    factory = BrokerFactory(broker_bin, tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def broker(broker_bin, tmp_path_factory) -> Broker:
    """One broker with default settings, shared by the tests of a module."""
    factory = BrokerFactory(broker_bin, tmp_path_factory.mktemp("shared-broker"))
    yield factory.start(name="shared")
    factory.close()


def pytest_report_header(config):
    return [
        f"sluice-broker: {os.environ.get('SLUICE_BROKER_BIN', '<SLUICE_BROKER_BIN unset>')}",
        "iceberg REST libs: "
        f"{os.environ.get('SLUICE_ICEBERG_REST_LIBS', '<SLUICE_ICEBERG_REST_LIBS unset>')}",
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in list(_ACTIVE):
            rep.sections.append((f"{b.name} log", b.log_tail()))
