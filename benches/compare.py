#!/usr/bin/env python3
"""Side-by-side benchmark runner: Sluice (file bucket, S3 on loopback), Apache Kafka
(KRaft) and Tansu (S3 on loopback), and Sluice and Kafka again with their clients on
SASL_SSL (TLS + SCRAM-SHA-512), one at a time, on the same CPUs and memory cap,
driven by the same load generator (sluice-bench, librdkafka).

Run it through `benches/compare`, which builds and fetches the binaries and sets:
  SLUICE_BROKER_BIN   sluice-broker (release)
  SLUICE_BENCH_BIN    sluice-bench (release)
  KAFKA_SERVER_LIBS   folder of the Kafka broker jars (scripts/tools kafka-server-jars)
  KAFKA_VERSION       their version
  TANSU_BIN           tansu (scripts/tools tansu)
  MOTO_SERVER         moto_server (the S3-compatible server)
The Kafka jars and Tansu are only needed when the run includes that broker
(--list-brokers tells the wrapper which do).

For each broker: start it (fresh data dir / bucket), run every workload, and record
the load generator's JSON line plus the broker's CPU-seconds (utime+stime of the
process and its reaped children, /proc/<pid>/stat), peak RSS (VmHWM, reset before
each workload through /proc/<pid>/clear_refs) and the object requests: counted at
the S3 server (moto's request log) for every broker on S3, and from Sluice's own
/metrics for the file bucket. Then write results.json, comparison.md and PNG plots.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
CGROUP_MEM = Path("/sys/fs/cgroup/memory")

BROKERS = ["sluice-file", "sluice-s3", "kafka", "tansu-s3", "sluice-file-sasl-ssl", "kafka-sasl-ssl"]
# --short (CI) runs only these: Tansu is a peer only the full run needs, and building it
# costs 20-30 minutes on a cold machine.
SHORT_BROKERS = ["sluice-file", "sluice-s3", "kafka", "sluice-file-sasl-ssl", "kafka-sasl-ssl"]
LABELS = {
    "sluice-file": "Sluice (file)",
    "sluice-s3": "Sluice (S3)",
    "kafka": "Kafka",
    "tansu-s3": "Tansu (S3)",
    "sluice-file-sasl-ssl": "Sluice (file, SASL_SSL)",
    "kafka-sasl-ssl": "Kafka (SASL_SSL)",
}
# Ratios reported: (numerator, denominator). The last three: what TLS and SCRAM cost each
# broker of its own plaintext figures, and the two secured brokers side by side.
RATIOS = [
    ("sluice-file", "kafka"),
    ("sluice-s3", "kafka"),
    ("sluice-s3", "tansu-s3"),
    ("sluice-file", "tansu-s3"),
    ("sluice-file-sasl-ssl", "sluice-file"),
    ("kafka-sasl-ssl", "kafka"),
    ("sluice-file-sasl-ssl", "kafka-sasl-ssl"),
]
# The SCRAM user of the SASL_SSL runs.
BENCH_USER, BENCH_PASSWORD = "bench", "bench-secret"


def log(msg):
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


# ------------------------------------------------------------------ process accounting


def cpu_seconds(pid):
    """utime + stime of the process and its reaped children, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime..cstime are fields 14..17
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemCgroup:
    """A cgroup v1 memory cgroup capping one broker (skipped where not writable)."""

    def __init__(self, name, limit_mib):
        self.path = CGROUP_MEM / f"sluice-bench-{name}-{os.getpid()}"
        self.ok = False
        if limit_mib <= 0:
            return
        try:
            self.path.mkdir()
            (self.path / "memory.limit_in_bytes").write_text(str(limit_mib << 20))
            self.ok = True
        except OSError as e:
            log(f"no memory cgroup ({e}); running without a memory cap")

    def preexec(self):
        if self.ok:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self):
        if self.ok:
            for _ in range(50):
                try:
                    self.path.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


class Proc:
    def __init__(self, name, argv, env, logfile, cpus, cgroup=None, cwd=None):
        self.name = name
        self.logfile = open(logfile, "wb")
        argv = ["taskset", "-c", cpus, *argv]
        self.popen = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            preexec_fn=cgroup.preexec if cgroup else None,
        )
        self.pid = self.popen.pid

    def stop(self, grace=30):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop in {grace}s: SIGKILL")
                self.popen.kill()
                self.popen.wait()
        self.logfile.close()


# ------------------------------------------------------------------ the S3 server


