"""The progress sidecar's binary frames (``wire.PROGRESS_BIN``): what ``progress()`` appends next
to each JSON line so that no reader has to parse the JSON lines to chart them.

Stdlib only, Python 3.8: it runs in the job. Every frame is one ``os.write`` to a file opened
with O_APPEND, so frames from several processes (ranks) never interleave; a crash or a full disk
may leave a torn frame, which a reader stops at. Frames are whole 8-byte words (a reader views
the values in place as float64) and end with the CRC-32 of their other bytes, so a torn frame
that another process's frames complete is not read as one. Numbers are little-endian.

- ``K`` keys: tag, a zero byte, u16 length of the JSON that follows, u32 key-set id (CRC-32 of
  that JSON); the JSON list of the record's keys (``step`` first, then the metrics as passed;
  ``ts`` left out), padded with spaces to a word; u32 zero, u32 CRC. A process writes one before
  its first row of a key set; another process may write it again.
- ``R`` row: tag, three zero bytes, u32 key-set id; float64 start of the record's JSON line in
  the progress file; one float64 per key (NaN for a value that is not a finite number: the JSON
  line keeps the truth, text and "nan" included); u32 length of the line, u32 CRC.
  24 + 8 bytes per key.

The line's place in the progress file lets a reader prove the frames hold every line: the rows'
lines, in file order, must tile the file from byte 0 (``covered``); where they stop (a run begun
by an older library, a write that failed, a line written by something else), the JSON lines from
that byte on are the truth.
"""

from __future__ import annotations

import binascii
import json
import math
import struct
from typing import Dict, List, Sequence, Tuple

__all__ = ["KEYS", "ROW", "Decoded", "KeySet", "covered", "decode", "read_keys", "row_value"]

KEYS = b"K"
ROW = b"R"
_KEYS_HEAD = struct.Struct("<cxHI")  # tag, length, key-set id
_ROW_HEAD = struct.Struct("<c3xId")  # tag, key-set id, line start
_TAIL = struct.Struct("<II")  # keys: 0, rows: line length; then the CRC
_CRC = struct.Struct("<I")


class KeySet:
    """One key set as a process writes it: its id, its KEYS frame, and :meth:`row`."""

    __slots__ = ("_row", "key_id", "keys_frame")

    def __init__(self, names: Sequence[str]) -> None:
        raw = json.dumps(list(names), separators=(",", ":")).encode("utf-8")
        self.key_id = binascii.crc32(raw)
        raw += b" " * (-len(raw) % 8)
        head = _KEYS_HEAD.pack(KEYS, len(raw), self.key_id) + raw + _CRC.pack(0)
        self.keys_frame = head + _CRC.pack(binascii.crc32(head))
        self._row = struct.Struct(_ROW_HEAD.format + "d" * len(names) + "I")

    def row(self, start: int, length: int, values: Sequence[float]) -> bytes:
        """The ROW frame of a record whose line is ``length`` bytes at ``start``."""
        frame = self._row.pack(ROW, self.key_id, float(start), *values, length)
        return frame + _CRC.pack(binascii.crc32(frame))


def row_value(value: object) -> float:
    """A JSON-safe metric value (``heartbeat._jsonable``'s) as the row's float64."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[return-value]  # finite: _jsonable made the rest text
    if kind is int:
        try:
            return float(value)  # type: ignore[arg-type]
        except OverflowError:
            return math.nan
    return math.nan


# -- a reader (tests and tools; the dashboard's page decodes the same frames in series.js) ----

Row = Tuple[int, float, int, Tuple[float, ...]]  # key-set id, line start, line length, values


class Decoded:
    """What whole frames hold: the key sets by id, the rows in file order, and where the
    readable frames end (a torn, damaged or unknown frame stops the read)."""

    def __init__(self) -> None:
        self.keys: Dict[int, List[str]] = {}
        self.rows: List[Row] = []
        self.end = 0


def _intact(data: bytes, at: int, end: int) -> bool:
    """Whether the frame ``data[at:end]`` is whole and as written (its last 4 bytes: CRC)."""
    if end > len(data):
        return False
    return bool(_CRC.unpack_from(data, end - 4)[0] == binascii.crc32(data[at : end - 4]))


def read_keys(data: bytes, at: int) -> Tuple[int, List[str], int] | None:
    """The whole KEYS frame at ``at``: its key-set id, keys and end; None if there is none."""
    if data[at : at + 1] != KEYS or at + 8 > len(data):
        return None
    _, length, key_id = _KEYS_HEAD.unpack_from(data, at)
    end = at + 8 + length + 8
    if length % 8 or not _intact(data, at, end):
        return None
    try:
        names = json.loads(data[at + 8 : at + 8 + length].decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(names, list):
        return None
    return key_id, [str(n) for n in names], end


def decode(data: bytes) -> Decoded:
    out = Decoded()
    at, size = 0, len(data)
    while at + 8 <= size:
        tag = data[at : at + 1]
        if tag == KEYS:
            got = read_keys(data, at)
            if got is None:
                break
            key_id, names, end = got
            out.keys.setdefault(key_id, names)
        elif tag == ROW and at + _ROW_HEAD.size <= size:
            _, key_id, start = _ROW_HEAD.unpack_from(data, at)
            known = out.keys.get(key_id)
            if known is None:
                break  # a row before its keys: not written by progress()
            end = at + 24 + 8 * len(known)
            if not _intact(data, at, end):
                break
            values = struct.unpack_from("<" + "d" * len(known), data, at + 16)
            length = _TAIL.unpack_from(data, end - 8)[0]
            out.rows.append((key_id, start, length, values))
        else:
            break
        at = out.end = end
    return out


def covered(rows: Sequence[Row]) -> Tuple[int, List[int]]:
    """How far from byte 0 the rows' lines tile the progress file without a gap, and which rows
    (indices, in the lines' file order) do it."""
    order = sorted(range(len(rows)), key=lambda i: rows[i][1])
    at, kept = 0, []
    for i in order:
        if rows[i][1] != at:
            break
        kept.append(i)
        at += rows[i][2]
    return at, kept
