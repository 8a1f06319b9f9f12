"""The ``sweep_status`` tool against a real sweep on the local target: the same document as
`outlive sweep status --json` in the same project (by name, by its file, the newest by default,
ranked by a metric), and bad references are one sentence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcp_client import OUTLIVE, Agent, drive

EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"


def _outlive(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OUTLIVE_") or k == "OUTLIVE_DAEMON_DIR"}  # fmt: skip
    return subprocess.run(
        [OUTLIVE, *args], cwd=project, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def _cli_status(project: Path, *args: str) -> dict[str, Any]:
    done = _outlive(project, "sweep", "status", "--json", *args)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_sweep_status_tool_is_the_clis_sweep_status(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "outlive.toml").write_text("")
    shutil.copyfile(EXAMPLE, project / "train_numpy.py")
    command = [sys.executable, "train_numpy.py", "--steps", "{steps}", "--save-every", "5",
               "--step-sleep-s", "0"]  # fmt: skip
    (project / "grid.toml").write_text(
        f'name = "grid"\ncommand = {json.dumps(command)}\n[grid]\nsteps = [10, 15]\n'
    )
    ran = _outlive(project, "sweep", "grid.toml", "--poll-s", "0.2", "--json")
    assert ran.returncode == 0, ran.stderr
    expected = _cli_status(project, "grid")
    assert expected["summary"]["done"] == 2 and expected["best"]["by"] == "loss"
    ranked = _cli_status(project, "--by", "loss", "--highest", "grid")

    async def scenario(agent: Agent) -> None:
        assert await agent.call("sweep_status", {"sweep": "grid"}) == expected
        assert await agent.call("sweep_status", {"sweep": "grid.toml"}) == expected
        assert await agent.call("sweep_status") == expected  # the newest sweep
        got = await agent.call("sweep_status", {"sweep": "grid", "by": "loss", "highest": True})
        assert got == ranked and [b["key"] for b in got["best"]["items"]] == [
            "steps=10", "steps=15"
        ]  # fmt: skip
        said = await agent.refused("sweep_status", {"sweep": "other"})
        assert "no sweep 'other'" in said and "grid" in said

    drive(project, scenario)
