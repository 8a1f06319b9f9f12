"""due(): Daly's interval from the measured persist time and the MTBF, in whole steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from outlive import Checkpointer
from outlive.ckpt import MTBF_ENV, daly_interval_s
from outlive.ckpt.cadence import DEFAULT_MTBF_S, Cadence, mtbf_from_env


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_daly_matches_the_higher_order_formula() -> None:
    cost, mtbf = 30.0, 3600.0
    ratio = cost / (2 * mtbf)
    expected = math.sqrt(2 * cost * mtbf) * (1 + math.sqrt(ratio) / 3 + ratio / 9) - cost
    assert daly_interval_s(cost, mtbf) == pytest.approx(expected)
    assert daly_interval_s(cost, mtbf) == pytest.approx(444.97, abs=0.01)
    # Young's sqrt(2CM) is the leading term: close for a cheap checkpoint.
    assert daly_interval_s(1.0, 86400.0) == pytest.approx(math.sqrt(2 * 86400.0), rel=0.01)


def test_daly_is_the_mtbf_once_a_checkpoint_costs_two_mtbfs() -> None:
    assert daly_interval_s(200.0, 100.0) == 100.0
    assert daly_interval_s(0.0, 100.0) == 0.0


@pytest.mark.parametrize("cost, mtbf", [(-1.0, 10.0), (1.0, 0.0), (math.inf, 10.0)])
def test_daly_rejects_nonsense(cost: float, mtbf: float) -> None:
    with pytest.raises(ValueError):
        daly_interval_s(cost, mtbf)


def test_mtbf_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MTBF_ENV, "1800")
    assert mtbf_from_env() == 1800.0 and Cadence().mtbf_s == 1800.0
    for bad in ("", "soon", "-5", "nan", "inf"):
        monkeypatch.setenv(MTBF_ENV, bad)
        assert mtbf_from_env() == DEFAULT_MTBF_S
    assert Cadence(mtbf_s=60.0).mtbf_s == 60.0  # the caller's value wins


def _run(cadence: Cadence, clock: FakeClock, steps: range, step_s: float) -> list[int]:
    due = []
    for step in steps:
        clock.now += step_s
        if cadence.due(step):
            due.append(step)
            cadence.record_save(step)
    return due


def test_auto_cadence_saves_once_to_measure_then_every_daly_interval_in_whole_steps() -> None:
    clock = FakeClock()
    cadence = Cadence(mtbf_s=3600.0, clock=clock)
    assert _run(cadence, clock, range(1, 3), 0.5) == [1]  # C unknown: save early to measure it
    assert _run(cadence, clock, range(3, 10), 0.5) == []  # measuring: no second save meanwhile
    cadence.record_persist(2.0)
    steps = cadence.interval_steps()
    assert steps is not None and abs(steps - daly_interval_s(2.0, 3600.0) / 0.5) < 1
    due = _run(cadence, clock, range(10, 1 + 3 * steps), 0.5)
    assert due == [1 + steps, 1 + 2 * steps]


def test_auto_cadence_retunes_when_the_persist_time_changes() -> None:
    clock = FakeClock()
    cadence = Cadence(mtbf_s=3600.0, clock=clock)
    _run(cadence, clock, range(1, 3), 1.0)
    cadence.record_persist(1.0)
    before = cadence.interval_steps()
    for _ in range(20):
        cadence.record_persist(16.0)  # the disk got slower: checkpoints cost more, save less often
    after = cadence.interval_steps()
    assert before is not None and after is not None and after > before
    assert abs(after - daly_interval_s(cadence.persist_s or 0, 3600.0) / 1.0) < 1


def test_interval_never_drops_below_one_persist() -> None:
    clock = FakeClock()
    cadence = Cadence(mtbf_s=10.0, clock=clock)
    _run(cadence, clock, range(1, 3), 0.125)
    cadence.record_persist(15.0)  # C close to 2M: Daly's tau is shorter than C itself
    assert daly_interval_s(15.0, 10.0) < 15.0
    assert cadence.interval_s() == 15.0 and cadence.interval_steps() == 120


def test_every_steps_and_every_s_replace_the_formula() -> None:
    clock = FakeClock()
    by_steps = Cadence(every_steps=25, clock=clock)
    assert _run(by_steps, clock, range(1, 101), 0.1) == [25, 50, 75, 100]

    clock = FakeClock()
    by_time = Cadence(every_s=1.0, clock=clock)
    assert _run(by_time, clock, range(1, 31), 0.25) == [4, 8, 12, 16, 20, 24, 28]


@pytest.mark.parametrize(
    "kwargs", [{"every_steps": 0}, {"every_steps": True}, {"every_s": 0}, {"mtbf_s": -1}]
)
def test_cadence_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Cadence(**kwargs)  # type: ignore[arg-type]


def test_a_resumed_step_is_not_saved_again_and_the_checkpointer_measures_c(
    tmp_path: Path,
) -> None:
    first = Checkpointer(tmp_path, handle_signals=False, every_steps=5)
    for step in range(1, 11):
        if first.due(step):
            first.save({"step": step}, step=step)
    first.close()
    assert first.steps() == [5, 10] and first.cadence.persist_s is not None

    again = Checkpointer(tmp_path, handle_signals=False, every_steps=5)
    restored = again.load_latest()
    assert restored is not None and restored.step == 10
    assert not again.due(10)  # the step it resumed from is on disk already
    assert [s for s in range(11, 16) if again.due(s)] == [15]
