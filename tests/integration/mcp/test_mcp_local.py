"""A run on the embedded `local` target driven only through MCP tools, to a verified pull."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mcp_client import Agent, drive

BUSY = ("pending", "running")
OOM = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"


def test_local_run_status_logs_explain_doctor_pull_verify_through_tools(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    shutil.copyfile(EXAMPLE, project / "train_numpy.py")
    (project / "crash.log").write_text(OOM + "\n")

    async def scenario(agent: Agent) -> None:
        targets = await agent.call("targets")
        assert [t["name"] for t in targets["targets"]] == ["local"]
        audit = await agent.call("up", {"target": "local", "torch": False})
        assert audit["target"] == "local" and audit["checks"]

        command = [sys.executable, "train_numpy.py", "--steps", "30", "--save-every", "10"]
        launched = await agent.call("run", {"command": command, "name": "toy"})
        assert launched["name"] == "toy" and launched["target"] == "local"
        assert launched["warnings"] == []  # the program is on the PATH
        steps = [p for p in agent.progress if p[0] == "run"]
        assert steps and steps[-1][1] == steps[-1][2], steps  # deploy progress, ending complete

        run_id = launched["run_id"]
        final = await agent.poll(
            "status",
            {"runs": [run_id]},
            lambda d: d["runs"][0]["state"] not in ("pending", "running"),
        )
        row = final["runs"][0]
        assert (row["state"], row["exit_code"], row["diagnosis"]) == ("succeeded", 0, None)

        tail = await agent.call("logs", {"run": "toy", "lines": 5})
        assert tail["text"] and len(tail["text"].splitlines()) <= 5 and not tail["truncated"]
        assert (await agent.call("explain", {"run": run_id}))["matches"] == []
        oom = await agent.call("explain", {"file": "crash.log"})
        assert oom["matches"] and oom["matches"][0]["line"] == 1
        said = await agent.call("explain", {"text": OOM})
        assert [m["id"] for m in said["matches"]] == [m["id"] for m in oom["matches"]]
        doctor = await agent.call("doctor", {"run": "toy"})
        assert doctor["run_id"] == run_id and doctor["state"] == "succeeded"

        pulled = await agent.call("pull", {"run": "toy", "to": "results/toy"})
        assert pulled["ok"] and pulled["run_id"] == run_id
        dest = Path(pulled["dest"])
        assert dest == project / "results" / "toy" and (dest / "PULL_VERIFIED.json").is_file()
        assert pulled["verify"]["checkpoints_loaded"] >= 1
        again = await agent.call("verify", {"dir": "results/toy"})
        assert again["ok"] and again["manifest_sha256"] == pulled["manifest_sha256"]

        refused = await agent.refused("down", {"target": "local"})
        assert "nothing to tear down" in refused

    drive(project, scenario)
