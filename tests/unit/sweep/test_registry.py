"""The sweep's rows in the registry: a rerun of the same file adds what it grew by and keeps
what it had; a file whose command changed is refused, never mixed into the same sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from outlive.errors import UsageError
from outlive.store import Store
from outlive.sweep import registry
from outlive.sweep.spec import read_spec

OPTIONS: dict[str, object] = {"targets": ["local"], "per_target": 1, "retries": 0}


def _register(store: Store, path: Path, text: str) -> list[str]:
    path.write_text(text)
    return registry.register(store, read_spec(path), OPTIONS)


def test_a_grown_file_adds_its_new_items_and_keeps_the_old(tmp_path: Path) -> None:
    store, path = Store(tmp_path / ".outlive"), tmp_path / "lr.toml"
    assert _register(store, path, 'command = "python t.py {lr}"\n[grid]\nlr = [1]\n') == ["lr=1"]
    added = _register(store, path, 'command = "python t.py {lr}"\n[grid]\nlr = [1, 2]\n')
    assert added == ["lr=2"]
    assert [i.command for i in registry.items(store, "lr")] == [
        ["python", "t.py", "1"],
        ["python", "t.py", "2"],
    ]


def test_a_rerun_whose_command_changed_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    store, path = Store(tmp_path / ".outlive"), tmp_path / "lr.toml"
    _register(store, path, 'command = "python t.py --lr {lr}"\n[grid]\nlr = [1]\n')
    with pytest.raises(UsageError) as err:
        _register(store, path, 'command = "python t2.py --lr {lr}"\n[grid]\nlr = [1, 2]\n')
    said = str(err.value)
    assert "\n" not in said and "would mix two commands" in said
    assert "`python t.py --lr 1`" in said and "`python t2.py --lr 1`" in said
    assert [i.command for i in registry.items(store, "lr")] == [["python", "t.py", "--lr", "1"]]
