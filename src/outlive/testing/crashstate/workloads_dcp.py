"""Sharded (PyTorch DCP) saves: one directory per step, committed by a marker written last.

``outlive_dcp``  outlive's ``DistributedCheckpointer(mode="sharded")`` (the ``dist_commit``
                 protocol: DCP save, every file described and fsynced, marker last, pruning with
                 keep_last=2), world size 1 over gloo; ``outlive_dcp_async`` the same with
                 ``async_save=True``. Loaded with ``load_latest_sharded`` (marker, sizes, CRCs).
``dcp_marker``   ``torch.distributed.checkpoint.save`` into ``step-N.dcp/``, then every file in
                 it fsynced again, the directory and its parent fsynced, and a ``COMMIT`` marker
                 committed with outlive's durable write (tmp, fsync, rename, fsync dir); the
                 loader trusts only a step whose marker names it.
``dcp_marker_trusting_dcp``  the same without fsyncing DCP's files again. It is not safe: DCP's
                 ``FileSystemWriter.finish`` pickles ``.metadata`` into a buffered file and fsyncs
                 the fd before the buffer is flushed (torch 2.13), so ``.metadata``'s bytes reach
                 the kernel after its fsync and are renamed into place undurable; a power cut can
                 leave a committed step with an empty ``.metadata``.
``dcp_no_marker`` the save alone; the loader takes the newest step directory that has DCP's
                 ``.metadata`` (what a script does by hand).

World size 1, no process group (``no_dist``): the file protocol is the same on every rank.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

from outlive.ckpt.durable import commit_file, fsync_directory
from outlive.testing.crashstate.workload import Loaded, Mark, Workload, expected_state

__all__ = ["DCP_WORKLOADS"]

_MARKER = "COMMIT"
_STEP_DIR = re.compile(r"^step-(\d+)\.dcp$")


def _dcp_dir(root: Path) -> Path:
    return root / "dcp"


def _dcp() -> Any:
    """torch.distributed.checkpoint (untyped here: its stubs do not export what it exports)."""
    return importlib.import_module("torch.distributed.checkpoint")


def _tensors(step: int) -> Dict[str, Any]:
    import torch  # type: ignore[import-not-found, unused-ignore]

    blob = expected_state(step)["blob"]
    return {
        "step": torch.tensor(step),
        "blob": torch.frombuffer(bytearray(blob), dtype=torch.uint8),
    }


def _save(step_dir: Path, step: int) -> None:
    dcp = _dcp()

    writer = dcp.FileSystemWriter(str(step_dir), sync_files=True)
    dcp.save(_tensors(step), storage_writer=writer, no_dist=True)


def _fsync_files(step_dir: Path) -> None:
    for path in sorted(step_dir.iterdir()):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _run(with_marker: bool, refsync: bool) -> Any:
    def run(root: Path, mark: Mark, steps: int) -> None:
        directory = _dcp_dir(root)
        directory.mkdir()
        fsync_directory(root)
        for step in range(1, steps + 1):
            mark(f"BEGIN {step}")
            step_dir = directory / f"step-{step:012d}.dcp"
            _save(step_dir, step)
            if refsync:
                _fsync_files(step_dir)  # DCP's own fsync of .metadata precedes its bytes
            if with_marker:
                fsync_directory(step_dir)  # the shards' entries and the .metadata rename
                fsync_directory(directory)  # the step directory's own entry
                marker = json.dumps({"step": step}).encode()
                commit_file(step_dir, _MARKER, f".{_MARKER}.tmp-{os.getpid()}", [marker])
            mark(f"DURABLE {step}")

    return run


def _init_gloo(store_path: str | None = None) -> None:
    """World size 1 over gloo: in the recorded process a file store (outside the root), in the
    checker's process a hash store, set up once."""
    dist: Any = importlib.import_module("torch.distributed")
    if dist.is_initialized():
        return
    store = dist.FileStore(store_path, 1) if store_path else dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)


