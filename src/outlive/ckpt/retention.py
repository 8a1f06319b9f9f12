"""Which checkpoints survive pruning: the newest ``keep_last`` and the best ``keep_best`` by metric.

Pruning runs only after a new checkpoint is committed, and the one just committed always stays
(a resume from before a corrupt newest one saves an older step, which must not prune itself).
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List

__all__ = ["BEST_MODES", "to_prune"]

BEST_MODES = ("min", "max")


def _rank_key(metric: float, mode: str) -> float:
    return metric if mode == "min" else -metric


def to_prune(
    steps: Iterable[int],
    metrics: Dict[int, float | None],
    *,
    keep_last: int | None,
    keep_best: int | None = None,
    best_mode: str = "min",
    just_committed: int,
) -> List[int]:
    """The steps to delete, ascending; ``metrics`` maps a step to its metric (None: no metric)."""
    if keep_last is None:
        return []
    all_steps = sorted(set(steps))
    others = sorted((s for s in all_steps if s != just_committed), reverse=True)
    keep = {just_committed, *others[: keep_last - 1]}
    if keep_best:
        ranked = sorted(
            (s for s in all_steps if _finite(metrics.get(s))),
            key=lambda s: (_rank_key(metrics[s], best_mode), -s),  # type: ignore[arg-type]
        )
        keep.update(ranked[:keep_best])
    return [s for s in all_steps if s not in keep]


def _finite(metric: float | None) -> bool:
    return metric is not None and math.isfinite(metric)
