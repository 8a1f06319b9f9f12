"""The commit-marker protocol of multi-rank (sharded) checkpoints: standard library only.

A sharded checkpoint is one directory per step written by every rank at once (PyTorch DCP), so
no single rename can publish it. A step is committed when, and only when, its directory holds a
valid commit marker; the marker is written last, by rank 0, after every rank's files are durable::

    <directory>/step-000000000120.dcp/      the step directory (name: ``step_dir_name(step)``)
        __0_0.distcp, __1_0.distcp, ...     each rank's shard files (DCP, fsynced by the writer)
        .metadata                           DCP's index, written by the coordinator (rank 0)
        outlive-commit.json                 the marker: MARKER_NAME, written last

The order of a save (``dist_sharded.save_sharded`` runs it; anything that follows it gets the
same guarantee). "fsync" is os.fsync of the file or directory named:

1. rank 0: if ``step-N.dcp/`` exists without a valid marker, remove it (unlink the marker if any,
   fsync step-N.dcp/, rmtree, fsync <directory>), then mkdir it; every rank waits for rank 0's
   verdict (a broadcast), so nobody writes into a directory being removed.
2. every rank: DCP ``FileSystemWriter(sync_files=True)`` writes ``__<rank>_<i>.distcp`` and
   fsyncs each before closing it; the coordinator (rank 0) writes ``.metadata`` as a tmp file,
   fsyncs it and renames it (checked in torch 2.13's ``filesystem.py``; DCP syncs no directory).
3. every rank: fsync its own ``__<rank>_*`` files again (already clean: cheap; rank 0 also
   ``.metadata``) and describe them as name → {size, crc32} (``describe``); all_gather the
   descriptions. Returning from this gather is the barrier: every rank's shards are durable.
4. rank 0: check that every file ``.metadata`` refers to is described; fsync step-N.dcp/ (the
   shards' entries and the ``.metadata`` rename), fsync <directory> (step-N.dcp's own entry);
   then ``write_marker``: write ``.outlive-commit.json.tmp-<pid>-<hex>``, fsync it, rename it to
   ``outlive-commit.json``, fsync step-N.dcp/. The step is committed from this rename on.
5. rank 0: ``prune`` older steps; rank 0 broadcasts its verdict and every rank returns.
   Retention never removes the newest committed step, nor anything newer than it (a save in
   flight), and removes each pruned directory's marker (synced) before its shards.

A reader (``committed_steps``, ``marker_holds``) trusts a step only if its marker parses, names
that step, and every file it lists exists with that size (and that CRC-32 when asked). A power cut
or SIGKILL at any point of 1-4 leaves no marker, or a marker whose files are all durable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import zlib
from pathlib import Path
from typing import Any, Dict, Iterable, List

from outlive.ckpt.durable import commit_file, fsync_directory

__all__ = [
    "MARKER_FORMAT",
    "MARKER_NAME",
    "committed_steps",
    "crc32_of",
    "describe",
    "fsync_file",
    "marker_holds",
    "parse_step_dir",
    "prune",
    "read_marker",
    "remove_step_dir",
    "step_dir_name",
    "write_marker",
]

MARKER_NAME = "outlive-commit.json"
MARKER_FORMAT = "outlive-dcp-commit/1"
_STEP_DIR_RE = re.compile(r"^step-(\d{12,})\.dcp$")
_CHUNK_BYTES = 8 * 1024 * 1024

_log = logging.getLogger("outlive.ckpt")

FileEntry = Dict[str, Any]  # {"size": int, "crc32": int}


def step_dir_name(step: int) -> str:
    """Directory name of a step's sharded checkpoint; zero-padded so names sort like steps."""
    return f"step-{step:012d}.dcp"


def parse_step_dir(name: str) -> int | None:
    """The step a step directory's name stands for, or None for any other name."""
    match = _STEP_DIR_RE.match(name)
    return int(match.group(1)) if match else None


