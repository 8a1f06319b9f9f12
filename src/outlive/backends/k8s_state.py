"""A Kubernetes run's status from the API's own evidence: its Job, the Job's pods, and the
supervisor's exit record (the container's termination message). A pure function of that JSON,
unit-tested on recorded objects and exercised against a real API server.

State: the Job's ``Complete`` / ``Failed`` condition ends the run; otherwise the newest pod
says it (Pending → pending, or requeued once an earlier attempt ran; Running → running; a pod
that ended or is being deleted while the Job lives → requeued, the controller starts another).
Causes, with the gotcha each points to: ``OOMKilled`` → oom (U9); ``Evicted`` → killed (K8S5
when ephemeral storage ran out); ``DeadlineExceeded`` → killed (the time limit);
``DisruptionTarget`` → killed (preempted); ``Unschedulable`` with ``Insufficient nvidia.com/gpu``
(K8S1) and ``ImagePullBackOff`` / ``ErrImagePull`` (K8S3) keep a run pending, with the
diagnosis and a warning naming the fix.

Restarts: pods of the Job before the newest. A preempted pod is deleted from the API, so the
count also remembers pods an earlier look saw (``seen_pods``), and once the run ended the
supervisor's own attempt number (in the termination message, from its records on the claim)
is exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from outlive import wire

__all__ = ["judge", "newest_pod", "pods_of"]

Obj = Mapping[str, Any]


def pods_of(items: Iterable[Obj], run_id: str) -> list[Obj]:
    """The pods of a run, oldest first."""
    pods = [
        i for i in items if i.get("kind") == "Pod" and _labels(i).get("outlive/run-id") == run_id
    ]
    return sorted(pods, key=lambda p: (str(_meta(p).get("creationTimestamp") or ""), _name(p)))


def job_of(items: Iterable[Obj], run_id: str) -> Obj | None:
    for i in items:
        if i.get("kind") == "Job" and _labels(i).get("outlive/run-id") == run_id:
            return i
    return None


def newest_pod(items: Iterable[Obj], run_id: str) -> Obj | None:
    pods = pods_of(items, run_id)
    return pods[-1] if pods else None


def judge(
    run_dir: str,
    run_id: str,
    namespace: str,
    items: Sequence[Obj],
    *,
    cancelled: bool = False,
    seen_pods: Sequence[str] = (),
    saves: Sequence[float] = (),
) -> wire.RunProbe:
    """The probe of one run from the namespace's ``kubectl get jobs,pods -o json`` items."""
    job = job_of(items, run_id)
    pods = pods_of(items, run_id)
    names = list(dict.fromkeys([*seen_pods, *(_name(p) for p in pods)]))
    newest = pods[-1] if pods else None
    message = _termination(newest) if newest is not None else None
    attempt = (message or {}).get("attempt")
    attempts = max(len(names), int(attempt) + 1 if attempt is not None else 0)
    restarts = max(0, attempts - 1)
    term_s = (message or {}).get("term_to_exit_s")
    all_saves = [*saves, *([float(term_s)] if isinstance(term_s, (int, float)) else [])]
    view: dict[str, Any] = {
        "namespace": namespace,
        "job": _name(job) if job else None,
        "pod": _name(newest) if newest else None,
        "phase": (newest or {}).get("status", {}).get("phase"),
        "reason": None,
        "message": None,
        "restarts": restarts,
        "attempts": attempts,
        "save_s": max(all_saves) if all_saves else None,
        "seen_pods": names[-50:],
    }
    probe = wire.RunProbe(run_dir=run_dir, state="pending", run_id=run_id, restarts=restarts)
    probe.kubernetes = view
    if message:
        probe.started_at = message.get("started_at")
        probe.progress = message.get("progress")
    elif newest is not None:
        probe.started_at = _running_since(newest)
    if job is None:
        return _gone(probe, view, cancelled)
    finished = _condition(job, "Complete") or _condition(job, "Failed")
    if finished is not None:
        return _ended(probe, view, job, newest, message, finished, cancelled)
    if newest is None:
        probe.state = "pending"
        return probe
    return _live(probe, view, newest, message, restarts)


