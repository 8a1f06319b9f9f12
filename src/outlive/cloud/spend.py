"""Money and danger clocks for ``status``: for each target that names its pod or machine
(``cloud_id``) and whose provider has a key, what it bills per hour now (the API's rates), what
the provider's billing records say was spent (where the API keeps them: RunPod), an estimate per
run (the rate now × the run's time so far), and the profile's danger clocks as warnings, shown
before they fire. One inventory per provider per look; nothing is called for other targets."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TypedDict

from outlive.cloud.cost import per_month
from outlive.cloud.inventory import owner
from outlive.cloud.model import Resource
from outlive.cloud.teardown import provider_for
from outlive.config import Config
from outlive.errors import ProviderError
from outlive.profiles import load_profile
from outlive.run_status import RunStatus


class Warning_(TypedDict):
    clock: str
    what_happens: str
    gotchas: list[str]


class TargetSpend(TypedDict):
    provider: str
    cloud_id: str
    state: str | None
    usd_per_hour: float  # what its resources bill now (known rates)
    usd_per_month: float
    rate_complete: bool  # False: a part bills at a rate the API does not give
    billed_usd: float | None  # the provider's own billing records, where it keeps them
    runs_usd: dict[str, float]  # run id -> rate now × the run's time so far
    warnings: list[Warning_]
    error: str | None


def _warnings(cfg: Config, profile: str, spot: bool) -> list[Warning_]:
    prof = load_profile(profile, cfg.profile_dirs)
    return [
        {"clock": c.name, "what_happens": c.what_happens, "gotchas": list(c.gotchas)}
        for c in prof.clocks_first()
        if c.surface_first or (spot and c.kind == "grace")
    ]


def _run_seconds(r: RunStatus, now: float) -> float:
    """The run's time so far: from its start (its launch, when the box was not asked) to its
    end or now."""
    start = r.started_at if r.started_at is not None else r.created_at
    if start is None:
        return 0.0
    return max(0.0, (r.ended_at if r.ended_at is not None else now) - start)


def spend(
    cfg: Config, runs: Iterable[RunStatus], *, now: float | None = None
) -> dict[str, TargetSpend]:
    """Spend and clocks per target of ``runs`` that has a ``cloud_id`` and a configured provider."""
    now = time.time() if now is None else now
    by_target: dict[str, list[RunStatus]] = {}
    for r in runs:
        by_target.setdefault(r.target, []).append(r)
    inventories: dict[str, list[Resource]] = {}
    out: dict[str, TargetSpend] = {}
    for name, its_runs in by_target.items():
        target = cfg.targets.get(name)
        if target is None or not target.cloud_id:
            continue
        provider = provider_for(target, required=False)
        if provider is None:
            continue
        row: TargetSpend = {
            "provider": provider.name, "cloud_id": target.cloud_id, "state": None,
            "usd_per_hour": 0.0, "usd_per_month": 0.0, "rate_complete": True,
            "billed_usd": None, "runs_usd": {},
            "warnings": _warnings(cfg, target.profile, target.policy.spot), "error": None,
        }  # fmt: skip
        try:
            if provider.name not in inventories:
                inventories[provider.name] = provider.inventory()
            mine = [x for x in inventories[provider.name] if owner(x) == target.cloud_id]
            compute = next((x for x in mine if x.compute), None)
            rate = sum(x.usd_per_hour for x in mine)
            row["state"] = compute.state if compute else None
            row["usd_per_hour"] = round(rate, 6)
            row["usd_per_month"] = round(per_month(rate), 2)
            row["rate_complete"] = all(x.rate_known for x in mine)
            row["billed_usd"] = provider.billed_usd(target.cloud_id)
            row["runs_usd"] = {
                r.run_id: round(rate * _run_seconds(r, now) / 3600.0, 4) for r in its_runs
            }
        except ProviderError as exc:
            row["error"] = str(exc)
        out[name] = row
    return out
