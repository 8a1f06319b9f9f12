"""Parsers for kernel log lines as ``dmesg`` prints them: NVIDIA Xid errors (U22) and the OOM
killer's reports (U3, U9, U41).

Formats (the ``[seconds.micros]`` prefix is seconds since boot and may be absent)::

    [8735.194821] NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has
                  fallen off the bus.
    [912.004512] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,
                 mems_allowed=0,oom_memcg=/a,task_memcg=/a,task=python,pid=4242,uid=0
    [912.004620] Memory cgroup out of memory: Killed process 4242 (python) total-vm:...
    [913.118200] Out of memory: Killed process 4250 (python) total-vm:...

(each is one line in the log; wrapped here).

Kernels before 5.0 split the last kind into ``Out of memory: Kill process N (comm) score S or
sacrifice child`` followed by ``Killed process N (comm) total-vm:...``; both are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "XID_MEANINGS",
    "XID_RERENT",
    "KernelEvents",
    "OomContext",
    "OomKill",
    "Xid",
    "parse_kernel_log",
    "split_timestamp",
]

# Xid codes a tenant meets most, in a few words each (NVIDIA's Xid catalog has the full list).
XID_MEANINGS = {
    13: "graphics engine exception (often an application bug, e.g. an out-of-range access)",
    31: "GPU memory page fault (usually an application bug)",
    43: "GPU stopped processing",
    45: "preemptive cleanup after an earlier error",
    48: "double-bit ECC error: the GPU's memory is failing",
    61: "internal micro-controller breakpoint/warning",
    62: "internal micro-controller halt",
    63: "ECC page retirement or row remapping recorded",
    64: "ECC page retirement or row remapping failed",
    74: "NVLink error",
    79: "the GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
}
# Hardware faults a tenant cannot fix on a rental: stop and rent another box (U22).
XID_RERENT = frozenset({48, 79})

_TS = re.compile(r"^\s*\[\s*(\d+(?:\.\d+)?)\]\s?(.*)$")
_XID = re.compile(r"NVRM: Xid \((?:PCI:)?([0-9A-Fa-f:.]+)\): (\d+)(?:,\s*(.*))?")
_KILLED = re.compile(r"\bKill(?:ed)? process (\d+) \(([^)]*)\)")
_OOM_CONTEXT = re.compile(r"\boom-kill:(\S+)")


def split_timestamp(line: str) -> tuple[float | None, str]:
    """``'[ 12.5] text'`` -> ``(12.5, 'text')``; a line without the prefix -> ``(None, line)``."""
    m = _TS.match(line)
    if m:
        return float(m.group(1)), m.group(2)
    return None, line.strip()


@dataclass(frozen=True)
class Xid:
    ts_s: float | None  # seconds since boot
    pci: str
    code: int
    detail: str
    line: str

    @property
    def meaning(self) -> str:
        return XID_MEANINGS.get(self.code, "see NVIDIA's Xid catalog")

    @property
    def rerent(self) -> bool:
        return self.code in XID_RERENT


@dataclass(frozen=True)
class OomKill:
    """A process the OOM killer ended (``Killed process N (comm)``)."""

    ts_s: float | None
    pid: int
    comm: str
    memcg: bool  # "Memory cgroup out of memory": the limit of a cgroup, not the whole host
    line: str


@dataclass(frozen=True)
class OomContext:
    """The ``oom-kill:key=value,...`` summary line (kernel 4.19+): which cgroup hit its limit."""

    ts_s: float | None
    fields: dict[str, str]
    line: str

    @property
    def pid(self) -> int | None:
        value = self.fields.get("pid", "")
        return int(value) if value.isdigit() else None

    @property
    def task_memcg(self) -> str | None:
        return self.fields.get("task_memcg")


@dataclass
class KernelEvents:
    xids: list[Xid] = field(default_factory=list)
    oom_kills: list[OomKill] = field(default_factory=list)
    oom_contexts: list[OomContext] = field(default_factory=list)


def _context_fields(blob: str) -> dict[str, str]:
    """``constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,...`` -> dict. Values never hold
    commas except cpusets such as ``0-3,8``; a piece without ``=`` joins the value before it."""
    out: dict[str, str] = {}
    last: str | None = None
    for piece in blob.split(","):
        key, sep, value = piece.partition("=")
        if sep:
            out[key] = value
            last = key
        elif last is not None:
            out[last] += "," + piece
    return out


_SAME_KILL_S = 5.0  # "Kill process N" and "Killed process N" of one pre-5.0 OOM kill


def parse_kernel_log(lines: Iterable[str]) -> KernelEvents:
    events = KernelEvents()
    for raw in lines:
        ts, text = split_timestamp(raw)
        xid = _XID.search(text)
        if xid:
            events.xids.append(
                Xid(ts, xid.group(1), int(xid.group(2)), (xid.group(3) or "").strip(), text)
            )
            continue
        ctx = _OOM_CONTEXT.search(text)
        if ctx:
            events.oom_contexts.append(OomContext(ts, _context_fields(ctx.group(1)), text))
            continue
        killed = _KILLED.search(text)
        if killed and ("out of memory" in text.lower() or "Killed process" in text):
            memcg = "memory cgroup out of memory" in text.lower()
            kill = OomKill(ts, int(killed.group(1)), killed.group(2), memcg, text)
            prev = events.oom_kills[-1] if events.oom_kills else None
            if prev is not None and prev.pid == kill.pid and _close(prev.ts_s, kill.ts_s):
                events.oom_kills[-1] = OomKill(
                    prev.ts_s, kill.pid, kill.comm, prev.memcg or kill.memcg, kill.line
                )
            else:
                events.oom_kills.append(kill)
    return events


def _close(a: float | None, b: float | None) -> bool:
    return a is None or b is None or abs(a - b) <= _SAME_KILL_S