def _run_outlive_dcp(async_save: bool) -> Any:
    def run(root: Path, mark: Mark, steps: int) -> None:
        from outlive.ckpt.integrations.distributed import DistributedCheckpointer

        _init_gloo(str(root.parent / "gloo-store"))
        ckpt = DistributedCheckpointer(
            _dcp_dir(root),
            mode="sharded",
            keep_last=2,
            async_save=async_save,
            handle_signals=False,
        )
        for step in range(1, steps + 1):
            mark(f"BEGIN {step}")
            ckpt.save(_tensors(step), step=step)
            ckpt.flush()  # async: the marker is written once the future is done
            mark(f"DURABLE {step}")
        ckpt.close()
        # As a torchrun script ends: without it, gloo's threads may outlive the interpreter's
        # teardown and abort the process ("terminate called without an active exception").
        importlib.import_module("torch.distributed").destroy_process_group()

    return run


def _load_outlive_dcp(root: Path) -> Loaded:
    from outlive.ckpt.integrations.dist_sharded import load_latest_sharded

    _init_gloo()
    template = _tensors(0)
    template["blob"] = template["blob"].clone().zero_()
    # group=None (the documented default) fails in get_global_rank: pass the world explicitly
    world = importlib.import_module("torch.distributed").group.WORLD
    step = load_latest_sharded(template, _dcp_dir(root), group=world, checksums=True)
    if step is None:
        return None, None
    return int(template["step"]), {
        "step": int(template["step"]),
        "blob": template["blob"].numpy().tobytes(),
    }


def _steps_newest_first(directory: Path) -> List[Tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = [(_STEP_DIR.match(p.name), p) for p in directory.iterdir()]
    return sorted(((int(m.group(1)), p) for m, p in found if m), reverse=True)


def _marked(step_dir: Path, step: int) -> bool:
    try:
        return bool(json.loads((step_dir / _MARKER).read_bytes())["step"] == step)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _load_step(step_dir: Path, step: int) -> Loaded:
    dcp = _dcp()

    template = _tensors(0)
    template["blob"] = template["blob"].clone().zero_()
    dcp.load(template, storage_reader=dcp.FileSystemReader(str(step_dir)), no_dist=True)
    loaded = int(template["step"])
    return loaded, {"step": loaded, "blob": template["blob"].numpy().tobytes()}


def _load_marked(root: Path) -> Loaded:
    for step, step_dir in _steps_newest_first(_dcp_dir(root)):
        if _marked(step_dir, step):
            return _load_step(step_dir, step)
    return None, None


def _load_metadata(root: Path) -> Loaded:
    for step, step_dir in _steps_newest_first(_dcp_dir(root)):
        if (step_dir / ".metadata").exists():
            return _load_step(step_dir, step)
    return None, None


DCP_WORKLOADS = (
    Workload(
        "outlive_dcp",
        "DistributedCheckpointer(mode='sharded', keep_last=2): DCP + commit marker",
        _run_outlive_dcp(False),
        _load_outlive_dcp,
        needs=("torch",),
    ),
    Workload(
        "outlive_dcp_async",
        "the same with async_save=True (dcp.async_save, marker once the future is done)",
        _run_outlive_dcp(True),
        _load_outlive_dcp,
        needs=("torch",),
    ),
    Workload(
        "dcp_marker",
        "DCP save into a step directory, then a commit marker (outlive's durable write)",
        _run(True, True),
        _load_marked,
        needs=("torch",),
    ),
    Workload(
        "dcp_marker_trusting_dcp",
        "the same, trusting DCP's own fsyncs (its .metadata fsync precedes the bytes)",
        _run(True, False),
        _load_marked,
        safe=False,
        needs=("torch",),
    ),
    Workload(
        "dcp_no_marker",
        "DCP save into a step directory; newest with .metadata wins",
        _run(False, False),
        _load_metadata,
        safe=False,
        needs=("torch",),
    ),
)
