"""kubectl (the one built with the control plane, or any on PATH) for the tests: works
the same against the local control plane and any cluster a KUBECONFIG names."""

from __future__ import annotations

import json
import os
import subprocess
import time


class Kubectl:
    def __init__(self, binary: str, kubeconfig: str):
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        p = subprocess.run([self.binary, *args], input=input, capture_output=True, text=True,
                           env=env, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
        return p

    def apply(self, manifest: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("apply", "--server-side", "--field-manager=sluice-e2e",
                        "--force-conflicts", "-f", "-", input=manifest, check=check)

    def get(self, kind: str, name: str | None = None, ns: str | None = None,
            selector: str | None = None) -> dict | None:
        args = ["get", kind, "-o", "json"]
        if name:
            args.insert(2, name)
        if ns:
            args += ["-n", ns]
        if selector:
            args += ["-l", selector]
        p = self.run(*args, check=False)
        if p.returncode != 0:
            if "NotFound" in p.stderr or "not found" in p.stderr:
                return None
            raise RuntimeError(f"kubectl {' '.join(args)}: {p.stderr}")
        return json.loads(p.stdout)

    def wait_for(self, what: str, fn, timeout: float, interval: float = 0.5):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = fn()
                if value:
                    return value
                last = value
            except Exception as e:  # noqa: BLE001
                last = e
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def condition(obj: dict | None, type_: str) -> dict | None:
    if not obj:
        return None
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == type_:
            return c
    return None


def is_true(obj: dict | None, type_: str) -> bool:
    c = condition(obj, type_)
    return bool(c and c.get("status") == "True")
