"""outlive's Kubernetes backend through the real CLI against a real API server (v1.20) with the
real Job controller and scheduler (the testbed's process kubelet runs the containers).

Issue 14's "Must show": a training run preempted three times is resumed by the Job controller
each time and ends bit-identical to an uninterrupted run while ``status`` counts the restarts;
an OOM-killed pod, an unschedulable GPU request, an exceeded deadline and an exit 1 each get the
right state and diagnosis. Also: the manifest passes the real server's validation (server-side
dry run), cancel deletes the Job, and logs -f follows into a replacement pod (pull and down:
test_k8s_pull.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from k8s_project import DEADLINE_S, ENDED, OUTLIVE, Project, reference_weights, train_cmd

from outlive.testing.k8s import K8sCluster

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_three_preemptions_resume_and_end_bit_identical_while_status_counts_restarts(
    project: Callable[..., Project], k8s: K8sCluster, tmp_path: Path
) -> None:
    p = project()
    steps = 300
    run_id = p.run(*train_cmd(steps, 0.03), name="preempted thrice")
    seen = []
    for k, at_step in ((1, 40), (2, 110), (3, 180)):
        st = p.wait(
            run_id,
            lambda s, k=k, at=at_step: (
                s["state"] == "running" and s["restarts"] == k - 1 and p.step(run_id) >= at
            ),
            f"attempt {k} to pass step {at_step}",
        )
        old_pod = st["kubernetes"]["pod"]
        k8s.preempt(run_id)  # DisruptionTarget, TERM, KILL after the grace
        st = p.wait(
            run_id,
            lambda s, old=old_pod: s["state"] == "running" and s["kubernetes"]["pod"] != old,
            f"the Job controller to start attempt {k + 1}",
        )
        seen.append(st["restarts"])
    assert seen == [1, 2, 3]
    final = p.wait(run_id, lambda s: s["state"] in ENDED, "the end")
    assert final["state"] == "succeeded", (final, p.cli("logs", run_id, "-n", "40").stdout)
    assert final["restarts"] == 3 and final["exit_code"] == 0
    assert final["kubernetes"]["attempts"] == 4 and final["diagnosis"] is None
    run_dir = p.claim_workdir / ".outlive" / "runs" / run_id
    log = (run_dir / "stdout.log").read_text()  # every attempt's output, on the claim
    assert log.count("resumed from step") == 3
    assert log.count("exiting for requeue") == 3
    assert "resumed from step" in p.cli("logs", run_id, "-n", "200").stdout  # the newest pod
    ckpt = p.claim_workdir / ".outlive" / "durable" / "preempted thrice" / "final.npz"
    reference = reference_weights(tmp_path, steps)
    with np.load(ckpt) as z:
        got = {k: z[k] for k in z.files}
    assert got.keys() == reference.keys()
    for key in reference:
        assert got[key].tobytes() == reference[key].tobytes(), key


def test_an_oom_killed_pod_is_failed_with_cause_oom(project: Callable[..., Project]) -> None:
    p = project(memory="128Mi", backoff_limit=0)
    grow = "import time; x = bytearray(512 * 2**20); time.sleep(30)"
    run_id = p.run(sys.executable, "-c", grow, name="oom")
    st = p.wait(run_id, lambda s: s["state"] in ENDED, "the OOM kill")
    assert st["state"] == "failed", st
    assert st["diagnosis"]["cause"] == "oom", st
    assert "128Mi" in st["diagnosis"]["evidence"][0]
    assert st["signal"] == 9


def test_an_unschedulable_gpu_request_stays_pending_with_k8s1(
    project: Callable[..., Project],
) -> None:
    p = project(gpus="3")  # the node has 2
    run_id = p.run(sys.executable, "-c", "print('never')", name="too many gpus")
    st = p.wait(run_id, lambda s: (s.get("diagnosis") or {}).get("gotchas") == ["K8S1"], "K8S1")
    assert st["state"] == "pending"
    assert "Insufficient nvidia.com/gpu" in st["diagnosis"]["evidence"][0]
    assert "device plugin" in st["warning"]
    assert st["kubernetes"]["reason"] == "Unschedulable"
    p.cli("cancel", run_id)
    gone = p.wait(run_id, lambda s: s["state"] in ENDED, "the cancel")
    assert gone["state"] == "cancelled"


def test_a_run_past_its_time_limit_fails_with_the_deadline_named(
    project: Callable[..., Project],
) -> None:
    p = project(time="0:03", backoff_limit=0)  # activeDeadlineSeconds = 3
    run_id = p.run(sys.executable, "-c", "import time; time.sleep(60)", name="late")
    st = p.wait(run_id, lambda s: s["state"] in ENDED, "the deadline")
    assert st["state"] == "failed", st
    assert st["kubernetes"]["reason"] == "DeadlineExceeded"
    assert st["diagnosis"]["cause"] == "killed"
    assert "activeDeadlineSeconds (3 s" in st["diagnosis"]["evidence"][0]


def test_exit_1_fails_the_run_with_its_code_and_the_jobs_reason(
    project: Callable[..., Project],
) -> None:
    p = project(backoff_limit=0)
    run_id = p.run(sys.executable, "-c", "import sys; print('bad'); sys.exit(1)", name="exit1")
    st = p.wait(run_id, lambda s: s["state"] in ENDED, "the failure")
    assert (st["state"], st["exit_code"], st["diagnosis"]) == ("failed", 1, None), st
    assert st["kubernetes"]["reason"] == "BackoffLimitExceeded"
    assert st["restarts"] == 0
    assert "bad" in p.cli("logs", run_id).stdout


def test_the_real_server_accepts_the_rendered_objects(
    project: Callable[..., Project], k8s: K8sCluster
) -> None:
    from outlive import wire
    from outlive.backends import k8s_manifest as km
    from outlive.session import Session

    p = project(cpu="500m", memory="1Gi", shm="256Mi", gpus="1", time="1:00:00",
                node_selector={"kubernetes.io/os": "linux"},
                tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists",
                              "effect": "NoSchedule"}],
                service_account="default", image_pull_secret="regcred")  # fmt: skip
    backend = Session.open(p.dir).backend("k8s")
    request = wire.LaunchRequest(run_id="dry-run-1", name="dry run 'q'", command=["true"],
                                 workdir=f"/checkpoints/{p.name}")  # fmt: skip
    spec = backend.job_spec(request, 20, b"PK")  # type: ignore[attr-defined]
    doc, _ = km.render(spec)
    doc["items"].append(km.secret_object(spec, {"HF_TOKEN": "x"}))
    done = subprocess.run(
        ["kubectl", "--context", k8s.name, "apply", "--dry-run=server", "-f", "-"],
        input=json.dumps(doc), capture_output=True, text=True, env=p.env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "job.batch/outlive-dry-run-1 created (server dry run)" in done.stdout


def test_logs_follow_goes_on_into_the_replacement_pod_until_the_run_ends(
    project: Callable[..., Project], k8s: K8sCluster
) -> None:
    p = project()
    run_id = p.run(*train_cmd(150, 0.03), name="followed")
    p.wait(run_id, lambda s: s["state"] == "running" and p.step(run_id) >= 30, "step 30")
    follow = subprocess.Popen(
        [OUTLIVE, "logs", run_id, "-f"], cwd=p.dir, env=p.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        k8s.preempt(run_id)
        out, err = follow.communicate(timeout=DEADLINE_S)
    finally:
        follow.kill()
    assert follow.returncode == 0, err
    assert "resumed from step" in out  # the replacement pod's output, on the same follow
    assert out.rstrip().endswith("final.npz")  # followed to the run's last line
    assert p.status(run_id)["state"] == "succeeded"
