"""What a kubelet and a storage provisioner would do for the broker pods, on this
machine: kwok makes pods Running without running anything, so this runs the real
`sluice-broker` process for every broker pod that kwok gives an IP, bound to that
pod IP (a loopback address), and stops it (SIGTERM, like a kubelet) when the pod is
deleted. It also binds each Pending PersistentVolumeClaim to a new hostPath
PersistentVolume: a directory on this machine, which brokers use as their
`file://` bucket.

It reads the pod the way a kubelet does: the container's env (values,
downward-API fields, Secret and ConfigMap keys) and envFrom (ConfigMaps and
Secrets), its ports and its volumes, and only overrides what cannot work here
(pod and Service DNS names do not resolve on this machine):

- listeners: with `SLUICE_LISTENERS` (named listeners, a secured cluster) each
  `NAME://HOST:PORT` is bound on the pod IP and each `SLUICE_ADVERTISED_LISTENERS`
  entry advertises the pod IP; without it, `--listen`/`--advertise <podIP>:<kafka
  port>` as before. `--metrics-listen` on the pod IP either way;
- `--node-id` from the pod-index label;
- the storage URL mapped through the volume mount to the PersistentVolume's
  directory;
- Secret and ConfigMap volumes: their keys are written under the work dir
  (`volumes-pods/<ns>/<pod>-<uid>/<volume>/`, laid out as a kubelet does: files are
  symlinks into a `..data` directory that is swapped in one rename, so a broker never
  reads half a file, nor a certificate with the previous key), and every environment
  value under the volume's mountPath is mapped to that directory. The files follow
  the Secret (or ConfigMap) while the pod runs (checked every second): a renewed
  certificate reaches a running broker as it would in a cluster.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
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
class Mount:
    """A Secret or ConfigMap volume of a pod, as files on this machine."""
    volume: str
    kind: str  # "secret" or "configMap"
    namespace: str
    name: str
    dir: Path
    items: list[dict] | None
    mode: int
    optional: bool
    resource_version: str | None = None
    updates: int = 0


@dataclass
class Broker:
    uid: str
    namespace: str
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    mounts: list[Mount] = field(default_factory=list)
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

    def brokers_in(self, namespace: str) -> list[Broker]:
        """The running broker processes of the pods of a namespace, by pod name."""
        return sorted((b for b in self.running().values() if b.namespace == namespace),
                      key=lambda b: b.name)

    # -- the loop ---------------------------------------------------------------
    def _run(self) -> None:
        last_volume_sync = 0.0
        while not self._stop.is_set():
            try:
                self._provision_volumes()
                self._sync_pods()
                if time.monotonic() - last_volume_sync >= 1.0:
                    last_volume_sync = time.monotonic()
                    self._sync_mounts()
            except Exception as e:  # noqa: BLE001 - keep going, report at the end
                self._error(f"{type(e).__name__}: {e}")
            self._stop.wait(0.3)

    def _error(self, msg: str) -> None:
        if not self.errors or self.errors[-1] != msg:
            self.errors.append(msg)

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
                    try:
                        b = self._broker_for(pod)
                    except Exception as e:  # noqa: BLE001 - like a pod stuck in
                        # ContainerCreating (a missing Secret): tried again next pass.
                        self._error(f"pod {pod['metadata']['namespace']}/"
                                    f"{pod['metadata']['name']} cannot start: "
                                    f"{type(e).__name__}: {e}")
                        continue
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
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                ref = src["configMapRef"]
                data = self._object_data("configMap", ns, ref["name"], ref.get("optional", False))
            elif "secretRef" in src:
                ref = src["secretRef"]
                data = self._object_data("secret", ns, ref["name"], ref.get("optional", False))
            else:
                continue
            env.update({prefix + k: v.decode() for k, v in (data or {}).items()})
        for e in container.get("env", []) or []:
            if "value" in e:
                env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)),
                                        e["value"])
            elif "valueFrom" in e:
                src = e["valueFrom"]
                if "fieldRef" in src:
                    env[e["name"]] = field_value(pod, src["fieldRef"]["fieldPath"])
                for key, kind in (("secretKeyRef", "secret"), ("configMapKeyRef", "configMap")):
                    if key in src:
                        ref = src[key]
                        data = self._object_data(kind, ns, ref["name"], ref.get("optional", False))
                        if data is not None and ref["key"] in data:
                            env[e["name"]] = data[ref["key"]].decode()
                        elif not ref.get("optional", False):
                            raise RuntimeError(f"{kind} {ns}/{ref['name']} has no key {ref['key']}")
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        ip = pod["status"]["podIP"]
        mounts = self._mount_volumes(pod, container)
        env = {k: self._map_mounts(pod, container, mounts, v) for k, v in env.items()}
        storage = self._map_storage(pod, container, env.get("SLUICE_STORAGE", ""))
        node_id = meta.get("labels", {}).get(POD_INDEX_LABEL, env.get("SLUICE_NODE_ID", "0"))
        args = [self.broker_bin, "--node-id", node_id]
        if env.get("SLUICE_LISTENERS", "").strip():
            # Named listeners (a secured cluster): each bound on the pod IP, each advertised
            # as the pod IP (the pod's DNS name does not resolve here). The broker ignores
            # --listen/--advertise when listeners are named, so neither is passed.
            env["SLUICE_LISTENERS"] = ",".join(
                with_host(e, ip) for e in split_list(env["SLUICE_LISTENERS"]))
            if env.get("SLUICE_ADVERTISED_LISTENERS", "").strip():
                env["SLUICE_ADVERTISED_LISTENERS"] = ",".join(
                    with_host(e, ip) for e in split_list(env["SLUICE_ADVERTISED_LISTENERS"]))
            env.pop("SLUICE_ADVERTISE", None)
            env.pop("SLUICE_LISTEN", None)
        else:
            args += ["--listen", f"{ip}:{ports['kafka']}",
                     "--advertise", f"{ip}:{ports['kafka']}"]
        args += ["--metrics-listen", f"{ip}:{ports['metrics']}",
                 "--storage", storage,
                 "--log-format", "text"]
        proc_env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        proc_env.update(env)
        logs = self.work / "logs" / "brokers"
        logs.mkdir(parents=True, exist_ok=True)
        return Broker(uid=meta["uid"], namespace=ns, name=name, args=args, env=proc_env,
                      log=logs / f"{ns}_{name}.log", mounts=mounts)

    # -- Secret and ConfigMap volumes ----------------------------------------------
    def _object_data(self, kind: str, ns: str, name: str, optional: bool) -> dict[str, bytes] | None:
        """The keys of a Secret (base64-decoded) or ConfigMap (data and binaryData);
        None for a missing optional one."""
        obj = self._get_opt(f"/api/v1/namespaces/{ns}/{_PLURAL[kind]}/{name}")
        if obj is None:
            if optional:
                return None
            raise RuntimeError(f"{kind} {ns}/{name} does not exist")
        return object_data(kind, obj)

    def _get_opt(self, path: str) -> dict | None:
        r = self.session.get(self.server + path, timeout=10)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def _mount_volumes(self, pod: dict, container: dict) -> list[Mount]:
        """Writes each Secret and ConfigMap volume the container mounts (a missing,
        non-optional one keeps the pod from starting, as a kubelet would)."""
        meta = pod["metadata"]
        ns = meta["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", []) or []}
        base = self.work / "volumes-pods" / ns / f"{meta['name']}-{meta['uid'][:8]}"
        mounts: list[Mount] = []
        for m in container.get("volumeMounts", []) or []:
            vol = volumes.get(m["name"], {})
            for kind, name_key in (("secret", "secretName"), ("configMap", "name")):
                src = vol.get(kind)
                if src is None or any(x.volume == m["name"] for x in mounts):
                    continue
                mount = Mount(volume=m["name"], kind=kind, namespace=ns, name=src[name_key],
                              dir=base / m["name"], items=src.get("items"),
                              mode=src.get("defaultMode", 0o644),
                              optional=bool(src.get("optional", False)))
                obj = self._get_opt(f"/api/v1/namespaces/{ns}/{_PLURAL[kind]}/{mount.name}")
                if obj is None and not mount.optional:
                    raise RuntimeError(f"{kind} {ns}/{mount.name} of volume {m['name']} "
                                       "does not exist")
                write_volume(mount, obj)
                mounts.append(mount)
        return mounts

    def _map_mounts(self, pod: dict, container: dict, mounts: list[Mount], value: str) -> str:
        """A path under a Secret/ConfigMap volume's mountPath → the same path in the
        volume's directory on this machine."""
        by_volume = {m.volume: m for m in mounts}
        for vm in container.get("volumeMounts", []) or []:
            mount = by_volume.get(vm["name"])
            if mount is None:
                continue
            path = vm["mountPath"].rstrip("/")
            if value == path or value.startswith(path + "/"):
                local = mount.dir / vm["subPath"] if vm.get("subPath") else mount.dir
                return str(local) + value[len(path):]
        return value

    def _sync_mounts(self) -> None:
        """Rewrites the volumes whose Secret or ConfigMap changed (one LIST per
        namespace and kind): a renewed certificate reaches running brokers."""
        with self._lock:
            mounts = [m for b in self.brokers.values() for m in b.mounts]
        listed: dict[tuple[str, str], dict[str, dict]] = {}
        for m in mounts:
            key = (m.kind, m.namespace)
            if key not in listed:
                got = self._get_opt(f"/api/v1/namespaces/{m.namespace}/{_PLURAL[m.kind]}")
                listed[key] = {o["metadata"]["name"]: o for o in (got or {}).get("items", [])}
            obj = listed[key].get(m.name)
            if obj is None:
                continue  # a kubelet keeps the last files of a deleted Secret
            if obj["metadata"].get("resourceVersion") != m.resource_version:
                write_volume(m, obj)
                m.updates += 1
                self.events.append(f"update {m.namespace} volume {m.volume} "
                                   f"({m.kind} {m.name}) in {m.dir}")

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


