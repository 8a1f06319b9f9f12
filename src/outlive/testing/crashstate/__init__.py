"""Power-cut crash states: record a save's syscalls, rebuild every disk a power cut could leave,
load each one (ALICE / CrashMonkey in spirit, for checkpoints).

    ops        the recorded operations on inodes and directory entries; a disk image
    strace     parse ``strace -f -y -xx`` logs into syscalls
    tracker    syscalls → operations (paths, fds, offsets followed)
    recorder   run a workload under strace; verify the recording by replaying it
    model      the crash states a recording allows under POSIX/ext4 ordering rules
    workloads  outlive's save paths and the unsafe peers, with their loaders
    checker    load every distinct crash state and judge it OK or BAD

``record(name)`` then ``check(recording, WORKLOADS[name])``; ``bench/power_cut.py`` runs them all.
The model and its limits: docs/power-cut.md.
"""

from __future__ import annotations

from outlive.testing.crashstate.checker import Report, check, judge
from outlive.testing.crashstate.model import CrashState, apply, crash_states, pending_after
from outlive.testing.crashstate.ops import Image
from outlive.testing.crashstate.recorder import Recording, record, record_ops, strace_missing
from outlive.testing.crashstate.strace import LogError
from outlive.testing.crashstate.workload import Workload
from outlive.testing.crashstate.workloads import WORKLOADS

__all__ = [
    "WORKLOADS",
    "CrashState",
    "Image",
    "LogError",
    "Recording",
    "Report",
    "Workload",
    "apply",
    "check",
    "crash_states",
    "judge",
    "pending_after",
    "record",
    "record_ops",
    "strace_missing",
]
