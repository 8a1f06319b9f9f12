"""The one streamed SHA-256 of a file on this side (push manifests, verify, local Slurm sync):
bounded memory for multi-GB files, and stdlib-only so the launch path stays cheap to import."""

from __future__ import annotations

import hashlib
import os

HASH_BLOCK_BYTES = 1 << 20


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """SHA-256 hex digest of the file and the number of bytes read."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(HASH_BLOCK_BYTES), b""):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n
