"""The board's data: one look at a time, taken only while a page listens.

A look goes through the same status path as ``outlive status --json``: the daemon's warm
channels when it answers (started in the background when it does not, as the CLI does), else
the lifecycle's own look. Every open page shares the one poller's snapshot, so N pages cost the
boxes what one does; with no page open the poller stops and the boxes hear nothing from here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from outlive.errors import OutliveError

Row = dict[str, Any]
LookFn = Callable[[], tuple[list[Row], str]]

POLL_INTERVAL_S = 1.5  # the bound for a live board is 2 s
LINGER_S = 5.0  # a reload (one page leaves, the next comes) keeps the poller


def daemon_look(project_dir: Path, refs: Sequence[str] = ()) -> Row | None:
    """``status --json [REF...]``'s document answered by the warm daemon, or None (none running:
    one is started in the background for the next look, as the CLI's own look does)."""
    from outlive.daemon import client

    if os.environ.get(client.DISABLE_ENV, "") not in ("", "0"):
        return None
    path = client.socket_path()
    if path is None:
        return None
    doc: dict[str, object] = {
        "op": "status",
        "argv": ["status", "--json", *refs],
        "cwd": str(project_dir),
        "tty": False,
        "columns": None,
        "term": {},
    }
    try:
        code, out, err = client.exchange(path, doc)
    except (FileNotFoundError, ConnectionRefusedError):
        client.spawn(path)
        return None
    except (OSError, ValueError):
        return None
    if code == client.FALLBACK:
        return None
    if code not in (0, 1):
        raise OutliveError(err.decode(errors="replace").strip() or "the look failed")
    answer: Row = json.loads(out)
    return answer


def direct_look(project_dir: Path, refs: Sequence[str] = ()) -> Row:
    """The CLI's own ``status --json`` body, in this process (no daemon)."""
    import io

    from outlive.cli.run_cmds import do_status

    out = io.StringIO()
    do_status(list(refs), True, start=project_dir, out=out)
    answer: Row = json.loads(out.getvalue())
    return answer


def look_at(project_dir: Path, refs: Sequence[str] = ()) -> tuple[Row, str]:
    """``status --json``'s document for ``refs`` (all runs when empty): ``runs``, and
    ``targets`` (cost and danger clocks) for targets with a cloud id; and who looked."""
    doc = daemon_look(project_dir, refs)
    if doc is not None:
        return doc, "daemon"
    return direct_look(project_dir, refs), "direct"


def status_look(project_dir: Path) -> LookFn:
    def look() -> tuple[list[Row], str]:
        doc, source = look_at(project_dir)
        spend = doc.get("targets") or {}
        costs = {rid: usd for t in spend.values() for rid, usd in (t.get("runs_usd") or {}).items()}
        runs: list[Row] = doc["runs"]
        for row in runs:
            if row.get("run_id") in costs:
                row["cost_usd"] = costs[row["run_id"]]
        return runs, source

    return look


def registry_rows(project_dir: Path) -> list[Row]:
    """What the registry last saw of every run (no box is asked): the board's first paint."""
    from outlive.config import load_config
    from outlive.store import Store

    rows: list[Row] = []
    for rec in Store(load_config(project_dir).state_dir).all():
        if rec.status is not None:
            row = rec.status.to_json()
        else:
            row = {"run_id": rec.run_id, "name": rec.name, "target": rec.target}
            row.update(state=rec.state, command=list(rec.command), created_at=rec.created_at)
        rows.append(row)
    return rows


class Hub:
    """The latest board snapshot and the poller that refreshes it while anyone listens."""

    def __init__(
        self,
        look: LookFn,
        first: Callable[[], list[Row]],
        *,
        interval_s: float = POLL_INTERVAL_S,
        linger_s: float = LINGER_S,
    ) -> None:
        self._look = look
        self._first = first
        self.interval_s = interval_s
        self.linger_s = linger_s
        self._cond = threading.Condition()
        self._listeners = 0
        self._left_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._registry: Row | None = None
        self.looks = 0  # looks taken (tests: no page open, no look)
        self.snapshot: Row = {"seq": 0, "at": time.time(), "runs": [], "source": "none"}

    def first_paint(self) -> Row:
        """The latest live snapshot, or the registry's last-seen rows before the first look."""
        with self._cond:
            if self.snapshot["seq"] > 0:
                return self.snapshot
            if self._registry is not None:
                return self._registry
        snap: Row = {"seq": 0, "at": time.time(), "source": "registry"}
        try:
            snap["runs"] = self._first()
        except OutliveError as exc:
            snap.update(runs=[], error=str(exc))
        with self._cond:
            self._registry = snap  # until the first look replaces it
        return snap

    @contextmanager
    def listening(self) -> Iterator[None]:
        """While inside, the poller runs (one for all listeners)."""
        with self._cond:
            self._listeners += 1
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._poll, name="ui-poller", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._cond:
                self._listeners -= 1
                self._left_at = time.monotonic()

    def wait_newer(self, seq: int, timeout_s: float) -> Row:
        """The first snapshot newer than ``seq`` (or the current one after ``timeout_s``)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.snapshot["seq"] > seq or self._closed, timeout=timeout_s
            )
            return self.snapshot

    def wait_stopped(self, timeout_s: float) -> bool:
        """Whether the poller has stopped (no page listening) within ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._thread is None, timeout=timeout_s)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _idle(self) -> bool:
        return self._closed or (
            self._listeners == 0 and time.monotonic() - self._left_at >= self.linger_s
        )

    def _poll(self) -> None:
        while True:
            with self._cond:
                if self._idle():
                    self._thread = None
                    self._cond.notify_all()
                    return
            snap: Row = {"at": time.time()}
            t0 = time.monotonic()
            try:
                snap["runs"], snap["source"] = self._look()
            except OutliveError as exc:
                snap.update(runs=self.snapshot["runs"], source="error", error=str(exc))
            took_s = time.monotonic() - t0
            with self._cond:
                self.looks += 1
                snap["seq"] = self.snapshot["seq"] + 1
                self.snapshot = snap
                self._cond.notify_all()
                # A slow look (thousands of runs) is not run back to back: at most a third of
                # the time goes to looking.
                pause_s = max(self.interval_s, 2 * took_s)
                self._cond.wait_for(self._idle, timeout=pause_s)
