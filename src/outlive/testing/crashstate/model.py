"""Every disk state a power cut could leave, from a recording, under POSIX/ext4 ordering rules.

The rules (docs/power-cut.md explains them and what a real ext4 may do beyond them):

1. The crash happens after any prefix of the recorded operations; nothing after it happened.
2. What the disk held before the recording is durable.
3. A file's data operations (write, truncate) are durable once an fsync/fdatasync of that file
   follows them; before that, each one may be lost, applied whole, torn (any subset of its
   512-byte sectors reached the disk) or "zeroed" (the size grew but the data did not arrive,
   as ext4's delayed allocation shows after a crash), independently of the others.
4. A directory operation (create, mkdir, rename, unlink, rmdir, link) is durable once an fsync of
   its directory follows it (for a rename: of the destination directory); before that it may be
   lost. Pending ones persist in order (a prefix, as a journal commits them), or all but one
   (reordered). A rename is atomic: the new name points at the file and the old one is gone, or
   neither. A file's fsync makes its data durable, not its name.
5. sync()/syncfs() makes everything before it durable.

Within a prefix the enumeration is systematic but bounded: each choice of directory operations
(all, every in-order prefix, all but one) is crossed with each choice of data (all applied, all
lost, per file: every prefix of its pending writes with the next one lost, torn or zeroed, all but
one), plus ``random_per_prefix`` seeded random mixes of lost, torn and zeroed writes. Identical
disk images are checked once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterator, List, Sequence, Tuple, Union

from outlive.testing.crashstate.ops import (
    Create,
    Fsync,
    Image,
    Link,
    Marker,
    Op,
    Rename,
    Sync,
    Truncate,
    Unlink,
    Write,
)

__all__ = ["SECTOR_BYTES", "CrashState", "DataMode", "apply", "crash_states", "pending_after"]

SECTOR_BYTES = 512
FULL, DROP, ZERO = "full", "drop", "zero"
# A torn write keeps the sectors (indexes from the write's first byte) in the frozenset.
DataMode = Union[str, FrozenSet[int]]


@dataclass(frozen=True)
class CrashState:
    """A disk image a power cut after ``ops[:prefix]`` could leave, and how it was chosen."""

    prefix: int
    label: str
    image: Image


def _apply_write(data: bytearray, op: Write, mode: DataMode) -> None:
    end = op.offset + len(op.data)
    if mode == DROP:
        return
    if len(data) < end:
        data.extend(bytes(end - len(data)))  # a hole, or the zeroed tail of a lost append
    if mode == ZERO:
        return
    if mode == FULL:
        data[op.offset : end] = op.data
        return
    assert isinstance(mode, frozenset)
    for sector in mode:
        lo = sector * SECTOR_BYTES
        data[op.offset + lo : op.offset + lo + SECTOR_BYTES] = op.data[lo : lo + SECTOR_BYTES]


def apply(image: Image, op: Op, mode: DataMode = FULL) -> None:
    """Apply ``op`` to ``image`` in place (``mode`` for a write: full, lost, zeroed or torn)."""
    if isinstance(op, Create):
        image.entries[(op.parent, op.name)] = op.ino
        if op.is_dir:
            image.dirs.add(op.ino)
        else:
            image.data.setdefault(op.ino, bytearray())
    elif isinstance(op, Rename):
        if op.src != op.dst:
            image.entries.pop(op.src, None)
            image.entries[op.dst] = op.ino
    elif isinstance(op, Unlink):
        image.entries.pop((op.parent, op.name), None)
    elif isinstance(op, Link):
        image.entries[(op.parent, op.name)] = op.ino
    elif isinstance(op, Write):
        _apply_write(image.data.setdefault(op.ino, bytearray()), op, mode)
    elif isinstance(op, Truncate) and mode != DROP:
        data = image.data.setdefault(op.ino, bytearray())
        del data[op.size_bytes :]
        data.extend(bytes(op.size_bytes - len(data)))


def _dir_of(op: Op) -> int | None:
    if isinstance(op, (Create, Unlink, Link)):
        return op.parent
    if isinstance(op, Rename):
        return op.dst[0]
    return None


def pending_after(ops: Sequence[Op], prefix: int) -> List[bool]:
    """For each op of ``ops[:prefix]``: True when a power cut after the prefix may lose it."""
    pending = [False] * prefix
    synced_inos: set[int] = set()
    synced_all = False
    for j in range(prefix - 1, -1, -1):
        op = ops[j]
        if isinstance(op, Fsync):
            synced_inos.add(op.ino)
        elif isinstance(op, Sync):
            synced_all = True
        elif isinstance(op, (Write, Truncate)):
            pending[j] = not (synced_all or op.ino in synced_inos)
        elif not isinstance(op, Marker):
            pending[j] = not (synced_all or _dir_of(op) in synced_inos)
    return pending


def _sectors(op: Write) -> int:
    return max(1, -(-len(op.data) // SECTOR_BYTES))


Choice = Tuple[str, Dict[int, DataMode]]


def _file_choices(indexes: List[int], ops: Sequence[Op]) -> Iterator[Choice]:
    """One file's pending data ops: every prefix with the next lost/torn/zeroed; all but one."""
    for j, index in enumerate(indexes):
        kept: Dict[int, DataMode] = {i: FULL for i in indexes[:j]}
        kept.update({i: DROP for i in indexes[j:]})
        yield f"first {j} kept", dict(kept)
        op = ops[index]
        if isinstance(op, Write):
            half = frozenset(range(_sectors(op) // 2 or 1)) if _sectors(op) > 1 else frozenset()
            yield f"first {j} kept, next torn", {**kept, index: half}
            yield f"first {j} kept, next zeroed", {**kept, index: ZERO}
        if len(indexes) > 1:
            yield f"all but #{j}", {i: (DROP if i == index else FULL) for i in indexes}


def _random_mode(op: Op, rng: random.Random) -> DataMode:
    if not isinstance(op, Write):
        return rng.choice((FULL, DROP))
    roll = rng.random()
    if roll < 0.25:
        return FULL
    if roll < 0.5:
        return DROP
    if roll < 0.65:
        return ZERO
    return frozenset(s for s in range(_sectors(op)) if rng.random() < 0.5)


def _data_choices(
    ops: Sequence[Op], pending: List[int], rng: random.Random, random_count: int
) -> List[Tuple[str, Dict[int, DataMode]]]:
    by_ino: Dict[int, List[int]] = {}
    for j in pending:
        op = ops[j]
        assert isinstance(op, (Write, Truncate))
        by_ino.setdefault(op.ino, []).append(j)
    choices: List[Tuple[str, Dict[int, DataMode]]] = [("data all", {})]
    if not pending:
        return choices
    choices.append(("data none", {j: DROP for j in pending}))
    for ino, indexes in by_ino.items():
        for label, modes in _file_choices(indexes, ops):
            choices.append((f"ino {ino}: {label}", modes))
    for n in range(random_count):
        choices.append((f"random #{n}", {j: _random_mode(ops[j], rng) for j in pending}))
    return choices


def _dir_choices(pending: List[int]) -> List[Tuple[str, FrozenSet[int]]]:
    choices = [("dirs all", frozenset(pending))]
    for i in range(len(pending)):
        choices.append((f"dirs first {i}", frozenset(pending[:i])))
        if len(pending) > 1:
            choices.append((f"dirs all but #{i}", frozenset(pending) - {pending[i]}))
    return choices


def crash_states(
    initial: Image, ops: Sequence[Op], *, seed: int = 0, random_per_prefix: int = 4
) -> Iterator[CrashState]:
    """Every crash state of ``ops`` under the rules above; images may repeat across prefixes."""
    rng = random.Random(seed)
    for prefix in range(len(ops) + 1):
        if prefix and isinstance(ops[prefix - 1], Marker):
            continue  # the same disk as the prefix before it
        pending = pending_after(ops, prefix)
        dir_pending = [j for j in range(prefix) if pending[j] and _dir_of(ops[j]) is not None]
        data_pending = [j for j in range(prefix) if pending[j] and _dir_of(ops[j]) is None]
        data_choices = _data_choices(ops, data_pending, rng, random_per_prefix)
        for dir_label, dir_kept in _dir_choices(dir_pending):
            for data_label, modes in data_choices:
                image = initial.copy()
                for j in range(prefix):
                    op = ops[j]
                    if not pending[j]:
                        apply(image, op)
                    elif _dir_of(op) is None:
                        apply(image, op, modes.get(j, FULL))
                    elif j in dir_kept:
                        apply(image, op)
                yield CrashState(prefix, f"{dir_label}; {data_label}", image)
