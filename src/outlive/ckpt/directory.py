"""The checkpoint directory: create it durably, list steps, prune, sweep stale tmp files."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Dict, Iterator, List

from outlive.ckpt import fmt
from outlive.ckpt.durable import fsync_directory
from outlive.ckpt.retention import to_prune
from outlive.errors import CheckpointError

__all__ = [
    "committed_steps",
    "ensure_directory",
    "metrics_of",
    "prune",
    "remove_stale_tmp",
    "writing",
]

_log = logging.getLogger("outlive.ckpt")

# Temp files of persists running in this process: never "stale", whichever instance looks.
_inflight_tmp: set[str] = set()
_inflight_lock = threading.Lock()


@contextlib.contextmanager
def writing(tmp_name: str) -> Iterator[None]:
    """Mark ``tmp_name`` as being written by this process for the duration of the block."""
    with _inflight_lock:
        _inflight_tmp.add(tmp_name)
    try:
        yield
    finally:
        with _inflight_lock:
            _inflight_tmp.discard(tmp_name)


def ensure_directory(directory: Path) -> None:
    """Create ``directory`` (and parents) durably; CheckpointError naming what is wrong."""
    if directory.is_dir():
        return
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A new directory's own entry is not durable until its parent is synced (U6).
        for created in missing:
            fsync_directory(created.parent)
    except FileExistsError as exc:
        raise CheckpointError(
            f"checkpoint directory {directory} exists but is not a directory; "
            "move that file or choose another OUTLIVE_CKPT_DIR."
        ) from exc
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint directory {directory} cannot be created "
            f"({exc.strerror or exc}); check permissions and free space/inodes (U7)."
        ) from exc


def committed_steps(directory: Path) -> List[int]:
    """Steps of the committed checkpoint files in ``directory`` (unordered)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    steps = (fmt.parse_checkpoint_name(name) for name in names)
    return [step for step in steps if step is not None]


def metrics_of(directory: Path, steps: List[int]) -> Dict[int, float | None]:
    """Each checkpoint's metric, read from its header alone (None: none or unreadable)."""
    metrics: Dict[int, float | None] = {}
    for step in steps:
        try:
            with open(directory / fmt.checkpoint_name(step), "rb") as f:
                metrics[step] = fmt.read_header(f).metric
        except (OSError, CheckpointError):
            metrics[step] = None  # never ranked best; pruned by age alone
    return metrics


def prune(
    directory: Path,
    *,
    keep: int,
    keep_last: int | None,
    keep_best: int | None,
    best_mode: str,
) -> None:
    """Delete what retention does not keep; call only once ``keep`` is committed."""
    if keep_last is None:
        return
    try:
        committed = committed_steps(directory)
    except OSError as exc:
        _log.warning("could not list %s to prune old checkpoints: %s", directory, exc)
        return
    metrics = metrics_of(directory, committed) if keep_best else {}
    doomed = to_prune(
        committed,
        metrics,
        keep_last=keep_last,
        keep_best=keep_best,
        best_mode=best_mode,
        just_committed=keep,
    )
    for step in doomed:
        path = directory / fmt.checkpoint_name(step)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            _log.warning("could not prune old checkpoint %s: %s", path, exc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but not ours (EPERM)
    return True


def remove_stale_tmp(directory: Path) -> None:
    """Delete temp files left by writers that died (never one this process is writing)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    with _inflight_lock:
        ours_in_flight = set(_inflight_tmp)
    for name in names:
        pid = fmt.parse_tmp_name(name)
        if pid is None or name in ours_in_flight:
            continue
        # A live writer's tmp (another process on this dir) is not ours to remove; our own
        # pid means a crashed earlier incarnation (containers reuse pids after a restart).
        if pid != os.getpid() and _pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            os.unlink(directory / name)
