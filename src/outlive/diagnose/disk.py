"""Disk checks from statvfs facts (what ``df -h`` and ``df -i`` print): bytes **and** inodes,
for every path a run writes to. A disk dies on the dimension nobody watched (U7)."""

from __future__ import annotations

from outlive.diagnose.facts import FsFacts
from outlive.diagnose.model import GIB, Check, Status, human_bytes, human_count

__all__ = [
    "DISK_FREE_FAIL_BYTES",
    "DISK_FREE_WARN_BYTES",
    "INODES_FREE_FAIL_FRACTION",
    "INODES_FREE_WARN_COUNT",
    "INODES_FREE_WARN_FRACTION",
    "disk_checks",
    "fs_label",
]

# Below this many free bytes a checkpoint of a modest model no longer fits: FAIL.
DISK_FREE_FAIL_BYTES = 1 * GIB
# Below this many free bytes a long run's checkpoints, logs and caches will fill it: WARN.
DISK_FREE_WARN_BYTES = 10 * GIB
# Free inodes as a fraction of all inodes: below 1 % FAIL, below 10 % WARN.
INODES_FREE_FAIL_FRACTION = 0.01
INODES_FREE_WARN_FRACTION = 0.10
# Fewer free inodes than this is a WARN whatever the fraction: one per-sample evaluation dump
# writes files_per_sample x samples x conditions small files (U7).
INODES_FREE_WARN_COUNT = 10_000


def fs_label(facts: FsFacts) -> str:
    """'/workspace (ext4 on /dev/sdb)' — the mount a path lives on, as df names it."""
    point = facts.get("mount_point") or facts.get("measured_at") or facts.get("path")
    kind = facts.get("fstype")
    source = facts.get("source")
    extra = " ".join(x for x in (kind, f"on {source}" if source else None) if x)
    return f"{point} ({extra})" if extra else str(point)


def _where(role: str, facts: FsFacts) -> str:
    path = facts.get("path")
    note = (
        ""
        if facts.get("exists", True)
        else f", not created yet; measured at {facts['measured_at']}"
    )
    return f"{role} {path} on {fs_label(facts)}{note}"


def disk_checks(role: str, facts: FsFacts | None) -> list[Check]:
    """Two checks for one path: ``disk ROLE`` (free bytes) and ``inodes ROLE`` (free inodes)."""
    if not facts or facts.get("error") or facts.get("total_bytes") is None:
        why = (facts or {}).get("error") or "no facts about this path came back"
        return [
            Check(f"disk {role}", Status.SKIP, f"could not measure {role}: {why}", ("U7",)),
            Check(f"inodes {role}", Status.SKIP, f"could not measure {role}: {why}", ("U7",)),
        ]
    return [_bytes_check(role, facts), _inodes_check(role, facts)]


def _bytes_check(role: str, facts: FsFacts) -> Check:
    free, total = int(facts["free_bytes"]), int(facts["total_bytes"])
    where = _where(role, facts)
    amounts = f"{human_bytes(free)} free of {human_bytes(total)}"
    if facts.get("readonly"):
        return Check(f"disk {role}", Status.FAIL, f"{where} is mounted read-only", ("U7",))
    if free < DISK_FREE_FAIL_BYTES:
        return Check(
            f"disk {role}",
            Status.FAIL,
            f"{where}: only {amounts} (< {human_bytes(DISK_FREE_FAIL_BYTES)}); the next "
            "checkpoint may not fit — free space (keep small evidence, drop reproducible "
            "scratch) or grow the disk",
            ("U7",),
        )
    if free < DISK_FREE_WARN_BYTES:
        return Check(
            f"disk {role}",
            Status.WARN,
            f"{where}: {amounts} (< {human_bytes(DISK_FREE_WARN_BYTES)}); a long run's "
            "checkpoints and caches can fill it",
            ("U7",),
        )
    return Check(f"disk {role}", Status.PASS, f"{where}: {amounts}", ("U7",))


def _inodes_check(role: str, facts: FsFacts) -> Check:
    total, free = facts.get("total_inodes"), facts.get("free_inodes")
    where = _where(role, facts)
    if not total or free is None:
        # btrfs, many network and overlay filesystems report no inode counts (f_files == 0).
        return Check(
            f"inodes {role}",
            Status.PASS,
            f"{where}: the filesystem reports no inode limit",
            ("U7",),
        )
    free, total = int(free), int(total)
    fraction = free / total
    amounts = f"{human_count(free)} of {human_count(total)} inodes free ({fraction:.0%})"
    bytes_note = f", although {human_bytes(facts.get('free_bytes'))} of space is free"
    if fraction < INODES_FREE_FAIL_FRACTION:
        return Check(
            f"inodes {role}",
            Status.FAIL,
            f"{where}: {amounts}{bytes_note}; new files fail with 'No space left on device' — "
            "shard small files into tar archives",
            ("U7", "U25"),
        )
    if fraction < INODES_FREE_WARN_FRACTION or free < INODES_FREE_WARN_COUNT:
        return Check(
            f"inodes {role}",
            Status.WARN,
            f"{where}: {amounts}; per-sample outputs can exhaust inodes before bytes",
            ("U7",),
        )
    return Check(f"inodes {role}", Status.PASS, f"{where}: {amounts}", ("U7",))