class Moto:
    """moto_server on a free loopback port; counts object requests from its request log."""

    # werkzeug's access log; lines of error statuses are wrapped in ANSI colour codes.
    # Every request counts, refused ones included (a 412 on a conditional PUT is billed).
    REQ = re.compile(rb'"(?:\x1b\[[0-9;]*m)*(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP/[\d.]+(?:\x1b\[[0-9;]*m)*" (\d+)')

    def __init__(self, workdir, cpus):
        self.port = free_port()
        self.log = Path(workdir) / "moto.log"
        self.proc = Proc(
            "moto",
            [os.environ.get("MOTO_SERVER", "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            {},
            self.log,
            cpus,
        )
        wait_port(self.port, self.proc.popen)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def create_bucket(self, bucket):
        req = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
        urllib.request.urlopen(req, timeout=10).read()

    def env(self):
        return {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def counts(self):
        """Object requests so far, by kind (put, get, list, head, delete, post)."""
        out = {"put": 0, "get": 0, "list": 0, "head": 0, "delete": 0, "post": 0}
        data = self.log.read_bytes()
        for m in self.REQ.finditer(data):
            method, path = m.group(1).decode(), m.group(2).decode()
            key_part = path.split("?", 1)[0].strip("/")
            is_bucket = "/" not in key_part
            if method == "GET":
                out["list" if is_bucket else "get"] += 1
            elif method == "PUT":
                if not is_bucket:
                    out["put"] += 1
            elif method == "POST" and re.search(r"[?&]delete(=|&|$)", path):
                out["delete"] += 1  # DeleteObjects: a batch delete, free like DELETE
            else:
                out[method.lower()] += 1  # POST: multipart upload create / complete
        return out

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.stop(10)


# ------------------------------------------------------------------ brokers


class Broker:
    """One broker under test. Subclasses start it; `object_counts` reads its object
    requests (None when it keeps no objects)."""

    kind = ""
    version = ""

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = Path(workdir)
        self.port = free_port()
        self.moto = None
        self.proc = None
        self.cgroup = MemCgroup(self.kind, args.memory_mib)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    # Set by `secure()`: the certificates, and the client settings of the SASL_SSL listener.
    certs = None

    def secure(self):
        """Makes a certificate for 127.0.0.1 (the test suite's tls_certs, one CA)."""
        sys.path.insert(0, str(ROOT / "broker" / "tests" / "python"))
        from tls_certs import Certs

        self.certs = Certs(self.workdir)

    def client_args(self):
        """The load generator's `--client-config` arguments for this broker."""
        if self.certs is None:
            return []
        settings = {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": BENCH_USER,
            "sasl.password": BENCH_PASSWORD,
            "ssl.ca.location": self.certs.ca,
        }
        return [a for k, v in settings.items() for a in ("--client-config", f"{k}={v}")]

    def object_counts(self):
        return self.moto.counts() if self.moto else None

    def stop(self):
        if self.proc:
            self.proc.stop()
        if self.moto:
            self.moto.stop()
        self.cgroup.remove()


class Sluice(Broker):
    def __init__(self, args, workdir, storage, sasl_ssl=False):
        self.kind = f"sluice-{storage}" + ("-sasl-ssl" if sasl_ssl else "")
        super().__init__(args, workdir)
        security = []
        if sasl_ssl:
            # One SASL_SSL listener, SCRAM-SHA-512; the bench user is a super user, so
            # the authorizer (on with SASL) allows it everything after one check.
            self.secure()
            users = self.workdir / "users.txt"
            users.write_text(f"{BENCH_USER}={BENCH_PASSWORD}\n")
            security = [
                "--listeners", f"SASL_SSL://{self.bootstrap}",
                "--ssl-certificate-file", self.certs.server,
                "--ssl-key-file", self.certs.server_key,
                "--sasl-bootstrap-users-file", str(users),
                "--super-users", f"User:{BENCH_USER}",
                # A lone broker never forwards, but a SASL_SSL listener needs these.
                "--inter-broker-user", BENCH_USER,
                "--inter-broker-ssl-ca-file", self.certs.ca,
            ]
        self.metrics_port = free_port()
        binary = os.environ["SLUICE_BROKER_BIN"]
        self.version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True
        ).stdout.strip() or "sluice-broker"
        self.version += f" ({git_rev()})"
        env = {"RUST_LOG": "warn"}
        if storage == "s3":
            self.moto = Moto(workdir, args.client_cpus)
            self.moto.create_bucket("sluice-bench")
            env.update(self.moto.env())
            url = "s3://sluice-bench/cluster"
        else:
            data = self.workdir / "bucket"
            data.mkdir()
            url = f"file://{data}"
        self.proc = Proc(
            self.kind,
            [
                binary,
                "--listen", self.bootstrap,
                "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
                "--storage", url,
                "--node-id", "0",
                "--default-partitions", str(args.partitions),
                *security,
            ],
            env,
            self.workdir / "broker.log",
            args.broker_cpus,
            self.cgroup,
        )
        deadline = time.time() + 120
        while True:
            if self.proc.popen.poll() is not None:
                raise RuntimeError(f"sluice-broker exited with {self.proc.popen.returncode}")
            try:
                if http_get(f"http://127.0.0.1:{self.metrics_port}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("sluice-broker not ready after 120s")
            time.sleep(0.1)

    def own_counts(self):
        _, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        out = {}
        for m in re.finditer(r'^sluice_object_requests_total\{op="(\w+)"\} (\S+)$', text, re.M):
            out[m.group(1)] = int(float(m.group(2)))
        return out

    def object_counts(self):
        if self.moto:
            return self.moto.counts()
        return self.own_counts()


class Kafka(Broker):
    kind = "kafka"

    def __init__(self, args, workdir, sasl_ssl=False):
        if sasl_ssl:
            self.kind = "kafka-sasl-ssl"
        super().__init__(args, workdir)
        libs = os.environ["KAFKA_SERVER_LIBS"]
        self.version = f"Apache Kafka {os.environ.get('KAFKA_VERSION', '?')} (KRaft, combined broker+controller)"
        ctl = free_port()
        logs = self.workdir / "kafka-logs"
        props = self.workdir / "server.properties"
        if sasl_ssl:
            # Clients on SASL_SSL (SCRAM-SHA-512, a PEM key store), the broker's own
            # traffic on a PLAINTEXT listener of its own; no authorizer, like the
            # plaintext run.
            self.secure()
            keystore = self.workdir / "keystore.pem"
            keystore.write_text(Path(self.certs.server_key).read_text() + Path(self.certs.server).read_text())
            internal = free_port()
            listeners = [
                f"listeners=INTERNAL://127.0.0.1:{internal},SASL_SSL://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{ctl}",
                f"advertised.listeners=INTERNAL://127.0.0.1:{internal},SASL_SSL://127.0.0.1:{self.port}",
                "listener.security.protocol.map=INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=INTERNAL",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={keystore}",
            ]
            scram = ["--add-scram", f"SCRAM-SHA-512=[name={BENCH_USER},password={BENCH_PASSWORD}]"]
        else:
            listeners = [
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{ctl}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
            ]
            scram = []
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{ctl}",
                    *listeners,
                    "controller.listener.names=CONTROLLER",
                    f"log.dirs={logs}",
                    f"num.partitions={args.partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=16",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        heap = f"-Xmx{args.kafka_heap_mib}m"
        java = ["java", heap, f"-Xms{args.kafka_heap_mib}m", "-XX:+UseG1GC", "-cp", f"{libs}/*"]
        fmt = subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "-t", random_cluster_id(), "-c", str(props), *scram],
            capture_output=True,
            text=True,
        )
        if fmt.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {fmt.stdout}{fmt.stderr}")
        self.proc = Proc(
            "kafka",
            [*java, "kafka.Kafka", str(props)],
            {},
            self.workdir / "broker.log",
            args.broker_cpus,
            self.cgroup,
        )
        wait_port(self.port, self.proc.popen)


def random_cluster_id():
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class Tansu(Broker):
    kind = "tansu-s3"

    def __init__(self, args, workdir):
        super().__init__(args, workdir)
        binary = os.environ["TANSU_BIN"]
        self.version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True
        ).stdout.strip() or "tansu"
        self.version += " (dynostore on S3)"
        self.moto = Moto(workdir, args.client_cpus)
        self.moto.create_bucket("tansu-bench")
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = Proc(
            "tansu",
            [
                binary,
                "broker",
                "--listener-url", url,
                "--advertised-listener-url", url,
                "--storage-engine", "s3://tansu-bench/",
                "--cluster-id", "bench",
            ],
            {**self.moto.env(), "RUST_LOG": "warn"},
            self.workdir / "broker.log",
            args.broker_cpus,
            self.cgroup,
        )
        wait_port(self.port, self.proc.popen)


