"""The on-disk checkpoint format: a fixed header, then the pickled state.

A torn or bit-flipped file must be detected on load rather than unpickled, so the header carries the
payload length and a SHA-256 over header and payload. Layout (big-endian)::

    0   8  magic           b"\\x89OLCKPT\\n" (a high byte and a newline catch text-mode mangling)
    8   2  format version  1
    10  2  flags           0 (reserved)
    12  8  step
    20  8  payload length  bytes that follow the header
    28 32  SHA-256         of bytes 0..28 followed by the payload
    60  .  payload         pickle, protocol 4
"""

from __future__ import annotations

import hashlib
import re
import struct

from outlive.errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_STEP",
    "checkpoint_name",
    "encode_header",
    "parse_checkpoint_name",
    "parse_tmp_name",
    "tmp_name",
    "verify",
]

MAGIC = b"\x89OLCKPT\n"
FORMAT_VERSION = 1
MAX_STEP = 2**63 - 1

_FIELDS = struct.Struct(">8sHHQQ")
_DIGEST_SIZE = 32
HEADER_SIZE = _FIELDS.size + _DIGEST_SIZE

_NAME_RE = re.compile(r"^step-(\d{12,})\.ckpt$")
_TMP_RE = re.compile(r"^\.step-\d{12,}\.ckpt\.tmp-(\d+)-[0-9a-f]+$")


def checkpoint_name(step: int) -> str:
    """File name of the committed checkpoint for ``step``; zero-padded so names sort like steps."""
    return f"step-{step:012d}.ckpt"


def parse_checkpoint_name(name: str) -> int | None:
    """The step a committed checkpoint's file name stands for, or None for any other file."""
    match = _NAME_RE.match(name)
    return int(match.group(1)) if match else None


def tmp_name(final_name: str, pid: int, token: str) -> str:
    """Hidden name a checkpoint is written under before the atomic rename."""
    return f".{final_name}.tmp-{pid}-{token}"


def parse_tmp_name(name: str) -> int | None:
    """The writer's pid if ``name`` is one of our temporary files, else None."""
    match = _TMP_RE.match(name)
    return int(match.group(1)) if match else None


def encode_header(step: int, payload: bytes) -> bytes:
    """The header that goes in front of ``payload`` for a checkpoint of ``step``."""
    fields = _FIELDS.pack(MAGIC, FORMAT_VERSION, 0, step, len(payload))
    digest = hashlib.sha256(fields)
    digest.update(payload)
    return fields + digest.digest()


def verify(data: bytes, expected_step: int | None = None) -> tuple[int, memoryview]:
    """Check a whole checkpoint file's bytes and return (step, payload).

    Raises CheckpointError naming what does not hold (torn write, bit flip, foreign file).
    """
    if len(data) < HEADER_SIZE:
        raise CheckpointError(
            f"file is {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header (torn write)"
        )
    magic, version, _flags, step, payload_len = _FIELDS.unpack_from(data, 0)
    if magic != MAGIC:
        raise CheckpointError("file does not start with the outlive checkpoint magic")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"format version {version} is not one this outlive reads ({FORMAT_VERSION})"
        )
    if len(data) != HEADER_SIZE + payload_len:
        raise CheckpointError(
            f"file is {len(data)} bytes but its header announces {HEADER_SIZE + payload_len}"
            " (torn or truncated write)"
        )
    view = memoryview(data)
    digest = hashlib.sha256(view[: _FIELDS.size])
    digest.update(view[HEADER_SIZE:])
    if digest.digest() != bytes(view[_FIELDS.size : HEADER_SIZE]):
        raise CheckpointError("SHA-256 does not match the contents (corrupted bytes)")
    if expected_step is not None and step != expected_step:
        raise CheckpointError(
            f"header says step {step} but the file name says step {expected_step}"
        )
    return step, view[HEADER_SIZE:]
