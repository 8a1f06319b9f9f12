"""The k8s testbed against the real Job controller and scheduler: Jobs complete, fail, honour
backoffLimit and activeDeadlineSeconds, OOM in their memory limit, stay unschedulable beyond the
node's GPUs, and are drained by ``preempt``; ``kubectl logs`` and termination messages work."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import job, wait_for

from outlive.testing import DEADLINE_S
from outlive.testing.k8s import NAMESPACE, K8sCluster

pytestmark = [pytest.mark.root, pytest.mark.slow]
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _submit(k8s: K8sCluster, manifest: dict[str, Any]) -> str:
    k8s.api.request("POST", JOBS, manifest)
    return str(manifest["metadata"]["name"])


def _pods(k8s: K8sCluster, job_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = k8s.api.get(f"{PODS}?labelSelector=job-name%3D{job_name}")[
        "items"
    ]
    return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])


def _job_condition(k8s: K8sCluster, job_name: str) -> dict[str, Any] | None:
    status = k8s.api.get(f"{JOBS}/{job_name}").get("status", {})
    for cond in status.get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return dict(cond)
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if "terminated" in cs.get("state", {}):
            return dict(cs["state"]["terminated"])
    return None


def _watch_until_deleted(
    k8s: K8sCluster, pod: dict[str, Any]
) -> tuple[threading.Thread, list[dict[str, Any]]]:
    """Start collecting every state of POD until it is gone (a thread, already started)."""
    seen: list[dict[str, Any]] = []
    path = f"{PODS}?fieldSelector=metadata.name%3D{pod['metadata']['name']}"
    rv = pod["metadata"]["resourceVersion"]

    def collect() -> None:
        for ev in k8s.api.watch(f"{path}&resourceVersion={rv}", timeout_s=60):
            seen.append(ev["object"])
            if ev["type"] == "DELETED":
                return

    watcher = threading.Thread(target=collect, daemon=True)
    watcher.start()
    return watcher, seen


def _lines(path: Path) -> list[str]:
    """The words of PATH, or none while it does not exist yet."""
    return path.read_text().split() if path.exists() else []


def _scratch(k8s: K8sCluster, name: str) -> Path:
    """This test's own directory in the claim (the pod sees it as /ckpt/NAME)."""
    d = k8s.volumes / "outlive-ckpt" / name
    d.mkdir()
    return d


def test_job_writing_to_its_claim_completes(k8s: K8sCluster) -> None:
    name = _unique("ok")
    scratch = _scratch(k8s, name)
    _submit(k8s, job(name, ["sh", "-c", f"echo saved > /ckpt/{name}/state; echo hello"]))
    cond = wait_for("the Job to finish", lambda: _job_condition(k8s, name))
    assert cond["type"] == "Complete"
    assert (scratch / "state").read_text() == "saved\n"
    (pod,) = _pods(k8s, name)
    assert pod["status"]["phase"] == "Succeeded"
    term = _terminated(pod)
    assert term is not None and term["exitCode"] == 0 and term["reason"] == "Completed"
    assert k8s.kubectl("logs", pod["metadata"]["name"]).stdout == "hello\n"


def test_exit_1_fails_the_pod_and_the_job_controller_honours_backoff_limit(
    k8s: K8sCluster,
) -> None:
    name = _unique("fail")
    _submit(k8s, job(name, ["sh", "-c", "echo try $HOSTNAME; exit 1"], backoff_limit=1))
    cond = wait_for("the Job to fail", lambda: _job_condition(k8s, name), timeout_s=120)
    assert (cond["type"], cond["reason"]) == ("Failed", "BackoffLimitExceeded")
    pods = _pods(k8s, name)
    assert len(pods) == 2  # the first try and one retry
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        term = _terminated(pod)
        assert term is not None and (term["exitCode"], term["reason"]) == (1, "Error")
        pod_name = pod["metadata"]["name"]  # each try's logs stay while its pod exists
        assert k8s.kubectl("logs", pod_name).stdout == f"try {pod_name}\n"


