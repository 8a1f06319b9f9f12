"""The project's run registry: SQLite in WAL mode under ``.outlive/``.

WAL lets ``watch`` and ``status`` read while ``run`` writes; every write is one short transaction
with a busy timeout, so several outlive processes can share the registry at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from outlive.config import ensure_state_dir
from outlive.errors import OutliveError, RunNotFound, UsageError
from outlive.run_status import RunStatus

BUSY_TIMEOUT_S = 30.0

# The journal state of a launch that was written before the request went to the box and not yet
# confirmed by its reply; never shown as such (a look shows it as ``pending``).
LAUNCHING = "launching"
# States in which a run holds its name on its target (one live run per name per target).
LIVE_STATES = frozenset({LAUNCHING, "pending", "running", "requeued"})


class RegistryError(OutliveError):
    """The run registry cannot be opened, read or written (corrupt, read-only, disk full)."""

    exit_code = 2


def _disk_full(directory: Path) -> bool:
    """Less than 1 MiB free where the registry lives (SQLite may call that a disk I/O error)."""
    import os

    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


def _in_the_way(path: Path) -> tuple[Path, str] | None:
    """A file where the registry's directory belongs, or a directory where the registry does:
    what is in the way, and what it is."""
    try:
        if path.parent.exists() and not path.parent.is_dir():
            return path.parent, "not a directory"
        if path.is_dir():
            return path, "a directory"
    except OSError:
        pass
    return None


def registry_error(path: Path, exc: BaseException) -> RegistryError:
    """One sentence for a registry that SQLite or the filesystem refused."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    in_the_way = _in_the_way(path)
    if in_the_way is not None:
        what, kind = in_the_way
        return RegistryError(
            f"cannot use the run registry {path} ({what} is {kind}); move it aside "
            f"(mv {what} {what}.old) and retry"
        )
    if "full" in low or getattr(exc, "errno", None) == 28 or _disk_full(path.parent):
        fix = "free space on that disk and retry"
        if "full" not in low:
            text += ", and its disk is full"
    elif "readonly" in low or "read-only" in low or "permission" in low or "unable to open" in low:
        fix = f"make {path.parent} and its files writable by you and retry"
    elif "locked" in low:
        text = f"another process has held it locked for over {BUSY_TIMEOUT_S:.0f} s"
        fix = (
            "let that process finish or stop it (a stuck outlive, or a tool such as sqlite3 with "
            "the file open), then retry"
        )
    elif "not a database" in low or "malformed" in low or "corrupt" in low:
        fix = f"move the damaged file aside (mv {path} {path}.broken) and retry"
    else:
        fix = "check that file and its directory, then retry"
    return RegistryError(f"cannot use the run registry {path} ({text}); {fix}")


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

# Tables added after the first release, each applied once, in order; PRAGMA user_version counts
# how many a registry has (an older registry gains them on its next open, its rows untouched).
MIGRATIONS: tuple[str, ...] = (
    # 1: sweeps (issue 17): a sweep, its targets' slots, its items; and runs moved elsewhere
    """
    CREATE TABLE IF NOT EXISTS sweeps (
        name       TEXT PRIMARY KEY,
        source     TEXT NOT NULL,
        spec       TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS sweep_targets (
        sweep  TEXT NOT NULL,
        target TEXT NOT NULL,
        slots  INTEGER NOT NULL,
        PRIMARY KEY (sweep, target)
    );
    CREATE TABLE IF NOT EXISTS sweep_items (
        sweep    TEXT NOT NULL,
        key      TEXT NOT NULL,
        run_name TEXT NOT NULL,
        params   TEXT NOT NULL,
        command  TEXT NOT NULL,
        position INTEGER NOT NULL,
        note     TEXT,
        added_at REAL NOT NULL,
        PRIMARY KEY (sweep, key)
    );
    CREATE TABLE IF NOT EXISTS moves (
        run_id     TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        from_target TEXT NOT NULL,
        to_target  TEXT NOT NULL,
        new_run_id TEXT,
        checkpoint TEXT,
        moved_at   REAL NOT NULL
    );
    """,
)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the registry's schema up to date (each step once, under a write lock)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in range(done, len(MIGRATIONS)):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS)}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# A row damaged by hand or by another tool is read as well as it can be: one bad row must not
# make every command that lists runs fail.
def _loads_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _command_of(text: str) -> list[str]:
    """A row's command; a damaged one as its raw text, one argument (never split or given to a
    shell)."""
    command = _loads_or_none(text)
    return command if isinstance(command, list) else [str(text)]


