"""Checks of the box around the GPU: python, cgroup memory (U9, U41) and CPU quota (U40), the
job's threads against that quota, where the caches land (RP11), and the tools outlive uses."""

from __future__ import annotations

import math
from collections.abc import Mapping

from outlive.diagnose.disk import DISK_FREE_WARN_BYTES, fs_label
from outlive.diagnose.facts import CgroupFacts, FsFacts, HostFacts, PythonFacts, ThreadsFacts
from outlive.diagnose.model import Check, Status, human_bytes

__all__ = [
    "MEMORY_USED_WARN_FRACTION",
    "MIN_PYTHON",
    "RUNNABLE_THREADS_PER_VCPU_WARN",
    "UNLIMITED_BYTES",
    "caches_check",
    "cpu_quota_check",
    "memory_check",
    "memory_numbers",
    "python_check",
    "threads_check",
    "tool_checks",
]

MIN_PYTHON = (3, 8)  # what the box agent needs
# The cgroup's memory in use as a fraction of memory.max above which a run is close to an
# OOM kill (each DataLoader worker copies what the dataset holds, U9).
MEMORY_USED_WARN_FRACTION = 0.90
# cgroup v1 writes "no limit" as a number near 2**63; anything above this is no limit.
UNLIMITED_BYTES = 1 << 60
# Runnable threads per vCPU of the quota above which the scheduler thrashes (U40).
RUNNABLE_THREADS_PER_VCPU_WARN = 2.0


def python_check(facts: PythonFacts | None) -> Check:
    if not facts:
        return Check("python", Status.FAIL, "no python answered on the box", ())
    info = tuple(int(x) for x in facts.get("version_info") or (0, 0))
    where = f"Python {facts.get('version')} at {facts.get('executable')}"
    if info[:2] < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        return Check("python", Status.FAIL, f"{where}; outlive's agent needs >= {need}", ())
    return Check("python", Status.PASS, where, ())


def memory_numbers(cgroup: CgroupFacts | None) -> tuple[int | None, int | None]:
    """(limit, in use) in bytes from cgroup v2 ``memory.max``/``memory.current`` or v1
    ``memory.limit_in_bytes``/``memory.usage_in_bytes``; limit None when there is none."""
    files = (cgroup or {}).get("files") or {}
    raw_limit = files.get("memory.max", files.get("memory.limit_in_bytes"))
    raw_used = files.get("memory.current", files.get("memory.usage_in_bytes"))
    limit = int(raw_limit) if raw_limit and raw_limit.isdigit() else None
    if limit is not None and limit >= UNLIMITED_BYTES:
        limit = None
    used = int(raw_used) if raw_used and raw_used.isdigit() else None
    return limit, used


def memory_check(
    cgroup: CgroupFacts | None,
    host: HostFacts | None,
    oom_baseline: int | None = None,
) -> Check:
    """``memory``: the cgroup's own limit and use, never the host's ``free`` (U41); with
    ``oom_baseline`` (doctor), whether the oom_kill counter grew since the run started."""
    name, gotchas = "memory", ("U9", "U41")
    if not cgroup or not cgroup.get("memory_dir"):
        return Check(name, Status.SKIP, "no memory cgroup is readable on this box", gotchas)
    limit, used = memory_numbers(cgroup)
    oom = cgroup.get("oom_kill")
    where = cgroup["memory_dir"]
    host_total = (host or {}).get("mem_total_bytes")
    if limit is None:
        text = f"no cgroup memory limit at {where}"
        if host_total:
            text += f"; the host has {human_bytes(host_total)}"
        if used is not None:
            text += f", the cgroup uses {human_bytes(used)}"
    else:
        share = f" ({used / limit:.0%})" if used is not None and limit else ""
        text = f"cgroup {where} uses {human_bytes(used)} of {human_bytes(limit)}{share}"
    if oom is not None and oom_baseline is not None and oom > oom_baseline:
        return Check(
            name,
            Status.FAIL,
            f"{text}; its oom_kill counter grew from {oom_baseline} to {oom} since the run "
            "started: the kernel OOM-killed a process of this run",
            gotchas,
        )
    if limit is not None and used is not None and used >= MEMORY_USED_WARN_FRACTION * limit:
        return Check(
            name,
            Status.WARN,
            f"{text}: close to its limit; each DataLoader worker copies large in-RAM objects, "
            "so size num_workers against memory.max",
            gotchas,
        )
    if oom and oom_baseline is None:
        return Check(
            name,
            Status.WARN,
            f"{text}; this cgroup has already OOM-killed {oom} process(es)",
            gotchas,
        )
    return Check(name, Status.PASS, text, gotchas)


def _vcpus(cgroup: CgroupFacts | None, host: HostFacts | None) -> tuple[int, str]:
    """Cores a job may really use: the cgroup CPU quota, the affinity mask, the host's count."""
    host = host or {}
    cores = int(host.get("cpu_count") or 1)
    affinity = host.get("affinity_cpus")
    quota = (cgroup or {}).get("quota_cores")
    limits = [(cores, f"{cores} host cores")]
    if affinity and affinity < cores:
        limits.append((int(affinity), f"{affinity} CPUs in the affinity mask"))
    if quota:
        raw = ((cgroup or {}).get("files") or {}).get("cpu.max")
        source = f"cpu.max '{raw}'" if raw else "cfs_quota_us/cfs_period_us"
        limits.append((max(1, math.ceil(float(quota))), f"{source} = {float(quota):g} vCPUs"))
    return min(limits)


