"""The ``up`` report from agent facts: the JSON shape, check order, and ok/exit semantics."""

from __future__ import annotations

from typing import Any

from diag_facts import fs, gpu_facts, no_gpu_facts

from outlive.diagnose.audit import audit_report
from outlive.diagnose.model import GIB

EXPECTED = [
    "python",
    "gpu",
    "vram",
    "gpu throttle",
    "gpu clocks",
    "cuda triangle",
    "disk workdir",
    "inodes workdir",
    "disk durable",
    "inodes durable",
    "caches",
    "memory",
    "cpu quota",
    "tmux",
    "rsync",
]


def _facts(**over: Any) -> dict[str, Any]:
    disk = fs("/w", free_bytes=80 * GIB)
    facts: dict[str, Any] = {
        "python": {
            "executable": "/usr/bin/python3",
            "version": "3.10.12",
            "version_info": [3, 10, 12],
        },
        "host": {"cpu_count": 16, "affinity_cpus": 16, "mem_total_bytes": 64 * GIB},
        "env": {"HOME": "/root"},
        "env_overrides": {},
        "caches": {"hf_home": "/root/.cache/huggingface", "pip_cache": "/root/.cache/pip"},
        "disks": {"workdir": disk, "durable": disk, "hf_home": disk, "pip_cache": disk},
        "cgroup": {"memory_dir": "/sys/fs/cgroup", "files": {"memory.max": "max"}, "oom_kill": 0},
        "tools": {"tmux": "/usr/bin/tmux", "rsync": "/usr/bin/rsync"},
        "gpu": no_gpu_facts(),
        "torch": None,
        "vram_holders": None,
    }
    facts.update(over)
    return facts


def test_a_cpu_box_is_ok_with_the_gpu_check_saying_there_is_none() -> None:
    report = audit_report("local", _facts())
    assert set(report) == {"target", "checks", "ok"}
    assert report["target"] == "local" and report["ok"] is True
    assert [c["name"] for c in report["checks"]] == EXPECTED
    gpu = report["checks"][1]
    assert gpu["status"] == "WARN" and "nvidia-smi" in gpu["detail"]


def test_any_fail_makes_ok_false() -> None:
    full = fs("/d", free_bytes=10 * 1024**2)
    facts = _facts()
    facts["disks"] = dict(facts["disks"], durable=full)
    report = audit_report("box", facts)
    assert report["ok"] is False
    failed = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert [c["name"] for c in failed] == ["disk durable"]
    assert failed[0]["gotchas"] == ["U7"]


def test_a_gpu_box_reports_every_gpu_check() -> None:
    holders = {"holders": [], "unreadable": 2, "truncated": False}
    report = audit_report("a100", _facts(gpu=gpu_facts(), vram_holders=holders))
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["gpu"]["status"] == "PASS"
    assert checks["gpu clocks"]["status"] == "WARN"
    assert checks["vram"]["status"] == "WARN"  # 60 GiB used on GPU 1 with no holder
    assert report["ok"] is True