def git_rev():
    r = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return r.stdout.strip() or "unknown"


def start_broker(name, args, workdir):
    if name == "sluice-file":
        return Sluice(args, workdir, "file")
    if name == "sluice-s3":
        return Sluice(args, workdir, "s3")
    if name == "kafka":
        return Kafka(args, workdir)
    if name == "sluice-file-sasl-ssl":
        return Sluice(args, workdir, "file", sasl_ssl=True)
    if name == "kafka-sasl-ssl":
        return Kafka(args, workdir, sasl_ssl=True)
    if name == "tansu-s3":
        return Tansu(args, workdir)
    raise ValueError(name)


# ------------------------------------------------------------------ workloads


def workloads(args):
    s = str(args.seconds)
    b = str(args.backlog_mib)
    r = str(args.rate)
    return [
        ("produce-1p", ["produce", "--producers", "1", "--seconds", s]),
        ("produce-4p", ["produce", "--producers", "4", "--seconds", s]),
        ("latency", ["latency", "--rate", r, "--seconds", s]),
        ("end-to-end", ["end-to-end", "--rate", r, "--seconds", s]),
        ("catchup", ["catchup", "--backlog-mib", b, "--rate", r]),
        ("fanout", ["fanout", "--backlog-mib", b, "--groups", str(args.groups), "--members", "2"]),
    ]


