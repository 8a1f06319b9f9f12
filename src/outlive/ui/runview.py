"""What a run page shows, read when the page asks: the metric curves (the progress file, kept
here as columns and grown by byte offset), the log from an offset, the checkpoints on the box,
the pulls and how they verified, and ``explain``'s matches. Each box read is one agent call
(no channel is held open), and only while a page asks."""

from __future__ import annotations

import json
import math
import sys
import threading
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive import wire
from outlive.errors import OutliveError, RunNotFound

if TYPE_CHECKING:
    from outlive.session import Session
    from outlive.store import RunRecord

Row = dict[str, Any]
LOOK_TIMEOUT_S = 15.0
PROGRESS_CHUNK_BYTES = 16 << 20
LOG_FIRST_LINES = 200
LOG_CHUNK_BYTES = 1 << 20


@dataclass
class Series:
    """A progress file as columns: one float64 array per key (``step``, ``ts`` and each metric),
    one entry per record, NaN where a record lacks the key or it is not a finite number.
    ``complete``: the run has ended and every byte of the file has been read."""

    offset: int = 0
    partial: bytes = b""
    n: int = 0
    complete: bool = False
    columns: dict[str, array[float]] = field(default_factory=dict)

    def feed(self, data: bytes) -> None:
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()  # a line still being written: wait for its newline
        lines = [line for line in lines if line.strip()]
        try:  # one parse for all: each line is one atomic append, so all are whole
            parsed = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            parsed = [_loads(line) for line in lines]
        records: list[dict[str, Any]] = [r for r in parsed if isinstance(r, dict)]
        if not records:
            return
        keys = dict.fromkeys(k for r in records[:1] for k in r)
        if any(len(r) != len(keys) for r in records):
            keys.update(dict.fromkeys(k for r in records for k in r))
        for key in keys:
            col = self.columns.get(key)
            if col is None:
                col = self.columns[key] = array("d", [math.nan]) * self.n
            col.fromlist([_number(r.get(key)) for r in records])
        self.n += len(records)
        for col in self.columns.values():
            if len(col) < self.n:  # a key the new records lack
                col.extend(array("d", [math.nan]) * (self.n - len(col)))

    def since(self, start: int) -> bytes:
        """Records from index ``start`` on, compact: a little-endian u32 header length, the JSON
        header (``n``, ``since``, ``count``, ``keys``; padded so the floats align to 8 bytes),
        then ``count`` little-endian float64 per key, NaN for none (``run.js`` reads it)."""
        start = max(0, min(start, self.n))
        keys = [k for k in self.columns if k != "ts"]  # the time of day is not charted
        head = json.dumps({"n": self.n, "since": start, "count": self.n - start, "keys": keys})
        raw = head.encode()
        raw += b" " * (-(4 + len(raw)) % 8)
        parts = [len(raw).to_bytes(4, "little"), raw]
        for key in keys:
            col = self.columns[key][start:]
            if sys.byteorder != "little":
                col.byteswap()
            parts.append(col.tobytes())
        return b"".join(parts)


