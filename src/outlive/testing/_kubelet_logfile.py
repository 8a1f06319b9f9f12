"""A container's log file in the CRI format a kubelet keeps: one record per line,
``<RFC3339 time> stdout <F|P> <content>`` (``F`` a full line, ``P`` a partial one not yet ended by
a newline), so ``kubectl logs`` can take ``timestamps``, ``sinceTime`` and ``sinceSeconds``."""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from pathlib import Path

__all__ = ["Record", "parse_records", "pump", "render", "since_stamp", "stamp"]

Record = tuple[str, bytes, bool]  # (time stamp, content, ends a line)
_FRACTION_RE = re.compile(r"(\.\d{1,6})\d*")


def stamp(when: dt.datetime | None = None) -> str:
    """A fixed-width RFC 3339 time (microseconds, UTC): such stamps compare as strings."""
    when = when or dt.datetime.now(dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def since_stamp(since_time: str | None, since_seconds: str | None) -> str | None:
    """The stamp from which records are wanted (``sinceTime`` RFC 3339 or ``sinceSeconds``)."""
    if since_seconds:
        return stamp(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=int(since_seconds)))
    if since_time:
        text = _FRACTION_RE.sub(r"\1", since_time.replace("Z", "+00:00"))
        return stamp(dt.datetime.fromisoformat(text))
    return None


def pump(fd: int, log: Path) -> threading.Thread:
    """Copy what the container writes on FD into LOG as records, until EOF (a thread)."""

    def run() -> None:
        with open(log, "ab", buffering=0) as out:
            while chunk := os.read(fd, 65536):
                now, records, start = stamp().encode(), [], 0
                while start < len(chunk):  # split at \n only: a \r stays inside, as in CRI
                    end = chunk.find(b"\n", start)
                    full = end >= 0
                    end = end if full else len(chunk)
                    tag = b"F" if full else b"P"
                    records.append(b"%s stdout %s %s\n" % (now, tag, chunk[start:end]))
                    start = end + 1
                out.write(b"".join(records))
        os.close(fd)

    thread = threading.Thread(target=run, name=f"log-{log.parent.name}", daemon=True)
    thread.start()
    return thread


def parse_records(data: bytes) -> tuple[list[Record], bytes]:
    """The complete records in DATA and the unparsed rest (a record still being written)."""
    records: list[Record] = []
    lines = data.split(b"\n")
    for line in lines[:-1]:
        parts = line.split(b" ", 3)
        if len(parts) == 4:
            records.append((parts[0].decode(), parts[3], parts[2] == b"F"))
    return records, lines[-1]


def render(records: list[Record], *, timestamps: bool = False, at_line_start: bool = True) -> bytes:
    """What ``kubectl logs`` shows: contents joined, full lines ended with a newline (with
    ``timestamps``, each line starts with its stamp; AT_LINE_START: no partial line before)."""
    out = []
    for when, body, full in records:
        if timestamps and at_line_start:
            out.append(when.encode() + b" ")
        out.append(body + (b"\n" if full else b""))
        at_line_start = full
    return b"".join(out)
