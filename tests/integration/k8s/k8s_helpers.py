"""Helpers of the k8s testbed tests: polling with a deadline and a Job manifest maker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 60.0) -> T:
    """Poll PROBE until it returns something truthy; fail naming WHAT at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def job(
    name: str,
    command: list[str],
    *,
    backoff_limit: int = 0,
    labels: dict[str, str] | None = None,
    container: dict[str, Any] | None = None,
    pod_spec: dict[str, Any] | None = None,
    job_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job running COMMAND in one container (image never pulled) with the claim
    ``outlive-ckpt`` at /ckpt."""
    main = {
        "name": "main",
        "image": "outlive-testbed",
        "command": command,
        "volumeMounts": [{"name": "ckpt", "mountPath": "/ckpt"}],
        **(container or {}),
    }
    spec = {
        "restartPolicy": "Never",
        "containers": [main],
        "volumes": [{"name": "ckpt", "persistentVolumeClaim": {"claimName": "outlive-ckpt"}}],
        **(pod_spec or {}),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"metadata": {"labels": labels or {}}, "spec": spec},
            **(job_spec or {}),
        },
    }