def cpu_quota_check(
    cgroup: CgroupFacts | None, host: HostFacts | None, env: Mapping[str, str | None]
) -> Check:
    """``cpu quota``: the vCPUs the cgroup allows, against what thread pools will assume (U40)."""
    name, gotchas = "cpu quota", ("U40",)
    vcpus, source = _vcpus(cgroup, host)
    host_cores = int((host or {}).get("cpu_count") or 1)
    if vcpus >= host_cores:
        return Check(name, Status.PASS, f"no CPU quota: {host_cores} cores", gotchas)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = str(env.get(key) or "")
        if value.isdigit() and int(value) > vcpus:
            return Check(
                name,
                Status.WARN,
                f"{source}, but {key}={value} is set on the box and wins over outlive's cap "
                f"of {vcpus}: that many threads thrash {vcpus} vCPUs and starve the GPU",
                gotchas,
            )
    return Check(
        name,
        Status.PASS,
        f"{source} (the host shows {host_cores} cores): outlive caps OMP/MKL threads of its "
        f"runs at {vcpus}; keep torch.set_num_threads at or below it",
        gotchas,
    )


def threads_check(
    threads: ThreadsFacts | None, cgroup: CgroupFacts | None, host: HostFacts | None
) -> Check:
    """``threads``: the running job's threads against its CPU quota (U40)."""
    name, gotchas = "threads", ("U40",)
    if threads is None:
        return Check(name, Status.SKIP, "the job is not running", gotchas)
    procs = threads.get("procs") or []
    if not procs:
        why = threads.get("error") or "no process of the job's group was found"
        return Check(name, Status.SKIP, why, gotchas)
    total = sum(int(p.get("threads") or 0) for p in procs)
    runnable = sum(int(p.get("running") or 0) for p in procs)
    vcpus, source = _vcpus(cgroup, host)
    text = f"{total} thread(s) in {len(procs)} process(es), {runnable} runnable; {source}"
    env = threads.get("env") or {}
    host_cores = int((host or {}).get("cpu_count") or 1)
    over = [f"{k}={v}" for k, v in env.items() if str(v).isdigit() and int(v) > vcpus]
    if vcpus < host_cores and over:
        return Check(
            name,
            Status.WARN,
            f"{text}; the job runs with {', '.join(over)}, more than the {vcpus} vCPUs it may use",
            gotchas,
        )
    if runnable > RUNNABLE_THREADS_PER_VCPU_WARN * vcpus:
        return Check(
            name,
            Status.WARN,
            f"{text}: more runnable threads than the quota can schedule; cap the thread pools "
            f"at {vcpus} (OMP_NUM_THREADS, torch.set_num_threads)",
            gotchas,
        )
    return Check(name, Status.PASS, text, gotchas)


def caches_check(disks: Mapping[str, FsFacts], env: Mapping[str, str]) -> Check:
    """``caches``: where HF_HOME and the pip cache would land; on a small root disk they fill it
    while the workdir's volume sits empty (RP11)."""
    name, gotchas = "caches", ("RP11", "U7")
    work = disks.get("workdir") or {}
    roles = (("hf_home", "HF_HOME"), ("pip_cache", "PIP_CACHE_DIR"))
    stranded, seen = [], []
    for role, var in roles:
        facts = disks.get(role) or {}
        if facts.get("error") or facts.get("free_bytes") is None:
            continue
        where = (
            f"{var}={facts['path']} on {fs_label(facts)}, {human_bytes(facts['free_bytes'])} free"
        )
        seen.append(where)
        apart = work.get("device") is not None and facts.get("device") != work.get("device")
        if apart and int(facts["free_bytes"]) < DISK_FREE_WARN_BYTES:
            stranded.append(where)
    if stranded:
        home = str(work.get("path") or "<workdir>").rstrip("/")
        return Check(
            name,
            Status.WARN,
            "; ".join(stranded) + f" — not on the workdir's filesystem ({fs_label(work)}, "
            f"{human_bytes(work.get('free_bytes'))} free); set HF_HOME={home}/.cache/hf and "
            f"PIP_CACHE_DIR={home}/.cache/pip in the target's env",
            gotchas,
        )
    if not seen:
        return Check(name, Status.SKIP, "could not measure where the caches land", gotchas)
    source = " (from the target's env)" if env else ""
    return Check(name, Status.PASS, "; ".join(seen) + source, gotchas)


def tool_checks(tools: Mapping[str, str | None]) -> list[Check]:
    """``tmux`` and ``rsync``: neither is required, each missing one costs something."""
    out = []
    if tools.get("tmux"):
        out.append(Check("tmux", Status.PASS, f"tmux at {tools['tmux']}", ()))
    else:
        out.append(
            Check(
                "tmux",
                Status.WARN,
                "tmux is not installed: outlive does not need it (its runs detach with setsid), "
                "but interactive work in a plain SSH session dies when the connection drops",
                ("GEN2",),
            )
        )
    if tools.get("rsync"):
        out.append(Check("rsync", Status.PASS, f"rsync at {tools['rsync']}", ()))
    else:
        out.append(
            Check(
                "rsync",
                Status.WARN,
                "rsync is not installed: push falls back to a full tar stream (no delta) and "
                "pulls cannot resume; install it (apt install rsync)",
                ("U12",),
            )
        )
    return out
