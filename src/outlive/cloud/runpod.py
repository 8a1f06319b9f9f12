"""RunPod through its REST API v1 (``https://rest.runpod.io/v1``, the published OpenAPI document
vendored in tests/contracts/). The official ``runpod`` SDK is not used: its pod calls go through
the older GraphQL API and it has no network-volume listing or billing records, so every call
here is plain REST with a bearer key.

Billing (seed 004 §2/§5): a running pod bills ``costPerHr`` for compute plus its container and
volume disks at $0.10/GB/mo; a stopped (EXITED) pod bills only its volume disk, at $0.20/GB/mo,
twice the running rate (RP4); terminate deletes the pod and its volume disk and stops both
meters (RP3); a network volume bills until it is deleted."""

from __future__ import annotations

from typing import Any

from outlive.cloud import cost
from outlive.cloud.model import ApiAccount, Resource
from outlive.errors import ProviderError

API_URL = "https://rest.runpod.io/v1"
TERMINATED = "TERMINATED"


class RunPod(ApiAccount):
    """One RunPod account."""

    name = "runpod"
    title = "RunPod"
    default_url = API_URL

    # -- calls --------------------------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        reply = self.api.call("GET", "/pods", query={"includeNetworkVolume": "true"})
        return _list(reply.body, "GET /pods")

    def pod(self, pod_id: str) -> dict[str, Any] | None:
        """One pod, or None when RunPod no longer has it (terminated)."""
        reply = self.api.call("GET", f"/pods/{_id(pod_id)}", ok=(200, 404))
        if reply.status == 404 or not isinstance(reply.body, dict):
            return None
        return reply.body

    def network_volumes(self) -> list[dict[str, Any]]:
        return _list(self.api.call("GET", "/networkvolumes").body, "GET /networkvolumes")

    def stop(self, pod_id: str) -> None:
        self.api.call("POST", f"/pods/{_id(pod_id)}/stop")

    def terminate(self, pod_id: str) -> None:
        self.api.call("DELETE", f"/pods/{_id(pod_id)}", ok=(204, 200))

    def billing(self, pod_id: str) -> list[dict[str, Any]]:
        """The pod's billing records (per day), as RunPod keeps them."""
        reply = self.api.call(
            "GET",
            "/billing/pods",
            query={"grouping": "podId", "podId": pod_id, "bucketSize": "day"},
        )
        return _list(reply.body, "GET /billing/pods")

    # -- the Provider seam --------------------------------------------------------------------

    def inventory(self) -> list[Resource]:
        pods = self.pods()
        out: list[Resource] = []
        links: dict[str, str] = {}  # network volume id -> the pod it is attached to
        for pod in pods:
            out += pod_resources(pod)
            nv = pod.get("networkVolume")
            if isinstance(nv, dict) and nv.get("id"):
                links[str(nv["id"])] = str(pod["id"])
        for vol in self.network_volumes():
            size = float(vol.get("size") or 0)
            out.append(
                Resource(
                    provider=self.name,
                    kind="network-volume",
                    id=str(vol["id"]),
                    name=str(vol.get("name") or ""),
                    state="attached" if str(vol["id"]) in links else "detached",
                    usd_per_hour=cost.runpod_network_volume_per_hour(size),
                    attached_to=links.get(str(vol["id"])),
                    bills=f"{size:g} GB network volume until deleted",
                )
            )
        return out

    def compute_state(self, resource_id: str) -> str | None:
        pod = self.pod(resource_id)
        if pod is None:
            return None
        return str(pod.get("desiredStatus") or "")

    def is_stopped(self, state: str | None) -> bool:
        return state in (None, TERMINATED)

    def billed_usd(self, resource_id: str) -> float | None:
        return round(sum(float(r.get("amount") or 0) for r in self.billing(resource_id)), 4)

    def meter_stop(self, resource_id: str, verb: str) -> None:
        if verb == "terminate":
            self.terminate(resource_id)
        elif verb == "stop":
            self.stop(resource_id)
        else:
            raise ProviderError(f"RunPod has no verb {verb!r}; the runpod profile names terminate")


def pod_resources(pod: dict[str, Any]) -> list[Resource]:
    """A pod as billable resources: its compute (and container disk) and its volume disk."""
    pid, name = str(pod["id"]), str(pod.get("name") or "")
    status = str(pod.get("desiredStatus") or "")
    volume_gb = float(pod.get("volumeInGb") or 0)
    container_gb = float(pod.get("containerDiskInGb") or 0)
    running = status == "RUNNING"
    rate = float(pod.get("adjustedCostPerHr") or pod.get("costPerHr") or 0)
    compute = (
        rate + cost.per_hour(cost.RUNPOD_DISK_RUNNING_USD_GB_MO, container_gb) if running else 0.0
    )
    spot = " (spot)" if pod.get("interruptible") else ""
    out = [
        Resource(
            provider="runpod",
            kind="pod",
            id=pid,
            name=name,
            state=status,
            usd_per_hour=compute,
            bills=(
                f"compute ${rate:g}/h{spot} + {container_gb:g} GB container disk"
                if running
                else "nothing for compute or container disk while stopped"
            ),
        )
    ]
    if volume_gb > 0:
        per_gb = (
            cost.RUNPOD_DISK_RUNNING_USD_GB_MO if running else cost.RUNPOD_VOLUME_STOPPED_USD_GB_MO
        )
        out.append(
            Resource(
                provider="runpod",
                kind="volume",
                id=pid,
                name=f"{name} volume disk",
                state=status,
                usd_per_hour=cost.per_hour(per_gb, volume_gb),
                attached_to=pid,
                bills=f"{volume_gb:g} GB volume disk at ${per_gb:.2f}/GB/mo"
                + ("" if running else " (stopped: 2× the running rate, RP4)"),
            )
        )
    return out


def _id(value: str) -> str:
    """A pod id as it may appear in a path: RunPod's ids are letters and digits."""
    if not value or not value.isalnum() or not value.isascii():
        raise ProviderError(
            f"{value!r} is not a RunPod pod id (letters and digits); check cloud_id in outlive.toml"
        )
    return value


def _list(body: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(body, list) or not all(isinstance(x, dict) for x in body):
        raise ProviderError(f"RunPod answered {what} with something that is not a list")
    return body
