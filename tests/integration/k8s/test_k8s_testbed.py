"""``python -m outlive.testing k8s up|down|preempt --json``: the documented doc, an ``up`` of a
healthy cluster returns it again, ``down`` leaves no process or file and is idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from outlive.testing import TestbedUnavailable
from outlive.testing.k8s import K8sCluster, check_k8s_prerequisites

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _cli(*args: str) -> tuple[int, Any, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "outlive.testing", "k8s", *args, "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else None, proc.stderr


def _processes_under(d: Path) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(d).encode() in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_cli_up_prints_the_doc_again_when_healthy_and_down_is_idempotent() -> None:
    try:
        bin_dir = check_k8s_prerequisites()
    except TestbedUnavailable as e:
        pytest.skip(str(e))
    name = f"tl{os.getpid()}"
    cluster = K8sCluster(name)
    try:
        rc, doc, _ = _cli("up", "--name", name)
        assert rc == 0
        assert doc == {
            "name": name,
            "target": {
                "profile": "kubernetes",
                "namespace": "outlive",
                "context": name,
                "image": "outlive-testbed",
                "pvc": "outlive-ckpt",
            },
            "env": {
                "KUBECONFIG": str(cluster.dir / "kubeconfig"),
                "PATH": f"{bin_dir}:{os.environ['PATH']}",
            },
        }
        env = dict(os.environ, **doc["env"])
        version = subprocess.run(
            ["kubectl", "--context", name, "version", "--short"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "Client Version: v1.20.2" in version and "Server Version: v1.20.2" in version
        assert _cli("up", "--name", name)[:2] == (0, doc)

        rc, failed, err = _cli("preempt", "--name", name, "--run", "no-such-run")
        assert (rc, failed["ok"]) == (1, False)
        assert err.startswith("error: No running pod of run no-such-run") and err.count("\n") == 1
        assert _cli("preempt", "--name", name)[0] == 2  # no --run: a usage error

        assert _cli("down", "--name", name)[:2] == (0, {"name": name, "ok": True, "existed": True})
        assert not cluster.dir.exists()
        assert _processes_under(cluster.dir) == []
        assert _cli("down", "--name", name)[:2] == (0, {"name": name, "ok": True, "existed": False})
    finally:
        cluster.down()