def add_request_rates(row, gib):
    """Object requests per GiB in S3's two price classes: PUT-class (PUT, POST for
    multipart uploads, LIST; COPY is not used) and GET-class (GET, HEAD). DELETEs are free."""
    d = row["object_requests"]
    row["puts_per_gib"] = (d.get("put", 0) + d.get("post", 0) + d.get("list", 0)) / gib
    row["gets_per_gib"] = (d.get("get", 0) + d.get("head", 0)) / gib


def run_workload(broker, name, wl_args, args, workdir, attempt=1):
    pid = broker.proc.pid
    can_reset = reset_peak_rss(pid)
    cpu0 = cpu_seconds(pid)
    store_cpu0 = broker.moto.cpu() if broker.moto else None
    obj0 = broker.object_counts()
    argv = [
        "taskset", "-c", args.client_cpus,
        os.environ["SLUICE_BENCH_BIN"],
        "--bootstrap", broker.bootstrap,
        *broker.client_args(),
        "--topic-prefix", f"bench-{name}" + (f"-try{attempt}" if attempt > 1 else ""),
        "--partitions", str(args.partitions),
        "--record-size", str(args.record_size),
        "--idempotence", "true" if args.idempotence else "false",
        *wl_args,
    ]
    perf = None
    if args.perf and broker.kind.startswith("sluice") and name in PROFILED:
        perf_data = Path(workdir) / f"perf-{name}.data"
        perf = subprocess.Popen(
            ["taskset", "-c", args.client_cpus, "perf", "record", "-F", "299", "-g",
             "--call-graph", "dwarf,16384", "-p", str(pid), "-o", str(perf_data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    t0 = time.time()
    errfile = Path(workdir) / f"{name}-{attempt}.stderr"
    with open(errfile, "wb") as err:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, timeout=args.workload_timeout)
    wall = time.time() - t0
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
        perf_report(perf_data, Path(args.out_dir) / f"profile-{broker.kind}-{name}.txt")
    # Let the broker finish work the workload caused (acks are in; flushes may lag).
    cpu1 = cpu_seconds(pid)
    rss = status_kib(pid, "VmHWM")
    obj1 = broker.object_counts()
    row = {"workload": name, "wall_seconds": wall, "ok": p.returncode == 0}
    if p.returncode != 0:
        row["error"] = errfile.read_text(errors="replace")[-2000:]
        log(f"  {name}: FAILED: {row['error'].strip().splitlines()[-1] if row['error'].strip() else p.returncode}")
        return row
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    row.update(out)
    gib = (out.get("bytes_in", 0) + out.get("bytes_out", 0)) / 2**30
    row["broker_cpu_seconds"] = cpu1 - cpu0
    row["cpu_s_per_gib"] = (cpu1 - cpu0) / gib if gib > 0 else None
    row["peak_rss_mib"] = rss / 1024
    row["peak_rss_scope"] = "workload" if can_reset else "process"
    if broker.moto:
        row["s3_server_cpu_seconds"] = broker.moto.cpu() - store_cpu0
    if obj0 is not None and obj1 is not None:
        delta = {k: obj1.get(k, 0) - obj0.get(k, 0) for k in set(obj0) | set(obj1)}
        row["object_requests"] = delta
        row["object_requests_source"] = "s3-server log" if broker.moto else "sluice /metrics"
        if gib > 0:
            add_request_rates(row, gib)
    if not out.get("mb_per_s"):
        row["ok"] = False
        row["error"] = "zero throughput"
    summary = f"{out['mb_per_s']:.1f} MB/s, cpu {row['broker_cpu_seconds']:.1f}s, rss {row['peak_rss_mib']:.0f} MiB"
    for key in ("ack_latency", "e2e_latency"):
        if out.get(key):
            summary += f", {key} p50 {out[key]['p50_ms']:.1f} p99 {out[key]['p99_ms']:.1f} ms"
    log(f"  {name}: {summary}")
    return row


# ------------------------------------------------------------------ profile

# Workloads profiled with --perf: the produce and the fetch (catch-up read) hot paths.
PROFILED = ("produce-4p", "catchup")


# Frames of the runtime and the standard library that every sample passes through: left
# out of the inclusive view so that what remains says where the time goes.
GENERIC_FRAME = re.compile(
    r"\] (tokio::runtime|std::|core::|alloc::|<alloc::|<core::|<std::|<tokio::runtime|start_thread|clone3|"
    r"__rust_begin|<F as core|tokio::loom|tokio::task::|<tokio::task)"
)


def trim_profile(text):
    """Keeps the self-time view and, of the inclusive view, the frames that are not
    generic runtime plumbing (at most 80 lines), without perf's padding."""
    out, inclusive, kept = [], False, 0
    for line in text.splitlines():
        line = re.sub(r"\s+-\s+-\s*$", "", line.rstrip())
        if line.startswith("===="):
            inclusive = "inclusive" in line
            out.append(line)
            continue
        if inclusive:
            if GENERIC_FRAME.search(line) or kept >= 80:
                continue
            kept += 1
        out.append(line)
    return "\n".join(out) + "\n"


def perf_report(data, out):
    """Writes the self-time and the inclusive (children) view of a perf recording."""
    parts = []
    for title, extra in (
        ("self time by symbol", ["--no-children", "--sort", "symbol"]),
        ("inclusive time by symbol (callees included)", ["--children", "--sort", "symbol"]),
    ):
        r = subprocess.run(
            ["perf", "report", "-i", str(data), "--stdio", "-g", "none", "--percent-limit", "0.7", *extra],
            capture_output=True, text=True,
        )
        parts.append(f"==== {title}\n" + "\n".join(line for line in r.stdout.splitlines() if line and not line.startswith("#")))
    out.write_text(trim_profile("\n\n".join(parts) + "\n"))
    log(f"  profile: {out}")


# ------------------------------------------------------------------ report


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "load_before": open("/proc/loadavg").read().split()[:3],
    }


def failures_exist(rows, brokers):
    return any(not r.get("ok") or r.get("first_attempt_error") for b in brokers for r in rows[b].values())


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float) and (v != v):
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"


