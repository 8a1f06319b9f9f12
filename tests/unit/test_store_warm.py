"""A resident process (the daemon) keeps a registry connection from one ``with store`` block to
the next, and never one whose file was removed or replaced: the next block then sees the new
registry, not the old one."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlive import store as store_mod
from outlive.store import RunRecord, Store


def _rec(run_id: str) -> RunRecord:
    return RunRecord(run_id, "n", "local", ["true"], "/r", "/c", 1.0, "running")


@pytest.fixture
def warm() -> Iterator[None]:
    store_mod.keep_warm()
    try:
        yield
    finally:
        store_mod.release_warm()


def _conn_of(store: Store) -> object:
    with store:
        return store._conn


def test_a_block_reuses_the_last_blocks_connection_from_any_thread(
    tmp_path: Path, warm: None
) -> None:
    store = Store(tmp_path / ".outlive")
    store.add(_rec("r1"))
    first = _conn_of(store)
    seen: list[object] = []
    other = threading.Thread(target=lambda: seen.append(_conn_of(store)))
    other.start()
    other.join()
    assert seen == [first]  # the daemon answers each look on its own thread
    with store:
        assert [r.run_id for r in store.all()] == ["r1"]
        store.add(_rec("r2"))  # written through the kept connection, visible to a fresh one
    assert [r.run_id for r in Store(tmp_path / ".outlive").all()] == ["r1", "r2"]


def test_a_replaced_registry_is_opened_afresh(tmp_path: Path, warm: None) -> None:
    state = tmp_path / ".outlive"
    store = Store(state)
    store.add(_rec("old"))
    kept = _conn_of(store)
    shutil.rmtree(state)  # the project's registry removed (and then a new one made)
    fresh = Store(state)
    fresh.add(_rec("new"))
    with store:
        assert store._conn is not kept
        assert [r.run_id for r in store.all()] == ["new"]


def test_without_warm_mode_every_block_opens_and_closes_its_own(tmp_path: Path) -> None:
    store = Store(tmp_path / ".outlive")
    store.add(_rec("r1"))
    first = _conn_of(store)
    assert _conn_of(store) is not first
    assert not store_mod._parked


def test_in_warm_mode_no_call_checkpoints_the_wal_until_release(tmp_path: Path) -> None:
    """A connection closed as the last one checkpoints the WAL (an fsync, ~10 ms): a resident
    process keeps every connection it used, in a block or not, so none of its calls pays that;
    release closes them all (the WAL then folded into the database and removed)."""
    store = Store(tmp_path / ".outlive")
    wal = Path(f"{store.path}-wal")
    store_mod.keep_warm()
    try:
        store.add(_rec("r1"))  # outside a block
        assert wal.exists() and wal.stat().st_size > 0
        with store:
            store.add(_rec("r2"))
        store.update_many([])  # nothing to write: no connection needed
        assert [r.run_id for r in store.all()] == ["r1", "r2"]
        assert wal.stat().st_size > 0  # never checkpointed by a close
        assert sum(len(c) for c in store_mod._parked.values()) == 1  # one, reused throughout
    finally:
        store_mod.release_warm()
    assert not wal.exists()
    assert [r.run_id for r in store.all()] == ["r1", "r2"]


def test_a_kept_connection_is_back_to_full_sync_after_a_looks_write(
    tmp_path: Path, warm: None
) -> None:
    """A look's own write need not wait for the disk (synchronous=NORMAL); the connection kept
    after it may next journal a launch, which must (FULL, SQLite's default)."""
    from outlive.run_status import RunStatus
    from outlive.wire import State

    store = Store(tmp_path / ".outlive")
    store.add(_rec("r1"))
    seen = RunStatus(run_id="r1", name="n", target="local", state=State.SUCCEEDED)
    with store:  # a look
        store.update_many([seen])
    with store:  # the next block (a launch) has the same connection
        assert store._conn is not None
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
