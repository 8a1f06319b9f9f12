"""`cloud ls` and `cloud audit`: what the configured provider accounts bill now, and what of it
has no active run or unpulled result behind it; and the provider half of `down`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outlive.cli._terminal import say
from outlive.cli.output import console, emit_json

if TYPE_CHECKING:
    from outlive.cli.grammar import JsonArgs
    from outlive.cloud.inventory import Row
    from outlive.cloud.teardown import CloudLook, Executed
    from outlive.config import Config, Target


def _rows() -> list[Row]:
    from outlive.cloud.inventory import project_rows
    from outlive.config import load_config

    return project_rows(load_config())


def ls(args: JsonArgs) -> int:
    """Every billable resource across the configured accounts, costliest first."""
    from outlive.cloud.audit import why
    from outlive.cloud.cost import per_month

    rows = sorted(_rows(), key=lambda x: (-x.resource.usd_per_hour, x.resource.id))
    items = []
    for x in rows:
        orphan = x.resource.billing and not x.held
        items.append({**x.resource.view(x.used_by), "why": why(x.resource) if orphan else None})
    total = sum(x.resource.usd_per_hour for x in rows)
    if args.as_json:
        emit_json({"items": items, "usd_per_month": round(per_month(total), 2)})
        return 0
    _table(
        "Provider inventory",
        [(i["provider"], i["kind"], i["id"], i["name"], i["state"], i["usd_per_hour"],
          ", ".join(i["used_by"]) or "-", i["bills"]) for i in items],  # type: ignore[arg-type]
        ("provider", "kind", "id", "name", "state", "$/h", "outlive target", "bills"),
    )  # fmt: skip
    console().print(f"total ≈ ${total:.4f}/h, ${per_month(total):.2f}/month", markup=False)
    return 0


def audit(args: JsonArgs) -> int:
    """What bills with no active run or unpulled result behind it; exit 1 when any."""
    from outlive.cloud.audit import report

    rep = report(_rows())
    if args.as_json:
        emit_json(rep)
    elif rep["items"]:
        _table(
            "Billing with nothing of outlive's behind it",
            [(i["provider"], i["kind"], i["id"], i["name"], i["state"], i["usd_per_hour"],
              i["why"]) for i in rep["items"]],
            ("provider", "kind", "id", "name", "state", "$/h", "why"),
        )  # fmt: skip
        console().print(f"together ≈ ${rep['usd_per_month']:.2f}/month", markup=False)
    else:
        console().print("nothing bills without an active run or unpulled result behind it")
    return 1 if rep["items"] else 0


def _table(title: str, rows: list[tuple[object, ...]], cols: tuple[str, ...]) -> None:
    from rich.table import Table

    from outlive.cli._terminal import plain_cells

    table = Table(title=title, title_justify="left")
    for c in cols:
        table.add_column(c)
    for row in rows:
        table.add_row(*plain_cells(*(f"{v:.4f}" if isinstance(v, float) else v for v in row)))
    console().print(table)


# ---------------------------------------------------------------------------------------------
# the provider half of `down`


def down_look(cfg: Config, target: Target, *, execute: bool) -> CloudLook | None:
    """What the target's pod or machine bills now; None where no provider is set up (then
    ``--execute`` is refused with one sentence before the gate looks at anything)."""
    from outlive.cli.output import note
    from outlive.cloud.teardown import look, provider_for
    from outlive.errors import ProviderError

    provider = provider_for(target, required=execute)
    if provider is None or not target.cloud_id:
        return None
    try:
        return look(provider, target.cloud_id)
    except ProviderError as exc:
        if execute:
            raise
        note(f"{exc} (the gate still runs; what {target.cloud_id} bills now is not shown)")
        return None


def down_execute(cfg: Config, target: Target) -> Executed:
    from outlive.cloud.teardown import execute, provider_for
    from outlive.profiles import load_profile

    provider = provider_for(target, required=True)
    if provider is None or not target.cloud_id:  # pragma: no cover - required=True raised
        raise AssertionError("provider_for(required=True) returned None")
    verb = load_profile(target.profile, cfg.profile_dirs).meter_stop_verb
    return execute(provider, target.cloud_id, verb)


def print_look(seen: CloudLook, head: str) -> None:
    con = console()
    state = seen["state"] or "gone (the provider no longer has it)"
    say(con, f"{head}: {seen['provider']} {seen['cloud_id']} is {state}")
    if seen["still_billing"]:
        con.print(f"still billing ≈ ${seen['usd_per_hour']:.4f}/h:", markup=False)
        for b in seen["still_billing"]:
            say(con, f"  • {b['kind']} {b['id']} ({b['name']}): {b['bills']}")
    else:
        con.print("nothing of it bills any more", markup=False)


def is_gone(seen: CloudLook | None) -> bool:
    return seen is not None and seen["state"] is None


__all__ = ["audit", "down_execute", "down_look", "is_gone", "ls", "print_look"]
