"""What a run page shows, read when the page asks: the metric curves (the progress file's
lines, kept here as read from the box and grown by byte offset), the log from an offset, the
checkpoints on the box, the pulls and how they verified, and ``explain``'s matches. Each box
read is one agent call (no channel is held open), and only while a page asks."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive import wire
from outlive.errors import OutliveError, RunNotFound
from outlive.ui.progress import ProgressLines

if TYPE_CHECKING:
    from outlive.backends.base import Backend
    from outlive.session import Session
    from outlive.store import RunRecord

Row = dict[str, Any]
LOOK_TIMEOUT_S = 15.0
PROGRESS_CHUNK_BYTES = 16 << 20
PARSE_AFTER_S = 1.0
LOG_FIRST_LINES = 200
LOG_CHUNK_BYTES = 1 << 20


class RunView:
    """Reads for the run pages of one project."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self._lock = threading.Lock()  # the dicts below
        self._reading_lock = threading.Lock()  # one read of a progress file at a time
        self._progress: dict[str, ProgressLines] = {}
        self._prefetching: dict[str, _Prefetch] = {}
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

    def prefetch_progress(self, run_id: str) -> None:
        """Start reading the progress file now, in the background: its page was asked for, and
        asks for the curves next (while it loads its scripts); that request then takes this
        read, streamed as it comes (:meth:`progress`). Nothing is read for a run no page was
        asked for."""
        with self._lock:
            lines = self._progress.get(run_id)
            if run_id in self._prefetching or (lines is not None and lines.complete):
                return
            fetch = self._prefetching[run_id] = _Prefetch()
            if lines is None:
                lines = self._progress[run_id] = ProgressLines()
            fetch.lines, lines.reading = lines, True

        def read() -> None:
            try:
                self._read_progress(run_id)
            except OutliveError:
                fetch.failed = True  # the page's own request reads again, and shows why
            finally:
                with self._lock:
                    self._prefetching.pop(run_id, None)
                lines.read_done()
                fetch.done.set()

        threading.Thread(target=read, name=f"prefetch {run_id}", daemon=True).start()

    def progress(self, run_id: str, since: int) -> bytes | Iterator[bytes]:
        """The progress file from byte ``since`` on (:meth:`ProgressLines.since`: lines, or
        columns once parsed), after reading what the file gained on the box; a finished run's
        file is read once, and a read already under way (the page's prefetch) is not repeated:
        the whole file is streamed as that read brings it in (:meth:`ProgressLines.stream`),
        a later part given once the read is done."""
        with self._lock:
            lines = self._progress.get(run_id)
            fetch = self._prefetching.get(run_id)
            if lines is not None and lines.complete:
                return lines.since(since)
        if fetch is not None and fetch.lines is not None:
            if since <= 0:
                return fetch.lines.stream(LOOK_TIMEOUT_S)
            if fetch.done.wait(timeout=4 * LOOK_TIMEOUT_S) and not fetch.failed:
                return fetch.lines.since(since)
        return self._read_progress(run_id).since(since)

    def _read_progress(self, run_id: str) -> ProgressLines:
        """Read what the run's progress file gained on the box since the last read."""
        session = self.session()
        rec = self.record(session, run_id)
        backend = session.backend(rec.target)
        with self._reading_lock:
            with self._lock:
                lines = self._progress.setdefault(run_id, ProgressLines())
            while not lines.complete:
                start = lines.offset
                size, ended = _read_tail(backend, rec.run_dir, lines)
                if lines.offset < start:  # the file was replaced: read it again
                    lines = ProgressLines()
                    with self._lock:
                        self._progress[run_id] = lines
                    continue
                if lines.offset - start < PROGRESS_CHUNK_BYTES:
                    lines.complete = ended and lines.offset >= size
                    break
            return lines

    def has_columns(self, run_id: str) -> bool:
        """Whether the run's progress is held parsed (its page's first read gets columns)."""
        with self._lock:
            lines = self._progress.get(run_id)
        return lines is not None and lines.parsed_all

    def parse_progress(self, run_id: str) -> None:
        """Parse in the background what the page was sent as lines, so that the next open
        gets columns; called once the reply is written, and started PARSE_AFTER_S later: the
        parse holds the GIL and a CPU, which the page's own parse and drawing need first."""
        with self._lock:
            lines = self._progress.get(run_id)
        if lines is not None and lines.parsed < len(lines.data):
            timer = threading.Timer(PARSE_AFTER_S, lines.parse)
            timer.daemon = True
            timer.start()

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


class _Prefetch:
    """A read of a progress file started when its page was asked for: the lines it reads
    into, done, and whether it failed."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.lines: ProgressLines | None = None
        self.failed = False


def _read_tail(backend: Backend, run_dir: str, lines: ProgressLines) -> tuple[int, bool]:
    """One ``tail`` of the progress file from ``lines.offset`` into ``lines``, fed as the bytes
    come (the agent's raw reply, read as it arrives); the file's size and whether the run
    ended. A file that shrank (replaced) leaves ``lines.offset`` where the file now ends."""
    from outlive.backends.base import AgentBackend

    start = lines.offset
    if not isinstance(backend, AgentBackend) or type(backend).tail is not AgentBackend.tail:
        chunk = backend.tail(
            run_dir,
            offset=start,
            max_bytes=PROGRESS_CHUNK_BYTES,
            timeout_s=LOOK_TIMEOUT_S,
            file=wire.PROGRESS_JSONL,
        )
        if chunk.offset >= start:
            lines.feed(chunk.data)
        lines.offset = chunk.offset
        return chunk.size, chunk.ended
    request = {
        "run_dir": run_dir, "file": wire.PROGRESS_JSONL, "offset": start,
        "max_bytes": PROGRESS_CHUNK_BYTES,
    }  # fmt: skip
    result, pieces = backend.agent.call_streamed("tail", request, timeout_s=LOOK_TIMEOUT_S)
    end = int(result["offset"])
    if end < start:
        for _ in pieces:  # the file is shorter now: nothing (the agent read from its end)
            pass
        lines.offset = end
        return int(result.get("size") or 0), bool(result["ended"])
    if "data_b64" in result:  # an agent that predates raw
        pieces = iter((base64.b64decode(result["data_b64"]),))
    for piece in pieces:
        lines.feed(piece)
    lines.offset = end
    return int(result.get("size") or 0), bool(result["ended"])


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
