"""``Checkpointer``: save the training state durably, load the newest one that verifies.

Resume is the invariant: a job that calls ``load_latest()`` on start and ``save()`` at safe points
converges to the same end state however often it is killed (SIGKILL, OOM, reboot, preemption).
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import pickle
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, List, Type

from outlive.ckpt import fmt
from outlive.ckpt.durable import check_free_space, commit_file, fsync_directory
from outlive.ckpt.signals import PreemptionFlag
from outlive.errors import CheckpointError

__all__ = ["CKPT_DIR_ENV", "DEFAULT_DIRECTORY", "REQUEUE_EXIT_CODE", "Checkpointer", "Restored"]

CKPT_DIR_ENV = "OUTLIVE_CKPT_DIR"
DEFAULT_DIRECTORY = "checkpoints"
# EX_TEMPFAIL from sysexits.h: "I saved at a safe point; run me again".
REQUEUE_EXIT_CODE = 75
PICKLE_PROTOCOL = 4

_log = logging.getLogger("outlive.ckpt")


@dataclass(frozen=True)
class Restored:
    """A checkpoint read back from disk: the saved object, its step and its file."""

    state: Any = field(repr=False)  # may be gigabytes of arrays
    step: int
    path: Path


def _check_step(step: int) -> int:
    if isinstance(step, bool):
        raise TypeError("step must be an int, not a bool")
    value = operator.index(step)  # numpy integers are fine, floats are not
    if value < 0 or value > fmt.MAX_STEP:
        raise ValueError(f"step must be an int between 0 and {fmt.MAX_STEP}, got {step!r}")
    return value


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but not ours (EPERM)
    return True


class Checkpointer:
    """Durable checkpoints in one directory, with preemption signals turned into a flag.

    Use as ``with Checkpointer() as ckpt:`` (or call ``close()``) to restore the signal handlers.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        keep_last: int | None = 3,
        handle_signals: bool = True,
    ) -> None:
        if keep_last is not None and (isinstance(keep_last, bool) or keep_last < 1):
            raise ValueError(f"keep_last must be None (keep all) or at least 1, got {keep_last!r}")
        if directory is None:
            directory = os.environ.get(CKPT_DIR_ENV) or DEFAULT_DIRECTORY
        self._directory = Path(directory).expanduser().absolute()
        self._keep_last = keep_last
        self._lock = threading.Lock()
        self._ensure_directory()
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
        """Steps of the committed checkpoints on disk, ascending."""
        return sorted(self._committed())

    def path_for(self, step: int) -> Path:
        """Where the checkpoint of ``step`` lives (whether or not it exists)."""
        return self._directory / fmt.checkpoint_name(_check_step(step))

    def save(self, state: object, *, step: int) -> Path:
        """Pickle ``state`` and commit it as the checkpoint of ``step``; returns once it is durable.

        Raises DiskFullError when bytes or inodes are short and CheckpointError on any other
        failure; in both cases the previous checkpoints are untouched and no tmp file remains.
        """
        step = _check_step(step)
        try:
            payload = pickle.dumps(state, protocol=PICKLE_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"the state for step {step} cannot be pickled ({exc}); save plain data "
                "(arrays, tensors, dicts, numbers) rather than open files, locks or lambdas."
            ) from exc
        header = fmt.encode_header(step, payload)
        final_name = fmt.checkpoint_name(step)
        with self._lock:
            self._ensure_directory()
            check_free_space(self._directory, len(header) + len(payload))
            tmp = fmt.tmp_name(final_name, os.getpid(), os.urandom(4).hex())
            path = commit_file(self._directory, final_name, tmp, (header, payload))
            # Only now, with the new checkpoint durable, may anything older go.
            self._prune(keep=step)
            self._remove_stale_tmp()
        return path

    def load(self, step: int) -> Restored:
        """Read and verify the checkpoint of ``step``; CheckpointError if missing or corrupt."""
        step = _check_step(step)
        path = self.path_for(step)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(
                f"checkpoint {path} cannot be read ({exc.strerror or exc}); "
                "check that it exists and is readable."
            ) from exc
        try:
            _, payload = fmt.verify(data, expected_step=step)
        except CheckpointError as exc:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: {exc}; use an older one from steps()."
            ) from exc
        return Restored(state=self._unpickle(payload, path), step=step, path=path)

    def load_latest(self) -> Restored | None:
        """The newest checkpoint that verifies, or None when there is none.

        Torn or corrupt files are skipped with a logged warning; a verified file that cannot be
        unpickled (a class the code no longer has) raises, since older ones would fail alike.
        """
        for step in sorted(self._committed(), reverse=True):
            path = self._directory / fmt.checkpoint_name(step)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # pruned by a concurrent writer between listing and reading
            except OSError as exc:
                _log.warning("skipping unreadable checkpoint %s: %s", path, exc)
                continue
            try:
                _, payload = fmt.verify(data, expected_step=step)
            except CheckpointError as exc:
                _log.warning("skipping corrupt checkpoint %s: %s", path, exc)
                continue
            return Restored(state=self._unpickle(payload, path), step=step, path=path)
        return None

    def close(self) -> None:
        """Restore the signal handlers that were in place before this Checkpointer."""
        self._flag.restore()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(
        self,
        exc_type: Type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpointer({str(self._directory)!r}, keep_last={self._keep_last!r})"

    # -- internals ------------------------------------------------------------------------------

    def _ensure_directory(self) -> None:
        if self._directory.is_dir():
            return
        missing = [p for p in (self._directory, *self._directory.parents) if not p.exists()]
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            # A new directory's own entry is not durable until its parent is synced (U6).
            for created in missing:
                fsync_directory(created.parent)
        except FileExistsError as exc:
            raise CheckpointError(
                f"checkpoint directory {self._directory} exists but is not a directory; "
                "move that file or choose another OUTLIVE_CKPT_DIR."
            ) from exc
        except OSError as exc:
            raise CheckpointError(
                f"checkpoint directory {self._directory} cannot be created "
                f"({exc.strerror or exc}); check permissions and free space/inodes (U7)."
            ) from exc

    def _committed(self) -> List[int]:
        try:
            names = os.listdir(self._directory)
        except FileNotFoundError:
            return []
        steps = (fmt.parse_checkpoint_name(name) for name in names)
        return [step for step in steps if step is not None]

    def _prune(self, keep: int) -> None:
        if self._keep_last is None:
            return
        # The just-committed step always stays; then the newest others up to keep_last in all.
        try:
            committed = self._committed()
        except OSError as exc:
            _log.warning("could not list %s to prune old checkpoints: %s", self._directory, exc)
            return
        others = sorted((s for s in committed if s != keep), reverse=True)
        for step in others[self._keep_last - 1 :]:
            path = self._directory / fmt.checkpoint_name(step)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                _log.warning("could not prune old checkpoint %s: %s", path, exc)

    def _remove_stale_tmp(self) -> None:
        try:
            names = os.listdir(self._directory)
        except OSError:
            return
        for name in names:
            pid = fmt.parse_tmp_name(name)
            if pid is None:
                continue
            # A live writer's tmp (another process on this dir) is not ours to remove; our own
            # pid means a crashed earlier incarnation (containers reuse pids after a restart).
            if pid != os.getpid() and _pid_alive(pid):
                continue
            with contextlib.suppress(OSError):
                os.unlink(self._directory / name)

    @staticmethod
    def _unpickle(payload: memoryview, path: Path) -> Any:
        try:
            return pickle.loads(payload)
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {path} verified but cannot be unpickled ({type(exc).__name__}: "
                f"{exc}); run it with the code and packages that saved it."
            ) from exc
