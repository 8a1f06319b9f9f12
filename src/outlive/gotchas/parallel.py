"""Explain a big log file on several cores: cut it at line breaks into one part per usable CPU,
scan each part in a worker process, then merge in file order (first lines stay, counts add).

Each part is scanned exactly as the whole file would be: a part starts right after a line
break, and no segment, view or carriage-return check looks across a line break, so the merged
result equals a single scan's. Only ``explain_file`` calls this, for files of at least
``PARALLEL_MIN_BYTES``; it answers None when one core is all there is.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import BinaryIO, cast

from outlive.gotchas.match import Explainer, FoundRow, Match, feed_stream
from outlive.gotchas.model import Source

__all__ = ["explain_file_in_parts", "usable_cpus"]

_MAX_PARTS = 8

_Part = tuple[str, int, int, str | None, frozenset[Source] | None]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cuts(path: str, parts: int) -> list[int]:
    """Byte offsets where the parts start: each right after a line break."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for i in range(1, parts):
            f.seek(max(size * i // parts, cuts[-1]))
            f.readline()  # to the end of the line the guess fell in
            if f.tell() >= size:
                break
            if f.tell() > cuts[-1]:
                cuts.append(f.tell())
    return cuts


class _Slice:
    """``read`` of one byte range of a file."""

    def __init__(self, f: BinaryIO, start: int, end: int) -> None:
        f.seek(start)
        self._f, self._left = f, end - start

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        return data


def _scan(part: _Part) -> tuple[int, list[FoundRow]]:
    path, start, end, platform, kinds = part
    explainer = Explainer(platform, kinds)
    with open(path, "rb") as f:
        feed_stream(explainer, cast(BinaryIO, _Slice(f, start, end)))
    return explainer.export()


def explain_file_in_parts(
    path: str | os.PathLike[str],
    platform: str | None = None,
    kinds: Collection[Source] | None = None,
    parts: int | None = None,
) -> list[Match] | None:
    """The matches of a whole file, scanned in ``parts`` (default: usable CPUs) processes;
    None when there is a single part to scan."""
    name = os.fspath(path)
    n = min(parts or usable_cpus(), _MAX_PARTS)
    cuts = _cuts(name, n) if n > 1 else [0]
    if len(cuts) < 2:
        return None
    from concurrent.futures import ProcessPoolExecutor

    size = os.path.getsize(name)
    frozen = None if kinds is None else frozenset(kinds)
    ends = [*cuts[1:], size]
    jobs: list[_Part] = [
        (name, start, end, platform, frozen) for start, end in zip(cuts, ends, strict=True)
    ]
    with ProcessPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(_scan, jobs))
    merged = Explainer(platform, kinds)
    for lines, rows in results:
        merged.absorb(rows, lines)
    return merged.matches()