def lat(r, key, p):
    v = r.get(key)
    return v.get(p) if isinstance(v, dict) else None


def write_report(results, args, out):
    brokers = [b for b in BROKERS if b in results["brokers"]]
    rows = {b: {r["workload"]: r for r in results["brokers"][b]["workloads"]} for b in brokers}
    names = [n for n, _ in workloads(args)]
    ratios = [(a, b) for a, b in RATIOS if a in brokers and b in brokers]
    m = results["machine"]
    lines = [
        "# Sluice vs Apache Kafka vs Tansu (and both over SASL_SSL)",
        "",
        f"Generated by `{results['command'].strip()}` on {results['finished']} "
        f"({'short CI mode: figures prove the harness works, not the brokers' if args.short else 'full run'}).",
        "",
        "## Machine and method",
        "",
        f"- CPU: {m['cpu']}, {m['nproc']} logical CPUs, {m['memory_gib']} GiB memory, Linux {m['kernel']}; "
        f"load average before the run {' '.join(m['load_before'])}. The machine was shared with other "
        "work (builds) during the run, so absolute figures are noisy; the ratios compare brokers "
        "measured in the same run, one after the other.",
        f"- Each broker ran alone, pinned to CPU(s) `{args.broker_cpus}` (taskset), memory capped at "
        f"{args.memory_mib} MiB (cgroup v1 memory.limit_in_bytes{'' if results['memory_cap'] else ': not available here, so no cap'}); "
        f"Kafka's heap -Xms/-Xmx{args.kafka_heap_mib}m inside that cap. The load generator and the S3 server "
        f"(moto) ran on CPU(s) `{args.client_cpus}`.",
        f"- Fresh data directory / bucket per broker; topics of {args.partitions} partitions, "
        f"{args.record_size}-byte records, acks=all, idempotence {'on' if args.idempotence else 'off'}, "
        "no compression, librdkafka (rdkafka crate) for every client.",
        f"- Workloads: {args.seconds:g} s measured phase; fixed rate {args.rate:g} records/s for the latency "
        f"workloads and the live producer of the catch-up; backlog {args.backlog_mib} MiB for catch-up and "
        f"fan-out ({args.groups} groups of 2 members).",
        "- CPU-seconds: utime+stime of the broker process (and reaped children) from /proc/<pid>/stat "
        "over the whole workload, divided by the GiB produced plus consumed in it. Peak RSS: VmHWM, reset "
        "before each workload. Object requests: counted at the S3 server (moto's request log) for every "
        "broker on S3, and from Sluice's `sluice_object_requests_total` for the file bucket.",
        "",
        f"- Sluice and the load generator: {results['build_profile']} builds.",
        "",
        "| broker | version |",
        "| --- | --- |",
    ]
    for b in brokers:
        lines.append(f"| {LABELS[b]} | {results['brokers'][b]['version']} |")
    lines.append("")

    def table(title, specs):
        """specs: (row label, workload, getter) per row; a row with no value is left out."""
        head = ["workload"] + [LABELS[b] for b in brokers] + [f"{LABELS[a]} / {LABELS[b]}" for a, b in ratios]
        out = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for label, wl, get in specs:
            vals = {}
            cells = [label]
            for b in brokers:
                r = rows[b].get(wl)
                if r is None:
                    cells.append("not run")
                elif not r.get("ok"):
                    cells.append("failed")
                else:
                    vals[b] = get(r)
                    cells.append(fmt(vals[b]))
            if all(v is None for v in vals.values()):
                continue
            for a, b in ratios:
                cells.append(ratio(vals.get(a), vals.get(b)))
            out.append("| " + " | ".join(cells) + " |")
        return out + [""]

    def per_workload(get, skip=()):
        return [(n, n, get) for n in names if n not in skip]

    fixed_rate = ("latency", "end-to-end")
    lines += ["## Results", ""]
    if failures_exist(rows, brokers):
        lines += ["Failed workloads and retried ones are listed under Failures below.", ""]
    lines += table("Throughput (MB/s; higher is better)", per_workload(lambda r: r.get("mb_per_s"), fixed_rate))
    lat_rows = []
    for wl, key, label in (("latency", "ack_latency", "produce (send → ack)"),
                           ("end-to-end", "e2e_latency", "end-to-end (send → consumed)")):
        for p in ("p50", "p99", "p999"):
            lat_rows.append((f"{label} {p}", wl, lambda r, key=key, p=p: lat(r, key, p + "_ms")))
    lat_rows.append(("produce p99 during catch-up read", "catchup",
                     lambda r: lat(r.get("live_producer", {}), "ack_latency", "p99_ms")))
    lines += table(f"Latency at {args.rate:g} records/s (ms; lower is better)", lat_rows)
    lines += table("Broker CPU-seconds per GiB moved, in + out (lower is better)",
                   per_workload(lambda r: r.get("cpu_s_per_gib")))
    lines += table("Peak RSS during the workload (MiB; lower is better)", per_workload(lambda r: r.get("peak_rss_mib")))
    lines += table("Object PUT-class requests (PUT, multipart POST, LIST) per GiB moved (lower is better)",
                   per_workload(lambda r: r.get("puts_per_gib")))
    lines += table("Object GET-class requests (GET, HEAD) per GiB moved (lower is better)",
                   per_workload(lambda r: r.get("gets_per_gib")))
    failures = [(b, r["workload"], r.get("error", "")) for b in brokers for r in rows[b].values() if not r.get("ok")]
    failures += [(b, "(start)", results["brokers"][b]["error"]) for b in brokers if results["brokers"][b].get("error")]
    failures += [(b, r["workload"] + " (first attempt; the retry passed)", r["first_attempt_error"])
                 for b in brokers for r in rows[b].values() if r.get("ok") and r.get("first_attempt_error")]
    if failures:
        lines += ["## Failures", ""]
        for b, w, e in failures:
            last = e.strip().splitlines()[-1] if e.strip() else "?"
            lines.append(f"- {LABELS[b]} / {w}: `{last[:300]}`")
        lines.append("")
    lines += ["Plots: " + ", ".join(f"[{p}]({p})" for p in results.get("plots", [])), ""]
    (out / "comparison.md").write_text("\n".join(lines))


