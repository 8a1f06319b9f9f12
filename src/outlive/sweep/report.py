"""``sweep status``: the items of a sweep as rows, a summary and the best items by a metric --
the same document for ``sweep --json`` at the end of a sweep and ``sweep status --json``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive.errors import UsageError
from outlive.sweep import registry
from outlive.sweep.plan import ItemView, summary

if TYPE_CHECKING:
    from outlive.session import Session
    from outlive.store import Store
    from outlive.sweep.registry import SweepRow

BEST_COUNT = 3
_NOT_METRICS = frozenset({"step", "ts", "time", "t"})


def find_sweep(store: Store, ref: str | None) -> SweepRow:
    """The sweep named ``ref``, or run from the file ``ref``; the newest one when None."""
    rows = registry.sweeps(store)
    if not rows:
        raise UsageError("no sweep in this project yet; start one with `outlive sweep FILE`")
    if ref is None:
        return max(rows, key=lambda r: r.created_at)
    for row in rows:
        if row.name == ref:
            return row
    path = Path(ref)
    if path.exists():
        for row in rows:
            if row.source == str(path.resolve()):
                return row
    names = ", ".join(r.name for r in rows)
    raise UsageError(f"no sweep {ref!r} in this project (known: {names})")


def metric_value(v: ItemView, metric: str) -> float | None:
    value = v.progress.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def last_metric(v: ItemView) -> tuple[str, object] | None:
    """The first metric the item's newest progress record holds (besides the step)."""
    for key, value in v.progress.items():
        if (
            key not in _NOT_METRICS
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            return key, value
    return None


def item_json(v: ItemView) -> dict[str, Any]:
    step = v.progress.get("step")
    metric = last_metric(v)
    return {
        "key": v.item.key,
        "name": v.item.run_name,
        "params": v.item.params,
        "state": v.state.value,
        "target": v.target,
        "run_id": v.run_id,
        "run_state": v.status.state.value if v.status else None,
        "unreachable": v.unreachable,
        "step": step if isinstance(step, int) else None,
        "metric": {metric[0]: metric[1]} if metric else None,
        "restarts": v.restarts,
        "failures": v.failures,
        "note": v.item.note,
    }


def best(views: Sequence[ItemView], metric: str, *, highest: bool = False) -> list[dict[str, Any]]:
    scored = [(metric_value(v, metric), v) for v in views]
    ranked = sorted(
        ((s, v) for s, v in scored if s is not None), key=lambda p: -p[0] if highest else p[0]
    )
    return [{"key": v.item.key, "name": v.item.run_name, metric: s} for s, v in ranked[:BEST_COUNT]]


def document(
    row: SweepRow, views: Sequence[ItemView], metric: str | None, highest: bool = False
) -> dict[str, Any]:
    """One sweep: ``{"sweep", "source", "items", "summary", "best"}``."""
    by = metric or _default_metric(views)
    return {
        "sweep": row.name,
        "source": row.source,
        "items": [item_json(v) for v in views],
        "summary": summary(views),
        "best": {"by": by, "items": best(views, by, highest=highest)} if by else None,
    }


def status_document(
    session: Session, ref: str | None, metric: str | None = None, highest: bool = False
) -> dict[str, Any]:
    """``sweep status --json``: the sweep ``ref`` (the newest when None) as its runs show it now."""
    from outlive.sweep import runner

    row = find_sweep(session.store, ref)
    retries = row.options.get("retries")
    views = runner.look(session, row.name, retries if isinstance(retries, int) else 1)
    return document(row, views, metric, highest)


def _default_metric(views: Sequence[ItemView]) -> str | None:
    for v in views:
        metric = last_metric(v)
        if metric is not None:
            return metric[0]
    return None


def summary_line(counts: dict[str, int]) -> str:
    text = (
        f"{counts['done']} done / {counts['running']} running / {counts['queued']} queued / "
        f"{counts['failed']} failed"
    )
    return text + (f" / {counts['cancelled']} cancelled" if counts["cancelled"] else "")