_PLURAL = {"secret": "secrets", "configMap": "configmaps"}


def object_data(kind: str, obj: dict) -> dict[str, bytes]:
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def write_volume(mount: Mount, obj: dict | None) -> None:
    """The volume's files as a kubelet's atomic writer lays them out: the keys in a new
    `..<timestamp>` directory, the `..data` symlink swapped to it in one rename, the
    visible names symlinks through `..data`; then the previous directory goes."""
    data = object_data(mount.kind, obj) if obj is not None else {}
    files: dict[str, tuple[bytes, int]] = {}
    if mount.items:
        for item in mount.items:
            if item["key"] in data:
                files[item["path"]] = (data[item["key"]], item.get("mode", mount.mode))
            elif not item.get("optional", mount.optional):
                raise RuntimeError(f"{mount.kind} {mount.namespace}/{mount.name} has no key "
                                   f"{item['key']}")
    else:
        files = {k: (v, mount.mode) for k, v in data.items()}
    d = mount.dir
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns()}"
    fresh = d / stamp
    fresh.mkdir(mode=0o700)
    for rel, (content, mode) in files.items():
        f = fresh / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content)
        # The owner (this user runs the broker) can always read it, as the pod's
        # fsGroup could.
        os.chmod(f, (mode & 0o777) | 0o400)
    data_link = d / "..data"
    previous = os.readlink(data_link) if data_link.is_symlink() else None
    tmp = d / "..data_tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(stamp, tmp)
    os.replace(tmp, data_link)
    visible = {rel.split("/")[0] for rel in files}
    for top in visible:
        link = d / top
        if not link.is_symlink():
            os.symlink(f"..data/{top}", link)
    for entry in d.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in visible:
            entry.unlink()
    if previous and previous != stamp:
        shutil.rmtree(d / previous, ignore_errors=True)
    mount.resource_version = (obj or {}).get("metadata", {}).get("resourceVersion")


def split_list(value: str) -> list[str]:
    return [e.strip() for e in value.split(",") if e.strip()]


def with_host(entry: str, host: str) -> str:
    """`NAME://ANY:PORT` → `NAME://host:PORT`."""
    m = re.fullmatch(r"([^:/]+)://(.*):(\d+)", entry.strip())
    if not m:
        raise RuntimeError(f"listener {entry!r} is not NAME://HOST:PORT")
    return f"{m.group(1)}://{host}:{m.group(3)}"


def field_value(obj: dict, path: str) -> str:
    """A downward-API fieldPath: `metadata.name`, `metadata.labels['k']`, …"""
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return obj["metadata"].get(m.group(1), {}).get(m.group(2), "")
    cur = obj
    for part in path.split("."):
        cur = cur.get(part, {}) if isinstance(cur, dict) else {}
    return cur if isinstance(cur, str) else ""
