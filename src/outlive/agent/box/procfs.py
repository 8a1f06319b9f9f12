"""Facts about this machine from /proc and /sys: boot id, process liveness, mounts and cgroups.

One mountinfo parser serves the cgroup lookup, the disk facts and the secret store's refusal of
shared filesystems. Nothing here judges; a missing file is a None, never an exception.
"""

from __future__ import annotations

import math
import os
import re

from outlive import wire

from .common import Rec
from .records import read_text

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)
if TYPE_CHECKING:
    from typing import Dict, List, Tuple


def boot_id() -> str | None:
    text = read_text("/proc/sys/kernel/random/boot_id")
    return text.strip() if text else None


def proc_start_ticks(pid: int) -> int | None:
    """Start time of a live, non-zombie process in clock ticks since boot; None when gone.

    pids get reused, so liveness is (pid, start time), never the pid alone."""
    stat = read_text(f"/proc/{pid}/stat")
    if stat is None:
        if os.path.isdir("/proc/self"):
            return None
        try:  # no /proc (not Linux): fall back to a bare existence check
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(pid: int | None, start_ticks: int | None) -> bool:
    if not pid:
        return False
    now = proc_start_ticks(pid)
    if now is None:
        return False
    return start_ticks is None or now == 0 or now == start_ticks


# A run's directory is named for its id (``<stamp>-<6 hex>``, naming.new_run_id).
_RUN_ID_SHAPE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


def processes_of_run(run_id: str) -> List[Tuple[int, int | None]]:
    """(pid, start ticks) of this user's live processes whose environment says they belong to
    run ``run_id`` (the supervisor gives the job ``OUTLIVE_RUN_ID``; its children inherit it).
    For a run whose records are gone: each process's environ is one small read."""
    if not _RUN_ID_SHAPE.match(run_id):
        return []
    needle = f"{wire.ENV_RUN_ID}={run_id}".encode()
    found: List[Tuple[int, int | None]] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue  # another user's, or gone
        if needle in environ.split(b"\0"):
            ticks = proc_start_ticks(int(entry))
            if ticks is not None:
                found.append((int(entry), ticks))
    return sorted(found)


def proc_stat(pid: str) -> List[str] | None:
    """``[comm, state, ppid, pgrp, ...]`` of /proc/PID/stat (comm may hold spaces and parens)."""
    stat = read_text(f"/proc/{pid}/stat")
    if not stat or ")" not in stat:
        return None
    comm = stat[stat.find("(") + 1 : stat.rfind(")")]
    return [comm, *stat[stat.rfind(")") + 2 :].split()]


# -- mounts -----------------------------------------------------------------------------------


