"""The scheduler's decisions as pure functions: what an item is from its runs, and where the next
launches go."""

from __future__ import annotations

from outlive.run_status import RunStatus
from outlive.store import RunRecord
from outlive.sweep.plan import ItemState, ItemView, place, view
from outlive.sweep.registry import ItemRow
from outlive.wire import State


def _item(n: int) -> ItemRow:
    return ItemRow("s", f"k{n}", f"s.k{n}", {"n": n}, ["run", str(n)], n, None)


def _run(n: int, run_id: str, target: str, state: str, at: float) -> RunRecord:
    return RunRecord(run_id, f"s.k{n}", target, ["run"], "/r", "/c", at, state=state)


def test_an_item_is_done_once_any_run_succeeded_and_live_while_its_newest_run_is() -> None:
    runs = [_run(1, "r1", "a", "vanished", 1.0), _run(1, "r2", "a", "succeeded", 2.0)]
    done = view(_item(1), runs, {}, retries=1, moved={})
    assert (done.state, done.run_id, done.restarts) == (ItemState.DONE, "r2", 1)
    live = view(_item(1), [_run(1, "r3", "b", "running", 1.0)], {}, retries=1, moved={})
    assert live.state is ItemState.RUNNING and not live.unreachable


def test_an_unreachable_run_is_never_taken_for_dead() -> None:
    stale = RunStatus(run_id="r1", name="s.k1", target="b", state=State.RUNNING, stale=True)
    v = view(_item(1), [_run(1, "r1", "b", "running", 1.0)], {"r1": stale}, retries=0, moved={})
    assert v.state is ItemState.RUNNING and v.unreachable
    assert place([v, ItemView(_item(2), ItemState.QUEUED)], {"b": 1}, {"b"}) == []


def test_failures_are_retried_then_final_and_a_moved_run_goes_to_its_new_target() -> None:
    once = [_run(1, "r1", "a", "failed", 1.0)]
    assert view(_item(1), once, {}, retries=1, moved={}).prefer == "a"
    twice = [*once, _run(1, "r2", "a", "failed", 2.0)]
    assert view(_item(1), twice, {}, retries=1, moved={}).state is ItemState.FAILED
    cancelled = [_run(1, "r1", "a", "cancelled", 1.0)]
    assert view(_item(1), cancelled, {}, retries=1, moved={}).state is ItemState.CANCELLED
    moved = view(_item(1), cancelled, {}, retries=1, moved={"r1": "b"})
    assert (moved.state, moved.prefer, moved.restarts) == (ItemState.QUEUED, "b", 1)


def test_relaunches_go_first_back_to_their_target_else_anywhere_with_room() -> None:
    vanished = ItemView(_item(5), ItemState.QUEUED, target="a", run_id="r", prefer="a")
    new = [ItemView(_item(n), ItemState.QUEUED) for n in range(3)]
    running_b = ItemView(_item(9), ItemState.RUNNING, target="b")
    plan = place([*new, vanished, running_b], {"a": 2, "b": 2}, set())
    assert [(v.item.key, t) for v, t in plan] == [("k5", "a"), ("k0", "a"), ("k1", "b")]
    # its own target full: it waits there (its checkpoint is there), new items still go
    full = place([vanished, *new[:1]], {"a": 0, "b": 1}, set())
    assert [(v.item.key, t) for v, t in full] == [("k0", "b")]
    # its own target does not answer: another with room
    away = place([vanished], {"a": 2, "b": 1}, {"a"})
    assert [(v.item.key, t) for v, t in away] == [("k5", "b")]


def test_an_abandoned_launch_is_launched_again_on_its_own_target_only() -> None:
    journaled = RunRecord("r1", "s.k1", "a", ["run"], "/r", "/c", 1.0, journaled=True)
    waiting = view(_item(1), [journaled], {}, retries=0, moved={})
    assert waiting.state is ItemState.RUNNING  # sent a moment ago: it may still arrive
    again = view(_item(1), [journaled], {}, retries=0, moved={}, abandoned=frozenset({"r1"}))
    assert (again.state, again.prefer, again.pinned, again.restarts) == (
        ItemState.QUEUED,
        "a",
        True,
        0,
    )
    assert place([again], {"a": 1, "b": 1}, {"a"}) == []  # never elsewhere: a's lock decides
    assert [t for _, t in place([again], {"a": 1, "b": 1}, set())] == ["a"]
