"""``Checkpointer``: save the training state durably, load the newest one that verifies.

Resume is the invariant: a job that calls ``load_latest()`` on start and ``save()`` at safe points
converges to the same end state however often it is killed (SIGKILL, OOM, reboot, preemption).

Saves are two-phase (CheckFreq) by default: ``save()`` blocks only while it takes a consistent
snapshot (the state's skeleton pickled, every array and tensor copied once into CPU memory), and a
background thread persists it (tmp, fsync, rename, fsync the directory). At most one persist is in
flight; the next ``save()`` waits for it. Process exit, ``close()`` and ``flush()`` wait too, so a
``save()`` followed by exit leaves the checkpoint durable; a failed persist raises on the next call.
``sync=True`` (per Checkpointer or per save) returns only once the file is committed.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, List, NoReturn, Type

from outlive import wire
from outlive.ckpt import codec, fmt
from outlive.ckpt.async_io import Persister
from outlive.ckpt.cadence import Cadence
from outlive.ckpt.directory import (
    committed_steps,
    ensure_directory,
    metrics_of,
    prune,
    remove_stale_tmp,
    writing,
)
from outlive.ckpt.durable import check_free_space, commit_file
from outlive.ckpt.reader import CorruptCheckpoint, Restored, read_file, verify_path
from outlive.ckpt.retention import BEST_MODES
from outlive.ckpt.signals import PreemptionFlag
from outlive.errors import CheckpointError

__all__ = [
    "CKPT_DIR_ENV",
    "DEFAULT_DIRECTORY",
    "GRACE_ENV",
    "REQUEUE_EXIT_CODE",
    "Checkpointer",
    "Restored",
    "SaveStats",
]

CKPT_DIR_ENV = wire.ENV_CKPT_DIR
GRACE_ENV = wire.ENV_SPOT_GRACE_S
DEFAULT_DIRECTORY = "checkpoints"
# EX_TEMPFAIL from sysexits.h: "I saved at a safe point; run me again".
REQUEUE_EXIT_CODE = wire.REQUEUE_EXIT
# An emergency save is attempted only if its estimated time, times this, fits the grace left.
_GRACE_SAFETY = 1.25

_log = logging.getLogger("outlive.ckpt")


@dataclass(frozen=True)
class SaveStats:
    """What the last save cost: the loop's stall and the background persist (None while running)."""

    step: int
    size_bytes: int
    stall_s: float
    persist_s: float | None = None


def _check_step(step: int) -> int:
    if isinstance(step, bool):
        raise TypeError("step must be an int, not a bool")
    value = operator.index(step)  # numpy integers are fine, floats are not
    if value < 0 or value > fmt.MAX_STEP:
        raise ValueError(f"step must be an int between 0 and {fmt.MAX_STEP}, got {step!r}")
    return value


def _check_metric(metric: object) -> float | None:
    if metric is None:
        return None
    try:
        value = float(metric)  # type: ignore[arg-type]  # numpy / torch scalars too
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metric must be a number or None, got {metric!r}") from exc
    return value if math.isfinite(value) else None  # a NaN loss is never "best"