def _roots_of(text: str) -> list[dict[str, str]]:
    roots = _loads_or_none(text)
    return roots if isinstance(roots, list) else []


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
    # What the last look saw, as the registry stores it: parsed only when asked for (``status``),
    # since a look at a thousand runs needs it only for the few that do not answer.
    status_json: str | None = None
    # Written before the launch request went out and not yet confirmed by the box's reply (its
    # ``state`` then reads ``pending``; the row's own state is LAUNCHING).
    journaled: bool = False

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> RunRecord:
        journaled = row["state"] == LAUNCHING
        return cls(
            run_id=row["run_id"],
            name=row["name"],
            target=row["target"],
            command=_command_of(row["command"]),
            run_dir=row["run_dir"],
            ckpt_dir=row["ckpt_dir"],
            created_at=row["created_at"],
            state="pending" if journaled else row["state"],
            status_json=row["status"] or None,
            journaled=journaled,
        )

    @cached_property
    def status(self) -> RunStatus | None:
        """What the last look saw (None for a damaged record: the next look writes it anew)."""
        doc = _loads_or_none(self.status_json) if self.status_json else None
        return RunStatus.from_json(doc) if isinstance(doc, dict) else None


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
            roots=_roots_of(row["roots"]),
            files=row["files"],
            size_bytes=row["size_bytes"],
            verified=bool(row["verified"]),
            pulled_at=row["pulled_at"],
        )