def _gone(probe: wire.RunProbe, view: dict[str, Any], cancelled: bool) -> wire.RunProbe:
    if cancelled:
        probe.state = "cancelled"
        return probe
    probe.state = "vanished"
    probe.diagnosis = {
        "cause": "unknown",
        "evidence": [
            f"the Job of this run is gone from namespace {view['namespace']} (deleted by "
            "someone, or by a ttlSecondsAfterFinished) and outlive did not cancel it"
        ],
        "gotchas": ["U3"],
    }
    return probe


def _ended(
    probe: wire.RunProbe,
    view: dict[str, Any],
    job: Obj,
    newest: Obj | None,
    message: dict[str, Any] | None,
    cond: Obj,
    cancelled: bool,
) -> wire.RunProbe:
    terminated = _terminated(newest) if newest is not None else {}
    probe.exit_code = (message or {}).get("exit_code", terminated.get("exitCode"))
    probe.signal = (message or {}).get("signal")
    probe.ended_at = (message or {}).get("ended_at") or _epoch(
        job.get("status", {}).get("completionTime") or cond.get("lastTransitionTime")
    )
    probe.max_rss_bytes = (message or {}).get("max_rss_bytes")
    view["reason"], view["message"] = cond.get("reason"), cond.get("message")
    if cond.get("type") == "Complete":
        probe.state = "succeeded"
        probe.exit_code = 0 if probe.exit_code is None else probe.exit_code
        return probe
    probe.state = "cancelled" if cancelled else "failed"
    reason = str(cond.get("reason") or "")
    if reason == "DeadlineExceeded":
        probe.diagnosis = {
            "cause": "killed",
            "evidence": [
                f"the Job ran past its activeDeadlineSeconds ({_deadline(job)} s, the target's "
                "time limit) and Kubernetes stopped it: raise time, or let it resume in a new run"
            ],
            "gotchas": [],
        }
        return probe
    pod_cause = _pod_cause(newest, message) if newest is not None else None
    if pod_cause is not None:
        probe.diagnosis = pod_cause
    elif reason and probe.exit_code in (None, 0):
        probe.diagnosis = {
            "cause": "unknown",
            "evidence": [f"the Job failed: {reason} ({cond.get('message') or 'no message'})"],
            "gotchas": ["U3"],
        }
    return probe


