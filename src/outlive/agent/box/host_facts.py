"""Raw facts about the host for ``outlive up`` and ``outlive doctor``: disks and inodes, cgroup
files, memory and uptime, the kernel log, a job's threads. Facts only; outlive.diagnose judges."""

from __future__ import annotations

import contextlib
import os
import re
import time

from .commands import run_cmd
from .common import Rec
from .procfs import boot_id, cgroups_of, cpu_quota_cores, mount_of, proc_stat, read_oom_kill
from .records import read_text

DMESG_TIMEOUT_S = 10.0
DMESG_READ_MAX_BYTES = 16 * 1024 * 1024  # the kernel ring buffer, read whole before filtering
DMESG_MAX_LINES = 500  # matching kernel lines sent back (the newest)
DMESG_INTERESTING = re.compile(
    r"xid|killed process|kill process|out of memory|oom-kill|oom_reaper|invoked oom-killer",
    re.IGNORECASE,
)


def fs_facts(path: str) -> Rec:
    """Free bytes and inodes (statvfs, what ``df -h`` and ``df -i`` print) of the filesystem that
    holds ``path``, measured at its nearest existing ancestor when it does not exist yet (U7)."""
    path = os.path.expanduser(path)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if not parent or parent == probe:
            break
        probe = parent
    out: Rec = {"path": path, "measured_at": probe, "exists": probe == path}
    try:
        st = os.statvfs(probe)
        out["device"] = os.stat(probe).st_dev
    except OSError as exc:
        out["error"] = f"statvfs({probe}) failed: {exc.strerror or exc}"
        return out
    out.update(
        {
            "total_bytes": st.f_blocks * st.f_frsize,
            "free_bytes": st.f_bavail * st.f_frsize,  # what an unprivileged writer may use
            "total_inodes": st.f_files,
            "free_inodes": st.f_favail,
            "readonly": bool(st.f_flag & getattr(os, "ST_RDONLY", 1)),
        }
    )
    out.update(mount_of(probe))
    return out


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0].strip() if text and text.strip() else None


def cgroup_facts(pid: int | None = None) -> Rec:
    """The memory and CPU cgroup files of ``pid`` (default: this agent), raw (U9, U40, U41)."""
    dirs = cgroups_of(str(pid) if pid else "self")
    return cgroup_files(dirs.get("memory"), dirs.get("cpu"))


def cgroup_files(memory_dir: str | None, cpu_dir: str | None) -> Rec:
    out: Rec = {"memory_dir": memory_dir, "cpu_dir": cpu_dir, "files": {}}
    names = (
        (memory_dir, ("memory.max", "memory.current", "memory.peak", "memory.events")),
        (memory_dir, ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.oom_control")),
        (memory_dir, ("memory.max_usage_in_bytes",)),
        (cpu_dir, ("cpu.max", "cpu.cfs_quota_us", "cpu.cfs_period_us")),
    )
    for directory, files in names:
        if not directory:
            continue
        for name in files:
            text = read_text(os.path.join(directory, name))
            if text is not None:
                out["files"][name] = text.strip()[:4000]
    out["oom_kill"] = read_oom_kill(memory_dir)
    out["quota_cores"] = cpu_quota_cores(cpu_dir)
    return out


def host_facts() -> Rec:
    meminfo = read_text("/proc/meminfo") or ""
    mem_total = None
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                mem_total = int(fields[1]) * 1024
    affinity = None
    getaffinity = getattr(os, "sched_getaffinity", None)  # Linux only
    if getaffinity is not None:
        with contextlib.suppress(OSError):
            affinity = len(getaffinity(0))
    uptime = _first_line(read_text("/proc/uptime"))
    btime = None
    for line in (read_text("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            btime = int(line.split()[1])
    return {
        "hostname": os.uname().nodename,
        "cpu_count": os.cpu_count(),
        "affinity_cpus": affinity,
        "mem_total_bytes": mem_total,
        "boot_id": boot_id(),
        "btime": btime,
        "uptime_s": float(uptime.split()[0]) if uptime else None,
        "now": time.time(),
        "pid": os.getpid(),
    }


def dmesg_facts() -> Rec:
    """Kernel log lines about OOM kills and GPU Xid errors, or why they could not be read."""
    done = run_cmd(["dmesg"], DMESG_TIMEOUT_S, keep_bytes=DMESG_READ_MAX_BYTES)
    lines = done["stdout"].splitlines()
    readable = done["rc"] == 0 and bool(lines)
    if done["rc"] == 0 and not lines:
        done["error"] = "dmesg printed nothing (an empty or inaccessible kernel log)"
    restrict = _first_line(read_text("/proc/sys/kernel/dmesg_restrict"))
    matching = [line for line in lines if DMESG_INTERESTING.search(line)]
    return {
        "readable": readable,
        "error": done["error"],
        "missing": done["missing"],
        "timed_out": done["timed_out"],
        "dmesg_restrict": restrict,
        "total_lines": len(lines),
        "first_line": lines[0] if lines else None,
        "last_line": lines[-1] if lines else None,
        "lines": matching[-DMESG_MAX_LINES:],
        "lines_dropped": max(0, len(matching) - DMESG_MAX_LINES),
    }


def group_threads(pgid: int | None) -> Rec:
    """Processes of the job's process group with their thread counts and runnable threads, and
    the OMP/MKL thread caps the job started with (U40)."""
    if not pgid:
        return {"procs": [], "error": "no process group recorded"}
    procs = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError as exc:
        return {"procs": [], "error": f"cannot list /proc: {exc.strerror or exc}"}
    for pid in pids:
        stat = proc_stat(pid)
        if not stat or len(stat) < 19 or stat[3] != str(pgid) or stat[1] in ("Z", "X"):
            continue
        running = 0
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            tids = []
        for tid in tids:
            tstat = proc_stat(f"{pid}/task/{tid}")
            if tstat and len(tstat) > 1 and tstat[1] == "R":
                running += 1
        procs.append(
            {"pid": int(pid), "comm": stat[0], "threads": int(stat[18]), "running": running}
        )
    env_caps = {}
    environ = read_text(f"/proc/{pgid}/environ")
    if environ is not None:
        for item in environ.split("\x00"):
            key, sep, value = item.partition("=")
            if sep and key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env_caps[key] = value
    return {"procs": procs, "env": env_caps, "env_readable": environ is not None}
