"""The registry held locked by another process past the busy timeout: one sentence that says
so and what to do (it used to read "check that file and its directory"), and nothing written."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from outlive import store as store_mod
from outlive.store import RegistryError, RunRecord, Store


def _rec(run_id: str) -> RunRecord:
    return RunRecord(run_id, "n", "local", ["true"], "/r", "/c", 1.0, "running")


def test_a_registry_locked_by_another_process_is_one_sentence_naming_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / ".outlive")
    store.add(_rec("before"))
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sqlite3, sys
                conn = sqlite3.connect(sys.argv[1], isolation_level=None)
                conn.execute("BEGIN IMMEDIATE")
                print("held", flush=True)
                sys.stdin.read()
                """
            ),
            str(store.path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_S", 0.2)
        with pytest.raises(RegistryError) as caught:
            store.journal(_rec("blocked"))
        assert holder.stdin is not None
        holder.stdin.close()
    message = str(caught.value)
    assert "\n" not in message
    assert "another process has held it locked" in message and "then retry" in message
    assert [r.run_id for r in store.all()] == ["before"]


@pytest.mark.parametrize("in_the_way", [".outlive", ".outlive/registry.db"])
def test_a_file_or_directory_in_the_registrys_way_is_named_with_the_fix(
    tmp_path: Path, in_the_way: str
) -> None:
    """A file where ``.outlive/`` belongs, or a directory where the registry does (an unlucky
    copy, a tool's leftover): it used to read "File exists" or "make it writable"."""
    where = tmp_path / in_the_way
    if in_the_way == ".outlive":
        where.write_text("")
    else:
        where.mkdir(parents=True)
    with pytest.raises(RegistryError) as caught:
        Store(tmp_path / ".outlive").all()
    message = str(caught.value)
    kind = "not a directory" if in_the_way == ".outlive" else "a directory"
    assert f"({where} is {kind}); move it aside (mv {where} {where}.old) and retry" in message


def test_a_damaged_row_is_read_as_well_as_it_can_be_not_a_traceback(tmp_path: Path) -> None:
    """A row whose JSON was damaged (a hand edit, another tool): every command that lists runs
    used to fail on it with a JSONDecodeError traceback."""
    import sqlite3

    from outlive.store import PullRecord

    store = Store(tmp_path / ".outlive")
    store.add(_rec("cmd"))
    store.add(_rec("status"))
    store.add(_rec("fine"))
    store.record_pull(PullRecord("fine", "/d", None, [], 0, 0, True, 1.0))
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE runs SET command = '{bad' WHERE run_id = 'cmd'")
    conn.execute("UPDATE runs SET status = '[1' WHERE run_id = 'status'")
    conn.execute("UPDATE pulls SET roots = 'nope'")
    conn.commit()
    conn.close()
    rows = {r.run_id: r for r in store.all()}
    assert rows["cmd"].command == ["{bad"]
    assert rows["status"].status is None and rows["fine"].command == ["true"]
    assert store.resolve("status").run_id == "status"
    assert [p.roots for p in store.pulls()] == [[]]
