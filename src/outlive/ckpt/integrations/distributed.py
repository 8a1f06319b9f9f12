"""``DistributedCheckpointer``: the Checkpointer's guarantees on every rank of a distributed job.

    import torch.distributed as dist
    from outlive.ckpt.integrations.distributed import DistributedCheckpointer

    dist.init_process_group("gloo", timeout=timedelta(minutes=10))   # "cpu:gloo,cuda:nccl" on GPUs
    ckpt = DistributedCheckpointer(mode="sharded", every_steps=100)  # on every rank, same order
    restored = ckpt.load_latest(state)     # DCP loads in place, resharding to this world size
    step = restored.step if restored else 0
    while step < total:
        ...train one step...
        step += 1
        if ckpt.should_save(step):         # collective: preemption and cadence agreed by all ranks
            ckpt.save(state, step=step)    # collective
        if ckpt.preempted:
            ckpt.exit_for_requeue()        # every rank exits 75 once the step is committed

Modes:
  sharded     every rank writes its shards with torch.distributed.checkpoint (``dist_sharded``);
              a step counts once rank 0 has written its commit marker after every rank's files
              are durable (protocol in ``dist_commit``). ``async_save=True`` uses
              ``dcp.async_save``; the marker is written once the future is done on every rank,
              agreed at the next ``should_save``/``save``/``flush``/``close`` (so call ``close()``,
              or use ``with``, before the process ends: an uncommitted step is never loaded).
  replicated  DDP: the state is the same on every rank; rank 0 writes it with the single-file
              ``Checkpointer`` (tmp, fsync, rename), the other ranks wait for its verdict, and
              every rank reads the file rank 0 picked on load (the directory must be shared).

``should_save(step)`` all-reduces (MAX) the ranks' preemption flags, ``due()`` and, with an async
save in flight, "not finished yet", every ``agree_every`` calls: one rank's SIGTERM makes every rank
save at the same step, and no rank waits in a save the others never start. Collectives run on
gloo groups of their own with ``timeout_s``: a rank that is SIGKILLed makes the others raise
PeerLostError (exit, and let the launcher restart all ranks) instead of hanging.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, List, NoReturn, Type

from outlive.ckpt import fmt
from outlive.ckpt.cadence import Cadence
from outlive.ckpt.core import CKPT_DIR_ENV, DEFAULT_DIRECTORY, REQUEUE_EXIT_CODE, Checkpointer
from outlive.ckpt.directory import committed_steps
from outlive.ckpt.integrations import dist_commit
from outlive.ckpt.integrations.dist_sharded import (
    PeerLostError,
    agree_max,
    broadcast_from_zero,
    collective,
    commit_step,
    load_latest_sharded,
    prepare_step,
    save_sharded,
    start_async_save,
)
from outlive.ckpt.reader import Restored
from outlive.ckpt.signals import PreemptionFlag
from outlive.errors import CheckpointError

__all__ = ["MODES", "DistributedCheckpointer", "PeerLostError"]

MODES = ("sharded", "replicated")


class DistributedCheckpointer:
    """Checkpoints of a torch.distributed job; build it on every rank after init_process_group.

    directory    shared by all ranks: $OUTLIVE_CKPT_DIR, else ./checkpoints
    mode         "sharded" (DCP, each rank its shards) or "replicated" (DDP: rank 0 writes)
    keep_last    newest committed steps kept (None: all); the newest committed is never pruned
    async_save   sharded: ``dcp.async_save``; replicated: the Checkpointer's background persist
    timeout_s    how long a collective waits for a missing rank before PeerLostError
    agree_every  ``should_save`` agrees (one all_reduce) on every Nth call; 0 < N
    checksums    verify every file's CRC-32 (spread over the ranks) before loading a step
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        mode: str = "sharded",
        keep_last: int | None = 3,
        async_save: bool = False,
        every_steps: int | None = None,
        every_s: float | None = None,
        mtbf_s: float | None = None,
        handle_signals: bool = True,
        timeout_s: float = 600.0,
        agree_every: int = 1,
        checksums: bool = True,
    ) -> None:
        import torch.distributed as dist  # here, not at import: this file ships without torch

        if not (dist.is_available() and dist.is_initialized()):
            raise CheckpointError(
                "torch.distributed is not initialized; call init_process_group on every rank "
                "first (or use outlive.Checkpointer in a single process)."
            )
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if keep_last is not None and (isinstance(keep_last, bool) or keep_last < 1):
            raise ValueError(f"keep_last must be None (keep all) or at least 1, got {keep_last!r}")
        if isinstance(agree_every, bool) or agree_every < 1:
            raise ValueError(f"agree_every must be an int of at least 1, got {agree_every!r}")
        if directory is None:
            directory = os.environ.get(CKPT_DIR_ENV) or DEFAULT_DIRECTORY
        self._directory = Path(directory).expanduser().absolute()
        self._mode = mode
        self._keep_last = keep_last
        self._async = bool(async_save)
        self._agree_every = agree_every
        self._checksums = checksums
        self._cadence = Cadence(every_steps=every_steps, every_s=every_s, mtbf_s=mtbf_s)
        timeout = timedelta(seconds=timeout_s)
        # Our own gloo groups: CPU collectives even under NCCL, and DCP's async thread never
        # shares a group with the main thread's agreement.
        self._group = dist.new_group(backend="gloo", timeout=timeout)
        self._io_group = dist.new_group(backend="gloo", timeout=timeout) if self._async else None
        self.rank = int(dist.get_rank(self._group))
        self.world_size = int(dist.get_world_size(self._group))
        self._calls = 0
        self._preempted = False
        self._pending: tuple[int, Any, float, float | None] | None = None  # step, future, t0, m
        self._committed: int | None = None
        self._closed = False
        self._single: Checkpointer | None = None
        if mode == "replicated":
            self._single = Checkpointer(
                self._directory, keep_last=keep_last, handle_signals=False, sync=not self._async
            )
        self._flag = PreemptionFlag()
        if handle_signals:
            self._flag.install()

    # -- properties -----------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The checkpoint directory (absolute), shared by all ranks."""
        return self._directory

    @property
    def mode(self) -> str:
        """The mode: sharded (DCP) or replicated (DDP, rank 0 writes)."""
        return self._mode

    @property
    def preempted(self) -> bool:
        """True once any rank's preemption flag was agreed on (same value on every rank)."""
        return self._preempted

    @property
    def local_preempted(self) -> bool:
        """This rank's own flag (TERM/USR1/USR2 arrived here), before any agreement."""
        return self._flag.is_set

    @property
    def requeue_exit_code(self) -> int:
        """Exit status that means "saved, run me again" (75)."""
        return REQUEUE_EXIT_CODE

    @property
    def last_committed(self) -> int | None:
        """The newest step this instance committed on every rank (async: once agreed), or None."""
        return self._committed

    @property
    def cadence(self) -> Cadence:
        """The policy behind ``should_save``'s "due" part."""
        return self._cadence

    # -- the loop -------------------------------------------------------------------------------

    def should_save(self, step: int) -> bool:
        """Collective. Whether every rank saves after ``step``: a rank was preempted or the
        cadence is due somewhere. Also commits a finished async save. Call it on every rank."""
        self._calls += 1
        if self._calls % self._agree_every:
            return False
        pending = self._pending
        unfinished = int(pending is not None and not pending[1].done())
        with collective(f"agreeing at step {step}", self._directory):
            preempted, due, busy = agree_max(
                [int(self._flag.is_set), int(self._cadence.due(step)), unfinished], self._group
            )
        if pending is not None and not busy:
            self._commit_pending()
        self._preempted = self._preempted or bool(preempted)
        return bool(preempted or due)

    def save(self, state: Dict[str, Any], *, step: int, metric: float | None = None) -> Path:
        """Collective. Save ``state`` as ``step``; sync: returns once committed on every rank."""
        if isinstance(step, bool) or int(step) < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        step = int(step)
        self._commit_pending()
        self._cadence.record_save(step)
        if self._single is not None:
            return self._save_replicated(state, step, metric)
        group = self._group
        started = time.perf_counter()
        if not self._async:
            path = save_sharded(
                state, self._directory, step=step, group=group, keep_last=self._keep_last,
                metric=metric,
            )  # fmt: skip
            self._cadence.record_persist(time.perf_counter() - started)
            self._committed = step
            return path
        if not prepare_step(self._directory, step, group):
            with collective(f"starting the async save of step {step}", self._directory):
                future = start_async_save(state, self._directory, step, self._io_group)
            self._pending = (step, future, started, metric)
        return self._directory / dist_commit.step_dir_name(step)

    def flush(self) -> None:
        """Collective. Wait for an async save on every rank and commit it."""
        self._commit_pending()
        if self._single is not None:
            self._replicated_verdict("flushing", self._single.flush)

    def load_latest(self, state: Dict[str, Any] | None = None) -> Restored | None:
        """Collective. The newest committed step, or None on a fresh start.

        sharded: ``state`` (the dict to load into, built for this world size) is filled in place
        and returned as ``Restored.state``. replicated: the file rank 0 picked, read by each rank.
        """
        self._commit_pending()
        if self._single is not None:
            return self._load_replicated()
        if state is None:
            raise ValueError("load_latest(state) needs the state dict to load into (sharded mode)")
        step = load_latest_sharded(
            state, self._directory, group=self._group, checksums=self._checksums
        )
        if step is None:
            return None
        self._cadence.record_save(step, resumed=True)
        return Restored(state=state, step=step, path=self._directory / self._name(step))

    def steps(self) -> List[int]:
        """Committed steps on disk, ascending (local listing; no collective)."""
        if self._single is not None:
            return sorted(committed_steps(self._directory))
        return dist_commit.committed_steps(self._directory)

    def close(self) -> None:
        """Collective. Commit an async save, wait for rank 0's writes, restore signal handlers."""
        if self._closed:
            return
        try:
            self.flush()
            if self._single is not None and self.rank == 0:
                self._single.close()
        finally:
            self._closed = True
            self._flag.restore()

    def exit_for_requeue(self) -> NoReturn:
        """Collective. ``close()`` on every rank, then exit with the requeue code 75."""
        self.close()
        raise SystemExit(REQUEUE_EXIT_CODE)

    def __enter__(self) -> DistributedCheckpointer:
        return self

    def __exit__(
        self,
        exc_type: Type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._flag.restore()  # a failed rank must not wait in a collective the others skip

    # -- internals ------------------------------------------------------------------------------

    def _name(self, step: int) -> str:
        return dist_commit.step_dir_name(step)

    def _commit_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        from torch.distributed.checkpoint.api import CheckpointException

        step, future, started, metric = pending
        error: str | None = None
        try:
            future.result()  # this rank's shards (and on rank 0 DCP's .metadata) are written
        except (Exception, CheckpointException) as exc:  # DCP's is a BaseException
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
        with collective(f"finishing the async save of step {step}", self._directory):
            errors = [e for e in self._gather(error) if e is not None]
        if errors:
            raise CheckpointError(
                f"the async save of checkpoint step {step} failed ({errors[0]}); the previous "
                f"committed checkpoint in {self._directory} is intact."
            )
        commit_step(self._directory, step, self._group, keep_last=self._keep_last, metric=metric)
        self._committed = step
        self._cadence.record_persist(time.perf_counter() - started)

    def _gather(self, value: Any) -> List[Any]:
        import torch.distributed as dist

        out: List[Any] = [None] * self.world_size
        dist.all_gather_object(out, value, group=self._group)
        return out

    def _replicated_verdict(self, what: str, action: Any) -> Any:
        """Rank 0 runs ``action``; every rank gets its result or raises its error."""
        result, error = None, None
        if self.rank == 0:
            try:
                result = action()
            except CheckpointError as exc:
                error = str(exc)
        with collective(what, self._directory):
            result, error = broadcast_from_zero((result, error), self._group)
        if error is not None:
            raise CheckpointError(error)
        return result

    def _save_replicated(self, state: Any, step: int, metric: float | None) -> Path:
        single = self._single_checkpointer()

        def write() -> str:
            return str(single.save(state, step=step, metric=metric))

        path = Path(self._replicated_verdict(f"saving checkpoint step {step}", write))
        if not self._async:
            self._committed = step
        return path

    def _load_replicated(self) -> Restored | None:
        single = self._single_checkpointer()

        def pick() -> int | None:
            path = single.latest_path()
            return None if path is None else fmt.parse_checkpoint_name(path.name)

        step = self._replicated_verdict("choosing the checkpoint to load", pick)
        if step is None:
            return None
        restored = single.load(step)
        self._cadence.record_save(step, resumed=True)
        return restored

    def _single_checkpointer(self) -> Checkpointer:
        if self._single is None:
            raise CheckpointError("internal error: no single-file Checkpointer in sharded mode")
        return self._single
