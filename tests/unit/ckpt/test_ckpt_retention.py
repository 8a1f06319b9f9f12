"""Retention: the newest keep_last plus the best keep_best by metric, pruned only after commit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from outlive import Checkpointer
from outlive.ckpt.retention import to_prune


def test_to_prune_keeps_newest_and_best_and_the_one_just_committed() -> None:
    metrics = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.7, 5: None, 6: 0.8}
    assert to_prune(metrics, metrics, keep_last=2, just_committed=6) == [1, 2, 3, 4]
    assert to_prune(metrics, metrics, keep_last=2, keep_best=1, just_committed=6) == [1, 3, 4]
    assert to_prune(
        metrics, metrics, keep_last=1, keep_best=2, best_mode="max", just_committed=6
    ) == [2, 3, 4, 5]
    assert to_prune(metrics, metrics, keep_last=None, keep_best=1, just_committed=6) == []
    assert to_prune(metrics, metrics, keep_last=1, just_committed=3) == [1, 2, 4, 5, 6]


def test_keep_best_keeps_the_lowest_loss_on_disk(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path, handle_signals=False, keep_last=2, keep_best=1)
    losses = {1: 0.9, 2: 0.3, 3: 0.5, 4: 0.6, 5: float("nan"), 6: 0.4}
    for step, loss in losses.items():
        ckpt.save({"step": step}, step=step, metric=np.float32(loss))
    assert ckpt.steps() == [2, 5, 6]
    best = ckpt.load_best()
    assert best is not None and best.step == 2 and best.state == {"step": 2}


def test_best_mode_max_and_no_metric_at_all(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path, handle_signals=False, keep_last=1, keep_best=1, best_mode="max")
    for step, acc in ((1, 0.2), (2, 0.8), (3, 0.5)):
        ckpt.save(step, step=step, metric=acc)
    assert ckpt.steps() == [2, 3]
    best = ckpt.load_best()
    assert best is not None and best.step == 2
    assert Checkpointer(tmp_path / "none", handle_signals=False).load_best() is None


@pytest.mark.parametrize("kwargs", [{"keep_best": 0}, {"keep_best": True}, {"best_mode": "median"}])
def test_retention_settings_are_checked(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Checkpointer(tmp_path, handle_signals=False, **kwargs)  # type: ignore[arg-type]


def test_a_metric_must_be_a_number(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="metric"):
        Checkpointer(tmp_path, handle_signals=False).save(1, step=1, metric="low")  # type: ignore[arg-type]
