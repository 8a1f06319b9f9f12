"""`down` with ``execute`` through MCP: a real run on the sshd testbed box whose target is a
RunPod pod of the provider fake (``cloud_id``). Refused before the pull, with no provider call;
a plan-only token cannot execute; a box-side change voids an execute token; after a fresh look
the second call terminates exactly that pod, once, and says what still bills. A Paperspace
target stops its machine the same way (no run: nothing to protect)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp_client import Agent, drive

from outlive.testing import Box, providers
from outlive.testing import paperspace_fake as P
from outlive.testing import runpod_fake as F

EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"
_PROVIDER_ENV = ("RUNPOD_API_KEY", "OUTLIVE_RUNPOD_API_URL", "OUTLIVE_RUNPOD_KEY_FILE",
                 "PAPERSPACE_API_KEY", "OUTLIVE_PAPERSPACE_API_URL",
                 "OUTLIVE_PAPERSPACE_KEY_FILE")  # fmt: skip


def _fake(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The ``kind`` fake, its key and URL exported (no key file of the user's is read);
    yields its control URL."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    name = f"mcpx{time.time_ns() % 10**8}"
    env = providers.up(kind, name)["env"]
    try:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield env[f"OUTLIVE_{kind.upper()}_FAKE_URL"]
    finally:
        providers.down(kind, name)


@pytest.fixture
def runpod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from _fake("runpod", tmp_path, monkeypatch)


@pytest.fixture
def paperspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from _fake("paperspace", tmp_path, monkeypatch)


def _mutations(fake_url: str) -> list[tuple[str, str]]:
    exchanges: list[dict[str, Any]] = providers.control(fake_url, "log")["exchanges"]
    return [(str(x["method"]), str(x["path"])) for x in exchanges if x["method"] != "GET"]


def _project(root: Path, name: str, table: dict[str, object]) -> Path:
    root.mkdir()
    lines = [f"[targets.{name}]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    (root / "outlive.toml").write_text("\n".join(lines) + "\n")
    return root


def test_execute_terminates_exactly_the_targets_pod_only_after_gate_and_token(
    tmp_path: Path, box: Box, tag: str, runpod: str
) -> None:
    table: dict[str, object] = dict(box.target, profile="runpod", cloud_id=F.TRAIN_POD)
    table.update(workdir=str(box.workdir / f"mcpx {tag}"), durable=str(box.durable / tag))
    project = _project(tmp_path / "proj", "pod", table)
    shutil.copyfile(EXAMPLE, project / "train_numpy.py")
    pod, execute = {"target": "pod"}, {"target": "pod", "execute": True}

    async def scenario(agent: Agent) -> None:
        command = [sys.executable, "train_numpy.py", "--steps", "20", "--save-every", "10"]
        run_id = (await agent.call("run", {"command": command, "name": "x", "target": "pod"}))[
            "run_id"
        ]
        st = await agent.poll(
            "status", {"runs": [run_id]},
            lambda d: d["runs"][0]["state"] not in ("pending", "running"),
        )  # fmt: skip
        assert st["runs"][0]["state"] == "succeeded", st

        # before the pull: refused, no token, and the bill is shown, not acted on
        first = await agent.call("down", execute)
        assert not first["allowed"] and first["token"] is None and first["executed"] is None
        assert "not covered by a verified pull" in (first["refused"] or "")
        assert first["cloud"]["cloud_id"] == F.TRAIN_POD and first["cloud"]["state"] == "RUNNING"
        guessed = await agent.call("down", {**execute, "token": "down-guessed"})
        assert not guessed["allowed"] and guessed["executed"] is None
        assert _mutations(runpod) == []  # data and cost alone never stop anything

        assert (await agent.call("pull", {"run": run_id}))["ok"]
        # a token for the plan only does not execute
        plan_token = (await agent.call("down", pod))["token"]
        assert plan_token
        wrong = await agent.call("down", {**execute, "token": plan_token})
        assert not wrong["allowed"] and "the plan only" in (wrong["refused"] or "")

        # the first call says what the second will do
        ready = await agent.call("down", execute)
        assert ready["token"] and not ready["allowed"] and ready["executed"] is None
        assert f"terminate on runpod {F.TRAIN_POD}" in ready["next_step"]
        # a file changes on the box in between: the token is void, nothing is called
        (Path(st["runs"][0]["ckpt_dir"]) / "late.txt").write_text("after the pull")
        stale = await agent.call("down", {**execute, "token": ready["token"]})
        assert not stale["allowed"] and "changed since" in (stale["refused"] or "")
        assert stale["executed"] is None and _mutations(runpod) == []

        assert (await agent.call("pull", {"run": run_id}))["ok"]
        token = (await agent.call("down", execute))["token"]
        done = await agent.call("down", {**execute, "token": token})
        assert done["allowed"] and done["confirmed"] and done["refused"] is None
        ran = done["executed"]
        assert (ran["verb"], ran["acted"], ran["meter_stopped"]) == ("terminate", True, True)
        assert (ran["state_before"], ran["state"]) == ("RUNNING", None)
        # the network volume survives terminate and keeps billing (RP3): said, not touched
        assert [b["id"] for b in ran["still_billing"]] == [F.DURABLE_VOLUME]
        assert F.DURABLE_VOLUME in done["next_step"]
        assert _mutations(runpod) == [("DELETE", f"/pods/{F.TRAIN_POD}")]
        again = await agent.call("down", {**execute, "token": token})
        assert not again["allowed"] and "already used" in (again["refused"] or "")
        assert len(_mutations(runpod)) == 1

    drive(project, scenario)
    pods = providers.control(runpod, "state")["pods"]
    assert pods == {F.TRAIN_POD: "TERMINATED", F.IDLE_POD: "RUNNING",
                    F.STOPPED_POD: "EXITED", F.SPOT_POD: "EXITED"}  # fmt: skip


def test_execute_stops_a_paperspace_machine_and_says_its_storage_still_bills(
    tmp_path: Path, paperspace: str
) -> None:
    table: dict[str, object] = {"profile": "paperspace-core", "host": "127.0.0.1", "port": 1,
                                "cloud_id": P.WORKER}  # fmt: skip
    project = _project(tmp_path / "proj", "ws", table)
    execute = {"target": "ws", "execute": True}

    async def scenario(agent: Agent) -> None:
        ready = await agent.call("down", execute)  # no run of outlive's: nothing to protect
        assert ready["token"] and ready["cloud"]["state"] == "ready"
        assert _mutations(paperspace) == []
        done = await agent.call("down", {**execute, "token": ready["token"]})
        ran = done["executed"]
        assert done["allowed"] and (ran["verb"], ran["acted"], ran["meter_stopped"]) == (
            "shut-down",
            True,
            True,
        )
        assert ran["still_billing"], "a stopped machine's storage still bills (PS1)"

    drive(project, scenario)
    assert _mutations(paperspace) == [("PATCH", f"/machines/{P.WORKER}/stop")]


def test_execute_without_a_providers_key_is_one_sentence_and_nothing_is_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    table: dict[str, object] = {
        "profile": "runpod",
        "host": "127.0.0.1",
        "port": 1,
        "cloud_id": F.TRAIN_POD,
    }
    project = _project(tmp_path / "proj", "pod", table)

    async def scenario(agent: Agent) -> None:
        said = await agent.refused("down", {"target": "pod", "execute": True})
        assert "RUNPOD_API_KEY" in said
        plain = await agent.call("down", {"target": "pod"})  # without execute: the gate as ever
        assert plain["cloud"] is None and plain["token"]

    drive(project, scenario)