def _number(value: object) -> float:
    """A metric as a float; NaN for anything else (text, bools, nested values)."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[return-value]
    return float(value) if kind is int else math.nan  # type: ignore[arg-type]


def _loads(line: bytes) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None  # not a record (progress() never writes one)


class RunView:
    """Reads for the run pages of one project."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self._lock = threading.Lock()
        self._series: dict[str, Series] = {}
        self._explained: dict[str, tuple[int, list[Row]]] = {}

    def session(self) -> Session:
        from outlive.session import Session

        return Session.open(self.project_dir)

    def record(self, session: Session, run_id: str) -> RunRecord:
        if wire.run_id_problem(run_id):
            raise RunNotFound(f"no run {run_id!r} in this project")
        rec = session.store.resolve(run_id)
        if rec.run_id != run_id:
            raise RunNotFound(f"no run {run_id!r} in this project")
        return rec

    def status(self, run_id: str) -> Row:
        """One look at this run (the daemon's, when warm): its ``status --json`` row."""
        from outlive.ui.looks import look_at

        self.record(self.session(), run_id)
        doc, _ = look_at(self.project_dir, [run_id])
        row: Row = doc["runs"][0]
        return row

    def progress(self, run_id: str, since: int) -> bytes:
        """The progress records from index ``since`` on (:meth:`Series.since`), after reading
        what the file gained on the box; a finished run's file is read once."""
        with self._lock:
            series = self._series.get(run_id)
            if series is not None and series.complete:
                return series.since(since)
        session = self.session()
        rec = self.record(session, run_id)
        backend = session.backend(rec.target)
        with self._lock:
            series = self._series.setdefault(run_id, Series())
            while True:
                chunk = backend.tail(
                    rec.run_dir,
                    offset=series.offset,
                    max_bytes=PROGRESS_CHUNK_BYTES,
                    timeout_s=LOOK_TIMEOUT_S,
                    file=wire.PROGRESS_JSONL,
                )
                if chunk.offset < series.offset:  # the file was replaced: read it again
                    series = self._series[run_id] = Series()
                    continue
                series.feed(chunk.data)
                series.offset = chunk.offset
                if len(chunk.data) < PROGRESS_CHUNK_BYTES:
                    series.complete = chunk.ended and chunk.offset >= chunk.size
                    break
            return series.since(since)

    def log(self, run_id: str, offset: int | None) -> Row:
        """Log text from ``offset`` (or the last lines), and where to go on from."""
        session = self.session()
        rec = self.record(session, run_id)
        backend = session.backend(rec.target)
        if offset is None:
            chunk = backend.tail(rec.run_dir, lines=LOG_FIRST_LINES, timeout_s=LOOK_TIMEOUT_S)
        else:
            chunk = backend.tail(
                rec.run_dir, offset=offset, max_bytes=LOG_CHUNK_BYTES, timeout_s=LOOK_TIMEOUT_S
            )
        return {
            "text": chunk.data.decode("utf-8", errors="replace"),
            "offset": chunk.offset,
            "size": chunk.size,
            "ended": chunk.ended,
        }

    def details(self, run_id: str) -> Row:
        """The run's record, its checkpoints on the box and its pulls."""
        session = self.session()
        rec = self.record(session, run_id)
        pulls = session.store.pulls([run_id])
        doc: Row = {
            "run_id": rec.run_id,
            "name": rec.name,
            "target": rec.target,
            "command": list(rec.command),
            "run_dir": rec.run_dir,
            "ckpt_dir": rec.ckpt_dir,
            "created_at": rec.created_at,
            "last_seen": rec.status.to_json() if rec.status else None,
            "pulls": [
                {
                    "dest": p.dest,
                    "files": p.files,
                    "size_bytes": p.size_bytes,
                    "verified": p.verified,
                    "pulled_at": p.pulled_at,
                    "manifest_sha256": p.manifest_sha256,
                }
                for p in pulls
            ],
        }
        try:
            ckpts = session.backend(rec.target).checkpoints(rec.ckpt_dir, timeout_s=LOOK_TIMEOUT_S)
        except OutliveError as exc:
            doc["checkpoints"], doc["checkpoints_error"] = [], str(exc)
            return doc
        doc["checkpoints"] = [
            {
                "name": c.name,
                "step": c.step,
                "size_bytes": c.size_bytes,
                "mtime": c.mtime,
                "verified": _pulled_verified(c.name, c.size_bytes, pulls),
            }
            for c in ckpts
        ]
        return doc

    def explain(self, run_id: str) -> list[Row]:
        """``explain RUN --json``'s matches, computed again only when the log has grown."""
        from typing import BinaryIO, cast

        from outlive.gotchas import explain_stream
        from outlive.lifecycle.runs import RemoteLog

        session = self.session()
        rec = self.record(session, run_id)
        size = session.backend(rec.target).tail(rec.run_dir, lines=0).size
        with self._lock:
            cached = self._explained.get(run_id)
        if cached is not None and cached[0] == size:
            return cached[1]
        log = RemoteLog(session, run_id)
        matches = [
            m.as_dict() for m in explain_stream(cast(BinaryIO, log), platform=log.target.profile)
        ]
        with self._lock:
            self._explained[run_id] = (size, matches)
        return matches

    def cancel(self, run_id: str) -> Row:
        from outlive.lifecycle.runs import cancel

        session = self.session()
        rec = self.record(session, run_id)
        reply: Row = dict(cancel(session, rec.run_id))
        return reply


def _pulled_verified(name: str, size_bytes: int, pulls: list[Any]) -> bool:
    """Whether a verified pull holds this checkpoint (same name and size under one of its
    roots): the pull's PULL_VERIFIED.json proved its hash."""
    for pull in pulls:
        if not pull.verified:
            continue
        for root in pull.roots:
            label = root.get("label") if isinstance(root, dict) else None
            if not isinstance(label, str):
                continue
            path = Path(pull.dest) / label / name
            try:
                if path.stat().st_size == size_bytes:
                    return True
            except OSError:
                continue
    return False
