"""What a recorded workload is: a save path run under strace, and its loader on a disk image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

__all__ = ["STEPS", "Loaded", "Mark", "Workload", "expected_state"]

STEPS = 3
_BLOB_BYTES = 6000  # a dozen sectors: room for torn writes

Mark = Callable[[str], None]
Loaded = Tuple[int | None, Any]  # (step, state as saved), (None, None) for "nothing to load"


@dataclass(frozen=True)
class Workload:
    """A save path: ``run(root, mark, steps)`` under strace, ``load(root)`` on a disk image."""

    name: str
    description: str
    run: Callable[[Path, Mark, int], None]
    load: Callable[[Path], Loaded]
    safe: bool = True  # outlive's (goal: no bad state) or an unsafe peer shown for contrast
    needs: Tuple[str, ...] = ()


def expected_state(step: int) -> Dict[str, Any]:
    """The state every workload saves at ``step``: the content check compares against it."""
    seed = hashlib.sha256(f"step {step}".encode()).digest()
    blob = (seed * (_BLOB_BYTES // len(seed) + 1))[:_BLOB_BYTES]
    return {"step": step, "blob": blob}
