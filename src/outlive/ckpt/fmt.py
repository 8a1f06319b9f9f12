"""The on-disk checkpoint format: a fixed header, then the payload, verified by SHA-256.

A torn or bit-flipped file must be detected on load rather than unpickled, so the header carries the
payload length and a SHA-256 over header and payload. Layout of version 2 (big-endian), written
since the async saver; version 1 (no metric field, a 60-byte header) is still read::

    0   8  magic           b"\\x89OLCKPT\\n" (a high byte and a newline catch text-mode mangling)
    8   2  format version  2
    10  2  flags           bit 0: the metric field holds a value
    12  8  step
    20  8  payload length  bytes that follow the header
    28  8  metric          float64 used to keep the best-K checkpoints (NaN when absent)
    36 32  SHA-256         of bytes 0..36 followed by the payload
    68  .  payload         see codec.py (v1: one pickle, protocol 4)
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from outlive.errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_STEP",
    "Header",
    "Readable",
    "checkpoint_name",
    "encode_header",
    "header_prefix",
    "parse_checkpoint_name",
    "parse_header",
    "parse_tmp_name",
    "read_header",
    "tmp_name",
    "verify",
    "verify_file",
]

MAGIC = b"\x89OLCKPT\n"
FORMAT_VERSION = 2
MAX_STEP = 2**63 - 1
FLAG_METRIC = 0x1

_COMMON = struct.Struct(">8sHHQQ")  # magic, version, flags, step, payload length
_METRIC = struct.Struct(">d")
_DIGEST_SIZE = 32
_PREFIX_SIZE = {1: _COMMON.size, 2: _COMMON.size + _METRIC.size}
HEADER_SIZE = _PREFIX_SIZE[FORMAT_VERSION] + _DIGEST_SIZE
_MAX_HEADER_SIZE = max(_PREFIX_SIZE.values()) + _DIGEST_SIZE
_HASH_CHUNK_BYTES = 8 * 1024 * 1024

_NAME_RE = re.compile(r"^step-(\d{12,})\.ckpt$")
_TMP_RE = re.compile(r"^\.step-\d{12,}\.ckpt\.tmp-(\d+)-[0-9a-f]+$")


class Readable(Protocol):
    """An open binary file: what reading a checkpoint needs of it."""

    def read(self, size: int = ..., /) -> bytes: ...

    def readinto(self, buffer: Any, /) -> int | None: ...

    def seek(self, offset: int, whence: int = ..., /) -> int: ...


@dataclass(frozen=True)
class Header:
    """A parsed header; ``size`` is its length in the file, ``prefix`` the hashed bytes."""

    version: int
    step: int
    payload_len: int
    metric: float | None
    digest: bytes
    prefix: bytes

    @property
    def size(self) -> int:
        return len(self.prefix) + _DIGEST_SIZE


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


def header_prefix(step: int, payload_len: int, metric: float | None = None) -> bytes:
    """The hashed part of a current-version header (everything but the digest)."""
    flags = 0 if metric is None else FLAG_METRIC
    value = math.nan if metric is None else float(metric)
    common = _COMMON.pack(MAGIC, FORMAT_VERSION, flags, step, payload_len)
    return common + _METRIC.pack(value)


def encode_header(step: int, payload: bytes, metric: float | None = None) -> bytes:
    """The whole header that goes in front of ``payload`` for a checkpoint of ``step``."""
    prefix = header_prefix(step, len(payload), metric)
    digest = hashlib.sha256(prefix)
    digest.update(payload)
    return prefix + digest.digest()


def parse_header(data: bytes) -> Header:
    """Parse the header at the start of ``data`` (which may hold more); CheckpointError if bad."""
    if len(data) < _COMMON.size:
        raise CheckpointError(
            f"file is {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header (torn write)"
        )
    magic, version, flags, step, payload_len = _COMMON.unpack_from(data, 0)
    if magic != MAGIC:
        raise CheckpointError("file does not start with the outlive checkpoint magic")
    if version not in _PREFIX_SIZE:
        raise CheckpointError(
            f"format version {version} is not one this outlive reads ({sorted(_PREFIX_SIZE)})"
        )
    prefix_size = _PREFIX_SIZE[version]
    if len(data) < prefix_size + _DIGEST_SIZE:
        raise CheckpointError(
            f"file is {len(data)} bytes, shorter than the {prefix_size + _DIGEST_SIZE}-byte "
            "header (torn write)"
        )
    metric: float | None = None
    if version >= 2 and flags & FLAG_METRIC:
        metric = _METRIC.unpack_from(data, _COMMON.size)[0]
    return Header(
        version=version,
        step=step,
        payload_len=payload_len,
        metric=metric,
        digest=bytes(data[prefix_size : prefix_size + _DIGEST_SIZE]),
        prefix=bytes(data[:prefix_size]),
    )


def _check_step(header: Header, expected_step: int | None) -> None:
    if expected_step is not None and header.step != expected_step:
        raise CheckpointError(
            f"header says step {header.step} but the file name says step {expected_step}"
        )


def _check_length(header: Header, file_size: int) -> None:
    if file_size != header.size + header.payload_len:
        raise CheckpointError(
            f"file is {file_size} bytes but its header announces "
            f"{header.size + header.payload_len} (torn or truncated write)"
        )


def verify(data: bytes, expected_step: int | None = None) -> tuple[int, memoryview]:
    """Check a whole checkpoint file's bytes and return (step, payload).

    Raises CheckpointError naming what does not hold (torn write, bit flip, foreign file).
    """
    header = parse_header(data)
    _check_length(header, len(data))
    view = memoryview(data)
    digest = hashlib.sha256(header.prefix)
    digest.update(view[header.size :])
    if digest.digest() != header.digest:
        raise CheckpointError("SHA-256 does not match the contents (corrupted bytes)")
    _check_step(header, expected_step)
    return header.step, view[header.size :]


def read_header(f: Readable) -> Header:
    """Parse the header of an open checkpoint file (its position is left after the header)."""
    f.seek(0)
    data = f.read(_MAX_HEADER_SIZE)
    header = parse_header(data)
    f.seek(header.size)
    return header


def verify_file(f: Readable, file_size: int, expected_step: int | None = None) -> Header:
    """Stream-check an open checkpoint file without holding it in memory; returns its header.

    The caller reads the payload from the same descriptor afterwards: committed files are never
    rewritten in place, so what was hashed is what will be read.
    """
    header = read_header(f)
    _check_length(header, file_size)
    digest = hashlib.sha256(header.prefix)
    buffer = bytearray(min(_HASH_CHUNK_BYTES, max(header.payload_len, 1)))
    view = memoryview(buffer)
    remaining = header.payload_len
    while remaining > 0:
        n = f.readinto(view[: min(remaining, len(buffer))])
        if not n:
            raise CheckpointError("file ended before its announced length (truncated)")
        digest.update(view[:n])
        remaining -= n
    if digest.digest() != header.digest:
        raise CheckpointError("SHA-256 does not match the contents (corrupted bytes)")
    _check_step(header, expected_step)
    f.seek(header.size)
    return header