def fsync_file(path: Path) -> None:
    """fsync one file (opened read-only: enough on Linux for data written by any process)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def crc32_of(path: Path) -> int:
    """zlib's CRC-32 of a file's bytes."""
    crc = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def describe(step_dir: Path, names: Iterable[str]) -> Dict[str, FileEntry]:
    """fsync each named file of ``step_dir`` and return name → {size, crc32} (step 3)."""
    entries: Dict[str, FileEntry] = {}
    for name in sorted(names):
        path = step_dir / name
        fsync_file(path)
        entries[name] = {"size": path.stat().st_size, "crc32": crc32_of(path)}
    return entries


def write_marker(
    step_dir: Path, step: int, files: Dict[str, FileEntry], *, world_size: int, **extra: Any
) -> Path:
    """Commit the marker of ``step_dir`` after syncing its entries and its parent's (step 4)."""
    fsync_directory(step_dir)  # shard entries and DCP's .metadata rename
    fsync_directory(step_dir.parent)  # the step directory's own entry
    doc = {
        "format": MARKER_FORMAT,
        "step": step,
        "world_size": world_size,
        "files": files,
        **extra,
    }
    data = json.dumps(doc, indent=1, sort_keys=True).encode()
    tmp = f".{MARKER_NAME}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    return commit_file(step_dir, MARKER_NAME, tmp, [data])  # tmp, fsync, rename, fsync dir


def read_marker(step_dir: Path) -> Dict[str, Any] | None:
    """The parsed marker of ``step_dir`` if it is one of ours and names its step, else None."""
    step = parse_step_dir(step_dir.name)
    try:
        doc = json.loads((step_dir / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    ok = (
        isinstance(doc, dict)
        and doc.get("format") == MARKER_FORMAT
        and doc.get("step") == step
        and isinstance(doc.get("files"), dict)
        and bool(doc["files"])
    )
    return doc if ok else None


def file_holds(step_dir: Path, name: str, entry: FileEntry, *, checksums: bool) -> bool:
    """Whether one listed file exists with its recorded size (and CRC-32 with ``checksums``)."""
    try:
        path = step_dir / name
        if path.stat().st_size != entry["size"]:
            return False
        return not checksums or crc32_of(path) == entry["crc32"]
    except (OSError, KeyError, TypeError):
        return False


def marker_holds(step_dir: Path, *, checksums: bool = False) -> bool:
    """Whether ``step_dir`` is committed: a valid marker whose every file matches it."""
    doc = read_marker(step_dir)
    if doc is None:
        return False
    return all(
        file_holds(step_dir, name, entry, checksums=checksums)
        for name, entry in doc["files"].items()
    )


def committed_steps(directory: Path) -> List[int]:
    """Steps whose directory has a marker that parses (files not checked), ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    steps = []
    for name in names:
        step = parse_step_dir(name)
        if step is not None and read_marker(directory / name) is not None:
            steps.append(step)
    return sorted(steps)


def remove_step_dir(step_dir: Path) -> None:
    """Delete a step directory: marker first (synced), so a half-deleted one is never trusted."""
    if not step_dir.exists():
        return
    marker = step_dir / MARKER_NAME
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
        fsync_directory(step_dir)
    shutil.rmtree(step_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        fsync_directory(step_dir.parent)


def prune(directory: Path, *, keep_last: int | None, just_committed: int) -> List[int]:
    """Delete step directories retention does not keep (step 5); returns the steps removed.

    Only steps older than the newest committed one are candidates; the newest ``keep_last``
    committed ones (the one just committed always among them) stay, and so does anything newer
    than the newest committed step (it may be a save still in flight). Uncommitted leftovers
    older than the newest committed step are removed too.
    """
    if keep_last is None:
        return []
    committed = committed_steps(directory)
    if not committed:
        return []
    newest = max(committed)
    keep = {just_committed, newest, *committed[-keep_last:]}
    try:
        names = os.listdir(directory)
    except OSError as exc:
        _log.warning("could not list %s to prune old checkpoints: %s", directory, exc)
        return []
    removed = []
    for name in names:
        step = parse_step_dir(name)
        if step is None or step >= newest or step in keep:
            continue
        try:
            remove_step_dir(directory / name)
        except OSError as exc:
            _log.warning("could not prune old checkpoint %s: %s", directory / name, exc)
            continue
        removed.append(step)
    return sorted(removed)