def test_a_process_over_its_memory_limit_is_oom_killed(k8s: K8sCluster) -> None:
    name = _unique("oom")
    grow = "import time; x = bytearray(256 * 2**20); time.sleep(30)"
    limits = {"resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}}
    _submit(k8s, job(name, ["python3", "-c", grow], container=limits))
    wait_for("the Job to fail", lambda: _job_condition(k8s, name))
    (pod,) = _pods(k8s, name)
    term = _terminated(pod)
    assert term is not None and (term["exitCode"], term["reason"]) == (137, "OOMKilled")


def test_a_gpu_request_above_the_nodes_capacity_is_unschedulable(k8s: K8sCluster) -> None:
    name = _unique("gpu")
    gpus = {"resources": {"limits": {"nvidia.com/gpu": "3"}}}
    _submit(k8s, job(name, ["true"], container=gpus))

    def unschedulable() -> dict[str, Any] | None:
        for pod in _pods(k8s, name):
            for cond in pod.get("status", {}).get("conditions") or []:
                if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    return dict(cond)
        return None

    cond = wait_for("the scheduler to give up on the pod", unschedulable)
    assert "Insufficient nvidia.com/gpu" in cond["message"]
    k8s.api.request("DELETE", f"{JOBS}/{name}?propagationPolicy=Background")


def test_active_deadline_fails_the_job_with_deadline_exceeded(k8s: K8sCluster) -> None:
    name = _unique("late")
    scratch = _scratch(k8s, name)
    trap = f"trap 'echo term > /ckpt/{name}/term; exit 143' TERM; while :; do sleep 0.1; done"
    _submit(k8s, job(name, ["sh", "-c", trap], job_spec={"activeDeadlineSeconds": 3}))
    cond = wait_for("the Job to fail", lambda: _job_condition(k8s, name), timeout_s=60)
    assert (cond["type"], cond["reason"]) == ("Failed", "DeadlineExceeded")
    wait_for("the pod's process to get TERM", lambda: (scratch / "term").exists())
    wait_for("the pod to be deleted", lambda: not _pods(k8s, name))


def test_termination_message_from_its_file_and_from_the_log_tail(k8s: K8sCluster) -> None:
    said, fell_back = _unique("msg"), _unique("tail")
    _submit(k8s, job(said, ["sh", "-c", "echo '{\"exit\": 75}' > /dev/termination-log"]))
    custom = {"terminationMessagePath": "/tmp/outlive-exit", "terminationMessagePolicy": "File"}
    _submit(k8s, job(_unique("path"), ["sh", "-c", "echo custom > /tmp/outlive-exit"],
                     container=custom))  # fmt: skip
    fallback = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    _submit(k8s, job(fell_back, ["sh", "-c", "echo boom >&2; exit 3"], container=fallback))
    for name in (said, fell_back):
        wait_for("the Job to finish", lambda name=name: _job_condition(k8s, name))
    (pod,) = _pods(k8s, said)
    term = _terminated(pod)
    assert term is not None and json.loads(term["message"]) == {"exit": 75}
    (pod,) = _pods(k8s, fell_back)
    term = _terminated(pod)
    assert term is not None and (term["exitCode"], term["message"]) == (3, "boom\n")


def test_kubectl_logs_follows_a_running_container_to_its_end(k8s: K8sCluster) -> None:
    name = _unique("logs")
    scratch = _scratch(k8s, name)
    script = (
        f"for i in 1 2 3; do echo line $i; done; "
        f"while [ ! -e /ckpt/{name}/go ]; do sleep 0.1; done; echo last"
    )
    _submit(k8s, job(name, ["sh", "-c", script]))
    pod = wait_for(
        "the pod to run",
        lambda: next(
            (p for p in _pods(k8s, name) if p.get("status", {}).get("phase") == "Running"), None
        ),
    )
    pod_name = pod["metadata"]["name"]
    assert k8s.kubectl("logs", "--tail=1", pod_name).stdout == "line 3\n"
    followed: dict[str, str] = {}

    def follow() -> None:
        followed["out"] = k8s.kubectl("logs", "-f", pod_name, timeout_s=60).stdout

    stamped = k8s.kubectl("logs", "--timestamps", pod_name).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["line 1", "line 2", "line 3"]
    since = stamped[0].split(" ", 1)[0]
    assert k8s.kubectl("logs", f"--since-time={since}", pod_name).stdout.startswith("line 1\n")
    assert k8s.kubectl("logs", "--limit-bytes=8", pod_name).stdout == "line 1\nl"
    t = threading.Thread(target=follow)
    t.start()
    (scratch / "go").touch()
    t.join(timeout=90)
    assert followed["out"] == "line 1\nline 2\nline 3\nlast\n"


def test_preempt_terms_the_process_marks_disruption_and_the_job_replaces_the_pod(
    k8s: K8sCluster,
) -> None:
    name = _unique("pre")
    run_id = _unique("run")
    scratch = _scratch(k8s, name)
    script = (
        # The trap first, then "started": TERM can come as soon as the test sees the file.
        f"trap 'echo $HOSTNAME >> /ckpt/{name}/term; exit 75' TERM; "
        f"echo $HOSTNAME >> /ckpt/{name}/started; "
        "while :; do sleep 0.1; done"
    )
    labels = {"outlive/run-id": run_id, "outlive/name": "train", "outlive/project": "demo"}
    manifest = job(name, ["sh", "-c", script], backoff_limit=3, labels=labels,
                   pod_spec={"terminationGracePeriodSeconds": 10})  # fmt: skip
    _submit(k8s, manifest)
    wait_for("the first pod to start", lambda: (scratch / "started").exists())
    (first,) = _pods(k8s, name)
    watcher, seen = _watch_until_deleted(k8s, first)
    done = k8s.preempt(run_id)
    assert (done["ok"], done["pod"]) == (True, first["metadata"]["name"])
    # `>>` creates the file before echo writes to it: wait for the line, not the file.
    wait_for("TERM to reach the process", lambda: _lines(scratch / "term") != [])
    assert (scratch / "term").read_text().split() == [first["metadata"]["name"]]
    wait_for("a replacement pod to start", lambda: len(_lines(scratch / "started")) == 2)
    watcher.join(timeout=60)
    assert not watcher.is_alive()
    disrupted = [
        c for p in seen for c in p.get("status", {}).get("conditions") or []
        if c["type"] == "DisruptionTarget" and c["status"] == "True"
    ]  # fmt: skip
    assert disrupted, "the evicted pod never showed the DisruptionTarget condition"
    final = _terminated(seen[-1])
    assert final is not None and final["exitCode"] == 75
    pods = _pods(k8s, name)
    assert [p["metadata"]["name"] for p in pods] != [first["metadata"]["name"]]
    k8s.api.request("DELETE", f"{JOBS}/{name}?propagationPolicy=Background")


def test_a_pod_sees_its_volumes_environment_and_working_dir(k8s: K8sCluster) -> None:
    name = _unique("pod")
    scratch = _scratch(k8s, name)
    cm, secret = f"{name}-cm", f"{name}-secret"
    k8s.api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", {
        "metadata": {"name": cm},
        "data": {"a": "1", "b": "2"},
        "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()},
    })  # fmt: skip
    k8s.api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", {
        "metadata": {"name": secret}, "data": {"token": base64.b64encode(b"s3cret").decode()},
    })  # fmt: skip
    # Mountpoints of this test's own (the kubelet makes them on this machine's root for the
    # pod's mount namespace, and other clusters' pods may be using theirs at the same time).
    top = f"/{name}"
    cfg, bin_cm, sec = f"{top}/cfg", f"{top}/bin-cm", f"{top}/sec"
    report = (
        'echo "pwd=$(pwd)"; echo "lit=$LIT"; echo "sec=$FROM_SEC"; echo "cm=$FROM_CM"; '
        'echo "pod=$POD"; echo "ns=$NS"; echo "cm_b=$CM_b"; '
        f'echo "a=$(cat {cfg}/sub/a.txt)"; echo "a_mode=$(stat -c %a {cfg}/sub/a.txt)"; '
        f'echo "cfg=$(ls {cfg})"; echo "bin=$(od -An -tx1 {bin_cm}/bin | tr -d " ")"; '
        f'echo "token=$(cat {sec}/token)"; echo "token_mode=$(stat -c %a {sec}/token)"; '
        "echo \"shm=$(grep ' /dev/shm ' /proc/self/mounts | tail -1 | cut -d' ' -f3,4)\""
    )
    container = {
        "workingDir": f"/ckpt/{name}",
        "env": [
            {"name": "LIT", "value": "v"},
            {"name": "FROM_SEC", "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "a"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "envFrom": [{"configMapRef": {"name": cm}, "prefix": "CM_"}],
        "volumeMounts": [
            {"name": "ckpt", "mountPath": "/ckpt"},
            {"name": "cfg", "mountPath": cfg},
            {"name": "bin", "mountPath": bin_cm},
            {"name": "sec", "mountPath": sec},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }
    volumes = [
        {"name": "ckpt", "persistentVolumeClaim": {"claimName": "outlive-ckpt"}},
        {"name": "cfg", "configMap": {"name": cm, "defaultMode": 0o600,
                                      "items": [{"key": "a", "path": "sub/a.txt"}]}},
        {"name": "bin", "configMap": {"name": cm}},
        {"name": "sec", "secret": {"secretName": secret, "defaultMode": 0o400}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}},
    ]  # fmt: skip
    manifest = job(name, ["sh", "-c", f"{{ {report}; }} > report"], container=container,
                   pod_spec={"volumes": volumes})  # fmt: skip
    _submit(k8s, manifest)
    cond = wait_for("the Job to finish", lambda: _job_condition(k8s, name))
    assert cond["type"] == "Complete", _pods(k8s, name)
    (pod,) = _pods(k8s, name)
    got = dict(line.split("=", 1) for line in (scratch / "report").read_text().splitlines())
    assert got == {
        "pwd": f"/ckpt/{name}", "lit": "v", "sec": "s3cret", "cm": "1",
        "pod": pod["metadata"]["name"], "ns": NAMESPACE, "cm_b": "2",
        "a": "1", "a_mode": "600", "cfg": "sub", "bin": "0001",
        "token": "s3cret", "token_mode": "400", "shm": "tmpfs rw,relatime,size=32768k",
    }  # fmt: skip
    # The mountpoints made for the pod are removed, their parent too.
    wait_for(f"{top} to be removed", lambda: not os.path.exists(top), timeout_s=DEADLINE_S)


def test_a_deleted_pod_that_ignores_term_is_killed_after_its_grace_period(k8s: K8sCluster) -> None:
    name = _unique("stubborn")
    scratch = _scratch(k8s, name)
    script = f"trap '' TERM; touch /ckpt/{name}/started; while :; do sleep 0.1; done"
    _submit(k8s, job(name, ["sh", "-c", script], pod_spec={"terminationGracePeriodSeconds": 2}))
    wait_for("the pod to start", lambda: (scratch / "started").exists())
    (pod,) = _pods(k8s, name)
    watcher, seen = _watch_until_deleted(k8s, pod)
    k8s.api.request("DELETE", f"{JOBS}/{name}?propagationPolicy=Background")
    watcher.join(timeout=90)
    assert not watcher.is_alive(), "the pod was never deleted"
    assert seen[-1]["metadata"]["deletionTimestamp"]
    final = _terminated(seen[-1])
    assert final is not None and (final["exitCode"], final["reason"]) == (137, "Error")
