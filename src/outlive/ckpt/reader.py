"""Reading checkpoint files back: verify the check value while streaming, then decode in place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outlive.ckpt import codec, fmt
from outlive.errors import CheckpointError

__all__ = ["CorruptCheckpoint", "Restored", "is_checkpoint_file", "read_file", "verify_path"]


@dataclass(frozen=True)
class Restored:
    """A checkpoint read back from disk: the saved object, its step and its file."""

    state: Any = field(repr=False)  # may be gigabytes of arrays
    step: int
    path: Path


class CorruptCheckpoint(CheckpointError):
    """A checkpoint file that does not verify (torn, truncated, bit-flipped, foreign)."""


def verify_path(path: str | os.PathLike[str], expected_step: int | None = None) -> fmt.Header:
    """Check a file's check value without unpickling it; CorruptCheckpoint if it does not hold."""
    with open(path, "rb", buffering=0) as f:
        try:
            return fmt.verify_file(f, os.fstat(f.fileno()).st_size, expected_step)
        except CheckpointError as exc:
            raise CorruptCheckpoint(str(exc)) from exc


def read_file(path: str | os.PathLike[str], expected_step: int | None = None) -> Restored:
    """Verify and load one checkpoint file wherever it lies (integrations load by path).

    Raises FileNotFoundError / OSError when it cannot be read, CorruptCheckpoint when it does not
    verify, CheckpointError when it verifies but cannot be unpickled.
    """
    file_path = Path(path)
    with open(file_path, "rb", buffering=0) as f:
        try:
            header = fmt.verify_file(f, os.fstat(f.fileno()).st_size, expected_step)
        except CheckpointError as exc:
            raise CorruptCheckpoint(str(exc)) from exc
        try:
            state = codec.decode_file(f, header.size, header.version)
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {file_path} verified but cannot be unpickled "
                f"({type(exc).__name__}: {exc}); run it with the code and packages that "
                "saved it."
            ) from exc
    return Restored(state=state, step=header.step, path=file_path)


def is_checkpoint_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts with the outlive checkpoint magic (cheap; nothing verified)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(fmt.MAGIC)) == fmt.MAGIC
    except OSError:
        return False
