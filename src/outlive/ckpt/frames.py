"""The progress sidecar's binary frames (``wire.PROGRESS_BIN``): what ``progress()`` appends next
to each JSON line so that no reader has to parse the JSON lines to chart them.

Stdlib only, Python 3.8: it runs in the job. Every frame is one ``os.write`` to a file opened
with O_APPEND, so frames from several processes (ranks) never interleave; a crash or a full disk
may leave a torn frame at the end, which a reader stops at. All numbers are little-endian.

- ``K`` keys: tag, u32 key-set id (CRC-32 of the JSON that follows), u16 length, the JSON list of
  the record's keys (``step`` first, then the metrics as passed; ``ts`` left out). A process writes
  one before its first row of a key set; another process may write the same one again.
- ``R`` row: tag, u32 key-set id, u32 length and float64 start of the record's JSON line in the
  progress file, then one float64 per key (NaN for a value that is not a finite number: the JSON
  line keeps the truth, text and "nan" included).

The line's place in the progress file lets a reader prove the sidecar holds every line: the rows'
lines, in file order, must tile the file from byte 0 (``covered``); where they stop (a run begun by
an older library, a write that failed, a line written by something else), the JSON lines from that
byte on are the truth.
"""

from __future__ import annotations

import binascii
import json
import math
import struct
from typing import Dict, List, Sequence, Tuple

__all__ = ["KEYS", "ROW", "Decoded", "KeySet", "covered", "decode", "row_value"]

KEYS = b"K"
ROW = b"R"
_KEYS_HEAD = struct.Struct("<cIH")
_ROW_HEAD = struct.Struct("<cIId")  # tag, key-set id, line length, line start


class KeySet:
    """One key set as a process writes it: its id, its KEYS frame and a packer for its rows."""

    __slots__ = ("key_id", "keys_frame", "row")

    def __init__(self, names: Sequence[str]) -> None:
        raw = json.dumps(list(names), separators=(",", ":")).encode("utf-8")
        self.key_id = binascii.crc32(raw)
        self.keys_frame = _KEYS_HEAD.pack(KEYS, self.key_id, len(raw)) + raw
        self.row = struct.Struct(_ROW_HEAD.format + "d" * len(names))


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
    readable frames end (a torn or unknown frame stops the read)."""

    def __init__(self) -> None:
        self.keys: Dict[int, List[str]] = {}
        self.rows: List[Row] = []
        self.end = 0


def decode(data: bytes) -> Decoded:
    out = Decoded()
    at, size = 0, len(data)
    while at < size:
        tag = data[at : at + 1]
        if tag == KEYS and at + _KEYS_HEAD.size <= size:
            _, key_id, length = _KEYS_HEAD.unpack_from(data, at)
            end = at + _KEYS_HEAD.size + length
            if end > size:
                break
            try:
                names = json.loads(data[at + _KEYS_HEAD.size : end].decode("utf-8"))
            except ValueError:
                break
            out.keys.setdefault(key_id, [str(n) for n in names])
        elif tag == ROW and at + _ROW_HEAD.size <= size:
            _, key_id, length, start = _ROW_HEAD.unpack_from(data, at)
            names = out.keys.get(key_id)
            if names is None:
                break  # a row before its keys: not written by progress()
            end = at + _ROW_HEAD.size + 8 * len(names)
            if end > size:
                break
            values = struct.unpack_from("<" + "d" * len(names), data, at + _ROW_HEAD.size)
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
