"""CPU-seconds of a tree of processes, counted by a cgroup of its own (v1 ``cpuacct`` or v2).

A process and everything it forks afterwards stays in its cgroup, however it is reparented: an
ssh ControlMaster that daemonises, sshd's sessions on the testbed box and the rsync and agent
processes they start all count, and a neighbour's load on a shared machine does not. Needs
root; where no cgroup can be made, ``CpuGroup.make`` returns None and the caller says so.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/cpuacct")
V2_ROOT = Path("/sys/fs/cgroup")


class CpuGroup:
    """One cgroup: ``add`` a pid (its later children follow), read ``cpu_s``, ``close``."""

    def __init__(self, path: Path, v2: bool) -> None:
        self.path = path
        self.v2 = v2

    @classmethod
    def make(cls, name: str) -> CpuGroup | None:
        for root, v2 in ((V1_ROOT, False), (V2_ROOT, True)):
            probe = root / ("cgroup.controllers" if v2 else "cpuacct.usage")
            if not probe.is_file():
                continue
            path = root / name
            try:
                path.mkdir(exist_ok=True)
                group = cls(path, v2)
                group.cpu_s()
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            return group
        return None

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def add_self(self) -> None:
        """For ``preexec_fn``: the child puts itself in before it execs."""
        self.add(os.getpid())

    def cpu_s(self) -> float:
        """CPU-seconds (user + system) every process ever in this group has used."""
        if self.v2:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
            raise OSError("no usage_usec in cpu.stat")
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        """Move what is still in the group back to the parent, and remove the group."""
        parent = self.path.parent / "cgroup.procs"
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    parent.write_text(f"{pid}\n")
        with contextlib.suppress(OSError):
            self.path.rmdir()
