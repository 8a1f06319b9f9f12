"""``cloud ls``: every billable resource across the configured provider accounts, with what it
bills now and which outlive targets stand behind it.

A target stands behind a resource when its ``cloud_id`` is the resource's pod or machine (the
resource itself, or the one it is attached to). It *holds* the resource when the run registry
has a run on it that is still going, or one whose results no verified pull covers yet (an
unpulled result): such a resource is never an orphan."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from outlive import verify as V
from outlive.cloud.model import Provider, Resource
from outlive.config import Config
from outlive.errors import UsageError
from outlive.lifecycle.pull import BUSY_STATES
from outlive.store import PullRecord, RunRecord


def configured_providers() -> list[Provider]:
    """The provider accounts with a key in the environment or a 0600 key file."""
    from outlive.cloud.paperspace import Paperspace
    from outlive.cloud.runpod import RunPod

    found: list[Provider | None] = [RunPod.from_env(), Paperspace.from_env()]
    return [p for p in found if p is not None]


def require_providers() -> list[Provider]:
    providers = configured_providers()
    if not providers:
        raise UsageError(
            "no provider account is configured; export RUNPOD_API_KEY or PAPERSPACE_API_KEY "
            "(or write the key to ~/.config/outlive/keys/runpod or .../paperspace, mode 0600)"
        )
    return providers


def owner(r: Resource) -> str:
    """The pod or machine a resource belongs to (itself, for a pod or machine)."""
    return r.id if r.compute else (r.attached_to or r.id)


@dataclass(frozen=True)
class Holds:
    """What the registry says about each target: runs still going, results not yet pulled."""

    busy: dict[str, list[str]]  # target -> names of runs still going
    unpulled: dict[str, list[str]]  # target -> names of ended runs no verified pull covers

    def holding(self, target: str) -> bool:
        return bool(self.busy.get(target) or self.unpulled.get(target))


def _verified(pull: PullRecord) -> bool:
    """A pull counts when it verified and its record is there and is no snapshot."""
    if not pull.verified:
        return False
    record = V.read_verified(Path(pull.dest))
    return record is not None and not record.get("snapshot")


def holds(runs: Iterable[RunRecord], pulls: Iterable[PullRecord]) -> Holds:
    pulled = {p.run_id for p in pulls if _verified(p)}
    busy: dict[str, list[str]] = {}
    unpulled: dict[str, list[str]] = {}
    for r in runs:
        if r.state in BUSY_STATES:
            busy.setdefault(r.target, []).append(r.name)
        elif r.run_id not in pulled:
            unpulled.setdefault(r.target, []).append(r.name)
    return Holds(busy, unpulled)


def registry_holds(cfg: Config) -> Holds:
    """``holds`` from the project's run registry (an empty one where there is no project)."""
    from outlive.store import Store

    if not cfg.state_dir.is_dir():
        return Holds({}, {})
    with Store(cfg.state_dir) as store:
        runs = store.all()
        return holds(runs, store.pulls([r.run_id for r in runs]) if runs else [])


def targets_by_cloud_id(cfg: Config) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in cfg.targets.values():
        if t.cloud_id:
            out.setdefault(t.cloud_id, []).append(t.name)
    return out


@dataclass(frozen=True)
class Row:
    """One resource with the targets behind it and whether one of them holds it."""

    resource: Resource
    used_by: list[str]
    held: bool


def rows(resources: Iterable[Resource], cfg: Config, held: Holds) -> list[Row]:
    by_id = targets_by_cloud_id(cfg)
    out = []
    for r in resources:
        used = by_id.get(owner(r), [])
        out.append(Row(r, used, any(held.holding(t) for t in used)))
    return out


def inventory(providers: Iterable[Provider]) -> list[Resource]:
    out: list[Resource] = []
    for p in providers:
        out += p.inventory()
    return out


def project_rows(cfg: Config) -> list[Row]:
    """Every resource the configured accounts bill, with what of the project ``cfg`` holds it
    (what `cloud ls`, `cloud audit` and the MCP ``cloud_audit`` tool read)."""
    return rows(inventory(require_providers()), cfg, registry_holds(cfg))
