"""Helpers for the diagnose tests (imported by name: pytest puts this directory on sys.path):
fixture outputs of nvidia-smi and the kernel, and fact builders shaped like the replies of the
box agent's ``audit`` and ``doctor`` verbs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from outlive.agent.box import gpu_facts as box_gpu_facts

FIXTURES = Path(__file__).with_name("fixtures")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def cmd(stdout: str = "", rc: int | None = 0, **extra: Any) -> dict[str, Any]:
    """A ``run_cmd`` result as the agent returns it."""
    out: dict[str, Any] = {
        "argv": ["nvidia-smi"],
        "missing": False,
        "rc": rc,
        "timed_out": False,
        "stdout": stdout,
        "stderr": "",
        "error": None if rc == 0 else f"nvidia-smi exited {rc}",
    }
    out.update(extra)
    return out


def gpu_facts(
    query: str = "query_h100x2.csv",
    perf: str | None = "perf_r535_idle.txt",
    apps: str | None = None,
    dmon: str | None = None,
    fields: tuple[str, ...] = box_gpu_facts.GPU_QUERY_FIELDS,
) -> dict[str, Any]:
    """``gpu_facts`` as the agent sends it, built from fixture files."""
    facts: dict[str, Any] = {
        "dev_nodes": ["/dev/nvidia0", "/dev/nvidiactl"],
        "fields": list(fields),
        "query": cmd(fixture(query)),
        "apps": cmd(fixture(apps) if apps else ""),
        "app_fields": list(box_gpu_facts.COMPUTE_APP_FIELDS),
        "performance": cmd(fixture(perf)) if perf else cmd("", rc=1),
    }
    if dmon:
        facts["dmon"] = cmd(fixture(dmon))
    return facts


def no_gpu_facts() -> dict[str, Any]:
    missing = cmd(rc=None, missing=True, error="nvidia-smi is not installed (not on PATH)")
    return {"dev_nodes": [], "fields": list(box_gpu_facts.GPU_QUERY_FIELDS), "query": missing}


def fs(
    path: str,
    *,
    free_bytes: int,
    total_bytes: int = 100 * 1024**3,
    free_inodes: int = 5_000_000,
    total_inodes: int = 6_000_000,
    device: int = 1,
    mount_point: str = "/",
    exists: bool = True,
) -> dict[str, Any]:
    """``fs_facts`` of one path."""
    return {
        "path": path,
        "measured_at": path,
        "exists": exists,
        "device": device,
        "total_bytes": total_bytes,
        "free_bytes": free_bytes,
        "total_inodes": total_inodes,
        "free_inodes": free_inodes,
        "readonly": False,
        "mount_point": mount_point,
        "fstype": "ext4",
        "source": "/dev/sda1",
    }
