"""Record a workload's save under strace and turn it into a verified list of ``Op``s.

strace sees what the kernel is asked to do, whoever asks: pickle, outlive's ``os.write``, torch's
C++ writer, DCP's threads. A Python-level hook would miss the C writers. Before trusting a
recording, it is replayed onto the snapshot taken before the run and compared with the tree the
run really left: a call the tracker misread (an offset moved by an untraced read, a syscall it
does not know) fails there instead of yielding crash states of a different program.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List

import outlive
from outlive.testing.crashstate.model import apply
from outlive.testing.crashstate.ops import Image, Op, snapshot
from outlive.testing.crashstate.strace import TRACED, LogError, parse_log
from outlive.testing.crashstate.tracker import Tracker
from outlive.testing.crashstate.workload import STEPS

__all__ = ["STRING_LIMIT_BYTES", "Recording", "record", "record_ops", "strace_missing"]

STRING_LIMIT_BYTES = 16 * 1024 * 1024  # the largest write strace prints whole
_SRC = str(Path(outlive.__file__).resolve().parents[1])


@dataclass(frozen=True)
class Recording:
    """What a workload did under the root: its starting image and operations, in order."""

    workload: str
    initial: Image
    ops: List[Op]


def strace_missing() -> str | None:
    """Why strace cannot record here (None when it can)."""
    strace = shutil.which("strace")
    if strace is None:
        return "strace is not installed (apt-get install strace)"
    probe = subprocess.run(
        [strace, "-f", "-qq", "-o", os.devnull, "-e", "trace=?fsync", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.strip()[:200]}"
    return None


def record_ops(argv: List[str], root: Path, marker: Path, log: Path) -> Recording:
    """Run ``argv`` under strace and return what it did under ``root`` (verified by replay)."""
    root = Path(os.path.realpath(root))
    initial, paths = snapshot(root)
    traced = ",".join("?" + name for name in TRACED.split(","))
    command = [
        "strace",
        "-f",
        "--seccomp-bpf",
        "-qq",
        "-y",
        "-xx",
        f"-s{STRING_LIMIT_BYTES}",
        "-o",
        str(log),
    ]
    env = dict(os.environ, PYTHONPATH=_SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [*command, "-e", f"trace={traced}", *argv], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise LogError(f"the recorded run failed ({done.returncode}): {done.stderr[-2000:]}")
    tracker = Tracker(str(root), initial, paths, os.path.realpath(marker))
    with open(log, encoding="ascii", errors="replace") as lines:
        for call in parse_log(lines):
            tracker.feed(call)
    replayed = initial.copy()
    for op in tracker.ops:
        apply(replayed, op)
    if replayed.digest() != snapshot(root)[0].digest():
        raise LogError(
            f"replaying the {len(tracker.ops)} recorded operations does not rebuild the tree "
            f"the run left in {root}: the recording is incomplete"
        )
    return Recording(" ".join(argv), initial, tracker.ops)


def record(workload: str, steps: int = STEPS, workdir: Path | None = None) -> Recording:
    """Record one of ``workloads.WORKLOADS`` saving ``steps`` steps, in a fresh directory."""
    base = Path(tempfile.mkdtemp(prefix="outlive-powercut-", dir=workdir))
    try:
        root = base / "root"
        root.mkdir()
        argv = [sys.executable, "-m", "outlive.testing.crashstate.workloads", workload]
        argv += [str(root), str(base / "markers"), str(steps)]
        recording = record_ops(argv, root, base / "markers", base / "strace.log")
        return Recording(workload, recording.initial, recording.ops)
    finally:
        shutil.rmtree(base, ignore_errors=True)