def _grace_from_env() -> float | None:
    raw = os.environ.get(GRACE_ENV, "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 and math.isfinite(value) else None


class Checkpointer:
    """Durable checkpoints in one directory, with preemption signals turned into a flag.

    Use as ``with Checkpointer() as ckpt:`` (or call ``close()``) to wait for the last persist,
    raise its error if it failed, and restore the signal handlers. Process exit waits for the
    last persist too, so async saves (the default; ``sync=True`` to block) are never cut short.

    directory      $OUTLIVE_CKPT_DIR, else ./checkpoints
    keep_last      newest checkpoints kept (None: all); ``keep_best`` more by ``metric``,
                   lowest first (``best_mode="max"``: highest)
    every_steps    ``due()`` every N steps, or ``every_s`` seconds; neither: Daly's interval
                   from the measured persist time and ``mtbf_s`` ($OUTLIVE_MTBF_S)
    grace_s        seconds from the preemption signal to SIGKILL ($OUTLIVE_SPOT_GRACE_S), for
                   ``emergency_save``
    reuse_buffers  keep the last snapshot's CPU memory for the next one (no page faults, and
                   pinned memory for CUDA tensors), at the cost of holding one copy of the state
    digest         the files' integrity check: "crc32" (the default: catches torn writes and
                   flipped bits at ~8x SHA-256's speed) or "sha256"; loading reads either
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        keep_last: int | None = 3,
        keep_best: int | None = None,
        best_mode: str = "min",
        handle_signals: bool = True,
        sync: bool = False,
        every_steps: int | None = None,
        every_s: float | None = None,
        mtbf_s: float | None = None,
        grace_s: float | None = None,
        reuse_buffers: bool = True,
        digest: str = fmt.DEFAULT_DIGEST,
    ) -> None:
        if keep_last is not None and (isinstance(keep_last, bool) or keep_last < 1):
            raise ValueError(f"keep_last must be None (keep all) or at least 1, got {keep_last!r}")
        if keep_best is not None and (isinstance(keep_best, bool) or keep_best < 1):
            raise ValueError(f"keep_best must be None or at least 1, got {keep_best!r}")
        if best_mode not in BEST_MODES:
            raise ValueError(f"best_mode must be one of {BEST_MODES}, got {best_mode!r}")
        if grace_s is not None and not grace_s >= 0:
            raise ValueError(f"grace_s must be None or >= 0, got {grace_s!r}")
        self._digest = fmt.check_digest_name(digest)
        if directory is None:
            directory = os.environ.get(CKPT_DIR_ENV) or DEFAULT_DIRECTORY
        self._directory = Path(directory).expanduser().absolute()
        self._keep_last = keep_last
        self._keep_best = keep_best
        self._best_mode = best_mode
        self._sync = bool(sync)
        self._grace_s = grace_s if grace_s is not None else _grace_from_env()
        self._cadence = Cadence(every_steps=every_steps, every_s=every_s, mtbf_s=mtbf_s)
        self._lock = threading.Lock()
        self._persister = Persister()
        self._pool = codec.BufferPool() if reuse_buffers else None
        self._in_flight: codec.Snapshot | None = None
        self._persist_started = 0.0
        self._last: SaveStats | None = None
        ensure_directory(self._directory)
        self._flag = PreemptionFlag()
        if handle_signals:
            self._flag.install()

    # -- public surface -------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The checkpoint directory (absolute)."""
        return self._directory

    @property
    def keep_last(self) -> int | None:
        """How many committed checkpoints survive pruning (None: all)."""
        return self._keep_last

    @property
    def keep_best(self) -> int | None:
        """How many of the best checkpoints by metric also survive pruning (None: no ranking)."""
        return self._keep_best

    @property
    def digest(self) -> str:
        """The integrity check written into new files: "crc32" or "sha256"."""
        return self._digest

    @property
    def sync(self) -> bool:
        """True when ``save()`` returns only once the checkpoint is committed."""
        return self._sync

    @property
    def cadence(self) -> Cadence:
        """The policy behind ``due()``: measured persist and step times, Daly's interval."""
        return self._cadence

    @property
    def grace_s(self) -> float | None:
        """Seconds between the preemption signal and SIGKILL ($OUTLIVE_SPOT_GRACE_S), if known."""
        return self._grace_s

    @property
    def last_save(self) -> SaveStats | None:
        """Stall and persist time of the most recent save of this Checkpointer."""
        return self._last

    @property
    def persisting(self) -> bool:
        """True while a save is being written in the background (a new save would wait)."""
        return self._persister.busy

    @property
    def preempted(self) -> bool:
        """True once SIGTERM, SIGUSR1 or SIGUSR2 arrived: save at the next safe point and exit."""
        return self._flag.is_set

    @property
    def preempt_signal(self) -> int | None:
        """The signal number that raised ``preempted``, or None."""
        return self._flag.signum

    @property
    def requeue_exit_code(self) -> int:
        """Exit status that means "saved, run me again" (75, EX_TEMPFAIL)."""
        return REQUEUE_EXIT_CODE

    def steps(self) -> List[int]:
        """Steps of the committed checkpoints on disk, ascending (after any save in flight)."""
        self.flush()
        return sorted(self._committed())

    def path_for(self, step: int) -> Path:
        """Where the checkpoint of ``step`` lives (whether or not it exists)."""
        return self._directory / fmt.checkpoint_name(_check_step(step))

    def due(self, step: int) -> bool:
        """Whether to save after ``step``: Daly's interval from the measured persist time and
        the MTBF, or ``every_steps`` / ``every_s``. Raises the error of a failed persist."""
        self._persister.check()
        return self._cadence.due(_check_step(step))

    def save(
        self, state: object, *, step: int, metric: float | None = None, sync: bool | None = None
    ) -> Path:
        """Snapshot ``state`` and commit it as the checkpoint of ``step``; returns its path.

        Async (the default): returns once the snapshot is taken; the file is committed in the
        background. Raises DiskFullError before copying anything when bytes or inodes are short,
        CheckpointError when the state cannot be pickled, and the error of the previous persist if
        it failed; the previous checkpoints are untouched and no tmp file remains in every case.
        ``metric`` ranks the checkpoint for ``keep_best``.
        """
        step = _check_step(step)
        metric_value = _check_metric(metric)
        blocking = self._sync if sync is None else bool(sync)
        with self._lock:
            started = time.perf_counter()
            self._wait_in_flight()
            plan = codec.plan(state)
            ensure_directory(self._directory)
            check_free_space(self._directory, fmt.HEADER_SIZE + plan.payload_len)
            if blocking:
                snapshot = plan.direct()
            else:
                snapshot = plan.snapshot(self._pool, pin_memory=self._pool is not None)
            stall_s = time.perf_counter() - started
            self._last = SaveStats(step, fmt.HEADER_SIZE + plan.payload_len, stall_s)
            self._cadence.record_save(step)
            if blocking:
                self._persist(snapshot, step, metric_value, pooled=False)
                self._last = SaveStats(step, self._last.size_bytes, stall_s, self._last.persist_s)
            else:
                self._in_flight = snapshot
                self._persist_started = time.monotonic()
                self._persister.submit(
                    lambda: self._persist(snapshot, step, metric_value, pooled=True),
                    f"saving checkpoint step {step} to {self._directory}",
                )
        return self.path_for(step)

    def emergency_save(
        self, state: object, *, step: int, metric: float | None = None
    ) -> Path | None:
        """After ``preempted``, at the loop's safe point: leave the newest checkpoint the grace
        window allows committed, and return its path (None if there is none).

        If a full save of ``state`` is estimated to fit in what is left of the grace
        ($OUTLIVE_SPOT_GRACE_S, counted from the signal), it is saved synchronously. Otherwise
        the last snapshot (still persisting, or already committed) is what survives: it is
        flushed and the newer state is not started, since a persist cut by SIGKILL leaves nothing.
        """
        step = _check_step(step)
        last = self._last
        if last is not None and last.step == step:
            self.flush()  # this very step is already snapshotted
            return self.path_for(step)
        remaining = self._grace_left_s()
        if remaining is not None:
            estimate = self._estimated_save_s()
            if remaining <= 0 or (estimate is not None and estimate * _GRACE_SAFETY > remaining):
                _log.warning(
                    "preempted with %.1f s of grace left, less than a save needs (%s): keeping "
                    "the last snapshot instead of step %d",
                    max(remaining, 0.0),
                    "unknown" if estimate is None else f"~{estimate:.1f} s",
                    step,
                )
                self.flush()
                committed = self._committed()
                return self._directory / fmt.checkpoint_name(max(committed)) if committed else None
        return self.save(state, step=step, metric=metric, sync=True)

    def exit_for_requeue(self) -> NoReturn:
        """Flush, restore the signal handlers and exit with ``requeue_exit_code`` (75)."""
        self.close()
        raise SystemExit(self.requeue_exit_code)

    def flush(self) -> None:
        """Wait until the save in flight is committed; raise its error if it failed."""
        with self._lock:
            self._wait_in_flight()

    def load(self, step: int) -> Restored:
        """Read and verify the checkpoint of ``step``; CheckpointError if missing or corrupt."""
        step = _check_step(step)
        self.flush()
        path = self.path_for(step)
        try:
            return read_file(path, expected_step=step)
        except FileNotFoundError as exc:
            raise CheckpointError(
                f"checkpoint {path} cannot be read (no such file); check that it exists."
            ) from exc
        except CorruptCheckpoint as exc:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: {exc}; use an older one from steps()."
            ) from exc
        except OSError as exc:
            raise CheckpointError(
                f"checkpoint {path} cannot be read ({exc.strerror or exc}); "
                "check that it exists and is readable."
            ) from exc

    def load_latest(self) -> Restored | None:
        """The newest checkpoint that verifies, or None when there is none.

        Torn or corrupt files are skipped with a logged warning; a verified file that cannot be
        unpickled (a class the code no longer has) raises, since older ones would fail alike.
        """
        self.flush()
        restored = self._first_that_verifies(sorted(self._committed(), reverse=True))
        if restored is not None:
            self._cadence.record_save(restored.step, resumed=True)
        return restored

    def load_best(self) -> Restored | None:
        """The checkpoint with the best metric (``best_mode``) that verifies, or None."""
        self.flush()
        sign = 1.0 if self._best_mode == "min" else -1.0
        ranked = [
            (sign * m, -s, s)
            for s, m in metrics_of(self._directory, self._committed()).items()
            if m is not None
        ]
        return self._first_that_verifies([s for _, _, s in sorted(ranked)])

    def latest_path(self) -> Path | None:
        """The newest checkpoint file whose check value verifies (not unpickled), or None."""
        self.flush()
        for step in sorted(self._committed(), reverse=True):
            path = self._directory / fmt.checkpoint_name(step)
            try:
                verify_path(path, expected_step=step)
            except FileNotFoundError:
                continue
            except (OSError, CheckpointError) as exc:
                _log.warning("skipping corrupt checkpoint %s: %s", path, exc)
                continue
            return path
        return None

    def close(self) -> None:
        """Wait for the save in flight (raising its error), then restore the signal handlers."""
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.clear()
            self._flag.restore()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(
        self,
        exc_type: Type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except CheckpointError as persist_error:  # do not mask the exception in flight
            _log.error("the last checkpoint save failed too: %s", persist_error)

    def __repr__(self) -> str:
        return f"Checkpointer({str(self._directory)!r}, keep_last={self._keep_last!r})"

    # -- internals ------------------------------------------------------------------------------

    def _wait_in_flight(self) -> None:
        """(With the lock held.) Wait for the persist in flight, recycle its buffers, raise."""
        try:
            self._persister.wait()
        finally:
            snapshot, self._in_flight = self._in_flight, None
            if snapshot is not None and self._pool is not None and not self._persister.busy:
                self._pool.give(snapshot)

    def _persist(
        self, snapshot: codec.Snapshot, step: int, metric: float | None, pooled: bool
    ) -> None:
        started = time.perf_counter()
        final_name = fmt.checkpoint_name(step)
        size = fmt.HEADER_SIZE + snapshot.payload_len
        check_free_space(self._directory, size)  # again: the disk may have filled meanwhile
        tmp = fmt.tmp_name(final_name, os.getpid(), os.urandom(4).hex())
        prefix = fmt.header_prefix(step, snapshot.payload_len, metric, self._digest)
        hasher = fmt.new_hasher(self._digest, prefix)

        def chunks() -> Any:
            for chunk in snapshot.chunks():
                hasher.update(chunk)
                yield chunk

        try:
            with writing(tmp):
                commit_file(
                    self._directory,
                    final_name,
                    tmp,
                    chunks(),
                    header_size=fmt.HEADER_SIZE,
                    make_header=lambda: prefix + hasher.digest(),
                )
        finally:
            if not pooled or self._pool is None:
                snapshot.buffers = []  # free the copy now rather than at the next save
        # Only now, with the new checkpoint durable, may anything older go.
        prune(
            self._directory,
            keep=step,
            keep_last=self._keep_last,
            keep_best=self._keep_best,
            best_mode=self._best_mode,
        )
        remove_stale_tmp(self._directory)
        elapsed = time.perf_counter() - started
        self._cadence.record_persist(elapsed)
        last = self._last
        if last is not None and last.step == step:
            self._last = SaveStats(step, size, last.stall_s, elapsed)

    def _grace_left_s(self) -> float | None:
        received = self._flag.received_at
        if self._grace_s is None:
            return None
        if received is None:
            return self._grace_s
        return self._grace_s - (time.monotonic() - received)

    def _estimated_save_s(self) -> float | None:
        persist = self._cadence.persist_s
        if persist is None:
            return None
        stall = self._last.stall_s if self._last is not None else 0.0
        waiting = 0.0
        if self._persister.busy:
            waiting = max(0.0, persist - (time.monotonic() - self._persist_started))
        return waiting + stall + persist

    def _first_that_verifies(self, steps: List[int]) -> Restored | None:
        for step in steps:
            path = self._directory / fmt.checkpoint_name(step)
            try:
                return read_file(path, expected_step=step)
            except FileNotFoundError:
                continue  # pruned by a concurrent writer between listing and reading
            except CorruptCheckpoint as exc:
                _log.warning("skipping corrupt checkpoint %s: %s", path, exc)
            except OSError as exc:
                _log.warning("skipping unreadable checkpoint %s: %s", path, exc)
        return None

    def _committed(self) -> List[int]:
        return committed_steps(self._directory)
