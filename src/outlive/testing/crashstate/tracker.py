"""Turn syscalls into ``Op``s on the recorded tree: follow paths, fds and file offsets.

The tracker keeps the tree as the running program saw it (the page cache), so each call can be
named by inode: an ``openat`` that creates ``a.tmp`` becomes ``Create``, a ``write`` on its fd a
``Write`` at the fd's offset, a ``rename`` a ``Rename``. Calls outside the root are ignored,
except writes to the marker file, which become ``Marker``s. A call under the root that the model
cannot express (symlinks, fallocate, copy_file_range) raises LogError rather than being skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

from outlive.testing.crashstate.ops import (
    ROOT_INO,
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
from outlive.testing.crashstate.strace import Fd, LogError, Syscall

__all__ = ["Tracker"]

_UNSUPPORTED = {
    "symlink",
    "symlinkat",
    "fallocate",
    "copy_file_range",
    "sendfile",
    "splice",
}


@dataclass
class _Description:
    """An open file description: shared by dup'ed fds, so they share the offset."""

    ino: int
    offset: int
    append: bool


class Tracker:
    """Feed syscalls in order with ``feed``; ``ops`` holds the recording."""

    def __init__(self, root: str, image: Image, paths: Dict[str, int], marker_path: str) -> None:
        self.root = root.rstrip("/")
        self.marker_path = marker_path
        self.ops: List[Op] = []
        self._paths = dict(paths)  # relative path → inode, as the program sees the tree now
        self._dirs = set(image.dirs)
        self._sizes = {ino: len(data) for ino, data in image.data.items()}
        self._next_ino = max([*paths.values(), ROOT_INO]) + 1
        self._fds: Dict[Tuple[int, str], _Description] = {}
        self._marker_buffer = b""

    # -- paths -----------------------------------------------------------------------------

    def _rel(self, path: str) -> str | None:
        """``path`` relative to the root, or None when outside it."""
        path = os.path.normpath(path)
        if path == self.root:
            return ""
        if path.startswith(self.root + "/"):
            return path[len(self.root) + 1 :]
        return None

    def _resolve(self, dir_arg: object, path_arg: object) -> str:
        if not isinstance(path_arg, bytes):
            raise LogError(f"expected a path, got {path_arg!r}")
        path = path_arg.decode("utf-8", "surrogateescape")
        if os.path.isabs(path):
            return path
        if not isinstance(dir_arg, Fd):
            raise LogError(f"a relative path {path!r} with no directory fd")
        return os.path.join(dir_arg.path, path)

    def _entry(self, rel: str) -> Tuple[int, str]:
        parent, _, name = rel.rpartition("/")
        if parent not in self._paths:
            raise LogError(f"{rel!r}: its directory was never seen")
        return self._paths[parent], name

    def _forget(self, rel: str) -> None:
        for path in [p for p in self._paths if p == rel or p.startswith(rel + "/")]:
            del self._paths[path]

    # -- fds -------------------------------------------------------------------------------

    def _desc(self, fd: object) -> _Description | None:
        if not isinstance(fd, Fd):
            raise LogError(f"expected an fd, got {fd!r}")
        return self._fds.get((fd.number, fd.path))

    # -- the calls -------------------------------------------------------------------------

    def feed(self, call: Syscall) -> None:
        handler = getattr(self, "_on_" + call.name, None)
        if call.name in _UNSUPPORTED:
            paths = [a.path for a in call.args if isinstance(a, Fd)]
            paths += [os.fsdecode(a) for a in call.args if isinstance(a, bytes)]
            if any(self._rel(p) is not None for p in paths):
                raise LogError(f"{call.name} under the recorded root is not modelled")
            return
        if handler is not None:
            handler(call)

    def _open(self, call: Syscall, flags: str) -> None:
        if call.ret_path is None:
            return
        rel = self._rel(call.ret_path)
        if rel is None:
            return
        ino = self._paths.get(rel)
        if ino is None:
            parent, name = self._entry(rel)
            ino, self._next_ino = self._next_ino, self._next_ino + 1
            self._paths[rel] = ino
            self._sizes[ino] = 0
            self.ops.append(Create(parent, name, ino))
        elif "O_TRUNC" in flags and ino not in self._dirs and self._sizes.get(ino, 0) > 0:
            self._sizes[ino] = 0
            self.ops.append(Truncate(ino, 0))
        self._fds[(call.ret, call.ret_path)] = _Description(ino, 0, "O_APPEND" in flags)

    def _on_openat(self, call: Syscall) -> None:
        self._open(call, str(call.args[2]))

    def _on_open(self, call: Syscall) -> None:
        self._open(call, str(call.args[1]))

    def _on_creat(self, call: Syscall) -> None:
        self._open(call, "O_CREAT|O_TRUNC")

    def _on_close(self, call: Syscall) -> None:
        fd = call.args[0]
        if isinstance(fd, Fd):
            self._fds.pop((fd.number, fd.path), None)

    def _dup(self, call: Syscall) -> None:
        desc = self._desc(call.args[0])
        if desc is not None and call.ret_path is not None:
            self._fds[(call.ret, call.ret_path)] = desc

    _on_dup = _on_dup2 = _on_dup3 = _dup

    def _on_fcntl(self, call: Syscall) -> None:
        if str(call.args[1]).startswith("F_DUPFD"):
            self._dup(call)

    def _on_lseek(self, call: Syscall) -> None:
        desc = self._desc(call.args[0])
        if desc is not None:
            desc.offset = call.ret

    def _write(self, desc: _Description, data: bytes, offset: int) -> None:
        if data:
            self.ops.append(Write(desc.ino, offset, data))
            self._sizes[desc.ino] = max(self._sizes.get(desc.ino, 0), offset + len(data))

    def _marker(self, call: Syscall, data: bytes) -> bool:
        fd = call.args[0]
        if not (isinstance(fd, Fd) and fd.path == self.marker_path):
            return False
        self._marker_buffer += data
        *lines, self._marker_buffer = self._marker_buffer.split(b"\n")
        self.ops.extend(Marker(line.decode()) for line in lines)
        return True

    def _on_write(self, call: Syscall) -> None:
        data = call.args[1]
        if not isinstance(data, bytes) or self._marker(call, data[: call.ret]):
            return
        desc = self._desc(call.args[0])
        if desc is None:
            return
        offset = self._sizes.get(desc.ino, 0) if desc.append else desc.offset
        self._write(desc, data[: call.ret], offset)
        desc.offset = offset + call.ret

    _on_writev = _on_write

    def _on_pwrite64(self, call: Syscall) -> None:
        desc = self._desc(call.args[0])
        data = call.args[1]
        if desc is not None and isinstance(data, bytes):
            self._write(desc, data[: call.ret], int(str(call.args[3])))

    _on_pwritev = _on_pwritev2 = _on_pwrite64

    def _truncate(self, ino: int, size: int) -> None:
        self._sizes[ino] = size
        self.ops.append(Truncate(ino, size))

    def _on_ftruncate(self, call: Syscall) -> None:
        desc = self._desc(call.args[0])
        if desc is not None:
            self._truncate(desc.ino, int(str(call.args[1])))

    def _on_truncate(self, call: Syscall) -> None:
        rel = self._rel(self._resolve(None, call.args[0]))
        if rel is not None:
            self._truncate(self._paths[rel], int(str(call.args[1])))

    def _on_fsync(self, call: Syscall) -> None:
        fd = call.args[0]
        if not isinstance(fd, Fd):
            return
        rel = self._rel(fd.path)
        if rel is None:
            return
        desc = self._desc(fd)
        ino = desc.ino if desc is not None else self._paths.get(rel)
        if ino is not None:  # None: an unlinked file ("path (deleted)"), unreachable on any disk
            self.ops.append(Fsync(ino))

    _on_fdatasync = _on_fsync

    def _on_sync(self, call: Syscall) -> None:
        self.ops.append(Sync())

    _on_syncfs = _on_sync

    def _rename(self, old: str, new: str) -> None:
        old_rel, new_rel = self._rel(old), self._rel(new)
        if old_rel is None and new_rel is None:
            return
        if old_rel is None or new_rel is None:
            raise LogError(f"a rename across the recorded root: {old} -> {new}")
        ino = self._paths[old_rel]
        self.ops.append(Rename(self._entry(old_rel), self._entry(new_rel), ino))
        moved = {
            p: i for p, i in self._paths.items() if p == old_rel or p.startswith(old_rel + "/")
        }
        self._forget(new_rel)
        self._forget(old_rel)
        for path, child in moved.items():
            self._paths[new_rel + path[len(old_rel) :]] = child
        old, new = os.path.normpath(old), os.path.normpath(new)
        for key in list(self._fds):  # from now on -y shows these fds under the new name
            if key[1] == old or key[1].startswith(old + "/"):
                self._fds[(key[0], new + key[1][len(old) :])] = self._fds.pop(key)

    def _on_rename(self, call: Syscall) -> None:
        self._rename(self._resolve(None, call.args[0]), self._resolve(None, call.args[1]))

    def _on_renameat(self, call: Syscall) -> None:
        if len(call.args) > 4 and "RENAME_EXCHANGE" in str(call.args[4]):
            raise LogError("renameat2(RENAME_EXCHANGE) is not modelled")
        a = call.args
        self._rename(self._resolve(a[0], a[1]), self._resolve(a[2], a[3]))

    _on_renameat2 = _on_renameat

    def _unlink(self, path: str) -> None:
        rel = self._rel(path)
        if rel is None:
            return
        self.ops.append(Unlink(*self._entry(rel)))
        self._forget(rel)

    def _on_unlink(self, call: Syscall) -> None:
        self._unlink(self._resolve(None, call.args[0]))

    _on_rmdir = _on_unlink

    def _on_unlinkat(self, call: Syscall) -> None:
        self._unlink(self._resolve(call.args[0], call.args[1]))

    def _mkdir(self, path: str) -> None:
        rel = self._rel(path)
        if rel is None:
            return
        parent, name = self._entry(rel)
        ino, self._next_ino = self._next_ino, self._next_ino + 1
        self._paths[rel] = ino
        self._dirs.add(ino)
        self.ops.append(Create(parent, name, ino, is_dir=True))

    def _on_mkdir(self, call: Syscall) -> None:
        self._mkdir(self._resolve(None, call.args[0]))

    def _on_mkdirat(self, call: Syscall) -> None:
        self._mkdir(self._resolve(call.args[0], call.args[1]))

    def _link(self, old: str, new: str) -> None:
        old_rel, new_rel = self._rel(old), self._rel(new)
        if new_rel is None:
            return
        if old_rel is None:
            raise LogError(f"a hard link into the recorded root from outside: {old}")
        ino = self._paths[old_rel]
        self._paths[new_rel] = ino
        self.ops.append(Link(*self._entry(new_rel), ino))

    def _on_link(self, call: Syscall) -> None:
        self._link(self._resolve(None, call.args[0]), self._resolve(None, call.args[1]))

    def _on_linkat(self, call: Syscall) -> None:
        a = call.args
        self._link(self._resolve(a[0], a[1]), self._resolve(a[2], a[3]))