def _pod_cause(pod: Obj, message: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the pod's own status says killed it: OOM, eviction, preemption, a lost exit record."""
    status = pod.get("status") or {}
    terminated = _terminated(pod)
    if terminated.get("reason") == "OOMKilled" or (message or {}).get("oom_kill"):
        limit = _limit(pod, "memory")
        return {
            "cause": "oom",
            "evidence": [
                f"the container was OOMKilled at its memory limit ({limit or 'none set'}); "
                "raise memory (and keep shm well below it: /dev/shm counts against it)"
            ],
            "gotchas": ["U9"],
        }
    if status.get("reason") == "Evicted":
        text = str(status.get("message") or "evicted")
        disk = "ephemeral-storage" in text
        return {
            "cause": "killed",
            "evidence": [
                f"the kubelet evicted the pod: {text}"
                + (
                    "; write checkpoints and caches to the claim, not the pod's filesystem"
                    if disk
                    else ""
                )
            ],
            "gotchas": ["K8S5", "U6"] if disk else ["K8S5"],
        }
    if _condition(pod, "DisruptionTarget") is not None:
        cond = _condition(pod, "DisruptionTarget") or {}
        return {
            "cause": "killed",
            "evidence": [
                f"the pod was preempted ({cond.get('reason') or 'DisruptionTarget'}: "
                f"{cond.get('message') or 'no message'})"
            ],
            "gotchas": [],
        }
    if message is None and terminated:
        return {
            "cause": "unknown",
            "evidence": [
                f"the container ended ({terminated.get('reason')}, exit "
                f"{terminated.get('exitCode')}) without outlive's exit record: the supervisor "
                "did not start (is python3 >= 3.8 in the image?) or was killed"
            ],
            "gotchas": ["U3"],
        }
    return None


def _live(
    probe: wire.RunProbe,
    view: dict[str, Any],
    pod: Obj,
    message: dict[str, Any] | None,
    restarts: int,
) -> wire.RunProbe:
    status = pod.get("status") or {}
    phase = status.get("phase")
    if _meta(pod).get("deletionTimestamp") or phase in ("Failed", "Succeeded"):
        probe.state = "requeued"  # the controller starts the next pod
        disrupted = _condition(pod, "DisruptionTarget")
        view["reason"] = (
            "DisruptionTarget" if disrupted else _terminated(pod).get("reason") or "Terminating"
        )
        cause = _pod_cause(pod, message)
        if cause is not None:
            view["message"] = "; ".join(cause["evidence"])
        return probe
    if phase == "Running":
        probe.state = "running"
        return probe
    probe.state = "requeued" if restarts else "pending"
    sched = _condition(pod, "PodScheduled")
    if sched is not None and sched.get("status") == "False":
        text = str(sched.get("message") or "")
        view["reason"], view["message"] = sched.get("reason"), text
        if "nvidia.com/gpu" in text:
            probe.warning = (
                f"the pod cannot be scheduled ({text.strip()}): no node advertises a free GPU; "
                "check the NVIDIA device plugin DaemonSet and the GPU nodes' taints (K8S1)"
            )
            probe.diagnosis = {"cause": "unknown", "evidence": [text], "gotchas": ["K8S1"]}
        else:
            probe.warning = f"the pod cannot be scheduled: {text.strip()}"
        return probe
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName"):
            text = str(waiting.get("message") or waiting.get("reason"))
            view["reason"], view["message"] = waiting.get("reason"), text
            probe.warning = (
                f"the image cannot be pulled ({waiting.get('reason')}: {text}); check the tag "
                "or digest and image_pull_secret (K8S3)"
            )
            probe.diagnosis = {"cause": "unknown", "evidence": [text], "gotchas": ["K8S3"]}
    return probe


# -- the JSON ----------------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def _labels(obj: Obj) -> Obj:
    return _meta(obj).get("labels") or {}


def _condition(obj: Obj, kind: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return dict(c)
        if kind == "PodScheduled" and c.get("type") == kind:
            return dict(c)
    return None


def _terminated(pod: Obj) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("terminated"):
            return dict(state["terminated"])
        last = (cs.get("lastState") or {}).get("terminated")
        if last:
            return dict(last)
    return {}


def _termination(pod: Obj) -> dict[str, Any] | None:
    """The supervisor's exit record in brief (the container's termination message)."""
    text = _terminated(pod).get("message")
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        return None
    # The message is written inside the job's own container: a number that is not one (a time
    # "0" or "soon", an attempt "3") is dropped, never computed with.
    for key in _NUMBERS:
        if doc.get(key) is not None and not _finite(doc[key]):
            del doc[key]
    return doc


_NUMBERS = (
    "attempt", "exit_code", "signal", "started_at", "ended_at", "max_rss_bytes",
    "term_to_exit_s", "container_exit",
)  # fmt: skip


def _finite(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


def _running_since(pod: Obj) -> float | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        running = (cs.get("state") or {}).get("running") or {}
        if running.get("startedAt"):
            return _epoch(running["startedAt"])
    return None


def _limit(pod: Obj, what: str) -> str | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        value = ((c.get("resources") or {}).get("limits") or {}).get(what)
        if value:
            return str(value)
    return None


def _deadline(job: Obj) -> object:
    return (job.get("spec") or {}).get("activeDeadlineSeconds", "?")


def _epoch(stamp: object) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):  # "0", or a year this platform cannot place
        return None
