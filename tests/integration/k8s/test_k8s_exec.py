"""``kubectl exec`` (v1.20) through the real apiserver into the process kubelet: SPDY/3.1 with the
v4 remotecommand protocol. Output, stdin, exit codes, the container's env, working directory and
volumes, and a 20 MB binary round trip."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from k8s_helpers import wait_for

from outlive.testing.k8s import NAMESPACE, PVC, K8sCluster

pytestmark = [pytest.mark.root, pytest.mark.slow]
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"


@pytest.fixture(scope="module")
def pod(k8s: K8sCluster) -> str:
    """A running pod with env, a working directory and the claim at /ckpt."""
    name = f"exec-{uuid.uuid4().hex[:6]}"
    main = {
        "name": "main", "image": "outlive-testbed", "command": ["sleep", "3600"],
        "workingDir": "/work dir", "env": [{"name": "GREETING", "value": "it's 'quoted' $x"}],
        "volumeMounts": [{"name": "ckpt", "mountPath": "/ckpt"}],
    }  # fmt: skip
    k8s.api.request("POST", PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [main],
                 "volumes": [{"name": "ckpt", "persistentVolumeClaim": {"claimName": PVC}}]},
    })  # fmt: skip
    wait_for(
        f"pod {name} running",
        lambda: k8s.api.get(f"{PODS}/{name}").get("status", {}).get("phase") == "Running",
    )
    return name


def _exec(
    k8s: K8sCluster, pod: str, *cmd: str, stdin: bytes | None = None, stdin_file: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    interactive = ["-i"] if stdin is not None or stdin_file else []
    argv = [str(k8s.bin_dir / "kubectl"), f"--kubeconfig={k8s.kubeconfig}", "-n", NAMESPACE,
            "exec", *interactive, pod, "--", *cmd]  # fmt: skip
    if stdin_file is not None:
        with stdin_file.open("rb") as f:
            return subprocess.run(argv, stdin=f, capture_output=True, timeout=120, check=False)
    return subprocess.run(
        argv, input=stdin or b"", capture_output=True, timeout=60, check=False
    )  # fmt: skip


def test_exec_runs_in_the_container_with_its_env_workdir_and_volumes(
    k8s: K8sCluster, pod: str
) -> None:
    marker = k8s.volumes / PVC / f"marker-{pod}"
    marker.write_text("on the claim")
    try:
        script = 'echo "$GREETING"; pwd; cat "/ckpt/$1"; echo to-stderr >&2'
        got = _exec(k8s, pod, "sh", "-c", script, "sh", marker.name)
    finally:
        marker.unlink()
    assert got.returncode == 0, got.stderr
    assert got.stdout.decode().splitlines() == ["it's 'quoted' $x", "/work dir", "on the claim"]
    assert got.stderr == b"to-stderr\n"


def test_exec_propagates_the_exit_code(k8s: K8sCluster, pod: str) -> None:
    got = _exec(k8s, pod, "sh", "-c", "exit 7")
    assert got.returncode == 7
    assert b"command terminated with exit code 7" in got.stderr
    assert _exec(k8s, pod, "no-such-command-here").returncode == 127


def test_exec_pipes_stdin(k8s: K8sCluster, pod: str) -> None:
    got = _exec(k8s, pod, "sh", "-c", "tr a-z A-Z; echo done", stdin=b"hello\nworld\n")
    assert (got.returncode, got.stdout) == (0, b"HELLO\nWORLD\ndone\n")


def test_exec_is_binary_safe_both_ways_for_20_mb(k8s: K8sCluster, pod: str, tmp_path: Path) -> None:
    data = tmp_path / "random.bin"
    data.write_bytes(os.urandom(20 * 10**6))
    got = _exec(k8s, pod, "cat", stdin_file=data)
    assert got.returncode == 0, got.stderr
    assert len(got.stdout) == 20 * 10**6
    assert hashlib.sha256(got.stdout).digest() == hashlib.sha256(data.read_bytes()).digest()
