"""The in-job checkpoint library: ``Checkpointer`` and ``progress()``, standard library only.

These files are shipped as-is next to the job on boxes where outlive is not installed, so they
must import nothing outside the standard library and keep Python 3.8 syntax.

    fmt        on-disk format: header, SHA-256, file names
    durable    atomic + durable commit (tmp, fsync, rename, fsync dir), free-space check
    signals    preemption signals → a flag, never a save inside the handler
    core       Checkpointer, Restored
    heartbeat  progress() → $OUTLIVE_PROGRESS_FILE
"""

from __future__ import annotations

from outlive.ckpt.core import CKPT_DIR_ENV, REQUEUE_EXIT_CODE, Checkpointer, Restored
from outlive.ckpt.heartbeat import PROGRESS_FILE_ENV, ProgressWriter, progress

__all__ = [
    "CKPT_DIR_ENV",
    "PROGRESS_FILE_ENV",
    "REQUEUE_EXIT_CODE",
    "Checkpointer",
    "ProgressWriter",
    "Restored",
    "progress",
]
