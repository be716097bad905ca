"""What a kubelet and a storage provisioner would do for the broker pods, on this
machine: kwok makes pods Running without running anything, so this runs the real
`sluice-broker` process for every broker pod that kwok gives an IP, bound to that
pod IP (a loopback address), and stops it (SIGTERM, like a kubelet) when the pod is
deleted. It also binds each Pending PersistentVolumeClaim to a new hostPath
PersistentVolume: a directory on this machine, which brokers use as their
`file://` bucket.

It reads the pod the way a kubelet does: the container's env and envFrom
ConfigMaps, its ports and its volumes, and only overrides what cannot work here
(pod and Service DNS names do not resolve on this machine):
`--advertise <podIP>:<kafka port>`, `--listen`/`--metrics-listen` on the pod IP,
`--node-id` from the pod-index label, and the storage URL mapped through the
volume mount to the PersistentVolume's directory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from harness.controlplane import die_with_parent

BROKER_SELECTOR = "app.kubernetes.io/name=sluice-broker"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


@dataclass
class Broker:
    uid: str
    namespace: str
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen | None = None
    starts: int = 0
    stopping: bool = False


@dataclass
class Kubelet:
    server: str
    session: requests.Session
    broker_bin: str
    work: Path
    brokers: dict[str, Broker] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="e2e-kubelet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(15)
        with self._lock:
            for b in self.brokers.values():
                self._terminate(b, wait=True)
            self.brokers.clear()

    def running(self) -> dict[str, Broker]:
        with self._lock:
            return {k: b for k, b in self.brokers.items()
                    if b.popen is not None and b.popen.poll() is None}

    # -- the loop ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._provision_volumes()
                self._sync_pods()
            except Exception as e:  # noqa: BLE001 - keep going, report at the end
                msg = f"{type(e).__name__}: {e}"
                if not self.errors or self.errors[-1] != msg:
                    self.errors.append(msg)
            self._stop.wait(0.3)

    def _get(self, path: str, **params) -> dict:
        r = self.session.get(self.server + path, params=params, timeout=10)
        r.raise_for_status()
        return r.json()

    def _sync_pods(self) -> None:
        pods = self._get("/api/v1/pods", labelSelector=BROKER_SELECTOR)["items"]
        live = {}
        for pod in pods:
            uid = pod["metadata"]["uid"]
            ip = pod.get("status", {}).get("podIP")
            if pod["metadata"].get("deletionTimestamp") or not ip or not pod["spec"].get("nodeName"):
                continue
            live[uid] = pod
        with self._lock:
            for uid, b in list(self.brokers.items()):
                if uid not in live:
                    self.events.append(f"stop {b.namespace}/{b.name}")
                    self._terminate(b, wait=False)
                    del self.brokers[uid]
            for uid, pod in live.items():
                b = self.brokers.get(uid)
                if b is None:
                    b = self._broker_for(pod)
                    self.brokers[uid] = b
                    self.events.append(f"start {b.namespace}/{b.name}")
                if b.popen is None or b.popen.poll() is not None:
                    # restartPolicy Always (a fenced broker exits 75 to be restarted).
                    if b.popen is not None:
                        self.events.append(f"restart {b.namespace}/{b.name} (exit {b.popen.returncode})")
                        time.sleep(0.5)
                    self._launch(b)

    def _launch(self, b: Broker) -> None:
        b.starts += 1
        f = open(b.log, "ab")  # noqa: SIM115 - owned by the child
        f.write(f"\n=== start #{b.starts}: {' '.join(b.args)}\n".encode())
        f.flush()
        # Started from this long-lived thread, so PR_SET_PDEATHSIG (tied to the thread
        # that forks) fires only when the test process goes.
        b.popen = subprocess.Popen(b.args, env=b.env, stdout=f, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=die_with_parent)

    def _terminate(self, b: Broker, wait: bool) -> None:
        p = b.popen
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)

        def reap():
            try:
                p.wait(60)  # the pods' terminationGracePeriodSeconds
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if wait:
            reap()
        else:
            threading.Thread(target=reap, daemon=True).start()

    # -- a pod as a process -----------------------------------------------------
    def _broker_for(self, pod: dict) -> Broker:
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        container = spec["containers"][0]
        env: dict[str, str] = {}
        for src in container.get("envFrom", []) or []:
            if "configMapRef" in src:
                cm = self._get(f"/api/v1/namespaces/{ns}/configmaps/{src['configMapRef']['name']}")
                env.update(cm.get("data", {}))
            # Secrets (storage.credentialsSecret) would be read the same way; the local
            # file bucket scenarios use none.
        for e in container.get("env", []) or []:
            if "value" in e:
                env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)),
                                        e["value"])
            elif "valueFrom" in e and "fieldRef" in e["valueFrom"]:
                env[e["name"]] = field_value(pod, e["valueFrom"]["fieldRef"]["fieldPath"])
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        ip = pod["status"]["podIP"]
        storage = self._map_storage(pod, container, env.get("SLUICE_STORAGE", ""))
        node_id = meta.get("labels", {}).get(POD_INDEX_LABEL, env.get("SLUICE_NODE_ID", "0"))
        args = [self.broker_bin,
                "--node-id", node_id,
                "--listen", f"{ip}:{ports['kafka']}",
                "--advertise", f"{ip}:{ports['kafka']}",
                "--metrics-listen", f"{ip}:{ports['metrics']}",
                "--storage", storage,
                "--log-format", "text"]
        proc_env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        proc_env.update(env)
        logs = self.work / "logs" / "brokers"
        logs.mkdir(parents=True, exist_ok=True)
        return Broker(uid=meta["uid"], namespace=ns, name=name, args=args, env=proc_env,
                      log=logs / f"{ns}_{name}.log")

    def _map_storage(self, pod: dict, container: dict, url: str) -> str:
        """A `file://` URL inside a volume mount → the same path in the volume's
        PersistentVolume directory on this machine."""
        if not url.startswith("file://"):
            return url
        path = url[len("file://"):]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        for m in container.get("volumeMounts", []) or []:
            mount = m["mountPath"].rstrip("/")
            if path == mount or path.startswith(mount + "/"):
                vol = volumes.get(m["name"], {})
                claim = vol.get("persistentVolumeClaim", {}).get("claimName")
                if not claim:
                    break
                ns = pod["metadata"]["namespace"]
                pvc = self._get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
                pv = self._get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
                return "file://" + pv["spec"]["hostPath"]["path"] + path[len(mount):]
        raise RuntimeError(f"storage {url} of pod {pod['metadata']['name']} is not on a volume")

    # -- a provisioner ------------------------------------------------------------
    def _provision_volumes(self) -> None:
        for pvc in self._get("/api/v1/persistentvolumeclaims")["items"]:
            meta, spec = pvc["metadata"], pvc["spec"]
            if spec.get("volumeName") or meta.get("deletionTimestamp"):
                continue
            d = self.work / "volumes" / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
            d.mkdir(parents=True, exist_ok=True)
            pv = {
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": f"e2e-{meta['uid']}",
                             "labels": {"sluice.dev/e2e": "hostpath"}},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": spec.get("storageClassName") or "",
                    "volumeMode": spec.get("volumeMode", "Filesystem"),
                    "hostPath": {"path": str(d), "type": "DirectoryOrCreate"},
                    "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                 "namespace": meta["namespace"], "name": meta["name"],
                                 "uid": meta["uid"]},
                },
            }
            r = self.session.post(self.server + "/api/v1/persistentvolumes", json=pv, timeout=10)
            if r.status_code not in (200, 201, 409):
                raise RuntimeError(f"creating a PV for {meta['namespace']}/{meta['name']}: {r.text}")
            if r.status_code != 409:
                self.events.append(f"provision {meta['namespace']}/{meta['name']} -> {d}")


def field_value(obj: dict, path: str) -> str:
    """A downward-API fieldPath: `metadata.name`, `metadata.labels['k']`, …"""
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return obj["metadata"].get(m.group(1), {}).get(m.group(2), "")
    cur = obj
    for part in path.split("."):
        cur = cur.get(part, {}) if isinstance(cur, dict) else {}
    return cur if isinstance(cur, str) else ""
