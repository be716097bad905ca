"""The e2e environment: a local real control plane (default) or any cluster.

Local (default): scripts/e2e starts nothing itself; this fixture starts etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok (binaries from
`scripts/tools kube kwok`, paths in SLUICE_E2E_TOOLS_ENV or the environment), the broker
"kubelet" (e2e/harness/kubelet.py) and, once the chart's CRDs and RBAC are applied,
the operator as a local process authenticated as the chart's ServiceAccount.

Any cluster: SLUICE_E2E_KUBECONFIG=path. Nothing is started; see e2e/README.md for
which scenarios run there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from harness.controlplane import ControlPlane, Proc, die_with_parent, free_port
from harness.kube import Kubectl
from harness.kubelet import Kubelet

ROOT = Path(__file__).resolve().parent.parent
OPERATOR_NS = "sluice-system"


def tool(name: str) -> str:
    v = os.environ.get(name)
    if not v:
        raise pytest.UsageError(f"{name} is not set: run the suite through scripts/e2e")
    return v


@dataclass
class Env:
    kubectl: Kubectl
    local: bool
    work: Path
    control_plane: ControlPlane | None = None
    kubelet: Kubelet | None = None
    operator: Proc | None = None
    operator_metrics: str | None = None
    kafka_reachable: bool = True
    local_operator: bool = True
    notes: list[str] = field(default_factory=list)

    def start_operator(self, service_account: str) -> None:
        """The operator from this tree as a local process (not a pod: kwok runs no
        containers), authenticated with a token of the chart's ServiceAccount, so the
        chart's ClusterRole is what it gets."""
        if self.operator is not None:
            return
        token = self.kubectl.run("create", "token", service_account, "-n", OPERATOR_NS,
                                 "--duration=6h").stdout.strip()
        cfg = self.work / "operator.kubeconfig"
        cp = self.control_plane
        server = cp.server if cp else self.kubectl.run(
            "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
        ca = f"certificate-authority: {cp.pki / 'ca.crt'}" if cp else "insecure-skip-tls-verify: true"
        cfg.write_text(f"""apiVersion: v1
kind: Config
current-context: operator
clusters: [{{name: e2e, cluster: {{server: "{server}", {ca}}}}}]
users: [{{name: sluice, user: {{token: "{token}"}}}}]
contexts: [{{name: operator, context: {{cluster: e2e, user: sluice, namespace: {OPERATOR_NS}}}}}]
""")
        port = free_port()
        self.operator_metrics = f"http://127.0.0.1:{port}"
        log = self.work / "logs" / "sluice-operator.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, KUBECONFIG=str(cfg), RUST_LOG="info,kube=warn,sluice_operator::controller::cluster::autoscaling=debug")
        args = [tool("SLUICE_OPERATOR_BIN"), "run", "--namespace", OPERATOR_NS,
                "--metrics-listen", f"127.0.0.1:{port}", "--log-format", "text",
                "--refresh-secs", "5", "--io-timeout-secs", "5",
                "--resolve-via-api"]
        f = open(log, "ab")  # noqa: SIM115
        popen = subprocess.Popen(args, env=env, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 preexec_fn=die_with_parent)
        self.operator = Proc("sluice-operator", popen, log)

    def stop_operator(self) -> None:
        if self.operator:
            self.operator.stop()
            self.operator = None


@pytest.fixture(scope="session")
def env():
    external = os.environ.get("SLUICE_E2E_KUBECONFIG")
    keep = os.environ.get("SLUICE_E2E_KEEP") == "1"
    work = Path(os.environ.get("SLUICE_E2E_WORK") or tempfile.mkdtemp(prefix="sluice-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    kubectl_bin = os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl"
    if external:
        e = Env(kubectl=Kubectl(kubectl_bin, external), local=False, work=work,
                kafka_reachable=os.environ.get("SLUICE_E2E_KAFKA_REACHABLE") == "1",
                local_operator=os.environ.get("SLUICE_E2E_OPERATOR") == "local")
        yield e
        e.stop_operator()
        return

    tools = {k: tool(k) for k in ("ETCD", "KUBE_APISERVER", "KUBE_CONTROLLER_MANAGER",
                                  "KUBE_SCHEDULER", "KWOK", "KWOK_STAGES")}
    cp = ControlPlane(work=work, tools=tools)
    t0 = time.monotonic()
    try:
        cp.start()
    except BaseException:
        cp.stop()
        for p in cp.procs:
            print(f"--- {p.name}\n{p.tail()}")
        raise
    print(f"\ncontrol plane up in {time.monotonic() - t0:.1f}s "
          f"(api {cp.server}, pod CIDR {cp.pod_cidr}, work {work})")
    kubelet = Kubelet(server=cp.server, session=cp.session(),
                      broker_bin=tool("SLUICE_BROKER_BIN"), work=work)
    kubelet.start()
    e = Env(kubectl=Kubectl(kubectl_bin, str(cp.kubeconfig)), local=True, work=work,
            control_plane=cp, kubelet=kubelet)
    (work / "timings.txt").write_text(
        "".join(f"{k} {v:.2f}s\n" for k, v in cp.timings.items()))
    try:
        yield e
    finally:
        e.stop_operator()
        kubelet.stop()
        cp.stop()
        if kubelet.errors:
            print("kubelet stand-in errors:\n  " + "\n  ".join(kubelet.errors[-20:]))
        if not keep and os.environ.get("SLUICE_E2E_WORK") is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"e2e work dir kept: {work}")


def pytest_configure(config):
    # SIGTERM (a CI time limit, `timeout`) ends the run like Ctrl-C: fixtures tear down
    # and stop every process they started.
    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)


def pytest_runtest_makereport(item, call):
    # Later scenarios build on earlier ones: after a failure, name the logs to read.
    if call.when == "call" and call.excinfo is not None:
        w = os.environ.get("SLUICE_E2E_WORK")
        if w:
            item.add_report_section("call", "logs", f"see {w}/logs/")
