"""A real Kubernetes control plane on 127.0.0.1 for the e2e suite.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real
binaries built from the Go module proxy by `scripts/tools kube`; kwok (also real,
also built from source) plays the nodes, so pods are scheduled, get an IP from a
pod CIDR inside 127.0.0.0/8 and become Running/Ready without a kubelet.

Nothing here fakes the API: the tests, the operator and kubectl all talk to the
real kube-apiserver, with its admission, validation (schema + CEL), watches and
garbage collection (kube-controller-manager).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies, however it dies
    (prctl PR_SET_PDEATHSIG), so no control plane or broker outlives a killed run."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, fn, timeout: float, interval: float = 0.2):
    """Calls fn until it returns a truthy value; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" +
                       (f" (last error: {last_exc})" if last_exc else ""))


def sh(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(args, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class ControlPlane:
    """Starts and stops the control plane; `kubeconfig` is an admin kubeconfig."""

    work: Path
    tools: dict[str, str]
    pod_cidr_octet: int = field(default_factory=lambda: random.randint(100, 199))
    procs: list[Proc] = field(default_factory=list)
    api_port: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    # -- paths -------------------------------------------------------------------
    @property
    def pki(self) -> Path:
        return self.work / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.work / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pod_cidr(self) -> str:
        return f"127.{self.pod_cidr_octet}.0.0/16"

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        self._certs()
        self.timings["certs"] = time.monotonic() - t0
        self._etcd()
        self._apiserver()
        self.timings["apiserver_ready"] = time.monotonic() - t0
        self._controller_manager()
        self._scheduler()
        self._kwok()
        self._node()
        self.timings["started"] = time.monotonic() - t0

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()

    def check_alive(self) -> None:
        for p in self.procs:
            if p.popen.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> Proc:
        log = self.work / "logs" / f"{name}.log"
        f = open(log, "ab")  # noqa: SIM115 - owned by the child
        popen = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env or os.environ.copy(),
                                 start_new_session=True, preexec_fn=die_with_parent)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    # -- pieces ------------------------------------------------------------------
    def _certs(self) -> None:
        """A CA, the apiserver's serving cert, an admin client cert (system:masters)
        and the service-account signing key, made with openssl."""
        d = self.pki
        d.mkdir(parents=True, exist_ok=True)
        days = "3"
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
           "-out", "ca.crt", "-days", days, "-subj", "/CN=sluice-e2e-ca", cwd=d)
        (d / "san.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
            "extendedKeyUsage=serverAuth\n")
        (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
        for name, subj, ext in [("apiserver", "/CN=kube-apiserver", "san.ext"),
                                ("admin", "/O=system:masters/CN=sluice-e2e-admin", "client.ext")]:
            sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
               "-out", f"{name}.csr", "-subj", subj, cwd=d)
            sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
               "-CAcreateserial", "-out", f"{name}.crt", "-days", days, "-extfile", ext, cwd=d)
        sh("openssl", "genrsa", "-out", "sa.key", "2048", cwd=d)
        sh("openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)

    def _etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self._spawn("etcd", [
            self.tools["ETCD"], "--name=e2e", f"--data-dir={self.work / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync", "--quota-backend-bytes=2147483648", "--log-level=warn",
        ])
        wait_until("etcd health", lambda: requests.get(self.etcd_url + "/health", timeout=2).ok, 30)

    def _apiserver(self) -> None:
        self.api_port = free_port()
        p = self.pki
        self._spawn("kube-apiserver", [
            self.tools["KUBE_APISERVER"],
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--cert-dir={self.work / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            # The "kubernetes" Service's Endpoints may not hold a loopback address.
            "--endpoint-reconciler-type=none",
            "--authorization-mode=RBAC",
            "--profiling=false", "--v=1",
        ])
        self._write_kubeconfig()
        wait_until("kube-apiserver /readyz", self._api_ready, 120, 0.5)

    def _api_ready(self) -> bool:
        self.check_alive()
        r = self.session().get(self.server + "/readyz", timeout=5)
        return r.status_code == 200

    def session(self) -> requests.Session:
        s = requests.Session()
        # The session's own CA, never REQUESTS_CA_BUNDLE or proxies from the environment.
        s.trust_env = False
        s.cert = (str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        s.verify = str(self.pki / "ca.crt")
        return s

    def _write_kubeconfig(self) -> None:
        p = self.pki
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
            "clusters": [{"name": "e2e", "cluster": {
                "server": self.server, "certificate-authority": str(p / "ca.crt")}}],
            "users": [{"name": "admin", "user": {
                "client-certificate": str(p / "admin.crt"), "client-key": str(p / "admin.key")}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
        }
        self.kubeconfig.write_text(json.dumps(cfg, indent=2))

    def _controller_manager(self) -> None:
        p = self.pki
        self._spawn("kube-controller-manager", [
            self.tools["KUBE_CONTROLLER_MANAGER"],
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false", "--secure-port=0",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            "--use-service-account-credentials=false",
            "--controllers=*",
            "--concurrent-gc-syncs=5",
            # kwok renews the fake node's status about once a minute, just past the
            # default 50 s grace: the node flapped NotReady, which marked every pod
            # NotReady for good (kwok does not make them Ready again); the autoscaler
            # scenario then saw no ready broker to read (found by the e2e suite).
            "--node-monitor-grace-period=10m",
            "--v=1",
        ])

    def _scheduler(self) -> None:
        self._spawn("kube-scheduler", [
            self.tools["KUBE_SCHEDULER"],
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false", "--secure-port=0", "--v=1",
        ])

    def _kwok(self) -> None:
        self._spawn("kwok", [
            self.tools["KWOK"],
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.tools['KWOK_STAGES']}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-ip=127.0.0.1",
            f"--cidr={self.pod_cidr}",
            "--server-address=",
        ])

    def _node(self) -> None:
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": "kwok-node-0",
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": "kwok-node-0",
                           "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
            },
            "spec": {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]},
        }
        s = self.session()
        r = s.post(self.server + "/api/v1/nodes", json=node, timeout=10)
        if r.status_code not in (200, 201, 409):
            raise RuntimeError(f"creating the kwok node: {r.status_code} {r.text}")

        def node_ready():
            self.check_alive()
            n = s.get(self.server + "/api/v1/nodes/kwok-node-0", timeout=5).json()
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in n.get("status", {}).get("conditions", []))
        wait_until("the kwok node to be Ready", node_ready, 60, 0.5)

        # The default ServiceAccount exists once kube-controller-manager runs: pods
        # need it to pass admission.
        def default_sa():
            self.check_alive()
            return s.get(self.server + "/api/v1/namespaces/default/serviceaccounts/default",
                         timeout=5).status_code == 200
        wait_until("kube-controller-manager (default ServiceAccount)", default_sa, 60, 0.5)
