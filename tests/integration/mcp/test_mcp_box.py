"""A run on the real sshd testbed box driven only through MCP tools, and the two-step `down`:
refused before the pull, a token only once every result is covered, the token voided by a
change on the box, single-use, and the plan returned after a fresh look.

The box shares this machine's filesystem, so the test changes a box file directly."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from mcp_client import Agent, drive

from outlive.testing import Box

EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"


@pytest.fixture
def project(tmp_path: Path, box: Box, request: pytest.FixtureRequest) -> Path:
    """A project whose target `box` has its own workdir and durable directory on the box."""
    proj = tmp_path / "proj"
    proj.mkdir()
    tag = f"{request.node.name[:24]}-{time.time_ns()}"
    target = dict(
        box.target, workdir=str(box.workdir / f"mcp {tag}"), durable=str(box.durable / tag)
    )
    lines = ["[targets.box]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    shutil.copyfile(EXAMPLE, proj / "train_numpy.py")
    return proj


def test_box_run_to_verified_pull_and_the_two_step_down(project: Path, box: Box) -> None:
    async def scenario(agent: Agent) -> None:
        assert "box" in [t["name"] for t in (await agent.call("targets"))["targets"]]
        command = [sys.executable, "train_numpy.py", "--steps", "30", "--save-every", "10"]
        launched = await agent.call("run", {"command": command, "name": "gate", "target": "box"})
        assert [p for p in agent.progress if p[0] == "run"]
        run_id = launched["run_id"]
        st = await agent.poll(
            "status", {"runs": [run_id]},
            lambda d: d["runs"][0]["state"] not in ("pending", "running"),
        )  # fmt: skip
        assert st["runs"][0]["state"] == "succeeded", st

        # before the pull: refused, and no token to confirm with
        first = await agent.call("down", {"target": "box"})
        assert not first["allowed"] and first["token"] is None and first["plan"] is None
        assert "not covered by a verified pull" in (first["refused"] or "")
        assert {x["why"] for x in first["lost_if_abandoned"]} == {"never pulled"}
        made_up = await agent.call("down", {"target": "box", "token": "down-made-up"})
        assert not made_up["allowed"] and "unknown" in (made_up["refused"] or "")

        ckpt = Path(st["runs"][0]["ckpt_dir"])
        (ckpt / "weights.bin").write_bytes(os.urandom(8 << 20))  # enough for rsync to report
        pulled = await agent.call("pull", {"run": "gate"})
        assert pulled["ok"], pulled["verify"]["problems"]
        moved = [p for p in agent.progress if p[0] == "pull"]
        assert moved and moved[-1][2] == pulled["size_bytes"], moved

        # covered now: a token, but nothing acts without it
        ready = await agent.call("down", {"target": "box"})
        assert not ready["allowed"] and ready["plan"] is None and ready["token"]
        assert [r["covered"] for r in ready["runs"]] == [True]

        # a file changes on the box between the two calls: the token is void
        (ckpt / "late.txt").write_text("written after the pull")
        stale = await agent.call("down", {"target": "box", "token": ready["token"]})
        assert not stale["allowed"] and stale["plan"] is None
        assert "changed since the token was issued" in (stale["refused"] or "")
        # the fresh look refuses for the file itself, until it is pulled too
        fresh = await agent.call("down", {"target": "box"})
        assert fresh["token"] is None
        assert [x["path"] for x in fresh["lost_if_abandoned"]] == ["ckpt/late.txt"]
        assert (await agent.call("pull", {"run": run_id}))["ok"]

        # a newer pull after a token was issued voids it as well
        issued = (await agent.call("down", {"target": "box"}))["token"]
        assert issued
        assert (await agent.call("pull", {"run": run_id, "to": "again"}))["ok"]
        newer = await agent.call("down", {"target": "box", "token": issued})
        assert not newer["allowed"] and "changed since" in (newer["refused"] or "")

        # nothing changed between the two calls: the plan, once
        token = (await agent.call("down", {"target": "box"}))["token"]
        passed = await agent.call("down", {"target": "box", "token": token})
        assert passed["allowed"] and passed["confirmed"] and passed["refused"] is None
        assert passed["plan"] == passed["teardown"]["plan"]
        reused = await agent.call("down", {"target": "box", "token": token})
        assert not reused["allowed"] and "already used" in (reused["refused"] or "")

    drive(project, scenario)
