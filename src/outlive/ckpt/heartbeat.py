"""``progress()``: one JSON line per call to $OUTLIVE_PROGRESS_FILE, whose mtime is the heartbeat,
and the same record's numbers as one binary frame in its sidecar (``<file>.bin``,
:mod:`outlive.ckpt.frames`), which the dashboard charts without parsing JSON.

Each line and each frame is one O_APPEND write, so lines from several processes (ranks) do not
interleave and a reader never sees half a buffered line (U43). Progress is telemetry: a failing
write is logged once and never stops the training; a sidecar that failed once is written no more
in this process (a reader then takes the JSON lines from where the frames stop).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import threading
import time
from typing import Dict, List, Set, Tuple

from outlive import wire
from outlive.ckpt.frames import KeySet, row_value

__all__ = ["PROGRESS_FILE_ENV", "ProgressWriter", "progress"]

PROGRESS_FILE_ENV = wire.ENV_PROGRESS_FILE

_log = logging.getLogger("outlive.ckpt")


def _jsonable(value: object) -> object:
    """A JSON-safe form of a metric: numpy/torch scalars via item(), non-finite floats as text."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if not isinstance(value, float):
        item = getattr(value, "item", None)
        if callable(item):
            try:
                value = item()
            except (TypeError, ValueError, RuntimeError):
                return str(value)
        if isinstance(value, (str, bool, int)):
            return value
        if not isinstance(value, float):
            try:
                value = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return str(value)
    # NaN/inf are not JSON; a NaN loss is exactly what a watcher must see, so keep it as text.
    return value if math.isfinite(value) else str(value)


class _Appender:
    """One file opened O_APPEND, opened again in a forked child: a child must not share (and
    later close) its parent's descriptor."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._fd_pid = -1

    def fd(self) -> tuple[int, bool]:
        """The descriptor, and whether it was (re)opened by this call."""
        if self._fd is not None and self._fd_pid == os.getpid():
            return self._fd, False
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, 0o644)
        self._fd_pid = os.getpid()
        return self._fd, True

    def close(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None


class ProgressWriter:
    """Appends progress records to one file and their rows to its sidecar (or nowhere when
    ``path`` is None)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self._file = _Appender(self.path) if self.path is not None else None
        self._bin = _Sidecar(self.path + wire.PROGRESS_BIN_SUFFIX) if self.path else None
        self._failed = False
        self._lock = threading.Lock()

    def write(self, step: int, metrics: Dict[str, object]) -> None:
        """Append ``{"ts", "step", **metrics}`` as one line, and its row; a no-op without a
        path."""
        if self._file is None:
            return
        step = int(step)
        record: Dict[str, object] = {"ts": round(time.time(), 3), "step": step}
        floats: List[float] = [float(step)]  # the row's numbers
        for key, value in metrics.items():
            if key in record:
                raise ValueError(f"progress() metric name {key!r} is reserved; rename it")
            record[key] = value = _jsonable(value)
            floats.append(value if type(value) is float else row_value(value))
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            try:
                fd = self._file.fd()[0]
                written = os.write(fd, line)
                # O_APPEND put the line at the file's end, and this descriptor's offset after it
                end = os.lseek(fd, 0, os.SEEK_CUR)
            except OSError as exc:
                self._file.close()
                if not self._failed:
                    self._failed = True
                    _log.warning("progress file %s cannot be written: %s", self.path, exc)
                return
            if self._bin is not None and written == len(line):  # a short line has no row
                self._bin.append(tuple(metrics), floats, end - written, written)

    def close(self) -> None:
        """Close the files; a later write reopens them."""
        with self._lock:
            if self._file is not None:
                self._file.close()
            if self._bin is not None:
                self._bin.file.close()


class _Sidecar:
    """The frames file next to a progress file (:mod:`outlive.ckpt.frames`), written under the
    writer's lock; after one failure, written no more (frames after a torn or missing one
    would not be read)."""

    def __init__(self, path: str) -> None:
        self.file = _Appender(path)
        self._sets: Dict[Tuple[str, ...], KeySet] = {}
        self._written: Set[int] = set()  # key sets whose KEYS frame this descriptor wrote
        self._dead = False

    def append(self, names: Tuple[str, ...], floats: List[float], start: int, length: int) -> None:
        """One row of a record (its line at ``start``, ``length`` bytes), after its key set's
        KEYS frame the first time this process writes that set."""
        if self._dead:
            return
        keys = self._sets.get(names)
        if keys is None:
            keys = self._sets[names] = KeySet(("step", *names))
        row = keys.row(start, length, floats)
        try:
            fd, opened = self.file.fd()
            if opened:
                self._written = set()
            if keys.key_id not in self._written:
                _write_all(fd, keys.keys_frame)
                self._written.add(keys.key_id)
            _write_all(fd, row)
        except OSError as exc:
            self.file.close()
            self._dead = True
            _log.warning("progress frames %s cannot be written: %s", self.file.path, exc)


def _write_all(fd: int, frame: bytes) -> None:
    if os.write(fd, frame) != len(frame):
        raise OSError(errno.ENOSPC, "short write (disk full?)")


_default_writer: ProgressWriter | None = None
_default_lock = threading.Lock()


def _writer_for_env() -> ProgressWriter:
    """The module's writer, re-created when $OUTLIVE_PROGRESS_FILE changes."""
    global _default_writer
    path = os.environ.get(PROGRESS_FILE_ENV) or None
    with _default_lock:
        writer = _default_writer
        if writer is None or writer.path != path:
            if writer is not None:
                writer.close()
            writer = _default_writer = ProgressWriter(path)
        return writer


def progress(step: int, **metrics: object) -> None:
    """Record ``step`` and metrics as one JSON line in $OUTLIVE_PROGRESS_FILE (no-op if unset)."""
    _writer_for_env().write(step, metrics)
