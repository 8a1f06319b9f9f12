"""The project's run registry: SQLite in WAL mode under ``.outlive/``.

WAL lets ``watch`` and ``status`` read while ``run`` writes; every write is one short transaction
with a busy timeout, so several outlive processes can share the registry at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outlive.errors import RunNotFound, UsageError

BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    target     TEXT NOT NULL,
    command    TEXT NOT NULL,
    run_dir    TEXT NOT NULL,
    ckpt_dir   TEXT NOT NULL,
    created_at REAL NOT NULL,
    state      TEXT NOT NULL,
    status     TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, created_at);
"""


@dataclass(frozen=True)
class RunRecord:
    """What the registry knows about one run (the box's records are the truth; this is a cache)."""

    run_id: str
    name: str
    target: str
    command: list[str]
    run_dir: str
    ckpt_dir: str
    created_at: float
    state: str = "pending"
    status: dict[str, Any] | None = None

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> RunRecord:
        return cls(
            run_id=row["run_id"],
            name=row["name"],
            target=row["target"],
            command=json.loads(row["command"]),
            run_dir=row["run_dir"],
            ckpt_dir=row["ckpt_dir"],
            created_at=row["created_at"],
            state=row["state"],
            status=json.loads(row["status"]) if row["status"] else None,
        )


class Store:
    """A handle on ``<state_dir>/registry.db``; opens a short-lived connection per operation."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "registry.db"
        self._ready = False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            ignore = self.path.parent / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# outlive's run records and local durable checkpoints\n*\n")
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                self._ready = True
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            yield conn
        finally:
            conn.close()

    def add(self, rec: RunRecord) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO runs (run_id, name, target, command, run_dir, ckpt_dir, created_at,"
                " state, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.run_id,
                    rec.name,
                    rec.target,
                    json.dumps(rec.command),
                    rec.run_dir,
                    rec.ckpt_dir,
                    rec.created_at,
                    rec.state,
                    json.dumps(rec.status) if rec.status else None,
                    time.time(),
                ),
            )

    def update(self, run_id: str, state: str, status: dict[str, Any]) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE runs SET state = ?, status = ?, updated_at = ? WHERE run_id = ?",
                (state, json.dumps(status), time.time(), run_id),
            )

    def all(self) -> list[RunRecord]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM runs ORDER BY created_at, run_id").fetchall()
        return [RunRecord._from_row(r) for r in rows]

    def resolve(self, ref: str) -> RunRecord:
        """A run by exact id, by name (its latest run), or by a unique id prefix."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (ref,)).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT * FROM runs WHERE name = ? ORDER BY created_at DESC LIMIT 1", (ref,)
                ).fetchone()
            if row is None and ref:
                rows = conn.execute(
                    "SELECT * FROM runs WHERE substr(run_id, 1, ?) = ? LIMIT 2", (len(ref), ref)
                ).fetchall()
                if len(rows) > 1:
                    raise UsageError(f"run id prefix {ref!r} matches several runs; give more of it")
                row = rows[0] if rows else None
        if row is None:
            raise RunNotFound(f"no run {ref!r} in this project; `outlive ls` lists the known runs")
        return RunRecord._from_row(row)
