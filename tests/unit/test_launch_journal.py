"""Issue 12 in-process: the registry's launch journal (a journaled row reads ``pending``, is
confirmed or forgotten), registry failures as one sentence, and the box's per-name lock."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from outlive import wire
from outlive.agent.box import runs as box_runs
from outlive.agent.box.common import AgentError
from outlive.store import LAUNCHING, RegistryError, RunRecord, Store, registry_error


def _rec(run_id: str = "20260101-000000-aaaaaa", name: str = "n") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        name=name,
        target="local",
        command=["true"],
        run_dir=f"/w/.outlive/runs/{run_id}",
        ckpt_dir=f"/w/.outlive/durable/{name}",
        created_at=1.0,
        state="running",
    )


def test_a_journaled_row_reads_pending_until_confirmed(tmp_path: Path) -> None:
    store = Store(tmp_path / ".outlive")
    store.journal(_rec())
    got = store.resolve("20260101-000000-aaaaaa")
    assert got.state == "pending" and got.journaled
    raw = sqlite3.connect(str(store.path)).execute("SELECT state FROM runs").fetchone()[0]
    assert raw == LAUNCHING
    assert [r.run_id for r in store.live_by_name("n", "local")] == [got.run_id]
    assert store.live_by_name("n", "other") == []
    assert set(store.journaled_at([got.run_id])) == {got.run_id}
    store.confirm(got.run_id, "/real/run", "/real/ck", "running")
    got = store.resolve(got.run_id)
    assert (got.state, got.journaled, got.run_dir, got.ckpt_dir) == (
        "running",
        False,
        "/real/run",
        "/real/ck",
    )
    store.forget([got.run_id])  # only journaled rows are ever forgotten
    assert store.resolve(got.run_id).state == "running"


def test_a_journaled_row_is_rewritten_and_forgotten(tmp_path: Path) -> None:
    store = Store(tmp_path / ".outlive")
    store.journal(_rec())
    store.journal(_rec())  # a retried send re-stamps the same row
    assert len(store.all()) == 1
    store.forget(["20260101-000000-aaaaaa"])
    assert store.all() == []


def test_a_corrupt_registry_is_one_sentence(tmp_path: Path) -> None:
    state = tmp_path / ".outlive"
    state.mkdir()
    (state / "registry.db").write_bytes(b"garbage" * 1000)
    with pytest.raises(RegistryError, match=r"registry\.db.*move the damaged file aside") as err:
        Store(state).journal(_rec())
    assert "\n" not in str(err.value) and err.value.exit_code == 2


@pytest.mark.parametrize(
    ("exc", "fix"),
    [
        (sqlite3.OperationalError("database or disk is full"), "free space"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "writable"),
        (OSError(28, "No space left on device"), "free space"),
        (sqlite3.DatabaseError("file is not a database"), "damaged"),
    ],
)
def test_each_registry_failure_names_its_fix(exc: BaseException, fix: str) -> None:
    assert fix in str(registry_error(Path("/p/.outlive/registry.db"), exc))


def _request(tmp_path: Path, run_id: str, name: str = "n") -> wire.LaunchRequest:
    return wire.LaunchRequest(
        run_id=run_id, name=name, command=["true"], workdir=str(tmp_path), backend="setsid"
    )


def _owner(tmp_path: Path, name: str = "n") -> dict[str, object]:
    path = tmp_path / ".outlive" / "durable" / box_runs.NAMES_DIRNAME / name
    doc: dict[str, object] = json.loads(path.read_text())
    return doc


def _live_run(tmp_path: Path, run_id: str) -> None:
    """A run dir whose launch.json names this test process as the job (alive, running)."""
    from outlive.agent.box.procfs import proc_start_ticks

    d = tmp_path / ".outlive" / "runs" / run_id
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"run_id": run_id, "name": "n", "command": ["x"]}))
    me, ticks = os.getpid(), proc_start_ticks(os.getpid())
    launch = {"pid": me, "start_ticks": ticks, "supervisor_pid": me}
    launch.update(supervisor_start_ticks=ticks, started_at=time.time(), pgid=os.getpgid(me))
    (d / "launch.json").write_text(json.dumps(launch))


def test_the_box_claims_a_free_name_and_refuses_a_held_one(tmp_path: Path) -> None:
    first = "20260101-000000-aaaaaa"
    fd = box_runs._claim_name(_request(tmp_path, first), "n", first)
    os.close(fd)
    assert _owner(tmp_path)["run_id"] == first
    _live_run(tmp_path, first)
    second = "20260101-000001-bbbbbb"
    with pytest.raises(AgentError, match=f"held by run {first}.*outlive cancel {first}") as err:
        box_runs._claim_name(_request(tmp_path, second), "n", second)
    assert err.value.kind == "name_busy"
    assert _owner(tmp_path)["run_id"] == first


def test_the_box_takes_over_a_name_whose_run_ended_or_never_started(tmp_path: Path) -> None:
    first = "20260101-000000-aaaaaa"
    os.close(box_runs._claim_name(_request(tmp_path, first), "n", first))
    d = tmp_path / ".outlive" / "runs" / first
    d.mkdir(parents=True)  # run.json, no launch.json: the launch died before the job started
    (d / "run.json").write_text(json.dumps({"run_id": first, "name": "n", "command": ["x"]}))
    second = "20260101-000001-bbbbbb"
    os.close(box_runs._claim_name(_request(tmp_path, second), "n", second))
    assert _owner(tmp_path)["run_id"] == second
    exit_json = {"exit_code": 0, "ended_at": time.time()}
    ended = tmp_path / ".outlive" / "runs" / second
    ended.mkdir()
    (ended / "run.json").write_text(json.dumps({"run_id": second, "name": "n", "command": ["x"]}))
    (ended / "launch.json").write_text(json.dumps({"pid": None, "started_at": 1.0}))
    (ended / "exit.json").write_text(json.dumps(exit_json))
    third = "20260101-000003-dddddd"
    os.close(box_runs._claim_name(_request(tmp_path, third), "n", third))
    assert _owner(tmp_path)["run_id"] == third


def test_a_refused_launch_leaves_the_name_to_its_owner(tmp_path: Path) -> None:
    first = "20260101-000000-aaaaaa"
    os.close(box_runs._claim_name(_request(tmp_path, first), "n", first))
    _live_run(tmp_path, first)
    req = _request(tmp_path, "20260101-000001-bbbbbb").to_json()
    with pytest.raises(AgentError, match="held by run"):
        box_runs.verb_launch(req)
    assert not (tmp_path / ".outlive" / "runs" / "20260101-000001-bbbbbb").exists()
