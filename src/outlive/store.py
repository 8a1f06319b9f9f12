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

from outlive.config import ensure_state_dir
from outlive.errors import RunNotFound, UsageError
from outlive.run_status import RunStatus

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
-- outlive pull: one row per (run, local destination), the latest pull into it (issue 6)
CREATE TABLE IF NOT EXISTS pulls (
    run_id          TEXT NOT NULL,
    dest            TEXT NOT NULL,
    manifest_sha256 TEXT,
    roots           TEXT NOT NULL,
    files           INTEGER NOT NULL,
    size_bytes      INTEGER NOT NULL,
    verified        INTEGER NOT NULL,
    pulled_at       REAL NOT NULL,
    PRIMARY KEY (run_id, dest)
);
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
    status: RunStatus | None = None  # what the last look saw

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
            status=RunStatus.from_json(json.loads(row["status"])) if row["status"] else None,
        )


@dataclass(frozen=True)
class PullRecord:
    """One pull of a run into a local directory (the directory's PULL_VERIFIED.json is the
    proof; this row only says where to look)."""

    run_id: str
    dest: str
    manifest_sha256: str | None
    roots: list[dict[str, str]]
    files: int
    size_bytes: int
    verified: bool
    pulled_at: float

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> PullRecord:
        return cls(
            run_id=row["run_id"],
            dest=row["dest"],
            manifest_sha256=row["manifest_sha256"],
            roots=json.loads(row["roots"]),
            files=row["files"],
            size_bytes=row["size_bytes"],
            verified=bool(row["verified"]),
            pulled_at=row["pulled_at"],
        )


_keep_warm = False
_warm: dict[str, sqlite3.Connection] = {}


def keep_warm() -> None:
    """For a resident process (the daemon): keep one idle connection to each registry it opens
    until ``release_warm()``, so each look's own connection closes cheaply."""
    global _keep_warm
    _keep_warm = True


def release_warm() -> None:
    global _keep_warm
    _keep_warm = False
    while _warm:
        _warm.popitem()[1].close()


class Store:
    """A handle on ``<state_dir>/registry.db``. Outside a ``with`` block each call opens and
    closes its own connection; inside one, the calls share a connection (a command's batch)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "registry.db"
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> Store:
        self._conn = self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self._conn is not None:
            yield self._conn
            return
        conn = self._open()
        try:
            yield conn
        finally:
            conn.close()

    def _open(self) -> sqlite3.Connection:
        ensure_state_dir(self.path.parent)
        if _keep_warm and str(self.path) not in _warm:
            # Held open, never used: our own connection's close then is not the last one, so it
            # skips the WAL checkpoint (an fsync of the database, ~10 ms) on every look.
            _warm[str(self.path)] = sqlite3.connect(str(self.path), check_same_thread=False)
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        conn.executescript(_SCHEMA)
        return conn

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
                    json.dumps(rec.status.to_json()) if rec.status else None,
                    time.time(),
                ),
            )

    def update(self, status: RunStatus) -> None:
        self.update_many([status])

    def update_many(self, statuses: list[RunStatus]) -> None:
        """Record what one look saw, in one transaction."""
        if not statuses:
            return
        now = time.time()
        with self._connect() as conn:
            # What a look saw is re-derived from the box by the next look, so these commits need
            # not wait for the disk (WAL + NORMAL is still safe against a crash of this process).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "UPDATE runs SET state = ?, status = ?, updated_at = ? WHERE run_id = ?",
                    [(s.state.value, json.dumps(s.to_json()), now, s.run_id) for s in statuses],
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

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

    def record_pull(self, rec: PullRecord) -> None:
        """Remember the latest pull of a run into ``rec.dest`` (replacing an earlier one)."""
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO pulls (run_id, dest, manifest_sha256, roots, files,"
                " size_bytes, verified, pulled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.run_id,
                    rec.dest,
                    rec.manifest_sha256,
                    json.dumps(rec.roots),
                    rec.files,
                    rec.size_bytes,
                    int(rec.verified),
                    rec.pulled_at,
                ),
            )

    def pulls(self, run_ids: list[str] | None = None) -> list[PullRecord]:
        """Pulls of the given runs (all when None), newest first."""
        with self._connect() as conn:
            if run_ids is None:
                rows = conn.execute("SELECT * FROM pulls ORDER BY pulled_at DESC").fetchall()
            else:
                rows = []
                for start in range(0, len(run_ids), 500):  # SQLite's host-parameter limit
                    chunk = run_ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows += conn.execute(
                        f"SELECT * FROM pulls WHERE run_id IN ({marks})", chunk
                    ).fetchall()
                rows.sort(key=lambda r: r["pulled_at"], reverse=True)
        return [PullRecord._from_row(r) for r in rows]
