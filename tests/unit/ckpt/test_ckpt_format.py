"""The file format's versions: v3 (CRC-32 by default, SHA-256 on request) is written; v1 and v2
(SHA-256) still load; every kind of damage to a v3 file is a CheckpointError that says what."""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from outlive import Checkpointer
from outlive.ckpt import codec, fmt
from outlive.ckpt.reader import CorruptCheckpoint, read_file, verify_path
from outlive.errors import CheckpointError


def _ckpt(directory: Path, **kwargs: object) -> Checkpointer:
    return Checkpointer(directory, handle_signals=False, **kwargs)  # type: ignore[arg-type]


def _state() -> dict[str, object]:
    return {"w": np.arange(1000, dtype=np.float32).reshape(10, 100), "epoch": 3}


def _payload(state: object) -> bytes:
    return b"".join(bytes(c) for c in codec.plan(state).direct().chunks())


def test_v3_with_crc32_is_written_by_default_in_the_documented_layout(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path)
    assert ckpt.digest == "crc32"
    data = ckpt.save(_state(), step=12, metric=0.5, sync=True).read_bytes()

    magic, version, flags, step, payload_len = struct.unpack_from(">8sHHQQ", data, 0)
    (metric,) = struct.unpack_from(">d", data, 28)
    algorithm, reserved = struct.unpack_from(">HH", data, 36)
    assert (magic, version, flags, step, metric) == (fmt.MAGIC, 3, 1, 12, 0.5)
    assert (algorithm, reserved) == (1, 0) and fmt.HEADER_SIZE == 72
    assert payload_len == len(data) - 72
    assert data[40:44] == struct.pack(">I", zlib.crc32(data[:40] + data[72:]))
    assert data[44:72] == bytes(28)
    header = fmt.parse_header(data)
    assert header.algorithm == "crc32" and header.version == 3 and header.metric == 0.5


def test_v3_round_trips_with_either_check(tmp_path: Path) -> None:
    for digest in ("crc32", "sha256"):
        directory = tmp_path / digest
        _ckpt(directory, digest=digest).save(_state(), step=7, sync=True)
        restored = _ckpt(directory).load_latest()  # the reader takes the check from the header
        assert restored is not None and restored.step == 7 and restored.state["epoch"] == 3
        assert np.array_equal(restored.state["w"], _state()["w"])
        header = verify_path(restored.path, expected_step=7)
        assert header.algorithm == digest and header.version == 3


def test_sha256_is_selectable_and_stored_in_full(tmp_path: Path) -> None:
    data = _ckpt(tmp_path, digest="sha256").save("x", step=1, sync=True).read_bytes()
    assert struct.unpack_from(">H", data, 36)[0] == 2
    assert data[40:72] == hashlib.sha256(data[:40] + data[72:]).digest()


def test_an_unknown_digest_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="digest must be one of"):
        _ckpt(tmp_path, digest="md5")


def _write_v2(path: Path, state: object, step: int, metric: float | None) -> None:
    """A version-2 file as the previous outlive wrote it: 36-byte prefix, SHA-256, payload."""
    payload = _payload(state)
    flags = 0 if metric is None else 1
    prefix = struct.pack(">8sHHQQ", fmt.MAGIC, 2, flags, step, len(payload))
    prefix += struct.pack(">d", math.nan if metric is None else metric)
    path.write_bytes(prefix + hashlib.sha256(prefix + payload).digest() + payload)


def test_version_2_files_still_load_and_rank(tmp_path: Path) -> None:
    _write_v2(tmp_path / fmt.checkpoint_name(4), _state(), 4, 0.25)
    _write_v2(tmp_path / fmt.checkpoint_name(5), {"epoch": 9}, 5, 0.75)
    ckpt = _ckpt(tmp_path, keep_last=None, keep_best=1)

    restored = ckpt.load_latest()
    assert restored is not None and restored.step == 5 and restored.state == {"epoch": 9}
    best = ckpt.load_best()
    assert best is not None and best.step == 4 and np.array_equal(best.state["w"], _state()["w"])
    header = verify_path(tmp_path / fmt.checkpoint_name(4))
    assert (header.version, header.algorithm, header.size) == (2, "sha256", 68)

    # A resumed run writes v3 next to them; all three load.
    ckpt.save({"epoch": 10}, step=6, sync=True)
    assert [fmt.parse_header(p.read_bytes()).version for p in sorted(tmp_path.iterdir())] == [
        2,
        2,
        3,
    ]


