"""A disk that fills while a run is under way: the run's end is still recorded once space is
freed (the supervisor keeps trying to write its exit record), never reported as ``vanished``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from local_helpers import Project, read_json_file, wait_for

_WAIT = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted in teardown."""
    path = tmp_path / "disk"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _fill(disk: Path) -> list[Path]:
    fillers = [disk / f"filler{i}" for i in range(3)]
    for filler, bs in zip(fillers, ("64k", "1k", "64"), strict=True):  # to the last byte
        dd = ["dd", "if=/dev/zero", f"of={filler}", f"bs={bs}"]
        subprocess.run(dd, capture_output=True, check=False)
    return fillers


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _waiting_to_retry(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return "nanosleep" in f.read()
    except OSError:
        return False


def test_a_run_that_ends_on_a_full_disk_is_recorded_once_space_is_freed(
    make_project: Callable[..., Project], disk: Path, tmp_path: Path
) -> None:
    project = make_project("disk/proj")
    try:
        go = tmp_path / "go"  # off the full disk
        run_id = project.run(sys.executable, "-c", _WAIT, str(go), name="ends-full")
        project.wait_running(run_id)
        launch = read_json_file(project.dir / ".outlive" / "runs" / run_id / "launch.json")
        job, supervisor = int(launch["pid"]), int(launch["supervisor_pid"])
        fillers = _fill(disk)
        go.touch()
        wait_for(lambda: not _alive(job), "the job to end")
        # The exit record cannot be written now: the supervisor waits to try again (before the
        # fix it died here, and every later look called the run vanished).
        wait_for(
            lambda: not _alive(supervisor) or _waiting_to_retry(supervisor),
            "the supervisor to fail its first write",
        )
        assert _alive(supervisor), "the supervisor gave up on the exit record"
        for filler in fillers:
            filler.unlink()
        ended = project.wait_ended(run_id)
        assert (ended["state"], ended["exit_code"]) == ("succeeded", 0), ended
    finally:
        project.kill_leftovers()
