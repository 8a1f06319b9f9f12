"""``progress()``: one JSON line per call to $OUTLIVE_PROGRESS_FILE, whose mtime is the heartbeat.

Each line is one O_APPEND write, so lines from several processes (ranks) do not interleave and a
reader never sees half a buffered line (U43). Progress is telemetry: a failing write is logged
once and never stops the training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from typing import Dict

from outlive import wire

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


class ProgressWriter:
    """Appends progress records to one file (or nowhere when ``path`` is None)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self._fd: int | None = None
        self._fd_pid = -1
        self._failed = False
        self._lock = threading.Lock()

    def write(self, step: int, metrics: Dict[str, object]) -> None:
        """Append ``{"ts", "step", **metrics}`` as one line; a no-op without a path."""
        if self.path is None:
            return
        record: Dict[str, object] = {"ts": round(time.time(), 3), "step": int(step)}
        for key, value in metrics.items():
            if key in record:
                raise ValueError(f"progress() metric name {key!r} is reserved; rename it")
            record[key] = _jsonable(value)
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            try:
                fd = self._open()
                os.write(fd, line)
            except OSError as exc:
                self._close_locked()
                if not self._failed:
                    self._failed = True
                    _log.warning("progress file %s cannot be written: %s", self.path, exc)

    def _open(self) -> int:
        # Reopen after fork: a child must not share (and later close) the parent's descriptor.
        if self._fd is None or self._fd_pid != os.getpid():
            if self.path is None:  # pragma: no cover - guarded by write()
                raise OSError("no progress path")
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, 0o644)
            self._fd_pid = os.getpid()
        return self._fd

    def _close_locked(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def close(self) -> None:
        """Close the file; a later write reopens it."""
        with self._lock:
            self._close_locked()


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