def test_a_damaged_v2_file_is_still_caught_by_its_sha256(tmp_path: Path) -> None:
    path = tmp_path / fmt.checkpoint_name(4)
    _write_v2(path, _state(), 4, None)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match="SHA-256 does not match"):
        read_file(path, expected_step=4)


def _damaged(data: bytes, damage: str) -> bytes:
    out = bytearray(data)
    flips = {
        "payload": len(out) - 1,
        "payload_start": fmt.HEADER_SIZE,
        "crc": 41,
        "crc_padding": 60,
        "step": 19,
        "metric": 30,
        "reserved": 39,
    }
    if damage in flips:
        out[flips[damage]] ^= 0x04
    elif damage == "truncated":
        del out[len(out) - 1000 :]
    elif damage == "truncated_header":
        del out[50:]
    elif damage == "appended":
        out += b"\0"
    elif damage == "algorithm_to_sha256":
        out[37] = 2
    elif damage == "algorithm_unknown":
        out[37] = 9
    elif damage == "foreign":
        out = bytearray(b"PK\x03\x04" + bytes(100))  # a zip someone named step-….ckpt
    return bytes(out)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("payload", "CRC-32 does not match the contents"),
        ("payload_start", "CRC-32 does not match the contents"),
        ("crc", "CRC-32 does not match the contents"),
        ("crc_padding", "CRC-32 does not match the contents"),
        ("step", "CRC-32 does not match the contents"),
        ("metric", "CRC-32 does not match the contents"),
        ("reserved", "CRC-32 does not match the contents"),
        ("algorithm_to_sha256", "SHA-256 does not match the contents"),
        ("algorithm_unknown", "check algorithm id 9 is not one this outlive knows"),
        ("truncated", "torn or truncated write"),
        ("truncated_header", "shorter than the 72-byte header"),
        ("appended", "torn or truncated write"),
        ("foreign", "does not start with the outlive checkpoint magic"),
    ],
)
def test_damage_to_a_v3_file_is_a_clear_checkpoint_error(
    tmp_path: Path, damage: str, message: str
) -> None:
    ckpt = _ckpt(tmp_path, keep_last=None)
    ckpt.save({"epoch": 1}, step=1, sync=True)
    path = ckpt.save({"w": np.ones(4096, dtype=np.float32)}, step=2, sync=True)
    bad = _damaged(path.read_bytes(), damage)
    path.write_bytes(bad)

    with pytest.raises(CheckpointError, match=message):
        fmt.verify(bad, expected_step=2)
    with pytest.raises(CheckpointError, match=f"is corrupt: .*{message}"):
        ckpt.load(2)
    restored = ckpt.load_latest()  # and resume walks back to the previous one
    assert restored is not None and restored.step == 1


def test_the_streaming_check_and_the_in_memory_check_agree(tmp_path: Path) -> None:
    # verify_file reads in chunks of 8 MiB: a payload spanning several must check the same.
    big = {"w": np.random.default_rng(0).random(2_500_000)}  # ~20 MB
    path = _ckpt(tmp_path).save(big, step=3, sync=True)
    assert verify_path(path, expected_step=3).algorithm == "crc32"
    data = bytearray(path.read_bytes())
    assert fmt.verify(bytes(data), expected_step=3)[0] == 3
    data[len(data) // 2] ^= 0x80  # one bit, in the middle chunk
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match="CRC-32 does not match"):
        verify_path(path, expected_step=3)
