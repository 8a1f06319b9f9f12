"""When a pull hashes what has landed: beside the transfer while a CPU core is spare, after it
where the transfer keeps the cores busy.

Hashing a file as soon as rsync has put it in place hides the hashing behind a slow link (the
usual case: a box across the internet). Where the link is fast and this machine's cores are busy
with the transfer itself (ssh's cipher, rsync's receiver), a hash running beside it slows the
transfer by more than the hash costs afterwards: measured on the 2-core testbed, 128 MiB, 20
interleaved rounds, the pull took 0.583 s hashing at once, 0.564 s with the hashing at idle
priority and 0.546 s with it after the transfer (docs/benchmarks.md, session 11).

So a hashing worker starts its next file only where the cores left idle over the last look, plus
what this process itself used (its hashing would free that), come to a whole core for each
worker then hashing, this one included; and at once when the transfer is over. Where the
machine's idle time cannot be read (not Linux), it hashes at once, as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

SPARE_CORES = 1.0  # a hashing worker takes a whole core: one per worker
LOOK_S = 0.05  # the shortest look at the machine's idle time: 10 ticks of 10 ms on 2 cores
STALE_LOOKS = 4  # a look older than this many LOOK_S says little about now: look again
_PROC_STAT = "/proc/stat"

Sample = tuple[float, int, float]  # (monotonic s, idle ticks of all cores, this process's CPU-s)


def idle_ticks() -> int | None:
    """Clock ticks all this machine's cores have spent idle (idle + iowait) since boot, or None
    where that cannot be read."""
    try:
        with open(_PROC_STAT, "rb") as f:
            first = f.readline().split()
    except OSError:
        return None
    if len(first) < 6 or first[0] != b"cpu":
        return None
    try:
        return int(first[4]) + int(first[5])
    except ValueError:
        return None


class SpareCpu:
    """A gate for the hashing workers beside one transfer. Each file is hashed inside
    ``with gate.turn():``, which waits for a spare core; ``over`` opens the gate for good:
    call it when the transfer ends, also on an error, or the workers keep waiting."""

    def __init__(
        self,
        spare_cores: float = SPARE_CORES,
        look_s: float = LOOK_S,
        ticks: Callable[[], int | None] = idle_ticks,
        own_cpu_s: Callable[[], float] = time.process_time,
        cpus: int | None = None,
    ) -> None:
        self.spare_cores = spare_cores
        self.look_s = look_s
        self._ticks = ticks
        self._own_cpu_s = own_cpu_s
        self._hz = float(os.sysconf("SC_CLK_TCK"))
        self._cpus = float(cpus if cpus is not None else os.cpu_count() or 1)
        self._over = threading.Event()
        self._lock = threading.Lock()
        self._hashing = 0
        self._last = self._sample()
        self._spare: float | None = None  # the latest look's answer
        self.held_s = 0.0  # how long workers waited, all together

    def over(self) -> None:
        self._over.set()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        started = time.monotonic()
        while not self._over.is_set():
            with self._lock:
                spare, next_look_s = self._look()
                if spare is None or spare >= self._need():
                    break
            self._over.wait(next_look_s)
        with self._lock:
            self._hashing += 1
            self.held_s += time.monotonic() - started
        try:
            yield
        finally:
            with self._lock:
                self._hashing -= 1

    def _need(self) -> float:
        """Spare cores the next worker waits for: one per worker then hashing, itself
        included; on a small machine never more than all cores but one (half of a single
        core), so a link-bound pull there still hashes beside its transfer."""
        return min((self._hashing + 1) * self.spare_cores, max(0.5, self._cpus - 1.0))

    def _sample(self) -> Sample | None:
        ticks = self._ticks()
        return None if ticks is None else (time.monotonic(), ticks, self._own_cpu_s())

    def _look(self) -> tuple[float | None, float]:
        """(cores idle or used by this process on average over the latest look, seconds until
        the next look); None: not known here. A look takes ``look_s`` at least, and its answer
        holds until the next one is due: workers asking meanwhile (many small files) are
        answered at once. Called with the lock held."""
        if self._last is None:
            return None, 0.0
        age_s = time.monotonic() - self._last[0]
        if age_s > STALE_LOOKS * self.look_s:  # says little about now: a new look begins
            self._last, self._spare, age_s = self._sample(), None, 0.0
            if self._last is None:
                return None, 0.0
        if age_s < self.look_s:
            return (0.0 if self._spare is None else self._spare), self.look_s - age_s
        now = self._sample()
        if now is None:
            return None, 0.0
        last, self._last = self._last, now
        idle_s = (now[1] - last[1]) / self._hz
        self._spare = (idle_s + now[2] - last[2]) / max(now[0] - last[0], 1e-6)
        return self._spare, self.look_s
