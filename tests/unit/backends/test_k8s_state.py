"""A Kubernetes run's status is judged from the API's own objects (shaped as ``kubectl get
jobs,pods -o json`` returns them): the cases the testbed's process kubelet cannot produce (image
pulls, evictions) and the bookkeeping (restarts remembered across deleted pods, a Job that is
gone). The others run for real in tests/integration/k8s/test_k8s_runs.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from outlive.backends.k8s_state import judge
from outlive.backends.kubernetes import KubernetesBackend
from outlive.config import load_config
from outlive.errors import ConfigError

RUN = "20261203-120000-abcdef"
RUN_DIR = f"/checkpoints/p/.outlive/runs/{RUN}"
LABELS = {"outlive/run-id": RUN, "outlive/name": "r", "outlive/project": "p"}


def job(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Job",
        "metadata": {"name": f"outlive-{RUN}", "labels": LABELS},
        "spec": {"activeDeadlineSeconds": 60},
        "status": {"conditions": list(conditions)},
    }


def pod(name: str, created: str, status: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "labels": LABELS, "creationTimestamp": created, **meta},
        "spec": {"containers": [{"name": "job", "resources": {"limits": {"memory": "1Gi"}}}]},
        "status": status,
    }


def test_an_image_that_cannot_be_pulled_keeps_the_run_pending_with_k8s3() -> None:
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "acme/x:1"'}
    p = pod(
        "a",
        "2026-12-03T12:00:00Z",
        {"phase": "Pending", "containerStatuses": [{"state": {"waiting": waiting}}]},
    )
    probe = judge(RUN_DIR, RUN, "ml", [job(), p])
    assert probe.state == "pending"
    assert probe.diagnosis == {
        "cause": "unknown",
        "evidence": ['Back-off pulling image "acme/x:1"'],
        "gotchas": ["K8S3"],
    }
    assert probe.warning is not None and "image_pull_secret (K8S3)" in probe.warning


def test_an_eviction_for_ephemeral_storage_is_killed_with_k8s5() -> None:
    evicted = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": "The node was low on resource: ephemeral-storage.",
    }
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    probe = judge(RUN_DIR, RUN, "ml", [job(failed), pod("a", "2026-12-03T12:00:00Z", evicted)])
    assert probe.state == "failed"
    assert probe.diagnosis is not None
    assert probe.diagnosis["cause"] == "killed"
    assert probe.diagnosis["gotchas"] == ["K8S5", "U6"]
    assert "write checkpoints and caches to the claim" in probe.diagnosis["evidence"][0]


def test_a_preempted_pod_being_replaced_is_requeued_and_restarts_remember_deleted_pods() -> None:
    terminating = pod(
        "b",
        "2026-12-03T12:01:00Z",
        {
            "phase": "Running",
            "conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
            ],
        },
        deletionTimestamp="2026-12-03T12:02:00Z",
    )
    probe = judge(RUN_DIR, RUN, "ml", [job(), terminating], seen_pods=["a"])
    assert probe.state == "requeued"
    assert probe.restarts == 1  # pod "a" is gone from the API; an earlier look saw it
    assert probe.kubernetes is not None
    assert probe.kubernetes["reason"] == "DisruptionTarget"
    assert probe.kubernetes["seen_pods"] == ["a", "b"]


def test_the_supervisors_exit_record_gives_the_exact_attempt_count_at_the_end() -> None:
    message = {"v": 1, "attempt": 3, "exit_code": 0, "term_to_exit_s": 1.5, "ended_at": 5.0}
    done = pod(
        "d",
        "2026-12-03T12:03:00Z",
        {
            "phase": "Succeeded",
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": 0, "message": json.dumps(message)}}}
            ],
        },
    )
    probe = judge(RUN_DIR, RUN, "ml", [job({"type": "Complete", "status": "True"}), done])
    assert (probe.state, probe.exit_code, probe.restarts) == ("succeeded", 0, 3)
    assert probe.kubernetes is not None and probe.kubernetes["save_s"] == 1.5


def test_time_and_count_fields_that_are_not_numbers_are_dropped_not_computed_with() -> None:
    """The termination message is written inside the job's container and the pods' stamps come
    from whatever answers kubectl: a time "0" or "soon", an attempt "3" or a creation stamp that
    is a number leave those facts unknown; the look goes on."""
    message = {"v": 1, "attempt": "3", "exit_code": "1", "started_at": "0", "ended_at": "soon",
               "term_to_exit_s": "1.5", "max_rss_bytes": float("nan")}  # fmt: skip
    terminated = {"exitCode": 1, "reason": "Error", "message": json.dumps(message)}
    done = pod("b", "0", {"phase": "Failed", "containerStatuses": [{"state": {"terminated":
               terminated}}]})  # fmt: skip
    early = pod("a", "", {"phase": "Failed"})
    early["metadata"]["creationTimestamp"] = 0  # a number, not a stamp
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
              "lastTransitionTime": "not a time"}  # fmt: skip
    probe = judge(RUN_DIR, RUN, "ml", [job(failed), done, early])
    assert probe.state == "failed"
    assert probe.exit_code == 1  # the container's own exit code, not the message's "1"
    assert probe.started_at is None and probe.ended_at is None and probe.max_rss_bytes is None
    assert probe.restarts == 1  # two pods seen; the message's attempt "3" is not a number
    assert probe.kubernetes is not None and probe.kubernetes["save_s"] is None
    running = pod("c", "2026-12-03T12:00:00Z", {"phase": "Running", "containerStatuses": [
        {"state": {"running": {"startedAt": "0"}}}]})  # fmt: skip
    probe = judge(RUN_DIR, RUN, "ml", [job(), running])
    assert probe.state == "running" and probe.started_at is None


@pytest.mark.parametrize(("cancelled", "state"), [(True, "cancelled"), (False, "vanished")])
def test_a_job_gone_from_the_api_is_cancelled_only_if_outlive_cancelled_it(
    cancelled: bool, state: str
) -> None:
    probe = judge(RUN_DIR, RUN, "ml", [], cancelled=cancelled)
    assert probe.state == state
    assert (probe.diagnosis is None) == cancelled


def test_a_workdir_outside_the_claim_is_refused_naming_k8s5(tmp_path: Any) -> None:
    from outlive import wire
    from outlive.backends.base import ProjectRef

    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "outlive.toml").write_text(
        '[targets.k8s]\nprofile = "kubernetes"\nimage = "x"\npvc = "c"\nworkdir = "/work/p"\n'
    )
    cfg = load_config(proj)
    backend = KubernetesBackend(
        cfg.target("k8s"),
        None,
        tuple,
        ProjectRef("p", proj, cfg.state_dir),  # type: ignore[arg-type]
    )
    request = wire.LaunchRequest(run_id=RUN, name="r", command=["true"], workdir="/work/p")
    with pytest.raises(ConfigError, match=r"outside the claim mounted at /checkpoints.*\(K8S5\)"):
        backend.launch(request)
