"""When to checkpoint: the Young/Daly optimum from the measured persist time and the target's MTBF.

Daly's higher-order estimate of the optimal interval between checkpoints (J. T. Daly, "A higher
order estimate of the optimum checkpoint interval for restart dumps", FGCS 22, 2006), for a
checkpoint that costs C seconds on a machine interrupted every M seconds on average::

    tau = sqrt(2 C M) * (1 + sqrt(C / 2M) / 3 + (C / 2M) / 9) - C     for C < 2M
    tau = M                                                          otherwise

Young's first-order sqrt(2 C M) is its leading term. C is re-measured on every persist, so the
interval follows the disk; M comes from $OUTLIVE_MTBF_S (set by outlive from the target's profile
and spot flag) or the caller. Explicit ``every_steps`` / ``every_s`` replace the formula.
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable

from outlive import wire

__all__ = ["DEFAULT_MTBF_S", "MTBF_ENV", "Cadence", "daly_interval_s", "mtbf_from_env"]

MTBF_ENV = wire.ENV_MTBF_S
# Nothing known about the machine: assume an interruption a day (a spot profile sets far less).
DEFAULT_MTBF_S = 24 * 3600.0
# Weight of the newest measurement in the running means (persist time, step time).
_EMA_WEIGHT = 0.3


def daly_interval_s(cost_s: float, mtbf_s: float) -> float:
    """Daly's optimal compute time between checkpoints for checkpoint cost C and MTBF M."""
    if not (cost_s >= 0 and mtbf_s > 0) or math.isinf(cost_s):
        raise ValueError(f"need cost_s >= 0 and mtbf_s > 0, got {cost_s!r} and {mtbf_s!r}")
    if cost_s >= 2 * mtbf_s:
        return mtbf_s
    ratio = cost_s / (2 * mtbf_s)
    return math.sqrt(2 * cost_s * mtbf_s) * (1 + math.sqrt(ratio) / 3 + ratio / 9) - cost_s


def mtbf_from_env(default: float | None = DEFAULT_MTBF_S) -> float | None:
    """$OUTLIVE_MTBF_S as seconds, or ``default`` when unset or not a positive number."""
    raw = os.environ.get(MTBF_ENV, "").strip()
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value > 0 and math.isfinite(value) else default


def _ema(old: float | None, new: float) -> float:
    return new if old is None else (1 - _EMA_WEIGHT) * old + _EMA_WEIGHT * new


class Cadence:
    """Decides ``due(step)``: every N steps, every T seconds, or Daly's interval (the default)."""

    def __init__(
        self,
        *,
        every_steps: int | None = None,
        every_s: float | None = None,
        mtbf_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every_steps is not None and (isinstance(every_steps, bool) or every_steps < 1):
            raise ValueError(f"every_steps must be None or at least 1, got {every_steps!r}")
        if every_s is not None and not every_s > 0:
            raise ValueError(f"every_s must be None or positive, got {every_s!r}")
        if mtbf_s is not None and not mtbf_s > 0:
            raise ValueError(f"mtbf_s must be None or positive, got {mtbf_s!r}")
        self.every_steps = every_steps
        self.every_s = every_s
        self.mtbf_s = mtbf_s if mtbf_s is not None else mtbf_from_env()
        self._clock = clock
        self.persist_s: float | None = None  # running mean of the measured persist time, C
        self.step_s: float | None = None  # running mean of the time per training step
        self._last_seen: tuple[int, float] | None = None
        self._last_save: tuple[int, float] | None = None
        self._saved_here = False
        self._created_at = clock()

    @property
    def auto(self) -> bool:
        """True when the interval comes from Daly's formula (no explicit every_steps/every_s)."""
        return self.every_steps is None and self.every_s is None

    def record_persist(self, seconds: float) -> None:
        """A persist took ``seconds``: re-tune the interval."""
        self.persist_s = _ema(self.persist_s, max(0.0, seconds))

    def record_save(self, step: int, *, resumed: bool = False) -> None:
        """A save of ``step`` was taken now; ``resumed``: it was found on disk at start instead."""
        self._last_save = (step, self._clock())
        if not resumed:
            self._saved_here = True

    def interval_s(self) -> float | None:
        """Daly's interval in seconds, at least one persist long; None until C is measured."""
        if self.persist_s is None or self.mtbf_s is None:
            return None
        # One persist in flight at a time: saving more often than C would only stall the loop.
        return max(daly_interval_s(self.persist_s, self.mtbf_s), self.persist_s)

    def interval_steps(self) -> int | None:
        """Daly's interval rounded down to whole steps (at least 1); None until measured."""
        interval = self.interval_s()
        if interval is None or self.step_s is None:
            return None
        if self.step_s <= 0:
            return 1
        return max(1, int(interval // self.step_s))

    def _observe(self, step: int, now: float) -> None:
        last = self._last_seen
        if last is not None and step > last[0] and now >= last[1]:
            self.step_s = _ema(self.step_s, (now - last[1]) / (step - last[0]))
        if last is None or step != last[0]:
            self._last_seen = (step, now)

    def due(self, step: int) -> bool:
        """Whether ``step`` (just completed) should be checkpointed."""
        now = self._clock()
        self._observe(step, now)
        last = self._last_save
        if last is not None and step <= last[0]:
            return False  # saved already (or resumed from it)
        if not self.auto:
            if self.every_steps is not None and step % self.every_steps == 0:
                return True
            since = now - (last[1] if last is not None else self._created_at)
            return self.every_s is not None and since >= self.every_s
        steps = self.interval_steps()
        if steps is None:
            # C is unknown in this process: one early save measures it (and proves the disk).
            return self.persist_s is None and not self._saved_here
        return last is None or step - last[0] >= steps
