"""A run's curves as ``outlive ui`` keeps them. First the box's frames of the progress file
(``ProgressFrames``: what ``progress()`` appended next to each JSON line, sent as they are; the
page decodes them into its columns in milliseconds, so nothing parses JSON). For a run without
frames (an older library's) and for the lines a page reads after them: the progress file's whole
lines as read from the box (``ProgressLines``), handed to the page unparsed (a browser parses
JSON several times faster than Python), and, parsed here in the background once sent, the same
records as float64 columns, which any later open of such a run gets instead. The page reads all
three forms (``static/run.js``, ``series.js``)."""

from __future__ import annotations

import json
import math
import operator
import sys
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from outlive.ui.frame_columns import as_columns

_NUMBERS = frozenset({float, int})


def _frame(head: dict[str, Any], *parts: bytes | bytearray) -> bytes:
    """A little-endian u32 header length, the JSON header (padded so what follows starts at a
    multiple of 8 bytes: the page views float64 columns in place), then ``parts``."""
    raw = json.dumps(head).encode()
    raw += b" " * (-(4 + len(raw)) % 8)
    return b"".join((len(raw).to_bytes(4, "little"), raw, *parts))


@dataclass
class Columns:
    """Records as columns: one float64 array per key, NaN where a record lacks the key or its
    value is not a number (text, bools, nested values)."""

    n: int = 0
    columns: dict[str, array[float]] = field(default_factory=dict)

    def feed(self, lines: bytes) -> None:
        """Add the records of whole JSON lines (what does not parse as an object is skipped)."""
        rows = [line for line in lines.split(b"\n") if line.strip()]
        try:  # one parse for all: each line is one atomic append, so all are whole
            parsed = json.loads(b"[" + b",".join(rows) + b"]")
        except ValueError:
            parsed = [_loads(line) for line in rows]
        records: list[dict[str, Any]] = [r for r in parsed if isinstance(r, dict)]
        if not records:
            return
        keys = list(records[0])
        new = _transposed(records, keys) if len(keys) > 1 else None
        if new is None:
            keys = list(dict.fromkeys(k for r in records for k in r))
            new = {k: [r.get(k) for r in records] for k in keys}
        for key, values in new.items():
            col = self.columns.get(key)
            if col is None:
                col = self.columns[key] = array("d", [math.nan]) * self.n
            if set(map(type, values)) <= _NUMBERS:
                col.extend(array("d", values))
            else:
                col.fromlist([_number(v) for v in values])
        self.n += len(records)
        for col in self.columns.values():
            if len(col) < self.n:  # a key the new records lack
                col.extend(array("d", [math.nan]) * (self.n - len(col)))

    def body(self, end: int, complete: bool) -> bytes:
        """Every record, framed (:func:`_frame`; the header says ``format: columns``, ``n`` and
        ``keys``), then ``n`` little-endian float64 per key."""
        keys = [k for k in self.columns if k != "ts"]  # the time of day is not charted
        head = {"format": "columns", "since": 0, "end": end, "complete": complete}
        parts = []
        for key in keys:
            col = self.columns[key][:]
            if sys.byteorder != "little":
                col.byteswap()
            parts.append(col.tobytes())
        return _frame({**head, "n": self.n, "keys": keys}, *parts)


def _transposed(records: list[dict[str, Any]], keys: list[str]) -> dict[str, Any] | None:
    """Records that all have exactly ``keys``, as one sequence per key (in C); None otherwise."""
    if any(len(r) != len(keys) for r in records):
        return None
    try:
        rows = map(operator.itemgetter(*keys), records)
        return dict(zip(keys, zip(*rows, strict=True), strict=True))
    except KeyError:
        return None


def _number(value: object) -> float:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[return-value]
    return float(value) if kind is int else math.nan  # type: ignore[arg-type]


def _loads(line: bytes) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None  # not a record (progress() never writes one)


@dataclass
class _Grown:
    """Bytes of a file on the box as read so far, from ``base``; while a read is under way
    (``reading``), ``grown`` wakes who streams them."""

    offset: int = 0  # how far into the file on the box this has read
    data: bytearray = field(default_factory=bytearray)
    complete: bool = False  # the run has ended and every byte of the file has been read
    reading: bool = False  # a read from the box is under way: ``data`` grows (``grown``)
    grown: threading.Condition = field(default_factory=threading.Condition)

    def read_done(self) -> None:
        with self.grown:
            self.reading = False
            self.grown.notify_all()

    def _stream(self, wait_s: float) -> Iterator[bytes]:
        """``data`` from its first byte, as the read under way brings it in."""
        sent = 0
        while True:
            with self.grown:
                while len(self.data) == sent and self.reading:
                    if not self.grown.wait(timeout=wait_s):
                        return  # the read is stuck: the page reads on from what it has
                end = len(self.data)
                more = bytes(self.data[sent:end])
                reading = self.reading
            if more:
                yield more
                sent = end
            elif not reading:
                return