def plot(results, args, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plots")
        return []
    brokers = [b for b in BROKERS if b in results["brokers"]]
    rows = {b: {r["workload"]: r for r in results["brokers"][b]["workloads"] if r.get("ok")} for b in brokers}
    names = [n for n, _ in workloads(args)]
    colors = {"sluice-file": "#1f77b4", "sluice-s3": "#6baed6", "kafka": "#d62728", "tansu-s3": "#2ca02c",
              "sluice-file-sasl-ssl": "#08306b", "kafka-sasl-ssl": "#fc9272"}
    subtitle = f"{results['machine']['cpu']}, broker on CPU {args.broker_cpus}, {args.memory_mib} MiB cap"
    made = []

    def bars(fname, title, ylabel, get, groups, log_scale=False):
        fig, ax = plt.subplots(figsize=(10, 4.8))
        width = 0.8 / max(1, len(brokers))
        any_data = False
        for i, b in enumerate(brokers):
            xs, ys = [], []
            for j, g in enumerate(groups):
                v = get(b, g)
                if v is not None:
                    xs.append(j + (i - (len(brokers) - 1) / 2) * width)
                    ys.append(v)
            if ys:
                any_data = True
                ax.bar(xs, ys, width, label=LABELS[b], color=colors[b])
        if not any_data:
            plt.close(fig)
            return
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups)
        ax.set_ylabel(ylabel)
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(f"{title}\n{subtitle}", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        made.append(fname)

    def get(key):
        return lambda b, w: rows[b].get(w, {}).get(key)

    bars("throughput.png", "Throughput per workload", "MB/s", get("mb_per_s"),
         [n for n in names if n not in ("latency", "end-to-end")])
    lat_groups = [f"{w} {p}" for w in ("latency", "end-to-end") for p in ("p50", "p99", "p999")]

    def latget(b, g):
        w, p = g.split()
        key = "ack_latency" if w == "latency" else "e2e_latency"
        return lat(rows[b].get(w, {}), key, p + "_ms")

    bars("latency.png", f"Latency at {args.rate:g} records/s", "ms (log scale)", latget, lat_groups, log_scale=True)
    bars("cpu.png", "Broker CPU-seconds per GiB moved", "CPU-s / GiB (log scale)", get("cpu_s_per_gib"), names,
         log_scale=True)
    bars("rss.png", "Peak RSS of the broker", "MiB", get("peak_rss_mib"), names)
    bars("object-requests.png", "Object PUT-class requests per GiB moved (S3 server count; Sluice file: own metrics)",
         "PUT + POST + LIST per GiB (log scale)", get("puts_per_gib"), names, log_scale=True)
    return made


# ------------------------------------------------------------------ main


def report_only(path):
    results = json.loads(path.read_text())
    args = argparse.Namespace(**results["settings"])
    for entry in results["brokers"].values():
        for row in entry["workloads"]:
            gib = (row.get("bytes_in", 0) + row.get("bytes_out", 0)) / 2**30
            if row.get("object_requests") and gib > 0:
                add_request_rates(row, gib)
    out = path.parent
    results["plots"] = plot(results, args, out)
    path.write_text(json.dumps(results, indent=1))
    write_report(results, args, out)
    log(f"rewrote {out}/comparison.md and {len(results['plots'])} plots")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="a few seconds per workload (CI): proves it works")
    ap.add_argument("--brokers", help="comma-separated subset of " + ",".join(BROKERS)
                    + " (default: all of them; with --short " + ",".join(SHORT_BROKERS) + ")")
    ap.add_argument("--out", help="results folder (default benches/results; a temp folder with --short)")
    ap.add_argument("--seconds", type=float, help="measured phase per workload (default 20; 3 with --short)")
    ap.add_argument("--backlog-mib", type=int, help="catch-up and fan-out backlog (default 256; 8 with --short)")
    ap.add_argument("--rate", type=float, help="records/s of the fixed-rate workloads (default 1000; 200 with --short)")
    ap.add_argument("--groups", type=int, default=4, help="consumer groups of the fan-out (2 members each)")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--idempotence", default="false", choices=["true", "false"],
                    help="idempotent producers (default false: librdkafka's default; Tansu 0.6.0 "
                    "answers OutOfOrderSequenceNumber to pipelined idempotent batches)")
    ap.add_argument("--broker-cpus", default="1", help="taskset CPU list of the broker (default 1)")
    ap.add_argument("--client-cpus", default="0", help="taskset CPU list of the load generator and moto (default 0)")
    ap.add_argument("--memory-mib", type=int, default=2048, help="memory cap of each broker (0: none)")
    ap.add_argument("--kafka-heap-mib", type=int, default=1024)
    ap.add_argument("--workload-timeout", type=int, default=900)
    ap.add_argument("--retries", type=int, default=1,
                    help="attempts after a failed workload (default 1); a retried failure is reported")
    ap.add_argument("--perf", action="store_true",
                    help="record Sluice with perf during produce-4p and catchup (profile-*.txt); perturbs those figures")
    ap.add_argument("--report-only", metavar="RESULTS_JSON",
                    help="rewrite comparison.md and the plots from a results.json, run nothing")
    ap.add_argument("--list-brokers", action="store_true",
                    help="print the brokers this run would include, one a line, and exit "
                    "(benches/compare builds and fetches only what they need)")
    args = ap.parse_args()
    if args.brokers is None:
        args.brokers = ",".join(SHORT_BROKERS if args.short else BROKERS)
    selected = [b.strip() for b in args.brokers.split(",") if b.strip()]
    for b in selected:
        if b not in BROKERS:
            ap.error(f"unknown broker {b}")
    if args.list_brokers:
        if not args.report_only:  # which runs no broker
            print("\n".join(selected))
        return 0
    if args.report_only:
        return report_only(Path(args.report_only))
    args.idempotence = args.idempotence == "true"
    args.seconds = args.seconds or (3.0 if args.short else 20.0)
    args.backlog_mib = args.backlog_mib or (8 if args.short else 256)
    args.rate = args.rate or (200.0 if args.short else 1000.0)
    if args.out:
        out = Path(args.out)
    elif args.short:
        out = Path(tempfile.mkdtemp(prefix="sluice-bench-short-"))
    else:
        out = ROOT / "benches" / "results"
    out.mkdir(parents=True, exist_ok=True)
    args.out_dir = str(out)

    results = {
        "command": " ".join(["benches/compare", *sys.argv[1:]]),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "build_profile": os.environ.get("SLUICE_BENCH_PROFILE", "release"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "list_brokers")},
        "brokers": {},
    }
    probe = MemCgroup("probe", args.memory_mib)
    results["memory_cap"] = probe.ok
    probe.remove()
    failed = False
    with tempfile.TemporaryDirectory(prefix="sluice-compare-") as tmp:
        for name in selected:
            workdir = Path(tmp) / name
            workdir.mkdir()
            log(f"{LABELS[name]}: starting")
            entry = {"workloads": [], "version": ""}
            results["brokers"][name] = entry
            broker = None
            try:
                broker = start_broker(name, args, workdir)
                entry["version"] = broker.version
                log(f"{LABELS[name]}: {broker.version} on {broker.bootstrap} (pid {broker.proc.pid})")
                for wl, wl_args in workloads(args):
                    row = run_workload(broker, wl, wl_args, args, workdir)
                    if not row["ok"] and args.retries > 0 and broker.proc.popen.poll() is None:
                        # One more attempt on a fresh topic: a peer's transient error should
                        # not fail CI, but it is reported (comparison.md lists it).
                        log(f"  {wl}: retrying once")
                        first = row.get("error", "")
                        row = run_workload(broker, wl, wl_args, args, workdir, attempt=2)
                        row["first_attempt_error"] = first
                    entry["workloads"].append(row)
                    failed |= not row["ok"]
                    if broker.proc.popen.poll() is not None:
                        raise RuntimeError(f"broker exited with {broker.proc.popen.returncode}")
                entry["total_cpu_seconds"] = cpu_seconds(broker.proc.pid)
            except Exception as e:  # noqa: BLE001 - recorded in the report, run goes on
                failed = True
                entry["error"] = str(e)
                log(f"{LABELS[name]}: FAILED: {e}")
            finally:
                if broker:
                    broker.stop()
                # The data each broker wrote (GBs at full speed) goes before the next
                # broker starts, so a run needs the disk of one broker, not of all.
                for data in ("bucket", "kafka-logs"):
                    shutil.rmtree(workdir / data, ignore_errors=True)
                for f in ("broker.log", "moto.log"):
                    p = workdir / f
                    if p.exists() and (failed or args.short):
                        tail = p.read_text(errors="replace").splitlines()[-15:]
                        if tail and entry.get("error") or any(not r["ok"] for r in entry["workloads"]):
                            log(f"last lines of {name}/{f}:\n  " + "\n  ".join(tail))
    results["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results["plots"] = plot(results, args, out)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write_report(results, args, out)
    log(f"wrote {out}/comparison.md, results.json and {len(results['plots'])} plots")
    if failed:
        log("some workloads failed (see comparison.md)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
