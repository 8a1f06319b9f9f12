"""What a run page shows, read when the page asks: the metric curves (the box's frames of the
progress file, else its lines, kept here as read from the box and grown by byte offset), the
log from an offset, the checkpoints on the box, the pulls and how they verified, and
``explain``'s matches. Each box read is one agent call (no channel is held open), and only
while a page asks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from outlive import wire
from outlive.errors import OutliveError, RunNotFound
from outlive.ui import boxread
from outlive.ui.boxread import LOOK_TIMEOUT_S
from outlive.ui.progress import ProgressFrames, ProgressLines

if TYPE_CHECKING:
    from outlive.session import Session
    from outlive.store import RunRecord

Row = dict[str, Any]
_G = TypeVar("_G", ProgressLines, ProgressFrames)
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
        self._frames: dict[str, ProgressFrames] = {}
        self._no_frames: set[str] = set()  # runs whose box has no frames file (older library)
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
        """Start reading the curves now, in the background: the run's page was asked for, and
        asks for them next (while it loads its scripts); that request then takes this read,
        streamed as it comes (:meth:`progress`). The frames file when the box may have one,
        else the progress file. Nothing is read for a run no page was asked for."""
        with self._lock:
            if run_id in self._prefetching:
                return
            buf: ProgressLines | ProgressFrames
            if run_id in self._no_frames:
                buf = self._progress.setdefault(run_id, ProgressLines())
            else:
                buf = self._frames.setdefault(run_id, ProgressFrames())
            if buf.complete:
                return
            fetch = self._prefetching[run_id] = _Prefetch(buf)
            buf.reading = True

        def read() -> None:
            try:
                if isinstance(buf, ProgressFrames):
                    self._read_frames(run_id)
                else:
                    self._read_progress(run_id, 0)
            except OutliveError:
                fetch.failed = True  # the page's own request reads again, and shows why
            finally:
                with self._lock:
                    self._prefetching.pop(run_id, None)
                buf.read_done()
                fetch.done.set()

        threading.Thread(target=read, name=f"prefetch {run_id}", daemon=True).start()

    def progress(self, run_id: str, since: int, frames: bool = True) -> bytes | Iterator[bytes]:
        """The curves from byte ``since`` of the progress file on: from 0, the frames file
        when the box has one (and ``frames``), else :meth:`ProgressLines.since` (lines, or
        columns once parsed), after reading what the file gained on the box. A finished run's
        files are read once, and a read already under way (the page's prefetch) is not
        repeated: it is streamed as it brings the bytes in."""
        if since <= 0 and frames:
            with self._lock:
                got = self._frames.get(run_id)
                fetch = self._prefetching.get(run_id)
                tried = run_id in self._no_frames
            if got is not None and got.complete and got.usable:
                return got.body()
            if fetch is not None and fetch.buf is got and got is not None:
                return self._frames_or_lines(run_id, got)
            if not tried:
                try:
                    got = self._read_frames(run_id)
                except OutliveError:
                    got = None  # an agent that predates frames refuses the file: the lines
                if got is not None:
                    return got.body()
        return self._lines(run_id, since)

    def _frames_or_lines(self, run_id: str, frames: ProgressFrames) -> Iterator[bytes]:
        """The frames as the read under way brings them in; the lines when it finds none."""
        sent = False
        for part in frames.stream(LOOK_TIMEOUT_S):
            sent = True
            yield part
        if not sent:
            body = self._lines(run_id, 0)
            if isinstance(body, bytes):
                yield body
            else:
                yield from body

    def _lines(self, run_id: str, since: int) -> bytes | Iterator[bytes]:
        with self._lock:
            lines = self._progress.get(run_id)
            fetch = self._prefetching.get(run_id)
            if lines is not None and lines.complete and lines.base <= since:
                return lines.since(since)
        if fetch is not None and fetch.buf is lines and lines is not None:
            if since <= 0:
                return lines.stream(LOOK_TIMEOUT_S)
            if fetch.done.wait(timeout=4 * LOOK_TIMEOUT_S) and not fetch.failed:
                return lines.since(since)
        return self._read_progress(run_id, since).since(since)

    def _read_frames(self, run_id: str) -> ProgressFrames | None:
        """Read what the run's frames file gained on the box; None when the box has none of
        this run (the progress file is read instead: remembered for an older library's run
        that has ended, whose progress file has lines and no frames)."""
        session = self.session()
        rec = self.record(session, run_id)
        backend = session.backend(rec.target)
        if not boxread.streams(backend):
            with self._lock:
                self._no_frames.add(run_id)
            return None
        with self._reading_lock:
            with self._lock:
                frames = self._frames.setdefault(run_id, ProgressFrames())
            frames = boxread.grow(
                frames,
                lambda f: boxread.read_frames(backend, rec.run_dir, f),
                lambda: self._replaced(self._frames, run_id, ProgressFrames()),
            )
        if frames.usable:
            return frames
        if frames.lines_size and frames.complete:  # a live run's first frame may be on its way
            with self._lock:
                self._no_frames.add(run_id)
        return None

    def _read_progress(self, run_id: str, since: int) -> ProgressLines:
        """Read what the run's progress file gained on the box since the last read (from
        ``since`` on when what is held starts later: a page charted the frames up to there)."""
        session = self.session()
        rec = self.record(session, run_id)
        backend = session.backend(rec.target)
        with self._reading_lock:
            with self._lock:
                lines = self._progress.get(run_id)
                if lines is None or lines.base > since:
                    lines = self._progress[run_id] = ProgressLines.at(since)
            return boxread.grow(
                lines,
                lambda b: boxread.read_lines(backend, rec.run_dir, b),
                lambda: self._replaced(self._progress, run_id, ProgressLines()),
            )

    def _replaced(self, held: dict[str, Any], run_id: str, fresh: _G) -> _G:
        """``fresh`` in ``held`` instead of what the run had there (its file was replaced)."""
        with self._lock:
            held[run_id] = fresh
        return fresh

    def may_have_frames(self, run_id: str) -> bool:
        """Whether the run's curves may come as frames: none were looked for yet, or the box
        has them (the page decodes them itself; no worker)."""
        with self._lock:
            return run_id not in self._no_frames

    def has_columns(self, run_id: str) -> bool:
        """Whether the run's progress is held parsed (its page's first read gets columns)."""
        with self._lock:
            lines = self._progress.get(run_id)
        return lines is not None and lines.parsed_all

    def parse_progress(self, run_id: str) -> None:
        """Parse in the background what the page was sent as lines, or a finished run's
        frames, so that the next open gets columns; called once the reply is written, and
        started PARSE_AFTER_S later: the parse holds the GIL and a CPU, which the page's own
        parse and drawing need first."""
        with self._lock:
            lines = self._progress.get(run_id)
            frames = self._frames.get(run_id)
        work = []
        if lines is not None and not lines.base and lines.parsed < len(lines.data):
            work.append(lines.parse)
        if frames is not None and frames.complete and frames.columns is None:
            work.append(frames.to_columns)
        for job in work:
            timer = threading.Timer(PARSE_AFTER_S, job)
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
    """A read of a run's curves started when its page was asked for: what it reads into (the
    frames or the lines), done, and whether it failed."""

    def __init__(self, buf: ProgressLines | ProgressFrames) -> None:
        self.done = threading.Event()
        self.buf = buf
        self.failed = False


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
