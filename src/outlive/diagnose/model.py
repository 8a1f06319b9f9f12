"""The result of one check: a name, PASS / WARN / FAIL / SKIP, one sentence, the gotcha IDs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TypedDict

GIB = 1024**3
MIB = 1024**2


class Status(str, Enum):
    """PASS: fine. WARN: works, but costs time or money, or will bite later. FAIL: will not
    work (``outlive up`` exits 1). SKIP: could not be checked here; the detail says why."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


class CheckJson(TypedDict):
    """One check as ``up --json`` and ``doctor --json`` print it."""

    name: str
    status: str  # a Status value
    detail: str
    gotchas: list[str]


_RANK = {Status.PASS: 0, Status.SKIP: 1, Status.WARN: 2, Status.FAIL: 3}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    gotchas: tuple[str, ...] = ()

    def to_json(self) -> CheckJson:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "gotchas": list(self.gotchas),
        }


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default=Status.PASS)


def human_bytes(n: float | None) -> str:
    """1536 -> '1.5 KiB'; binary units, as ``df -h`` prints them."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


def human_count(n: float | None) -> str:
    """12_345_678 -> '12.3M'; inode counts as ``df -hi`` prints them."""
    if n is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{int(n)}"
