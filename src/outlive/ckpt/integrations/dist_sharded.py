"""Sharded checkpoints through ``torch.distributed.checkpoint`` (DCP) with a commit marker.

Plain functions, usable from any script that has called ``init_process_group`` (every rank calls
each one, in the same order)::

    from outlive.ckpt.integrations.dist_sharded import load_latest_sharded, save_sharded

    step = load_latest_sharded(state, "ckpt")          # in place; None on a fresh start
    save_sharded(state, "ckpt", step=120, keep_last=3) # returns once step 120 is committed

``save_sharded`` = ``prepare_step`` + ``dcp.save`` + ``commit_step``; an async save runs
``prepare_step``, ``dcp.async_save``, waits for the future on every rank, then ``commit_step``.
The protocol (which files, which order, which fsyncs) is in ``dist_commit``. Resuming with another
world size works as DCP reshards: build ``state`` for the new world (DTensors on the new mesh) and
load into it. The collectives run on ``group`` (any group with a CPU backend: gloo); one that
fails because a rank died or timed out raises PeerLostError, and every committed step stays
loadable. torch is imported inside the functions, not by this module: it ships with the job
library, which imports without torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence

from outlive.ckpt.directory import ensure_directory
from outlive.ckpt.integrations.dist_commit import (
    committed_steps,
    describe,
    file_holds,
    marker_holds,
    prune,
    read_marker,
    remove_step_dir,
    step_dir_name,
    write_marker,
)
from outlive.errors import CheckpointError

__all__ = [
    "PeerLostError",
    "agree_max",
    "broadcast_from_zero",
    "collective",
    "commit_step",
    "load_latest_sharded",
    "prepare_step",
    "save_sharded",
]

_log = logging.getLogger("outlive.ckpt")
METADATA_NAME = ".metadata"


class PeerLostError(CheckpointError):
    """A collective failed: another rank died, or did not arrive before the group's timeout."""


def _rank(group: Any) -> int:
    import torch.distributed as dist

    return int(dist.get_rank(group))


@contextlib.contextmanager
def collective(what: str, directory: Path) -> Iterator[None]:
    """Turn a failed collective (a dead or stuck rank) into PeerLostError with what to do."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.api import CheckpointException

    try:
        yield
    except (RuntimeError, CheckpointException) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise PeerLostError(
            f"{what} failed on rank {dist.get_rank()}: another rank died or did not answer "
            f"before the timeout ({type(exc).__name__}: {str(exc)[:300]}); the committed "
            f"checkpoints in {directory} are intact: exit and restart every rank."
        ) from exc


def agree_max(values: Sequence[int], group: Any) -> List[int]:
    """Element-wise MAX of ``values`` over the ranks of ``group`` (one small all_reduce)."""
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(list(values), dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=group)
    return [int(v) for v in tensor.tolist()]


def broadcast_from_zero(value: Any, group: Any) -> Any:
    """Rank 0's ``value`` on every rank of ``group``."""
    import torch.distributed as dist

    box = [value]
    # group=None is the default (world) group, where global and group ranks are the same;
    # get_global_rank(None, 0) raises "Group None is not registered".
    src = 0 if group is None else dist.get_global_rank(group, 0)
    dist.broadcast_object_list(box, src=src, group=group)
    return box[0]


def _raise_if(error: str | None) -> None:
    if error is not None:
        raise CheckpointError(error)


def prepare_step(directory: Path, step: int, group: Any = None) -> bool:
    """Step 1: clear a leftover of ``step`` and meet; True if ``step`` is already committed."""
    step_dir = directory / step_dir_name(step)
    verdict: tuple[bool, str | None] = (False, None)
    if _rank(group) == 0:
        try:
            ensure_directory(directory)
            if marker_holds(step_dir):
                verdict = (True, None)
            else:
                remove_step_dir(step_dir)  # a torn earlier attempt: its files must not mix in
                step_dir.mkdir()
        except (OSError, CheckpointError) as exc:
            verdict = (False, f"cannot prepare {step_dir}: {exc}")
    with collective(f"preparing checkpoint step {step}", directory):
        committed, error = broadcast_from_zero(verdict, group)
    _raise_if(error)
    return bool(committed)


def _check_covered(step_dir: Path, files: Dict[str, Any]) -> None:
    """Every file DCP's index refers to must be in the marker's list."""
    from torch.distributed.checkpoint.filesystem import FileSystemReader

    reader = FileSystemReader(str(step_dir))
    metadata = reader.read_metadata()
    storage = metadata.storage_data or {}
    needed = {item.relative_path for item in storage.values()}
    missing = sorted(needed - set(files))
    if missing:
        raise CheckpointError(f"{step_dir}: shard files {missing[:5]} are referenced but absent")


