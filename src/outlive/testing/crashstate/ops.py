"""The recorded operations of a save, on inodes and directory entries, and a disk image.

A recording is a list of ``Op`` in the order the kernel completed them. Paths are gone by then:
a directory entry is ``(parent inode, name)``, so a renamed directory keeps its children, and
data operations name the inode they change, so a renamed open file is still the same file.
Inode 0 is the recorded root directory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple, Union

__all__ = [
    "ROOT_INO",
    "Create",
    "DirOp",
    "Entry",
    "Fsync",
    "Image",
    "Link",
    "Marker",
    "Op",
    "Rename",
    "Sync",
    "Truncate",
    "Unlink",
    "Write",
    "snapshot",
]

ROOT_INO = 0
Entry = Tuple[int, str]  # (parent directory inode, name)


@dataclass(frozen=True)
class Create:
    """A new file or directory (``is_dir``) ``ino`` under ``parent/name``."""

    parent: int
    name: str
    ino: int
    is_dir: bool = False


@dataclass(frozen=True)
class Rename:
    """``src`` moved to ``dst`` (replacing what ``dst`` named), atomically."""

    src: Entry
    dst: Entry
    ino: int


@dataclass(frozen=True)
class Unlink:
    """``parent/name`` removed (a file's unlink or a directory's rmdir)."""

    parent: int
    name: str


@dataclass(frozen=True)
class Link:
    """A hard link ``parent/name`` to ``ino``."""

    parent: int
    name: str
    ino: int


@dataclass(frozen=True)
class Write:
    """``data`` written into file ``ino`` at ``offset``."""

    ino: int
    offset: int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Truncate:
    """File ``ino`` cut or extended to ``size_bytes`` (O_TRUNC, ftruncate)."""

    ino: int
    size_bytes: int


@dataclass(frozen=True)
class Fsync:
    """fsync/fdatasync of ``ino``: a file's data, or a directory's entries, are now durable."""

    ino: int


@dataclass(frozen=True)
class Sync:
    """sync()/syncfs(): everything before it is durable."""


@dataclass(frozen=True)
class Marker:
    """A line the workload wrote to its marker file, e.g. ``DURABLE 3`` (not a disk change)."""

    text: str


DirOp = Union[Create, Rename, Unlink, Link]
Op = Union[Create, Rename, Unlink, Link, Write, Truncate, Fsync, Sync, Marker]


@dataclass
class Image:
    """A disk state: directory entries, which inodes are directories, and file contents."""

    entries: Dict[Entry, int] = field(default_factory=dict)
    dirs: Set[int] = field(default_factory=lambda: {ROOT_INO})
    data: Dict[int, bytearray] = field(default_factory=dict)

    def copy(self) -> Image:
        return Image(
            dict(self.entries), set(self.dirs), {k: bytearray(v) for k, v in self.data.items()}
        )

    def files(self) -> Iterator[Tuple[str, int | None]]:
        """(relative path, inode) of all reachable from the root; a directory is ("d/", None)."""
        children: Dict[int, List[Tuple[str, int]]] = {}
        for (parent, name), ino in self.entries.items():
            children.setdefault(parent, []).append((name, ino))
        stack: List[Tuple[int, str]] = [(ROOT_INO, "")]
        seen: Set[int] = set()
        while stack:
            dir_ino, prefix = stack.pop()
            if dir_ino in seen:  # a cycle only a broken recording could make
                continue
            seen.add(dir_ino)
            for name, ino in sorted(children.get(dir_ino, [])):
                path = prefix + name
                if ino in self.dirs:
                    yield path + "/", None
                    stack.append((ino, path + "/"))
                else:
                    yield path, ino

    def digest(self) -> str:
        """A hash of what a reader would see: paths and file contents."""
        h = hashlib.sha256()
        for path, ino in sorted(self.files()):
            h.update(path.encode("utf-8", "surrogateescape") + b"\0")
            if ino is not None:
                content = bytes(self.data.get(ino, b""))
                h.update(len(content).to_bytes(8, "big") + hashlib.sha256(content).digest())
        return h.hexdigest()

    def materialize(self, target: Path) -> None:
        """Write this image under ``target`` (an empty directory)."""
        for path, ino in self.files():
            dest = target / path
            if ino is None:
                dest.mkdir(exist_ok=True)
            else:
                dest.write_bytes(bytes(self.data.get(ino, b"")))


def snapshot(root: Path) -> Tuple[Image, Dict[str, int]]:
    """The image of the tree under ``root`` and its path → inode map (root is "")."""
    image = Image()
    paths: Dict[str, int] = {"": ROOT_INO}
    next_ino = 1
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        parent = paths[rel]
        for name in sorted(dirnames) + sorted(filenames):
            child_rel = os.path.join(rel, name) if rel else name
            ino, next_ino = next_ino, next_ino + 1
            paths[child_rel] = ino
            image.entries[(parent, name)] = ino
            if name in dirnames:
                image.dirs.add(ino)
            else:
                image.data[ino] = bytearray((root / child_rel).read_bytes())
    return image, paths
