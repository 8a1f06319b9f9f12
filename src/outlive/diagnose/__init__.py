"""Diagnosis on the client: parsers for what the box's tools print (nvidia-smi, the kernel log,
statvfs) and the checks that turn the agent's raw facts into PASS / WARN / FAIL / SKIP results
with gotcha IDs, for ``outlive up`` (Phase-0 audit) and ``outlive doctor`` (why did it die / why
is it slow).

    model      Check, Status
    nvsmi      nvidia-smi CSV, -q -d PERFORMANCE, dmon
    kernel     dmesg lines: Xid, OOM kills
    disk       bytes and inodes (U7)
    gpu        presence, VRAM holders (U11), throttle and clocks (U23), feed (U21)
    cuda       the driver / CUDA / torch triangle (U28, RP9, PS11)
    system     python, cgroup memory (U9, U41), CPU quota and threads (U40), caches (RP11), tools
    audit      facts -> the ``up`` report
    doctor     facts -> the ``doctor`` report (the vanished ladder, U3)
    runner     one agent call per report
"""

from __future__ import annotations

from outlive.diagnose.model import Check, Status

__all__ = ["Check", "Status"]
