"""Paperspace through its public API v1 (``https://api.paperspace.com/v1``): machines, their
block storage, public IPs, snapshots and shared drives. Lists are paged with ``after`` and
``limit`` (1-120) and answer ``{"hasMore", "items", "nextPage"}``; every page is read.

Billing (seed 001 §2/§5): a machine that is on bills its compute (at its machine type's hourly
rate, which the machine object does not carry) and its block storage; a shut-down machine
(``off``) still bills its block storage, public IP and add-ons (PS1); destroy deletes the
machine and its storage, but a snapshot (PS9) and a static IP keep billing until deleted."""

from __future__ import annotations

from typing import Any

from outlive.cloud import cost
from outlive.cloud.model import ApiAccount, Resource
from outlive.errors import ProviderError

API_URL = "https://api.paperspace.com/v1"
PAGE_LIMIT = 120
MAX_PAGES = 1000  # a cursor that never ends is the API's fault; stop rather than loop forever


class Paperspace(ApiAccount):
    """One Paperspace team's account."""

    name = "paperspace"
    title = "Paperspace"
    default_url = API_URL
    page_limit = PAGE_LIMIT  # items asked for per page (1-120)

    # -- calls --------------------------------------------------------------------------------

    def _all(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paged list (or of a plain array, should a list come unpaged)."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            query: dict[str, str] = {"limit": str(self.page_limit)}
            if after is not None:
                query["after"] = after
            body = self.api.call("GET", path, query=query).body
            if isinstance(body, list):
                return [x for x in body if isinstance(x, dict)]
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise ProviderError(f"Paperspace answered GET {path} with something not a list")
            out += [x for x in body["items"] if isinstance(x, dict)]
            after = body.get("nextPage")
            if not body.get("hasMore") or not after:
                return out
        raise ProviderError(f"Paperspace kept paging GET {path} past {MAX_PAGES} pages")

    def machines(self) -> list[dict[str, Any]]:
        return self._all("/machines")

    def machine(self, machine_id: str) -> dict[str, Any] | None:
        reply = self.api.call("GET", f"/machines/{_id(machine_id)}", ok=(200, 404))
        return reply.body if reply.status == 200 and isinstance(reply.body, dict) else None

    def stop(self, machine_id: str) -> None:
        self.api.call("PATCH", f"/machines/{_id(machine_id)}/stop")

    def destroy(self, machine_id: str) -> None:
        self.api.call("DELETE", f"/machines/{_id(machine_id)}", ok=(204, 200))

    # -- the Provider seam --------------------------------------------------------------------

    def inventory(self) -> list[Resource]:
        machines = self.machines()
        alive = {str(m["id"]) for m in machines}
        out: list[Resource] = []
        for m in machines:
            out += machine_resources(m)
        for ip in self._all("/public-ips"):
            on = str(ip.get("assignedMachineId") or "") or None
            state = "assigned" if on else "unassigned"
            rate = cost.PAPERSPACE_STATIC_IP_USD_H
            bills = "static IP, $0.0045/h (≤ $3/mo) until released"
            out.append(Resource(self.name, "public-ip", str(ip["ip"]), str(ip.get("region") or ""),
                                state, rate, on, bills))  # fmt: skip
        for snap in self._all("/snapshots"):
            size = float(snap.get("storageSize") or 0)
            of = str(snap.get("machineId") or "")
            state, on = ("kept", of) if of in alive else ("orphaned", None)
            rate = cost.per_hour(cost.PAPERSPACE_SNAPSHOT_USD_GB_MO, size)
            bills = f"{size:g} GB snapshot at $0.29/GB/mo until deleted (PS9)"
            out.append(Resource(self.name, "snapshot", str(snap["id"]),
                                str(snap.get("name") or ""), state, rate, on, bills))  # fmt: skip
        for drive in self._all("/shared-drives"):
            bills = (f"{drive.get('size', '?')} GB shared drive at the plan's rate (not given by "
                     "the API; not audited)")  # fmt: skip
            name = str(drive.get("name") or "")
            out.append(
                Resource(
                    self.name, "shared-drive", str(drive["id"]), name, "available", 0.0, None, bills
                )
            )
        return out

    def compute_state(self, resource_id: str) -> str | None:
        m = self.machine(resource_id)
        return None if m is None else str(m.get("state") or "")

    def is_stopped(self, state: str | None) -> bool:
        return state in (None, "off")

    def billed_usd(self, resource_id: str) -> float | None:
        return None  # the v1 API has no billing records per machine

    def meter_stop(self, resource_id: str, verb: str) -> None:
        if verb in ("shut-down", "shut down", "stop"):
            self.stop(resource_id)
        elif verb == "destroy":
            self.destroy(resource_id)
        else:
            raise ProviderError(f"Paperspace has no verb {verb!r}; the profile names shut-down")


def machine_resources(m: dict[str, Any]) -> list[Resource]:
    """A machine as billable resources: its compute and its block storage."""
    mid, name, state = str(m["id"]), str(m.get("name") or ""), str(m.get("state") or "")
    storage_gb = float(m.get("storageTotal") or 0)
    on = state != "off"
    out = [
        Resource(
            provider="paperspace",
            kind="machine",
            id=mid,
            name=name,
            state=state,
            usd_per_hour=0.0,
            rate_known=not on,
            bills=(
                f"compute at the {m.get('machineType', '?')} hourly rate (not given by the API)"
                if on
                else "nothing for compute while off"
            ),
        )
    ]
    if storage_gb > 0:
        out.append(
            Resource(
                provider="paperspace",
                kind="volume",
                id=mid,
                name=f"{name} block storage",
                state=state,
                usd_per_hour=cost.per_hour(cost.PAPERSPACE_BLOCK_STORAGE_USD_GB_MO, storage_gb),
                attached_to=mid,
                bills=f"{storage_gb:g} GB block storage, on or off, until destroyed"
                + ("" if on else " (PS1)"),
            )
        )
    return out


def _id(value: str) -> str:
    if not value or not value.isascii() or not value.replace("-", "").isalnum():
        raise ProviderError(
            f"{value!r} is not a Paperspace machine id; check cloud_id in outlive.toml"
        )
    return value
