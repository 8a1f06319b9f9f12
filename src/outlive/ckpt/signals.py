"""Preemption notice: SIGTERM / SIGUSR1 / SIGUSR2 set a flag that the training loop polls.

The handler only records the signal. Saving inside a handler can interrupt a save already in
progress or deadlock on a lock the interrupted code holds (SLURM1; Lightning #21406), so the loop
saves at its own safe point and exits with REQUEUE_EXIT_CODE.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Dict

__all__ = ["PREEMPTION_SIGNALS", "PreemptionFlag"]

_log = logging.getLogger("outlive.ckpt")

# Slurm (--signal), Kubernetes and spot reclaimers send TERM; Slurm users often pick USR1/USR2.
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)

if TYPE_CHECKING:  # a runtime alias with `X | None` would not run on Python 3.8
    from typing import Callable, Union

    _Handler = Union[Callable[[int, FrameType | None], object], int, signal.Handlers, None]


class PreemptionFlag:
    """A per-instance flag raised by preemption signals; remembers and restores prior handlers."""

    def __init__(self) -> None:
        self._signum: int | None = None
        self._received_at: float | None = None
        self._previous: Dict[int, _Handler] = {}

    @property
    def is_set(self) -> bool:
        """True once a preemption signal has arrived."""
        return self._signum is not None

    @property
    def signum(self) -> int | None:
        """The first preemption signal received, or None."""
        return self._signum

    @property
    def received_at(self) -> float | None:
        """``time.monotonic()`` when the first preemption signal arrived, or None."""
        return self._received_at

    def set(self, signum: int) -> None:
        """Raise the flag as if ``signum`` had arrived."""
        if self._signum is None:
            self._received_at = time.monotonic()  # the grace window runs from here
            self._signum = signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Flag (and the clock) only: no I/O, no logging, no saving here (SLURM1).
        self.set(signum)

    def install(self) -> bool:
        """Install the handlers if this is the main thread; returns whether they were installed."""
        if threading.current_thread() is not threading.main_thread():
            _log.info("preemption signals not handled: Checkpointer built outside the main thread")
            return False
        for signum in PREEMPTION_SIGNALS:
            if signum in self._previous:
                continue
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def restore(self) -> None:
        """Put back the handlers that were there before install(), where ours is still current."""
        if not self._previous:
            return
        if threading.current_thread() is not threading.main_thread():
            _log.info("preemption handlers left in place: close() called outside the main thread")
            return
        for signum, previous in list(self._previous.items()):
            # Someone installed a handler after us: theirs stays, ours is simply forgotten.
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            del self._previous[signum]