def commit_step(
    directory: Path,
    step: int,
    group: Any = None,
    *,
    keep_last: int | None = None,
    metric: float | None = None,
) -> Path:
    """Steps 3-5 once every rank's DCP save of ``step`` returned: describe, marker, prune."""
    import torch.distributed as dist

    step_dir = directory / step_dir_name(step)
    rank = _rank(group)
    world = int(dist.get_world_size(group))
    # Each rank's files, or why they cannot be described: a failure here must reach every rank
    # through the gather rather than leave the others waiting in it.
    entries: Dict[str, Any] | str
    try:
        own = [name for name in os.listdir(step_dir) if name.startswith(f"__{rank}_")]
        entries = describe(step_dir, own + ([METADATA_NAME] if rank == 0 else []))
    except OSError as exc:
        entries = f"rank {rank} cannot sync its files in {step_dir}: {exc}"
    gathered: List[Any] = [None] * world
    with collective(f"committing checkpoint step {step}", directory):
        dist.all_gather_object(gathered, entries, group=group)
    failures = [part for part in gathered if isinstance(part, str)]
    if failures:
        raise CheckpointError(f"checkpoint step {step} was not committed: {failures[0]}")
    error: str | None = None
    if rank == 0:
        files: Dict[str, Any] = {}
        for part in gathered:
            files.update(part)
        try:
            _check_covered(step_dir, files)
            write_marker(step_dir, step, files, world_size=world, metric=metric)
            prune(directory, keep_last=keep_last, just_committed=step)
        except (OSError, CheckpointError) as exc:
            error = f"committing checkpoint step {step} in {step_dir} failed: {exc}"
    with collective(f"committing checkpoint step {step}", directory):
        error = broadcast_from_zero(error, group)
    _raise_if(error)
    return step_dir


def _writer(step_dir: Path) -> Any:
    from torch.distributed.checkpoint.filesystem import FileSystemWriter

    # sync_files: DCP fsyncs each shard file and the .metadata before its rename.
    return FileSystemWriter(
        str(step_dir), single_file_per_rank=True, sync_files=True, overwrite=True
    )


def save_sharded(
    state: Dict[str, Any],
    directory: str | os.PathLike[str],
    *,
    step: int,
    group: Any = None,
    keep_last: int | None = None,
    metric: float | None = None,
) -> Path:
    """Save ``state`` with DCP as ``step`` and commit it; every rank calls it; returns the dir."""
    from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

    root = Path(directory).absolute()
    step_dir = root / step_dir_name(step)
    if prepare_step(root, step, group):
        return step_dir  # this very step is committed already: never rewrite the last good one
    with collective(f"saving checkpoint step {step}", root):
        dcp_save(state, storage_writer=_writer(step_dir), process_group=group)
    return commit_step(root, step, group, keep_last=keep_last, metric=metric)


def start_async_save(state: Dict[str, Any], root: Path, step: int, group: Any) -> Any:
    """``dcp.async_save`` into the step directory (after prepare_step); returns its future."""
    from torch.distributed.checkpoint.state_dict_saver import async_save as dcp_async_save

    response = dcp_async_save(
        state, storage_writer=_writer(root / step_dir_name(step)), process_group=group
    )
    return getattr(response, "upload_completion", response)


def _verify_share(step_dir: Path, group: Any, checksums: bool) -> bool:
    """Each rank checks every world-th listed file; true only if all ranks' shares hold."""
    import torch.distributed as dist

    rank, world = _rank(group), int(dist.get_world_size(group))
    doc = read_marker(step_dir)
    ok = doc is not None
    if doc is not None:
        names = sorted(doc["files"])[rank::world]
        ok = all(file_holds(step_dir, n, doc["files"][n], checksums=checksums) for n in names)
    return agree_max([0 if ok else 1], group)[0] == 0


def load_latest_sharded(
    state: Dict[str, Any],
    directory: str | os.PathLike[str],
    *,
    group: Any = None,
    checksums: bool = True,
) -> int | None:
    """Load the newest committed step into ``state`` in place; its step, or None if none.

    A step is taken only when its marker holds on every rank's share of its files (sizes and,
    with ``checksums``, CRC-32); others are skipped with a warning. A committed step that DCP
    cannot load into ``state`` (other keys or shapes) raises CheckpointError.
    """
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.filesystem import FileSystemReader
    from torch.distributed.checkpoint.state_dict_loader import load as dcp_load

    root = Path(directory).absolute()
    candidates: List[int] = []
    if _rank(group) == 0:
        candidates = sorted(committed_steps(root), reverse=True)
    with collective("listing checkpoints", root):
        candidates = broadcast_from_zero(candidates, group)
    for step in candidates:
        step_dir = root / step_dir_name(step)
        with collective(f"verifying checkpoint step {step}", root):
            holds = _verify_share(step_dir, group, checksums)
        if not holds:
            _log.warning("skipping checkpoint %s: its files do not match its marker", step_dir)
            continue
        started = time.perf_counter()
        try:
            dcp_load(state, storage_reader=FileSystemReader(str(step_dir)), process_group=group)
        except (Exception, CheckpointException) as exc:
            raise CheckpointError(
                f"checkpoint {step_dir} is committed but cannot be loaded into this state "
                f"({type(exc).__name__}: {str(exc)[:300]}); build the state with the keys and "
                "global shapes it was saved with."
            ) from exc
        _log.info("loaded %s in %.2f s", step_dir, time.perf_counter() - started)
        return step
    return None
