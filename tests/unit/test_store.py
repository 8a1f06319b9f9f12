"""The run registry: SQLite in WAL mode, shared by many outlive processes at once without
"database is locked", resolving runs by id, name or unique id prefix."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from outlive.errors import RunNotFound, UsageError
from outlive.run_status import RunStatus
from outlive.store import RunRecord, Store
from outlive.wire import State


def _rec(run_id: str, name: str = "n", created_at: float = 1.0) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        name=name,
        target="local",
        command=["python", "train.py", "--lr", "1e-3"],
        run_dir=f"/w/.outlive/runs/{run_id}",
        ckpt_dir=f"/w/.outlive/durable/{name}",
        created_at=created_at,
        state="running",
    )


def test_a_run_round_trips_and_updates(tmp_path):
    store = Store(tmp_path / ".outlive")
    store.add(_rec("20260101-000000-aaaaaa"))
    got = store.resolve("20260101-000000-aaaaaa")
    assert got == _rec("20260101-000000-aaaaaa")
    seen = RunStatus(got.run_id, got.name, got.target, State.FAILED, exit_code=3)
    store.update(seen)
    got = store.resolve(got.run_id)
    assert got.state == "failed" and got.status == seen
    assert got.status.to_json()["exit_code"] == 3


def test_the_registry_is_in_wal_mode_and_ignored_by_git(tmp_path):
    store = Store(tmp_path / ".outlive")
    store.all()
    conn = sqlite3.connect(str(store.path))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert (tmp_path / ".outlive" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_resolve_by_name_gives_the_latest_run_of_that_name(tmp_path):
    store = Store(tmp_path / ".outlive")
    store.add(_rec("r-old", name="train", created_at=1.0))
    store.add(_rec("r-new", name="train", created_at=2.0))
    assert store.resolve("train").run_id == "r-new"
    assert [r.run_id for r in store.all()] == ["r-old", "r-new"]


def test_resolve_by_a_unique_id_prefix(tmp_path):
    store = Store(tmp_path / ".outlive")
    store.add(_rec("20260101-000000-aaaaaa"))
    store.add(_rec("20260101-000000-abbbbb"))
    assert store.resolve("20260101-000000-aa").run_id == "20260101-000000-aaaaaa"
    with pytest.raises(UsageError, match="matches several runs"):
        store.resolve("20260101-000000-a")


def test_an_unknown_run_is_a_usage_error_pointing_at_ls(tmp_path):
    with pytest.raises(RunNotFound, match="outlive ls") as info:
        Store(tmp_path / ".outlive").resolve("nope")
    assert info.value.exit_code == 2


def test_hostile_names_and_commands_are_stored_as_data(tmp_path):
    store = Store(tmp_path / ".outlive")
    name = "x'; DROP TABLE runs; --\n$(id) ü"
    rec = RunRecord("r1", name, "local", ["a b", "'", "\n"], "/r", "/c", 1.0)
    store.add(rec)
    assert store.resolve(name) == rec
    assert store.all() == [rec]


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from outlive.run_status import RunStatus
    from outlive.store import RunRecord, Store
    from outlive.wire import State

    state_dir, worker, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    errors = []
    for i in range(n):
        store = Store(state_dir)  # a fresh handle per operation, as each CLI call has
        run_id = f"w{worker}-{i}"
        try:
            store.add(RunRecord(run_id, f"n{worker}", "local", ["true"], "/r", "/c", time.time()))
            store.update(RunStatus(run_id, f"n{worker}", "local", State.SUCCEEDED, pid=i))
            store.all()
            store.resolve(f"n{worker}")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps(errors))
    """
)


def test_many_processes_share_the_registry_without_database_locked(tmp_path):
    state_dir = tmp_path / ".outlive"
    workers, ops = 8, 20
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(state_dir), str(w), str(ops)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert json.loads(out) == [], out
    runs = Store(state_dir).all()
    assert len(runs) == workers * ops
    assert {r.state for r in runs} == {"succeeded"}
