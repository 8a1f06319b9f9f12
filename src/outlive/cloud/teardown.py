"""``down --execute``: after the gate passed and the target's name was typed, run the profile's
meter-stop verb on the target's own pod or machine (its ``cloud_id``; nothing else), then list
again to confirm the meter stopped and say what still bills.

Safe to repeat: a pod already gone is not acted on again, so an execute cut off between the
stop and its confirmation converges on the next run. Without ``--execute``, ``look`` says what
the target's resources bill now (e.g. a spot pod the platform already stopped still bills its
volume disk at 2×, RP4)."""

from __future__ import annotations

from typing import TypedDict

from outlive.cloud.inventory import configured_providers, owner
from outlive.cloud.model import PROVIDER_OF_PROFILE, Provider, Resource
from outlive.config import Target
from outlive.errors import UsageError


class Billing(TypedDict):
    kind: str
    id: str
    name: str
    state: str
    usd_per_hour: float
    bills: str


class CloudLook(TypedDict):
    """The target's pod or machine as its provider shows it now."""

    provider: str
    cloud_id: str
    state: str | None  # None: the provider no longer has it
    still_billing: list[Billing]
    usd_per_hour: float


class Executed(CloudLook):
    verb: str
    acted: bool  # False: it was already stopped (a repeated or interrupted execute)
    state_before: str | None
    meter_stopped: bool


def provider_for(target: Target, *, required: bool) -> Provider | None:
    """The configured provider account of ``target``'s profile (None when not required and
    there is none, or the target has no ``cloud_id``)."""
    name = PROVIDER_OF_PROFILE.get(target.profile, "")
    problem = None
    if not name:
        problem = (
            f"target {target.name} (profile {target.profile}) has no provider API outlive can call"
        )
    elif not target.cloud_id:
        problem = (
            f'target {target.name} has no cloud_id; add cloud_id = "<pod or machine id>" to '
            f"[targets.{target.name}] so outlive knows which {name} resource is this target"
        )
    if problem is None:
        found = next((p for p in configured_providers() if p.name == name), None)
        if found is not None:
            return found
        problem = f"no {name} API key is configured; export {name.upper()}_API_KEY"
    if required:
        raise UsageError(problem + " (down --execute acts only through the provider's API)")
    return None


def _billing(rs: list[Resource]) -> list[Billing]:
    return [
        {"kind": r.kind, "id": r.id, "name": r.name, "state": r.state,
         "usd_per_hour": round(r.usd_per_hour, 6), "bills": r.bills}
        for r in rs
        if r.billing
    ]  # fmt: skip


def _tied(provider: Provider, cloud_id: str) -> list[Resource]:
    return [r for r in provider.inventory() if owner(r) == cloud_id]


def look(provider: Provider, cloud_id: str) -> CloudLook:
    tied = _billing(_tied(provider, cloud_id))
    return {
        "provider": provider.name,
        "cloud_id": cloud_id,
        "state": provider.compute_state(cloud_id),
        "still_billing": tied,
        "usd_per_hour": round(sum(b["usd_per_hour"] for b in tied), 6),
    }


def execute(provider: Provider, cloud_id: str, verb: str) -> Executed:
    """Run ``verb`` on ``cloud_id`` unless its meter already stopped; then list again."""
    before_ids = {(r.kind, r.id) for r in _tied(provider, cloud_id)}
    before = provider.compute_state(cloud_id)
    acted = not provider.is_stopped(before)
    if acted:
        provider.meter_stop(cloud_id, verb)
    after = provider.compute_state(cloud_id)
    # What was tied to it and bills still (a network volume survives a terminate, RP3; a
    # stopped machine's storage and IPs keep billing, PS1).
    still = _billing(
        [r for r in provider.inventory() if (r.kind, r.id) in before_ids or owner(r) == cloud_id]
    )
    return {
        "provider": provider.name,
        "cloud_id": cloud_id,
        "state": after,
        "still_billing": still,
        "usd_per_hour": round(sum(b["usd_per_hour"] for b in still), 6),
        "verb": verb,
        "acted": acted,
        "state_before": before,
        "meter_stopped": provider.is_stopped(after),
    }
