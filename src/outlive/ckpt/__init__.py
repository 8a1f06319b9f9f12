"""The in-job checkpoint library: ``Checkpointer`` and ``progress()``, standard library only.

These files are shipped as-is next to the job on boxes where outlive is not installed, so they
must import nothing outside the standard library at import time and keep Python 3.8 syntax;
numpy and torch are imported inside the functions that meet their arrays, and the framework
integrations (``outlive.ckpt.integrations``) only when the job imports them.

    fmt        on-disk format: header, CRC-32 (or SHA-256) check, file names
    codec      the payload: a skeleton pickle plus the raw bytes of arrays and tensors
    device_copy  CUDA tensors: copies on a side stream into pinned buffers, no training sync
    durable    atomic + durable commit (tmp, fsync, rename, fsync dir), free-space check
    async_io   the background persist: one in flight, errors raised on the next call
    cadence    due(): Young/Daly interval from the measured persist time and the MTBF
    retention  keep the last N and the best K by metric
    signals    preemption signals → a flag, never a save inside the handler
    state      full training state: RNGs, model/optimizer/scheduler/scaler/EMA, sampler
    core       Checkpointer, Restored, SaveStats
    heartbeat  progress() → $OUTLIVE_PROGRESS_FILE
"""

from __future__ import annotations

from outlive.ckpt.cadence import MTBF_ENV, daly_interval_s
from outlive.ckpt.core import (
    CKPT_DIR_ENV,
    GRACE_ENV,
    REQUEUE_EXIT_CODE,
    Checkpointer,
    Restored,
    SaveStats,
)
from outlive.ckpt.heartbeat import PROGRESS_FILE_ENV, ProgressWriter, progress
from outlive.ckpt.state import (
    ResumableSampler,
    Resumed,
    capture_rng,
    capture_training_state,
    restore_rng,
    restore_training_state,
)

__all__ = [
    "CKPT_DIR_ENV",
    "GRACE_ENV",
    "MTBF_ENV",
    "PROGRESS_FILE_ENV",
    "REQUEUE_EXIT_CODE",
    "Checkpointer",
    "ProgressWriter",
    "Restored",
    "ResumableSampler",
    "Resumed",
    "SaveStats",
    "capture_rng",
    "capture_training_state",
    "daly_interval_s",
    "progress",
    "restore_rng",
    "restore_training_state",
]
