"""Full training state without torch: RNGs, duck-typed stateful objects, the resumable sampler."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outlive import Checkpointer
from outlive.ckpt import (
    ResumableSampler,
    Resumed,
    capture_rng,
    capture_training_state,
    restore_rng,
    restore_training_state,
)


def test_rng_states_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    ckpt = Checkpointer(tmp_path, handle_signals=False)
    ckpt.save(capture_rng(), step=1)
    expected = (random.random(), np.random.rand())

    random.seed(99)
    np.random.seed(99)
    restored = ckpt.load_latest()
    assert restored is not None and set(restored.state) >= {"python", "numpy"}
    restore_rng(restored.state)
    assert (random.random(), np.random.rand()) == expected


class Counter:
    """Anything with state_dict / load_state_dict, like an optimizer or a scheduler."""

    def __init__(self) -> None:
        self.n = 0

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n = state["n"]


def test_training_state_captures_and_restores_every_given_object(tmp_path: Path) -> None:
    model, optimizer, scheduler, scaler, ema = (Counter() for _ in range(5))
    for i, obj in enumerate((model, optimizer, scheduler, scaler, ema)):
        obj.n = i + 10
    sampler = ResumableSampler(100, seed=3)
    sampler.set_epoch(2)
    consumed = [next(iter(sampler)) for _ in range(1)]
    ckpt = Checkpointer(tmp_path, handle_signals=False)
    state = capture_training_state(
        step=70,
        epoch=2,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        ema=ema,
        sampler=sampler,
        extra={"best": 0.5},
    )
    ckpt.save(state, step=70)
    restored = ckpt.load_latest()
    assert restored is not None

    fresh = [Counter() for _ in range(5)]
    fresh_sampler = ResumableSampler(100, seed=3)
    resumed = restore_training_state(
        restored.state,
        model=fresh[0],
        optimizer=fresh[1],
        scheduler=fresh[2],
        scaler=fresh[3],
        ema=fresh[4],
        sampler=fresh_sampler,
    )
    assert resumed == Resumed(step=70, epoch=2, extra={"best": 0.5})
    assert [c.n for c in fresh] == [10, 11, 12, 13, 14]
    assert (fresh_sampler.epoch, fresh_sampler.position) == (2, 1)
    assert consumed == sampler.order(2)[:1]


def test_an_object_whose_state_was_not_saved_is_an_error_not_a_silent_restart() -> None:
    state = capture_training_state(step=5, model=Counter(), rng=False)
    with pytest.raises(KeyError, match="scaler"):
        restore_training_state(state, model=Counter(), scaler=Counter())


def test_sampler_order_is_fixed_per_seed_and_epoch() -> None:
    a, b = ResumableSampler(50, seed=7), ResumableSampler(50, seed=7)
    assert a.order(0) == b.order(0) and sorted(a.order(0)) == list(range(50))
    assert a.order(0) != a.order(1) and a.order(0) != ResumableSampler(50, seed=8).order(0)
    assert ResumableSampler(5, shuffle=False).order(3) == [0, 1, 2, 3, 4]


def test_sampler_resumes_mid_epoch_exactly_where_it_stopped() -> None:
    uninterrupted = ResumableSampler(20, seed=1)
    seen: list[int] = []
    for epoch in range(2):
        uninterrupted.set_epoch(epoch)
        seen.extend(uninterrupted)

    first = ResumableSampler(20, seed=1)
    first.set_epoch(0)
    it = iter(first)
    before = [next(it) for _ in range(20 + 0)]  # the whole of epoch 0 ...
    first.set_epoch(1)
    it = iter(first)
    before += [next(it) for _ in range(7)]  # ... and 7 of epoch 1, then the job is killed
    saved = first.state_dict()

    second = ResumableSampler(20, seed=1)
    second.load_state_dict(saved)
    second.set_epoch(1)  # the loop re-enters the epoch it was in: no restart
    assert before + list(second) == seen


def test_sampler_saved_at_the_end_of_an_epoch_moves_on_to_the_next() -> None:
    sampler = ResumableSampler(10, seed=2)
    sampler.set_epoch(4)
    list(sampler)
    resumed = ResumableSampler(10, seed=2)
    resumed.load_state_dict(sampler.state_dict())
    resumed.set_epoch(4)
    assert list(resumed) == []
    resumed.set_epoch(5)
    assert list(resumed) == sampler.order(5)


def test_sampler_state_for_another_dataset_is_refused() -> None:
    state = ResumableSampler(10, seed=2).state_dict(position=4)
    assert state["position"] == 4
    with pytest.raises(ValueError, match="reshuffle"):
        ResumableSampler(11, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="reshuffle"):
        ResumableSampler(10, seed=3).load_state_dict(state)