def _to_wal(conn: sqlite3.Connection) -> None:
    """The registry in WAL mode (readers never block the writer). Two processes making a fresh
    registry at once both ask for the switch, and SQLite refuses the second with "database is
    locked" at once, without its busy wait: that one waits here instead, as long as a busy
    registry would make it wait."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


_keep_warm = False
# A resident process's idle connections, per registry, for its next use (the daemon's next look):
# opening one costs a look ~0.4 ms (connect, pragmas, schema check), and closing the last one
# checkpoints the WAL (an fsync of the database, ~10 ms); kept, neither happens.
_parked: dict[str, list[_Conn]] = {}
_parked_lock = threading.Lock()


class _Conn(sqlite3.Connection):
    born: tuple[int, int] = (-1, -1)  # (st_dev, st_ino) of the file it opened


def keep_warm() -> None:
    """For a resident process (the daemon): keep each connection it opens, once used, for its
    next use on the same registry (any thread's), while the file is the same one, until
    ``release_warm()``."""
    global _keep_warm
    _keep_warm = True


def release_warm() -> None:
    global _keep_warm
    _keep_warm = False
    with _parked_lock:
        idle = [conn for conns in _parked.values() for conn in conns]
        _parked.clear()
    for conn in idle:
        conn.close()


def _unpark(path: Path) -> sqlite3.Connection | None:
    """An idle connection to ``path`` kept by this process, if the file is still the one it
    opened (a registry removed or replaced since is opened afresh)."""
    with _parked_lock:
        idle = _parked.get(str(path))
        conn = idle.pop() if idle else None
    if conn is None:
        return None
    try:
        st = os.stat(path)
        same = (st.st_dev, st.st_ino) == conn.born
    except OSError:
        same = False
    if not same:
        conn.close()
        return None
    return conn


def _park(path: Path, conn: sqlite3.Connection) -> bool:
    """Keep ``conn`` for this process's next use of ``path`` (warm mode only)."""
    if not _keep_warm or not isinstance(conn, _Conn) or conn.in_transaction:
        return False
    with _parked_lock:
        _parked.setdefault(str(path), []).append(conn)
    return True


_INSERT = (
    "INSERT INTO runs (run_id, name, target, command, run_dir, ckpt_dir, created_at, state,"
    " status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_REPLACE = _INSERT.replace("INSERT", "INSERT OR REPLACE", 1)


def _row(rec: RunRecord, state: str) -> tuple[object, ...]:
    return (
        rec.run_id,
        rec.name,
        rec.target,
        json.dumps(rec.command),
        rec.run_dir,
        rec.ckpt_dir,
        rec.created_at,
        state,
        rec.status_json,
        time.time(),
    )


class Store:
    """A handle on ``<state_dir>/registry.db``. Outside a ``with`` block each call opens and
    closes its own connection; inside one, the calls share a connection (a command's batch)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "registry.db"
        self._conn: sqlite3.Connection | None = None
        self._depth = 0  # nested blocks share the outermost block's connection

    def __enter__(self) -> Store:
        if self._depth == 0:
            self._conn = _unpark(self.path) or self._open()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._conn is not None:
            if not _park(self.path, self._conn):
                self._conn.close()
            self._conn = None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._conn is not None:
                yield self._conn
                return
            conn = _unpark(self.path) or self._open()
            try:
                yield conn
            finally:
                if not _park(self.path, conn):
                    conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise registry_error(self.path, exc) from None

    def _open(self) -> sqlite3.Connection:
        try:
            return self._open_raw()
        except (sqlite3.Error, OSError) as exc:
            raise registry_error(self.path, exc) from None

    def _open_raw(self) -> sqlite3.Connection:
        ensure_state_dir(self.path.parent)
        conn = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            factory=_Conn,
            check_same_thread=not _keep_warm,  # a kept one serves the daemon's next look
        )
        with suppress(OSError):  # unknown: never kept
            st = os.stat(self.path)
            conn.born = (st.st_dev, st.st_ino)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        _to_wal(conn)
        conn.executescript(_SCHEMA)
        _migrate(conn)
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for a module that keeps its own tables here (the sweep's): this
        block's shared one, or a fresh one closed after; SQLite errors become RegistryError."""
        with self._connect() as conn:
            yield conn

    def add(self, rec: RunRecord) -> None:
        with self._connect() as conn:
            conn.execute(_INSERT, _row(rec, rec.state))

    def journal(self, rec: RunRecord) -> None:
        """Write (or rewrite) a run's row before its launch request is sent: the write that
        proves the registry usable, and the record that lets a later look find the run on the box
        even if this process dies before the reply."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(_REPLACE, _row(rec, LAUNCHING))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def confirm(self, run_id: str, run_dir: str, ckpt_dir: str, state: str) -> None:
        """The box's reply to a journaled launch: where the run lives, and its state."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE runs SET run_dir = ?, ckpt_dir = ?, state = ?, updated_at = ?"
                " WHERE run_id = ?",
                (run_dir, ckpt_dir, state, time.time(), run_id),
            )

    def forget(self, run_ids: list[str]) -> None:
        """Drop journaled rows whose launch never reached the box."""
        if not run_ids:
            return
        with self._connect() as conn:
            conn.executemany(
                "DELETE FROM runs WHERE run_id = ? AND state = ?",
                [(r, LAUNCHING) for r in run_ids],
            )

    def journaled_at(self, run_ids: list[str]) -> dict[str, float]:
        """When each given journaled row was last written (rows still ``launching`` only)."""
        if not run_ids:
            return {}
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT run_id, updated_at FROM runs WHERE state = ?", (LAUNCHING,)
            ).fetchall()
        want = set(run_ids)
        return {r["run_id"]: r["updated_at"] for r in rows if r["run_id"] in want}

    def live_by_name(self, name: str, target: str) -> list[RunRecord]:
        """Runs of ``name`` on ``target`` that the registry last saw holding the name."""
        marks = ",".join("?" * len(LIVE_STATES))
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM runs WHERE name = ? AND target = ? AND state IN ({marks})"
                " ORDER BY created_at DESC",
                (name, target, *sorted(LIVE_STATES)),
            ).fetchall()
        return [RunRecord._from_row(r) for r in rows]

    def update(self, status: RunStatus) -> None:
        self.update_many([status])

    def update_many(
        self, statuses: list[RunStatus], stored: Mapping[str, str | None] | None = None
    ) -> None:
        """Record what one look saw, in one transaction. ``stored``: the status each run's row
        holds now (``RunRecord.status_json``); a row the look would not change is not written
        (most rows of a long-lived project are ended runs that read the same at every look)."""
        stored = stored or {}
        docs = [(s, json.dumps(s.to_json())) for s in statuses]
        rows = [(s.state.value, doc, s.run_id) for s, doc in docs if stored.get(s.run_id) != doc]
        if not rows:
            return
        now = time.time()
        with self._connect() as conn:
            # What a look saw is re-derived from the box by the next look, so these commits need
            # not wait for the disk (WAL + NORMAL is still safe against a crash of this process).
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "UPDATE runs SET state = ?, status = ?, updated_at = ? WHERE run_id = ?",
                        [(state, doc, now, run_id) for state, doc, run_id in rows],
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if not conn.in_transaction:  # (one still in a transaction is never kept)
                    # A kept connection's next write may be a launch's journal: that one waits.
                    conn.execute("PRAGMA synchronous=FULL")

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
