"""A fake of RunPod's REST API v1 (``https://rest.runpod.io/v1``), faithful to its published
OpenAPI document (tests/contracts/runpod-rest-v1.openapi.json; every exchange is checked
against it): ``GET /pods``, ``GET /pods/{id}``, ``POST /pods/{id}/stop|start``,
``DELETE /pods/{id}``, ``GET /networkvolumes``, ``DELETE /networkvolumes/{id}`` and
``GET /billing/pods``, behind a bearer key (401 otherwise) and rate limiting (429 with
Retry-After). The v1 list operations take no paging parameters, so neither does the fake.

State machine and billing, from seed 004 §2/§5 (RP4, RP8): RUNNING --stop--> EXITED
--start--> RUNNING; DELETE (terminate) from either --> TERMINATED, gone from every list with
its volume disk. A running pod bills ``costPerHr`` plus its disks at $0.10/GB/mo; a stopped one
bills its volume disk at $0.20/GB/mo (2×) and nothing for the container disk; a network volume
bills $0.07/GB/mo until deleted. When the balance runs out every running pod is stopped.

Seeded inventory (ids fixed, so tests can name them): SEED_PODS and SEED_VOLUMES below; the
orphans among them, when no outlive target uses them, are ``SEED_ORPHANS``.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from outlive.testing._fakeserver import Answer, Call, FakeApi

HOURS_PER_MONTH = 730.0
DISK_RUNNING_USD_GB_MO = 0.10
VOLUME_STOPPED_USD_GB_MO = 0.20
NETWORK_VOLUME_USD_GB_MO = 0.07

TRAIN_POD = "trainpod00001"  # running, with network volume nvdurable0001: give it a target
IDLE_POD = "idlepod000002"  # running, nothing behind it
STOPPED_POD = "stoppedpod003"  # stopped with a 200 GB volume disk: 2× (RP4)
SPOT_POD = "spotpod000004"  # spot, stopped by the platform, no volume disk: bills nothing
DURABLE_VOLUME = "nvdurable0001"  # attached to TRAIN_POD
ORPHAN_VOLUME = "nvorphan00002"  # attached to nothing

# (kind, id) of what bills with nothing behind it while a target with a live run names TRAIN_POD
SEED_ORPHANS = {
    ("pod", IDLE_POD),  # idle running pod
    ("volume", IDLE_POD),  # its volume disk
    ("volume", STOPPED_POD),  # stopped pod's volume disk at 2× (RP4)
    ("network-volume", ORPHAN_VOLUME),  # detached network volume
}
# what TRAIN_POD brings along when nothing holds it
TRAIN_POD_RESOURCES = {
    ("pod", TRAIN_POD),
    ("volume", TRAIN_POD),
    ("network-volume", DURABLE_VOLUME),
}


def _pod(
    pid: str, name: str, status: str, cost: float, volume_gb: int, **more: Any
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "id": pid,
        "name": name,
        "desiredStatus": status,
        "costPerHr": cost,
        "adjustedCostPerHr": cost,
        "containerDiskInGb": 20,
        "volumeInGb": volume_gb,
        "volumeMountPath": "/workspace",
        "image": "runpod/pytorch:2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04",
        "interruptible": False,
        "locked": False,
        "machineId": f"m-{pid}",
        "memoryInGb": 62,
        "vcpuCount": 8,
        "publicIp": "100.65.0.119" if status == "RUNNING" else None,
        "portMappings": {"22": 10341} if status == "RUNNING" else None,
        "ports": ["22/tcp", "8888/http"],
        "env": {},
        "gpu": {"id": "NVIDIA A100 80GB PCIe", "count": 1, "displayName": "A100 80GB"},
        "lastStartedAt": "2026-08-01T09:00:00.000Z",
        "lastStatusChange": "Rented by User",
        "consumerUserId": "user_fake",
    }
    pod.update(more)
    return pod


SEED_PODS = [
    _pod(TRAIN_POD, "train-a100", "RUNNING", 1.64, 100,
         _network_volume=DURABLE_VOLUME),
    _pod(IDLE_POD, "notebook-idle", "RUNNING", 0.44, 50,
         gpu={"id": "NVIDIA RTX A5000", "count": 1, "displayName": "RTX A5000"}),
    _pod(STOPPED_POD, "sweep-old", "EXITED", 0.79, 200,
         lastStatusChange="Exited by User"),
    _pod(SPOT_POD, "spot-preempted", "EXITED", 0.23, 0, interruptible=True,
         lastStatusChange="Exited by Runpod: interruptible pod preempted"),
]  # fmt: skip

SEED_VOLUMES: list[dict[str, Any]] = [
    {"id": DURABLE_VOLUME, "name": "durable", "size": 500, "dataCenterId": "EU-RO-1"},
    {"id": ORPHAN_VOLUME, "name": "old-datasets", "size": 1000, "dataCenterId": "US-KS-2"},
]


def pod_usd_per_hour(pod: dict[str, Any]) -> float:
    """What a pod bills now, by its state (seed 004 §2, RP4)."""
    status = pod["desiredStatus"]
    if status == "RUNNING":
        disks = float(pod["containerDiskInGb"] + pod["volumeInGb"])
        return float(pod["costPerHr"]) + disks * DISK_RUNNING_USD_GB_MO / HOURS_PER_MONTH
    if status == "EXITED":
        return float(pod["volumeInGb"]) * VOLUME_STOPPED_USD_GB_MO / HOURS_PER_MONTH
    return 0.0


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunPodFake(FakeApi):
    provider = "runpod"

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.pods = {p["id"]: copy.deepcopy(p) for p in SEED_PODS}
        self.volumes: dict[str, dict[str, Any]] = {str(v["id"]): dict(v) for v in SEED_VOLUMES}
        self.balance_usd = 1000.0
        self.last_tick = self.now()
        start = self.last_tick
        # podId -> [amount, running ms, first second billed]
        self.billing: dict[str, list[float]] = {p: [0.0, 0.0, start] for p in self.pods}

    # -- time ---------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self.now()
        dt_s = max(0.0, now - self.last_tick)
        self.last_tick = now
        spent = 0.0
        for pid, pod in self.pods.items():
            usd = pod_usd_per_hour(pod) * dt_s / 3600.0
            rec = self.billing[pid]
            rec[0] += usd
            if pod["desiredStatus"] == "RUNNING":
                rec[1] += dt_s * 1000.0
            spent += usd
        for vol in self.volumes.values():
            spent += float(vol["size"]) * NETWORK_VOLUME_USD_GB_MO / HOURS_PER_MONTH * dt_s / 3600.0
        self.balance_usd -= spent
        if self.balance_usd <= 0:
            self._auto_stop()

    def _auto_stop(self) -> None:
        """Credit ran out: every running pod is stopped; storage keeps accruing (RP8)."""
        for pod in self.pods.values():
            if pod["desiredStatus"] == "RUNNING":
                self._set(pod, "EXITED", "Exited by Runpod: insufficient balance")

    def _set(self, pod: dict[str, Any], status: str, why: str) -> None:
        pod["desiredStatus"] = status
        pod["lastStatusChange"] = why
        running = status == "RUNNING"
        pod["publicIp"] = "100.65.0.119" if running else None
        pod["portMappings"] = {"22": 10341} if running else None

    # -- the API ------------------------------------------------------------------------------

    def route(self, call: Call) -> Answer:
        parts = [p for p in call.path.split("/") if p]
        m = call.method
        if parts == ["pods"] and m == "GET":
            return self._list_pods(call.query)
        if len(parts) >= 2 and parts[0] == "pods":
            return self._pod_call(m, parts[1], parts[2:], call.query)
        if parts == ["networkvolumes"] and m == "GET":
            return Answer(200, [dict(v) for v in self.volumes.values()])
        if len(parts) == 2 and parts[0] == "networkvolumes":
            vol = self.volumes.get(parts[1])
            if m == "GET":
                return Answer(200, dict(vol)) if vol else Answer(404)
            if m == "DELETE":
                if vol is None:
                    return Answer(400)
                del self.volumes[parts[1]]
                return Answer(204)
        if parts == ["billing", "pods"] and m == "GET":
            return self._billing(call.query)
        return Answer(404, {"message": "not found"})

    def _view(self, pod: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in pod.items() if not k.startswith("_")}
        nv = pod.get("_network_volume")
        if _flag(query, "includeNetworkVolume") and nv in self.volumes:
            out["networkVolume"] = dict(self.volumes[nv])
        return out

    def _list_pods(self, query: dict[str, list[str]]) -> Answer:
        status = _first(query, "desiredStatus")
        if status is not None and status not in ("RUNNING", "EXITED", "TERMINATED"):
            return Answer(400)
        wanted_id = _first(query, "id")
        pods = [
            self._view(p, query)
            for p in self.pods.values()
            if p["desiredStatus"] != "TERMINATED"
            and (status is None or p["desiredStatus"] == status)
            and (wanted_id is None or p["id"] == wanted_id)
        ]
        return Answer(200, pods)

    def _pod_call(
        self, method: str, pid: str, rest: list[str], query: dict[str, list[str]]
    ) -> Answer:
        pod = self.pods.get(pid)
        live = pod is not None and pod["desiredStatus"] != "TERMINATED"
        if not rest and method == "GET":
            return Answer(200, self._view(pod, query)) if pod and live else Answer(404)
        if not live or pod is None:
            return Answer(400)  # "Invalid Pod ID."
        if not rest and method == "DELETE":
            self._set(pod, "TERMINATED", "Terminated by User")
            return Answer(204)
        if rest == ["stop"] and method == "POST":
            if pod["desiredStatus"] == "RUNNING":
                self._set(pod, "EXITED", "Exited by User")
            return Answer(200)
        if rest == ["start"] and method == "POST":
            self._set(pod, "RUNNING", "Started by User")
            return Answer(200)
        return Answer(404, {"message": "not found"})

    def _billing(self, query: dict[str, list[str]]) -> Answer:
        grouping = (query.get("grouping") or ["gpuTypeId"])[0]
        wanted = _first(query, "podId")
        out: list[dict[str, Any]] = []
        for pid, (amount, running_ms, first) in self.billing.items():
            if wanted is not None and pid != wanted:
                continue
            pod = self.pods[pid]
            rec: dict[str, Any] = {
                "amount": round(amount, 6),
                "diskSpaceBilledGb": pod["containerDiskInGb"] + pod["volumeInGb"],
                "time": _iso(first - first % 86400),
                "timeBilledMs": int(running_ms),
            }
            if grouping == "podId":
                rec["podId"] = pid
            else:
                rec["gpuTypeId"] = pod["gpu"]["id"]
            out.append(rec)
        return Answer(200, out)

    # -- control ------------------------------------------------------------------------------

    def control(self, verb: str, body: dict[str, Any]) -> Answer:
        if verb == "balance":
            self.tick()
            self.balance_usd = float(body["usd"])
            self.tick()
            return Answer(200, {"ok": True, "balance_usd": self.balance_usd})
        if verb == "preempt":
            pod = self.pods[str(body["podId"])]
            self._set(pod, "EXITED", "Exited by Runpod: interruptible pod preempted")
            return Answer(200, {"ok": True})
        if verb == "state":
            return Answer(
                200,
                {
                    "pods": {p: v["desiredStatus"] for p, v in self.pods.items()},
                    "volumes": sorted(self.volumes),
                    "balance_usd": self.balance_usd,
                },
            )
        return super().control(verb, body)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() == "true"


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None
