"""The sweep's scheduler loop: look at the items' live runs (one probe per target), launch what
has room, until every item is done, failed past its retries or cancelled.

Every launch goes through :func:`outlive.lifecycle.runs.launch`: the launch journal is written
before the request leaves and the box holds the run name under its lock, so a client killed at
any moment leaves at most a journaled launch that the next look finds (or forgets), never a
second live run of an item.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from outlive.errors import BoxError, ConfigError, OutliveError, TransportError
from outlive.naming import NameBusy
from outlive.store import LIVE_STATES, RunRecord
from outlive.sweep import plan, registry
from outlive.sweep.plan import ItemState, ItemView

if TYPE_CHECKING:
    from outlive.run_status import RunStatus
    from outlive.session import Session
    from outlive.sweep.spec import SweepSpec

# A target that refused a launch or did not answer is left alone this long before the next try.
DOWN_BACKOFF_S = 10.0
# A journaled launch its box does not have this long after it was sent is taken as never sent
# (its client died first): the item is launched again, on that target only.
ABANDONED_AFTER_S = 15.0


@dataclass(frozen=True)
class Options:
    targets: list[str]
    per_target: int | None
    retries: int
    poll_s: float = 0.25


def look(session: Session, sweep: str, retries: int) -> list[ItemView]:
    """Every item of ``sweep`` as its runs show it now: one look at the runs still live."""
    from outlive.lifecycle.runs import status

    rows = registry.items(session.store, sweep)
    names = {r.run_name for r in rows}
    live = [
        r.run_id
        for r in session.store.all()
        if r.name in names and (r.journaled or r.state in LIVE_STATES)
    ]
    looks: dict[str, RunStatus] = {}
    if live:
        looks = {st.run_id: st for st in status(session, live)}
    by_name: dict[str, list[RunRecord]] = {}
    for rec in session.store.all():  # again: the look updated their states
        if rec.name in names:
            by_name.setdefault(rec.name, []).append(rec)
    moved = registry.moved(session.store)
    gone = _abandoned(session, [r for rs in by_name.values() for r in rs], looks)
    replaced = [
        r.run_id
        for rs in by_name.values()
        for r in rs
        if r.run_id in gone and any(n.created_at > r.created_at and not n.journaled for n in rs)
    ]
    if replaced:  # an abandoned launch whose item runs again: the box never had it
        session.store.forget(replaced)
        by_name = {k: [r for r in rs if r.run_id not in replaced] for k, rs in by_name.items()}
    return [
        plan.view(row, by_name.get(row.run_name, []), looks, retries, moved, gone) for row in rows
    ]


def _abandoned(
    session: Session, records: Sequence[RunRecord], looks: dict[str, RunStatus]
) -> frozenset[str]:
    """Journaled launches that an answering box still does not have ABANDONED_AFTER_S after
    they were sent (the journal itself waits longer before it forgets them)."""
    waiting = [
        r.run_id for r in records if r.journaled and r.run_id in looks and not looks[r.run_id].stale
    ]
    stamps = session.store.journaled_at(waiting)
    now = time.time()
    return frozenset(i for i, at in stamps.items() if now - at > ABANDONED_AFTER_S)


def gpu_slots(session: Session, target: str) -> int | None:
    """One slot per GPU the audit finds (1 with none); None when the target does not answer."""
    from outlive.diagnose.gpu import read_gpu

    t = session.target(target)
    request = {
        "paths": {"workdir": t.placement.workdir, "durable": t.placement.durable},
        "env": dict(t.policy.env),
        "torch": False,
    }
    try:
        facts = session.agent(t).call("audit", request, timeout_s=60.0)
    except (TransportError, BoxError):
        return None
    gpu = read_gpu(facts.get("gpu") if isinstance(facts, dict) else None)
    return max(1, len(gpu.rows)) if gpu.state == "ok" else 1


def ensure_slots(session: Session, sweep: str, opts: Options) -> dict[str, int]:
    """Each target's slots: --per-target when given, else the audit's GPU count (kept in the
    registry, so a rerun does not audit again); 1 meanwhile for a target that does not answer."""
    known = registry.slots(session.store, sweep)
    out: dict[str, int] = {}
    for target in opts.targets:
        count = opts.per_target if opts.per_target is not None else known.get(target)
        if count is None:
            count = gpu_slots(session, target)
        if count is not None and known.get(target) != count:
            registry.set_slots(session.store, sweep, target, count)
        out[target] = count if count is not None else 1
    return out


def run(
    session: Session,
    spec: SweepSpec,
    opts: Options,
    on_launch: Callable[[ItemView, str, str], None] | None = None,
) -> list[ItemView]:
    """Drive ``spec`` over the targets until every item is terminal; the final views."""
    for target in opts.targets:
        session.target(target)  # an unknown target is a usage error before anything starts
    registry.register(
        session.store,
        spec,
        {"targets": opts.targets, "per_target": opts.per_target, "retries": opts.retries},
    )
    slots = ensure_slots(session, spec.name, opts)
    down_until: dict[str, float] = {}
    reported: set[str] = set()
    while True:
        views = look(session, spec.name, opts.retries)
        _report_failures(session, spec.name, views, reported)
        if all(v.state.terminal for v in views):
            return views
        now = time.monotonic()
        down = {t for t, until in down_until.items() if until > now}
        down |= {v.target for v in views if v.unreachable and v.target}
        by_target: dict[str, list[ItemView]] = {}
        for v, target in plan.place(views, slots, down):
            by_target.setdefault(target, []).append(v)
        for target, outcomes, error in _launch_all(session, by_target):
            for v, run_id in outcomes:
                registry.set_note(session.store, spec.name, v.item.key, _launch_note(v, target))
                if on_launch is not None:
                    on_launch(v, target, run_id)
            if error is not None:
                # the target refused or did not answer: leave it alone for a while, say why
                down_until[target] = time.monotonic() + DOWN_BACKOFF_S
                registry.set_note(session.store, spec.name, error[0].item.key, error[1])
        time.sleep(opts.poll_s)


Outcome = tuple[str, list[tuple[ItemView, str]], tuple[ItemView, str] | None]


def _launch_all(session: Session, by_target: dict[str, list[ItemView]]) -> list[Outcome]:
    """Launch each target's items, the targets at once (a slow box does not hold up the
    others): per target, the items launched (with their run ids) and the error that stopped
    its launches, if one did."""
    if len(by_target) <= 1:
        return [_launch_on(session, t, vs) for t, vs in by_target.items()]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(by_target))) as pool:
        return list(pool.map(lambda tv: _launch_on(session, *tv), by_target.items()))


def _launch_on(session: Session, target: str, views: list[ItemView]) -> Outcome:
    from outlive.lifecycle.runs import launch

    done: list[tuple[ItemView, str]] = []
    for v in views:
        try:
            launched = launch(session, target, list(v.item.command), v.item.run_name)
        except NameBusy:
            continue  # a run of this name is live there: the next look adopts it
        except (TransportError, BoxError) as exc:
            if isinstance(exc, BoxError) and exc.kind == "name_busy":
                continue
            return target, done, (v, f"not launched: {exc}")
        done.append((v, launched.run_id))
    return target, done, None


def _launch_note(v: ItemView, target: str) -> str:
    """What a launch does with the item's checkpoint (``sweep status`` shows it)."""
    if v.run_id is None:
        return f"launched on {target}"
    why = f"after its run {v.run_id} {v.status.state if v.status else 'ended'}"
    if v.prefer == target:
        return f"relaunched on {target} {why}, resuming from its checkpoint there"
    return (
        f"relaunched on {target} {why}, from scratch: its checkpoint is on {v.target}, "
        "which does not answer"
    )


def _report_failures(
    session: Session, sweep: str, views: Sequence[ItemView], reported: set[str]
) -> None:
    """An item failed past its retries: note explain's diagnosis of its last log."""
    for v in views:
        if v.state is not ItemState.FAILED or v.run_id is None or v.run_id in reported:
            continue
        reported.add(v.run_id)
        if v.item.note and v.item.note.startswith("failed"):
            continue
        registry.set_note(session.store, sweep, v.item.key, failure_note(session, v))


def failure_note(session: Session, v: ItemView) -> str:
    from typing import BinaryIO, cast

    from outlive.gotchas import explain_stream
    from outlive.lifecycle.runs import RemoteLog

    code = v.status.exit_code if v.status else None
    head = f"failed {v.failures} times (exit {code})"
    try:
        log = RemoteLog(session, v.run_id or "")
        matches = explain_stream(cast(BinaryIO, log), platform=log.target.profile)
    except (OutliveError, ConfigError, OSError) as exc:
        return f"{head}; its log could not be read for a diagnosis ({exc})"
    if not matches:
        return f"{head}; explain: no known gotcha matched its log"
    first = matches[0]
    return f"{head}; explain: {first.id} {first.title} (line {first.line})"
