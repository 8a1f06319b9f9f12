"""A fake of Paperspace's public API v1 (``https://api.paperspace.com/v1``): ``GET /machines``,
``GET /machines/{id}``, ``PATCH /machines/{id}/stop|start``, ``DELETE /machines/{id}``,
``GET /public-ips``, ``GET /snapshots``, ``GET /shared-drives``, behind a bearer key (401) and
rate limiting (429 with Retry-After). Lists are paged as the API documents them: ``after`` (a
cursor) and ``limit`` (1-120), answering ``{"hasMore", "items", "nextPage"}``; errors are
``{"code", "message"}``.

Billing, from seed 001 §2/§5 (PS1, PS9): a running machine bills its compute and its block
storage; a shut-down machine (``off``) bills its storage, public IP and add-ons; a destroy
deletes the machine and its storage but not its snapshots or a static IP; a snapshot bills
$0.29/GB/mo until deleted, also after its machine is gone; a static IP $0.0045/h (≤ $3/mo).

Seeded inventory: the ids below; ``SEED_ORPHANS`` is what bills with nothing behind it while a
target with a live run names ``WORKER``.
"""

from __future__ import annotations

import copy
from typing import Any

from outlive.testing._fakeserver import Answer, Call, FakeApi

WORKER = "psworker01"  # ready, a static IP and a snapshot: give it a target
IDLE = "psidle0002"  # ready, nothing behind it
OFF = "psoff00003"  # shut down, 2 TB of block storage still billing (PS1)
GONE = "psgone0009"  # destroyed long ago; its snapshot is still here (PS9)
WORKER_IP = "184.105.10.10"
FREE_IP = "184.105.10.11"
OLD_SNAPSHOT = "snap000001"  # of GONE
WORKER_SNAPSHOT = "snap000002"  # of WORKER

SEED_ORPHANS = {
    ("machine", IDLE),  # idle running machine
    ("volume", IDLE),  # its block storage
    ("volume", OFF),  # block storage of a shut-down machine (PS1)
    ("public-ip", FREE_IP),  # a static IP assigned to nothing (PS1)
    ("snapshot", OLD_SNAPSHOT),  # a snapshot of a destroyed machine (PS9)
}
WORKER_RESOURCES = {
    ("machine", WORKER),
    ("volume", WORKER),
    ("public-ip", WORKER_IP),
    ("snapshot", WORKER_SNAPSHOT),
}

PAGE_MAX = 120


def _machine(mid: str, name: str, state: str, storage_gb: int, ip: str | None) -> dict[str, Any]:
    return {
        "id": mid,
        "name": name,
        "state": state,
        "machineType": "A6000",
        "region": "ny2",
        "os": "Ubuntu 22.04",
        "cpus": 8,
        "ram": 48,
        "gpu": "A6000",
        "storageTotal": storage_gb,
        "publicIp": ip,
        "privateIp": "10.0.0.5",
        "autoShutdownEnabled": True,
        "autoSnapshotEnabled": False,
        "dtCreated": "2026-08-01T09:00:00Z",
    }


SEED_MACHINES = [
    _machine(WORKER, "train-a6000", "ready", 500, WORKER_IP),
    _machine(IDLE, "idle-box", "ready", 100, None),
    _machine(OFF, "old-box", "off", 2000, None),
]
SEED_IPS = [
    {
        "ip": WORKER_IP,
        "region": "ny2",
        "assignedMachineId": WORKER,
        "dtCreated": "2026-08-01T09:00:00Z",
    },
    {"ip": FREE_IP, "region": "ny2", "dtCreated": "2026-07-01T09:00:00Z"},
]
SEED_SNAPSHOTS = [
    {"id": OLD_SNAPSHOT, "machineId": GONE, "name": "before-upgrade", "storageSize": 300,
     "dtCreated": "2026-05-01T09:00:00Z"},
    {"id": WORKER_SNAPSHOT, "machineId": WORKER, "name": "nightly", "storageSize": 100,
     "dtCreated": "2026-08-02T09:00:00Z"},
]  # fmt: skip
SEED_DRIVES = [
    {"id": "sd00000001", "name": "team-data", "size": 1000, "region": "ny2",
     "dtCreated": "2026-06-01T09:00:00Z"},
]  # fmt: skip


class PaperspaceFake(FakeApi):
    provider = "paperspace"

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.machines = {m["id"]: copy.deepcopy(m) for m in SEED_MACHINES}
        self.ips = [dict(i) for i in SEED_IPS]
        self.snapshots = [dict(s) for s in SEED_SNAPSHOTS]
        self.drives = [dict(d) for d in SEED_DRIVES]

    def unauthorized(self) -> Answer:
        return Answer(401, {"code": "UNAUTHORIZED", "message": "Invalid API key"})

    def route(self, call: Call) -> Answer:
        parts = [p for p in call.path.split("/") if p]
        m = call.method
        if m == "GET" and len(parts) == 1:
            lists = {
                "machines": list(self.machines.values()),
                "public-ips": self.ips,
                "snapshots": self.snapshots,
                "shared-drives": self.drives,
            }
            if parts[0] in lists:
                return _page(
                    lists[parts[0]], call.query, key="ip" if parts[0] == "public-ips" else "id"
                )
        if parts[:1] == ["machines"] and len(parts) >= 2:
            machine = self.machines.get(parts[1])
            if machine is None:
                return Answer(404, {"code": "NOT_FOUND", "message": "Machine not found"})
            if len(parts) == 2 and m == "GET":
                return Answer(200, copy.deepcopy(machine))
            if len(parts) == 2 and m == "DELETE":
                del self.machines[parts[1]]
                for ip in self.ips:  # a static IP outlives the machine, unassigned
                    if ip.get("assignedMachineId") == parts[1]:
                        del ip["assignedMachineId"]
                return Answer(204)
            if parts[2:] == ["stop"] and m == "PATCH":
                machine["state"] = "off"
                return Answer(200, copy.deepcopy(machine))
            if parts[2:] == ["start"] and m == "PATCH":
                machine["state"] = "ready"
                return Answer(200, copy.deepcopy(machine))
        return Answer(404, {"code": "NOT_FOUND", "message": "Not found"})

    def control(self, verb: str, body: dict[str, Any]) -> Answer:
        if verb == "state":
            return Answer(
                200,
                {
                    "machines": {k: v["state"] for k, v in self.machines.items()},
                    "ips": {i["ip"]: i.get("assignedMachineId") for i in self.ips},
                    "snapshots": sorted(s["id"] for s in self.snapshots),
                },
            )
        return super().control(verb, body)


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], *, key: str) -> Answer:
    """One page of ``items`` after the cursor ``after`` (the last key of the previous page)."""
    try:
        limit = int((query.get("limit") or ["20"])[0])
    except ValueError:
        limit = 0
    if not 1 <= limit <= PAGE_MAX:
        return Answer(400, {"code": "BAD_REQUEST", "message": "limit must be 1 to 120"})
    after = query["after"][0] if query.get("after") else None
    keys = [str(i[key]) for i in items]
    start = 0
    if after is not None:
        if after not in keys:
            return Answer(400, {"code": "BAD_REQUEST", "message": "invalid cursor"})
        start = keys.index(after) + 1
    page = items[start : start + limit]
    more = start + limit < len(items)
    body: dict[str, Any] = {"hasMore": more, "items": copy.deepcopy(page)}
    body["nextPage"] = str(page[-1][key]) if more and page else None
    return Answer(200, body)