@dataclass
class ProgressLines(_Grown):
    """A progress file's whole lines as read from the box so far, from byte ``base`` (0, or
    where a page that charted the frames before it goes on), and their columns once
    :meth:`parse` has caught up (only from byte 0)."""

    base: int = 0
    partial: bytes = b""  # a line still being written: held back until its newline
    columns: Columns = field(default_factory=Columns)
    parsed: int = 0  # bytes of ``data`` in ``columns``
    _parsing: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def at(cls, base: int) -> ProgressLines:
        """Lines read from byte ``base`` (a line's start) on."""
        return cls(offset=base, base=base)

    def feed(self, chunk: bytes) -> None:
        cut = chunk.rfind(b"\n") + 1
        with self.grown:
            self.offset += len(chunk)
            if not cut:
                self.partial += chunk
                return
            self.data += self.partial
            self.data += memoryview(chunk)[:cut]  # no copy of a 9 MB chunk but into data
            self.partial = chunk[cut:]
            self.grown.notify_all()

    def stream(self, wait_s: float) -> Iterator[bytes]:
        """The whole lines as a read under way brings them in, from the first: the page gets
        them while the rest is still on its way from the box (framed ``lines`` with ``end``
        null: it ends where the bytes end)."""
        yield _frame({"format": "lines", "since": self.base, "end": None, "complete": False})
        yield from self._stream(wait_s)

    @property
    def parsed_all(self) -> bool:
        """Whether a read from byte 0 gets columns (:meth:`since`) rather than lines."""
        return not self.base and bool(self.data) and self.parsed == len(self.data)

    def parse(self) -> None:
        """Bring ``columns`` up to the lines read (a no-op while another thread does, or for
        lines that do not start at byte 0)."""
        if self.base or not self._parsing.acquire(blocking=False):
            return
        try:
            end = len(self.data)
            self.columns.feed(bytes(self.data[self.parsed : end]))
            self.parsed = end
        finally:
            self._parsing.release()

    def since(self, start: int) -> bytes:
        """What the page gets for byte ``start`` (not before ``base``) on: from 0, every record
        as columns when they are parsed up to the last line; else the lines from ``start``
        (moved on to the next line's start if it falls inside one), framed (``format: lines``,
        ``since``: where they start, ``end``: where they end)."""
        end = len(self.data)
        if start <= 0 and end and not self.base and self._parsing.acquire(blocking=False):
            try:
                if self.parsed == end:
                    return self.columns.body(end, self.complete)
            finally:
                self._parsing.release()
        at = max(0, min(start - self.base, end))
        if at and self.data[at - 1] != 0x0A:
            at = self.data.find(b"\n", at) + 1 or end
        head = {
            "format": "lines", "since": self.base + at, "end": self.base + end,
            "complete": self.complete,
        }  # fmt: skip
        return _frame(head, self.data[at:end])


@dataclass
class ProgressFrames(_Grown):
    """The progress file's frames (``wire.PROGRESS_BIN``, :mod:`outlive.ckpt.frames`) as read
    from the box, sent to the page as they are (``format: frames``): it decodes them into its
    columns in a few milliseconds, and charts the JSON lines from where their rows stop. No
    parse here. ``lines_size``: how long the progress file was before the last read of them;
    ``size``: how long the frames file was then."""

    lines_size: int | None = None
    size: int | None = None
    columns: bytes | None = None  # a finished run's usual frames as columns (to_columns)

    def feed(self, chunk: bytes) -> None:
        with self.grown:
            self.offset += len(chunk)
            self.data += chunk
            self.grown.notify_all()

    def known(self, lines_size: int, size: int) -> None:
        with self.grown:
            self.lines_size, self.size = lines_size, size
            self.grown.notify_all()

    @property
    def usable(self) -> bool:
        """Whether the box has frames of this run (an older library wrote none)."""
        return bool(self.data) or bool(self.size)

    def _head(self, end: int | None) -> bytes:
        head = {
            "format": "frames", "since": 0, "end": end, "lines_size": self.lines_size,
            "complete": self.complete,
        }  # fmt: skip
        return _frame(head)

    def body(self) -> bytes:
        """Every frame read, framed; a finished run's as columns once :meth:`to_columns` made
        them (the page views them in place: no decoding either)."""
        if self.columns is not None:
            return self.columns
        return self._head(len(self.data)) + bytes(self.data)

    def to_columns(self) -> None:
        """A finished run's frames as columns (``ui.frame_columns``), for later opens; the
        frames stay what is sent when they are not the usual ones."""
        if not self.complete or self.columns is not None or self.lines_size is None:
            return
        got = as_columns(bytes(self.data), self.lines_size)
        if got is not None:
            head = {
                "format": "columns", "since": 0, "end": got.end, "complete": True, "n": got.n,
                "keys": got.keys,
            }  # fmt: skip
            self.columns = _frame(head, *got.columns)

    def stream(self, wait_s: float) -> Iterator[bytes]:
        """The frames as the read under way brings them in (framed, ``end`` null), once the
        box has said how long the progress file was; nothing when it has none (or the read
        failed): then the progress file is read as lines."""
        with self.grown:
            while self.size is None and self.reading:
                if not self.grown.wait(timeout=wait_s):
                    return
        if self.size is None or not self.usable:
            return
        yield self._head(None)
        yield from self._stream(wait_s)
