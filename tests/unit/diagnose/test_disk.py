"""Disk checks: bytes and inodes, each with its own thresholds (U7)."""

from __future__ import annotations

from diag_facts import fs

from outlive.diagnose.disk import (
    DISK_FREE_FAIL_BYTES,
    DISK_FREE_WARN_BYTES,
    INODES_FREE_WARN_COUNT,
    disk_checks,
)
from outlive.diagnose.model import GIB, Status


def _by_name(role: str, facts: dict[str, object] | None) -> dict[str, tuple[Status, str]]:
    return {c.name: (c.status, c.detail) for c in disk_checks(role, facts)}  # type: ignore[arg-type]


def test_plenty_of_bytes_and_inodes_pass() -> None:
    got = _by_name("workdir", fs("/w", free_bytes=80 * GIB))
    assert got["disk workdir"][0] is Status.PASS
    assert got["inodes workdir"][0] is Status.PASS
    assert "80.0 GiB free" in got["disk workdir"][1]


def test_bytes_warn_below_the_warn_threshold_and_fail_below_the_fail_threshold() -> None:
    warn = _by_name("durable", fs("/d", free_bytes=DISK_FREE_WARN_BYTES - 1))
    fail = _by_name("durable", fs("/d", free_bytes=DISK_FREE_FAIL_BYTES - 1))
    assert warn["disk durable"][0] is Status.WARN
    assert fail["disk durable"][0] is Status.FAIL
    assert "checkpoint" in fail["disk durable"][1]


def test_inodes_exhausted_fail_even_when_bytes_are_free() -> None:
    checks = disk_checks("workdir", fs("/w", free_bytes=50 * GIB, free_inodes=0))
    bytes_check, inodes_check = checks
    assert bytes_check.status is Status.PASS
    assert inodes_check.status is Status.FAIL
    assert "U7" in inodes_check.gotchas
    assert "0 of 6.0M inodes free" in inodes_check.detail
    assert "50.0 GiB of space is free" in inodes_check.detail


def test_few_inodes_left_warn_by_fraction_or_by_count() -> None:
    by_fraction = fs("/w", free_bytes=50 * GIB, free_inodes=500_000, total_inodes=6_000_000)
    by_count = fs("/w", free_bytes=50 * GIB, free_inodes=49, total_inodes=50)
    assert disk_checks("workdir", by_fraction)[1].status is Status.WARN
    small = disk_checks("workdir", by_count)[1]
    assert small.status is Status.WARN
    assert INODES_FREE_WARN_COUNT > 49


def test_a_filesystem_without_inode_counts_passes_and_says_so() -> None:
    check = disk_checks("workdir", fs("/w", free_bytes=50 * GIB, free_inodes=0, total_inodes=0))[1]
    assert check.status is Status.PASS
    assert "no inode limit" in check.detail


def test_a_path_not_created_yet_names_where_it_was_measured() -> None:
    facts = fs("/w/durable/x", free_bytes=50 * GIB, exists=False)
    facts["measured_at"] = "/w"
    assert "not created yet; measured at /w" in disk_checks("durable", facts)[0].detail


def test_unmeasurable_path_is_skipped_with_the_reason() -> None:
    got = _by_name("workdir", {"path": "/x", "error": "statvfs(/) failed: Permission denied"})
    assert got["disk workdir"][0] is Status.SKIP
    assert "Permission denied" in got["inodes workdir"][1]


def test_read_only_filesystem_fails() -> None:
    facts = fs("/w", free_bytes=50 * GIB)
    facts["readonly"] = True
    assert disk_checks("workdir", facts)[0].status is Status.FAIL