def unescape_mount(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(mountinfo: str) -> List[Rec]:
    """/proc/PID/mountinfo as records ``{root, point, fstype, source, options}`` in file order
    (a later mount on the same point hides the earlier ones); ``options`` are the super options."""
    mounts: List[Rec] = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if not sep or len(parts) < 5 or len(rparts) < 2:
            continue
        mounts.append(
            {
                "root": unescape_mount(parts[3]),
                "point": unescape_mount(parts[4]),
                "fstype": rparts[0],
                "source": unescape_mount(rparts[1]),
                "options": rparts[2] if len(rparts) > 2 else "",
            }
        )
    return mounts


def mount_of(path: str, mountinfo: str | None = None) -> Rec:
    """The mount (point, fstype, source) holding ``path``: the longest mount-point prefix."""
    best: Rec = {"mount_point": None, "fstype": None, "source": None}
    real = os.path.realpath(path)
    best_len = -1
    if mountinfo is None:
        mountinfo = read_text("/proc/self/mountinfo") or ""
    for m in parse_mountinfo(mountinfo):
        point = m["point"]
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best_len:  # a later mount on the same point hides earlier
            best_len = len(point)
            best = {"mount_point": point, "fstype": m["fstype"], "source": m["source"]}
    return best


# -- cgroups ----------------------------------------------------------------------------------


def parse_cgroup_mounts(mountinfo: str) -> Dict[str, Tuple[str, str]]:
    """Map 'memory' / 'cpu' (v1) and 'unified' (v2) to (mount root, mount point)."""
    mounts: Dict[str, Tuple[str, str]] = {}
    for m in parse_mountinfo(mountinfo):
        where = (m["root"], m["point"])
        if m["fstype"] == "cgroup2":
            mounts.setdefault("unified", where)
        elif m["fstype"] == "cgroup":
            for opt in m["options"].split(","):
                if opt in ("memory", "cpu"):
                    mounts.setdefault(opt, where)
    return mounts


def parse_proc_cgroup(text: str) -> Dict[str, str]:
    """Map controller name ('memory', 'cpu', or 'unified' for v2) to the cgroup path."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths["unified"] = path
        for c in controllers.split(","):
            if c in ("memory", "cpu"):
                paths[c] = path
    return paths


def _cgroup_dir(mount: Tuple[str, str], path: str) -> str:
    root, point = mount
    if root != "/" and path.startswith(root):
        path = path[len(root) :]
    return point.rstrip("/") + "/" + path.strip("/")


def cgroup_dirs(mountinfo: str, proc_cgroup: str) -> Dict[str, str]:
    """Directories of this process's memory and cpu cgroups, v1 controllers preferred, else v2."""
    mounts, paths = parse_cgroup_mounts(mountinfo), parse_proc_cgroup(proc_cgroup)
    dirs: Dict[str, str] = {}
    for ctl in ("memory", "cpu"):
        if ctl in mounts and ctl in paths:
            dirs[ctl] = _cgroup_dir(mounts[ctl], paths[ctl])
        elif "unified" in mounts and "unified" in paths:
            dirs[ctl] = _cgroup_dir(mounts["unified"], paths["unified"])
    return dirs


def cgroups_of(who: str = "self") -> Dict[str, str]:
    """The memory and cpu cgroup directories of process ``who`` (a pid, or 'self')."""
    return cgroup_dirs(
        read_text(f"/proc/{who}/mountinfo") or "", read_text(f"/proc/{who}/cgroup") or ""
    )


def read_oom_kill(memory_dir: str | None) -> int | None:
    """The cgroup's oom_kill counter: v2 ``memory.events`` or v1 ``memory.oom_control`` (U41)."""
    if not memory_dir:
        return None
    for name in ("memory.events", "memory.oom_control"):
        text = read_text(os.path.join(memory_dir, name))
        if text is None:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def cpu_quota_cores(cpu_dir: str | None) -> float | None:
    """CPU cores the cgroup may use (v2 ``cpu.max`` or v1 cfs quota/period); None if unlimited."""
    if not cpu_dir:
        return None
    text = read_text(os.path.join(cpu_dir, "cpu.max"))
    if text:
        quota, _, period = text.strip().partition(" ")
        if quota != "max" and quota.isdigit() and period.isdigit() and int(period) > 0:
            return int(quota) / int(period)
        return None
    quota_t = read_text(os.path.join(cpu_dir, "cpu.cfs_quota_us"))
    period_t = read_text(os.path.join(cpu_dir, "cpu.cfs_period_us"))
    if quota_t and period_t:
        quota_v, period_v = int(quota_t.strip()), int(period_t.strip())
        if quota_v > 0 and period_v > 0:
            return quota_v / period_v
    return None


def own_cgroups() -> Dict[str, str]:
    return cgroups_of("self")


def thread_count() -> int | None:
    """Threads for OMP/MKL when a cgroup CPU quota is set: the quota, not the host's cores (U40)."""
    quota = cpu_quota_cores(own_cgroups().get("cpu"))
    if quota is None:
        return None
    return max(1, min(os.cpu_count() or 1, math.ceil(quota)))
