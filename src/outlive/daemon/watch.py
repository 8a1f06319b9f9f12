"""Whether outlive's own source files changed since a daemon loaded them (an edit, an upgrade).

A daemon answers from the code it loaded, so it checks before every answer and retires on a
change. On Linux the kernel tells (inotify on every source directory: an event is queued as the
write happens, so a check is one non-blocking read); elsewhere, or where inotify cannot be had,
each check stats every source file and directory (~0.5 ms for outlive on a small VM).
"""

from __future__ import annotations

import os
import struct
import threading

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# inotify(7)
_IN_MODIFY, _IN_ATTRIB, _IN_MOVED_FROM, _IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
_IN_CREATE, _IN_DELETE, _IN_DELETE_SELF, _IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
_IN_Q_OVERFLOW, _IN_IGNORED, _IN_ISDIR = 0x4000, 0x8000, 0x40000000
_ENTRY = _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE  # a name came or went
_MASK = _ENTRY | _IN_MODIFY | _IN_ATTRIB | _IN_DELETE_SELF | _IN_MOVE_SELF
_ALWAYS = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_Q_OVERFLOW | _IN_IGNORED  # a watch was lost
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded


def _is_source(name: str) -> bool:
    return name.endswith((".py", ".toml"))


def _listing(path: str) -> tuple[list[str], list[str]]:
    """The source files and the sub-directories (but ``__pycache__``) of ``path``, sorted."""
    files, dirs = [], []
    with os.scandir(path) as entries:
        for entry in entries:
            if _is_source(entry.name) and entry.is_file():
                files.append(entry.name)
            elif entry.name != "__pycache__" and entry.is_dir(follow_symlinks=False):
                dirs.append(entry.name)
    return sorted(files), sorted(dirs)


def _file_sig(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _counts(mask: int, name: bytes) -> bool:
    """Whether one inotify event is a change of the sources (an editor's swap file, a
    ``__pycache__`` or a byte-code file is not)."""
    if mask & _ALWAYS:
        return True
    text = name.rstrip(b"\0").decode("utf-8", "surrogateescape")
    if mask & _IN_ISDIR:
        return bool(mask & _ENTRY) and text != "__pycache__"
    return _is_source(text)


class SourceWatch:
    """The source files under ``root`` (a package directory) as a process loaded them: build it
    before importing them; :meth:`changed` tells whether any differs now: a file's content or
    stat (an edit, an upgrade), or a module or package added, removed or renamed."""

    def __init__(self, root: str = PACKAGE_DIR, use_inotify: bool = True) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._changed = False
        self._files: dict[str, tuple[int, int, int] | None] = {}
        self._dirs: dict[str, tuple[int, tuple[list[str], list[str]]]] = {}
        stack = [root]
        while stack:
            path = stack.pop()
            mtime = os.stat(path).st_mtime_ns  # before the listing: a later change is seen
            listing = _listing(path)
            self._dirs[path] = mtime, listing
            stack += [os.path.join(path, d) for d in listing[1]]
        self._fd = _inotify(list(self._dirs)) if use_inotify else None
        if self._fd is None:
            for path, (_, (files, _dirs)) in self._dirs.items():
                self._files.update(
                    (os.path.join(path, f), _file_sig(os.path.join(path, f))) for f in files
                )

    @property
    def kernel(self) -> bool:
        """Whether the kernel reports changes (inotify), rather than a stat of every file."""
        return self._fd is not None

    def changed(self) -> bool:
        with self._lock:
            if not self._changed:
                self._changed = self._events() if self._fd is not None else self._restat()
            return self._changed

    def _events(self) -> bool:
        assert self._fd is not None
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return False
            except OSError:
                return True  # the watch is gone: take it as changed, the daemon retires
            at = 0
            while at + _EVENT.size <= len(data):
                _wd, mask, _cookie, size = _EVENT.unpack_from(data, at)
                name = data[at + _EVENT.size : at + _EVENT.size + size]
                at += _EVENT.size + size
                if _counts(mask, name):
                    return True

    def _restat(self) -> bool:
        for path, sig in self._files.items():
            if _file_sig(path) != sig:
                return True
        for path, (mtime, listing) in self._dirs.items():
            try:
                if os.stat(path).st_mtime_ns != mtime and _listing(path) != listing:
                    return True
            except OSError:
                return True
        return False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _inotify(dirs: list[str]) -> int | None:
    """A non-blocking inotify descriptor watching ``dirs``, or None where there is none."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        init, add = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError, ImportError):
        return None  # not Linux (or no ctypes): stat every file instead
    fd = int(init(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        return None
    for path in dirs:
        if add(fd, os.fsencode(path), _MASK) < 0:  # e.g. the user's watch limit is reached
            os.close(fd)
            return None
    return fd
