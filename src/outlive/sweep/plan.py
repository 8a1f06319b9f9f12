"""What each item of a sweep is, and where the next launches go: pure functions of the registry's
runs and the latest look, so the scheduler's decisions can be read and tested on their own.

An item is *done* once any run of its name succeeded, and has a live run while its newest run is
pending or running -- also while that run's target does not answer: unreachable is never dead
(GEN8, U3). Only a run known to have ended (vanished, failed, cancelled by a move) frees the item
for another launch, so no item ever has two live runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from outlive.run_status import RunStatus
from outlive.store import LIVE_STATES, RunRecord
from outlive.sweep.registry import ItemRow


class ItemState(str, Enum):
    """An item's state in its sweep (its newest run's own state is in ``status``)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (ItemState.DONE, ItemState.FAILED, ItemState.CANCELLED)


@dataclass(frozen=True)
class ItemView:
    item: ItemRow
    state: ItemState
    target: str | None = None  # where its newest run is (or was)
    run_id: str | None = None
    status: RunStatus | None = None  # the newest run's latest look
    restarts: int = 0  # runs that vanished (reboot, preemption, kill) or were moved
    failures: int = 0  # runs that failed by their own code
    prefer: str | None = None  # a relaunch goes back here when it answers (its checkpoint)
    pinned: bool = False  # ... and only there (a launch that may still arrive: the box's lock)
    unreachable: bool = False

    @property
    def progress(self) -> Mapping[str, object]:
        return (self.status.progress if self.status else None) or {}


def view(
    item: ItemRow,
    runs: Sequence[RunRecord],
    looks: Mapping[str, RunStatus],
    retries: int,
    moved: Mapping[str, str],
    abandoned: frozenset[str] = frozenset(),
) -> ItemView:
    """The item as its runs (oldest first) and the latest look show it. ``abandoned``: journaled
    launches the box still does not have long after they were sent (their client was killed
    before sending): such an item is launched again on the same target only, where the box's
    name lock lets one of the two launches win should the old request still arrive."""
    if not runs:
        return ItemView(item, ItemState.QUEUED)
    states = [r.state for r in runs]
    failures = states.count("failed")
    restarts = states.count("vanished") + sum(1 for r in runs if r.run_id in moved)
    latest = runs[-1]
    look = looks.get(latest.run_id) or latest.status
    base = ItemView(
        item,
        ItemState.QUEUED,
        target=latest.target,
        run_id=latest.run_id,
        status=look,
        restarts=restarts,
        failures=failures,
    )
    won = [r for r in runs if r.state == "succeeded"]
    if won:
        last = won[-1]
        return replace(
            base, state=ItemState.DONE, target=last.target, run_id=last.run_id, status=last.status
        )
    if latest.journaled and latest.run_id in abandoned:
        return replace(base, prefer=latest.target, pinned=True)
    if latest.journaled or latest.state in LIVE_STATES:
        return replace(base, state=ItemState.RUNNING, unreachable=bool(look and look.stale))
    if latest.state == "cancelled":
        if latest.run_id in moved:
            return replace(base, prefer=moved[latest.run_id])
        return replace(base, state=ItemState.CANCELLED)
    if latest.state == "failed" and failures > retries:
        return replace(base, state=ItemState.FAILED)
    return replace(base, prefer=latest.target)


def place(
    views: Sequence[ItemView],
    slots: Mapping[str, int],
    down: set[str],
) -> list[tuple[ItemView, str]]:
    """Launches for this pass: relaunches first (back to their own target when it answers and
    has room, else to another with room), then new items in file order, each to the answering
    target with the most free slots (ties: the order of ``-t``)."""
    free = dict(slots)
    for v in views:
        if v.state is ItemState.RUNNING and v.target in free:
            free[v.target] -= 1
    queued = [v for v in views if v.state is ItemState.QUEUED]
    queued.sort(key=lambda v: (v.prefer is None, v.item.position))
    out: list[tuple[ItemView, str]] = []
    for v in queued:
        if v.prefer in free and v.prefer not in down:
            if free[v.prefer] > 0:
                free[v.prefer] -= 1
                out.append((v, v.prefer))
            continue  # it waits for its own target, where its checkpoint is
        if v.pinned:
            continue
        room = [t for t in slots if t not in down and free[t] > 0]
        if not room:
            continue
        best = max(room, key=lambda t: (free[t], -list(slots).index(t)))
        free[best] -= 1
        out.append((v, best))
    return out


def summary(views: Sequence[ItemView]) -> dict[str, int]:
    counts = {s.value: 0 for s in ItemState}
    for v in views:
        counts[v.state.value] += 1
    return counts
