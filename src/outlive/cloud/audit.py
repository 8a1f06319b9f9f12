"""``cloud audit``: everything that bills with no active run or unpulled result behind it —
the leaked pods, disks, snapshots and addresses that keep charging after a job is done or a
teardown went half way (RP4, RP8, PS1, PS9) — with why, $/h and $/month, costliest first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from outlive.cloud.cost import per_month
from outlive.cloud.inventory import Row
from outlive.cloud.model import Resource

# Why a resource that bills with nothing behind it is an orphan, by (kind, state).
_WHY: dict[tuple[str, str], str] = {
    ("pod", "RUNNING"): "idle running pod: no active run or unpulled result behind it",
    ("volume", "RUNNING"): "volume disk of an idle running pod",
    ("volume", "EXITED"): "stopped pod's volume disk, billing at 2× the running rate (RP4)",
    ("network-volume", "detached"): "detached network volume: no pod uses it",
    ("network-volume", "attached"): "network volume of a pod no outlive run uses",
    ("machine", "ready"): "idle running machine: no active run or unpulled result behind it",
    ("volume", "ready"): "block storage of an idle running machine",
    ("volume", "off"): "block storage of a shut-down machine, still billing (PS1)",
    ("snapshot", "orphaned"): "snapshot of a destroyed machine (PS9)",
    ("public-ip", "unassigned"): "public IP assigned to no machine (PS1)",
}


class AuditItem(TypedDict):
    provider: str
    kind: str
    id: str
    name: str
    state: str
    usd_per_hour: float
    why: str


class AuditReport(TypedDict):
    items: list[AuditItem]
    usd_per_month: float


def why(r: Resource) -> str:
    """Why ``r`` is an orphan when nothing holds it."""
    if (r.kind, r.state) in _WHY:
        text = _WHY[(r.kind, r.state)]
    elif r.compute:
        text = f"idle {r.kind} ({r.state}): no active run or unpulled result behind it"
    else:
        text = f"{r.kind} ({r.state}) that no active run or unpulled result needs"
    if not r.rate_known:
        text += "; its compute rate is not in the API, so $/h shows only the known part"
    return text


def orphans(rows: Iterable[Row]) -> list[Row]:
    """Rows that bill now with no target holding them."""
    return [x for x in rows if x.resource.billing and not x.held]


def report(rows: Iterable[Row]) -> AuditReport:
    found = sorted(orphans(rows), key=lambda x: (-x.resource.usd_per_hour, x.resource.id))
    items: list[AuditItem] = [
        {
            "provider": x.resource.provider,
            "kind": x.resource.kind,
            "id": x.resource.id,
            "name": x.resource.name,
            "state": x.resource.state,
            "usd_per_hour": round(x.resource.usd_per_hour, 6),
            "why": why(x.resource),
        }
        for x in found
    ]
    total = sum(x.resource.usd_per_hour for x in found)
    return {"items": items, "usd_per_month": round(per_month(total), 2)}
