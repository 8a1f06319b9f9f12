"""Fixtures for the checkpoint core: child Python processes and a real, tiny tmpfs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

import outlive
from outlive.testing import DEADLINE_S

SRC_DIR = str(Path(outlive.__file__).resolve().parents[1])


def _child_env(**extra: str) -> dict[str, str]:
    """Environment for a child interpreter that imports outlive from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("OUTLIVE_PROGRESS_FILE", None)
    env.pop("OUTLIVE_CKPT_DIR", None)
    env.update(extra)
    return env


StartChild = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def child_env() -> Callable[..., dict[str, str]]:
    """``child_env(NAME=value, ...)``: an environment for a child that imports this outlive."""
    return _child_env


RANKS = 4
RANK_CALLS = 300


@pytest.fixture
def progress_from_ranks() -> Callable[[Path, str, float], None]:
    """``progress_from_ranks(path, metrics, timeout_s)``: RANKS processes at once, each calling
    ``progress(i, rank=RANK, <metrics>)`` for i in range(RANK_CALLS) into one progress file."""

    def run(path: Path, metrics: str, timeout_s: float) -> None:
        code = (
            "import sys\n"
            "from outlive import progress\n"
            f"for i in range({RANK_CALLS}):\n"
            f"    progress(i, rank=int(sys.argv[1]), {metrics})\n"
        )
        env = _child_env(OUTLIVE_PROGRESS_FILE=str(path))
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(rank)], env=env)
            for rank in range(RANKS)
        ]
        assert [p.wait(timeout=timeout_s) for p in procs] == [0] * RANKS

    return run


@pytest.fixture
def start_child() -> Iterator[StartChild]:
    """Start ``python -c CODE`` (dedented); every child still running at teardown is killed."""
    children: list[subprocess.Popen[str]] = []

    def start(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            env=env if env is not None else _child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append(proc)
        return proc

    yield start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _wait_for_line(
    path: Path, predicate: Callable[[str], bool], timeout_s: float = DEADLINE_S
) -> str:
    """Poll a growing text file until one of its lines satisfies ``predicate``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    if predicate(line):
                        return line
                except ValueError:
                    pass  # a line still being appended
        time.sleep(0.005)
    raise AssertionError(f"no matching line in {path} within {timeout_s} s")


@pytest.fixture
def wait_for_line() -> Callable[..., str]:
    """``wait_for_line(path, predicate, timeout_s=DEADLINE_S)``: the first line of a growing file
    that fits."""
    return _wait_for_line


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs with 16 inodes, so ENOSPC and inode exhaustion are the kernel's own."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the disk-full tests needs root (CI runs as root)")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=16", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
