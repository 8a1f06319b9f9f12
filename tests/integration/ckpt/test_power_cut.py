"""Power-cut crash states of real saves, recorded under strace: outlive's never lose a step.

Each test runs a workload (outlive.testing.crashstate.workloads) under strace, builds every disk a
power cut could leave (docs/power-cut.md) and loads each one. The unsafe writers prove the checker
is not blind: they must yield bad states, of the kinds a power cut is known to cause.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from outlive.testing.crashstate import (
    WORKLOADS,
    LogError,
    Report,
    check,
    record,
    record_ops,
    strace_missing,
)


@pytest.fixture(autouse=True)
def _needs_strace() -> None:
    reason = strace_missing()
    if reason is not None:
        pytest.skip(reason)


def _checked(name: str, steps: int = 3) -> Report:
    return check(record(name, steps=steps), WORKLOADS[name], seed=7)


def _assert_no_bad_state(report: Report) -> None:
    assert report.states > 20, report  # the saves were recorded and their states built
    assert report.bad == 0, f"{report.reasons}: {report.examples}"


def test_write_then_rename_without_fsync_leaves_torn_files_under_the_final_name() -> None:
    report = _checked("rename_no_fsync")
    assert report.bad > 0
    torn = sum(n for reason, n in report.reasons.items() if reason.startswith("load raised"))
    assert torn > 0, report.reasons  # latest.pkl published with its data lost or torn
    assert report.reasons["committed step lost: nothing loaded"] > 0, report.reasons


def test_rename_without_a_directory_fsync_loses_a_save_that_had_returned() -> None:
    report = _checked("rename_no_dir_fsync")
    assert report.bad > 0
    assert not any(reason.startswith("load raised") for reason in report.reasons), report
    assert report.reasons["committed step lost: an older step loaded"] > 0, report.reasons


def test_outlive_without_its_directory_fsync_would_lose_a_returned_save() -> None:
    report = _checked("outlive_mutant_no_dir_fsync")
    assert report.reasons["committed step lost: an older step loaded"] > 0, report.reasons


def test_outlive_sync_saves_survive_every_power_cut() -> None:
    _assert_no_bad_state(_checked("outlive_sync"))


def test_outlive_background_persists_survive_every_power_cut() -> None:
    _assert_no_bad_state(_checked("outlive_async"))


def test_outlive_pruning_never_costs_the_newest_committed_step_in_a_power_cut() -> None:
    _assert_no_bad_state(_checked("outlive_prune", steps=4))


def test_a_resumed_job_sweeping_stale_tmp_and_ranking_by_metric_survives_every_power_cut() -> None:
    _assert_no_bad_state(_checked("outlive_resume", steps=4))


def test_a_recording_that_misses_a_write_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    # mmap stores are no syscalls: strace cannot see them, and the replay check must notice
    script = (
        "import mmap, os, sys; p = os.path.join(sys.argv[1], 'f'); fd = os.open(p, os.O_RDWR | "
        "os.O_CREAT); os.ftruncate(fd, 4096); m = mmap.mmap(fd, 4096); m[:5] = b'hello'; "
        "m.flush(); m.close(); os.close(fd)"
    )
    argv = [sys.executable, "-c", script, str(root)]
    with pytest.raises(LogError, match="does not rebuild"):
        record_ops(argv, root, tmp_path / "markers", tmp_path / "strace.log")


@pytest.mark.slow
def test_sharded_dcp_saves_with_the_commit_marker_survive_every_power_cut() -> None:
    pytest.importorskip("torch")
    # DistributedCheckpointer(mode="sharded", keep_last=2): the third save prunes the first
    _assert_no_bad_state(_checked("outlive_dcp", steps=3))
    # DCP's own fsync of .metadata precedes its bytes (torch 2.13): trusting it is not enough
    trusting = _checked("dcp_marker_trusting_dcp", steps=1)
    assert trusting.bad > 0, trusting
