"""Checks of the box around the GPU: cgroup memory (U9, U41), CPU quota and threads (U40),
caches (RP11), python and tools."""

from __future__ import annotations

from typing import Any

from diag_facts import fs

from outlive.diagnose.model import GIB, Status
from outlive.diagnose.system import (
    caches_check,
    cpu_quota_check,
    memory_check,
    memory_numbers,
    python_check,
    threads_check,
    tool_checks,
)

HOST = {"cpu_count": 64, "affinity_cpus": 64, "mem_total_bytes": 512 * GIB}


def _v2(
    max_: str, current: str, events: str = "oom_kill 0", cpu: str = "max 100000"
) -> dict[str, Any]:
    quota = None
    q, _, period = cpu.partition(" ")
    if q != "max":
        quota = int(q) / int(period)
    return {
        "memory_dir": "/sys/fs/cgroup/job",
        "cpu_dir": "/sys/fs/cgroup/job",
        "files": {
            "memory.max": max_,
            "memory.current": current,
            "memory.events": events,
            "cpu.max": cpu,
        },
        "oom_kill": int(events.split()[-1]),
        "quota_cores": quota,
    }


def test_memory_numbers_read_v2_and_v1_and_treat_huge_v1_limits_as_none() -> None:
    assert memory_numbers(_v2("17179869184", "1073741824")) == (16 * GIB, GIB)
    assert memory_numbers(_v2("max", "1024")) == (None, 1024)
    v1 = {"files": {"memory.limit_in_bytes": "9223372036854771712", "memory.usage_in_bytes": "5"}}
    assert memory_numbers(v1) == (None, 5)


def test_memory_close_to_the_cgroup_limit_warns() -> None:
    check = memory_check(_v2(str(16 * GIB), str(15 * GIB)), HOST)
    assert check.status is Status.WARN
    assert "15.0 GiB of 16.0 GiB (94%)" in check.detail
    assert check.gotchas == ("U9", "U41")


def test_an_oom_kill_counter_above_the_run_baseline_fails() -> None:
    check = memory_check(_v2(str(16 * GIB), str(GIB), events="oom_kill 3"), HOST, oom_baseline=1)
    assert check.status is Status.FAIL
    assert "grew from 1 to 3" in check.detail


def test_earlier_oom_kills_in_the_cgroup_warn_at_audit_time() -> None:
    check = memory_check(_v2(str(16 * GIB), str(GIB), events="oom_kill 2"), HOST)
    assert check.status is Status.WARN and "already OOM-killed 2" in check.detail


def test_no_limit_passes_and_names_the_host_memory() -> None:
    check = memory_check(_v2("max", str(GIB)), HOST)
    assert check.status is Status.PASS
    assert "no cgroup memory limit" in check.detail and "512.0 GiB" in check.detail
    assert memory_check(None, HOST).status is Status.SKIP


def test_cpu_quota_names_the_vcpus_it_implies() -> None:
    check = cpu_quota_check(_v2("max", "1", cpu="400000 100000"), HOST, {})
    assert check.status is Status.PASS
    assert "cpu.max '400000 100000' = 4 vCPUs" in check.detail and "64 cores" in check.detail


def test_a_box_omp_setting_above_the_quota_warns() -> None:
    check = cpu_quota_check(_v2("max", "1", cpu="1200000 100000"), HOST, {"OMP_NUM_THREADS": "64"})
    assert check.status is Status.WARN
    assert "OMP_NUM_THREADS=64" in check.detail and "12" in check.detail
    assert check.gotchas == ("U40",)


def test_no_quota_and_affinity_mask() -> None:
    assert cpu_quota_check(_v2("max", "1"), HOST, {}).status is Status.PASS
    pinned = dict(HOST, affinity_cpus=8)
    check = cpu_quota_check(_v2("max", "1"), pinned, {"OMP_NUM_THREADS": "64"})
    assert check.status is Status.WARN and "8 CPUs in the affinity mask" in check.detail


def test_thread_storm_against_a_small_quota_warns() -> None:
    threads = {"procs": [{"pid": 1, "comm": "python", "threads": 70, "running": 40}], "env": {}}
    check = threads_check(threads, _v2("max", "1", cpu="400000 100000"), HOST)
    assert check.status is Status.WARN
    assert "70 thread(s) in 1 process(es), 40 runnable" in check.detail


def test_job_started_with_too_many_omp_threads_warns() -> None:
    threads = {"procs": [{"pid": 1, "threads": 5, "running": 1}], "env": {"OMP_NUM_THREADS": "64"}}
    check = threads_check(threads, _v2("max", "1", cpu="400000 100000"), HOST)
    assert check.status is Status.WARN and "OMP_NUM_THREADS=64" in check.detail


def test_threads_within_the_quota_pass_and_not_running_skips() -> None:
    threads = {"procs": [{"pid": 1, "threads": 6, "running": 3}], "env": {"OMP_NUM_THREADS": "4"}}
    assert threads_check(threads, _v2("max", "1", cpu="400000 100000"), HOST).status is Status.PASS
    assert threads_check(None, None, HOST).status is Status.SKIP


def test_caches_on_a_small_root_disk_apart_from_the_workdir_warn() -> None:
    disks = {
        "workdir": fs("/workspace/p", free_bytes=400 * GIB, device=2, mount_point="/workspace"),
        "hf_home": fs("/root/.cache/huggingface", free_bytes=3 * GIB, device=1),
        "pip_cache": fs("/root/.cache/pip", free_bytes=3 * GIB, device=1),
    }
    check = caches_check(disks, {})
    assert check.status is Status.WARN
    assert "HF_HOME=/root/.cache/huggingface" in check.detail
    assert "HF_HOME=/workspace/p/.cache/hf" in check.detail
    assert "RP11" in check.gotchas


def test_caches_on_the_workdir_filesystem_pass() -> None:
    disks = {
        "workdir": fs("/workspace/p", free_bytes=400 * GIB, device=2),
        "hf_home": fs("/workspace/hf", free_bytes=400 * GIB, device=2),
        "pip_cache": fs("/workspace/pip", free_bytes=400 * GIB, device=2),
    }
    check = caches_check(disks, {"HF_HOME": "/workspace/hf"})
    assert check.status is Status.PASS and "from the target's env" in check.detail


def test_python_and_tools() -> None:
    ok = python_check({"version": "3.8.10", "version_info": [3, 8, 10], "executable": "/p"})
    old = python_check({"version": "3.6.9", "version_info": [3, 6, 9], "executable": "/p"})
    assert (ok.status, old.status) == (Status.PASS, Status.FAIL)
    checks = {c.name: c for c in tool_checks({"tmux": None, "rsync": "/usr/bin/rsync"})}
    assert checks["tmux"].status is Status.WARN and "setsid" in checks["tmux"].detail
    assert checks["rsync"].status is Status.PASS
    assert tool_checks({})[1].status is Status.WARN
