"""What `outlive mcp` offers an agent: the tools (typed, with schemas, the rules in their
descriptions) and the resources (gotchas, profiles), through the SDK's own client."""

from __future__ import annotations

import json
from pathlib import Path

from mcp_client import Agent, drive

TOOLS = {"targets", "profiles", "up", "run", "status", "logs", "explain", "doctor", "pull",
         "verify", "down", "cloud_audit", "sweep_status"}  # fmt: skip


def test_lists_every_tool_with_schemas_timeouts_and_the_rules(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()

    async def scenario(agent: Agent) -> None:
        assert set(agent.tools) == TOOLS
        for tool in agent.tools.values():
            assert tool.input_schema["type"] == "object", tool.name
            assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
            assert "Times out after" in (tool.description or ""), tool.name
        lines = {n: (t.description or "").splitlines() for n, t in agent.tools.items()}
        for name in ("pull", "down"):
            assert sum(line.startswith("Iron Law:") for line in lines[name]) == 1, name
        for name in ("profiles", "up", "run", "down"):
            assert sum(line.startswith("Danger clocks:") for line in lines[name]) == 1, name
        assert any("secret push" in line for line in lines["run"])
        down_input = agent.tools["down"].input_schema["properties"]
        # no abandon, no confirm-by-name: the token stands for the typed name
        assert set(down_input) == {"target", "token", "execute"}
        assert down_input["execute"]["default"] is False
        says = agent.tools["down"].description or ""
        assert "meter-stop verb" in says and "nothing is stopped without it" in says

    drive(project, scenario)


def test_resources_are_the_gotcha_catalog_and_the_profiles(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()

    async def scenario(agent: Agent) -> None:
        listed = await agent.session.list_resources()
        uris = {str(r.uri) for r in listed.resources}
        assert {"outlive://gotchas", "outlive://gotcha/U6", "outlive://profile/runpod"} <= uris
        index = await agent.session.read_resource("outlive://gotchas")
        ids = [g["id"] for g in json.loads(index.contents[0].text)["gotchas"]]
        assert {f"outlive://gotcha/{i}" for i in ids} <= uris
        u6 = json.loads((await agent.session.read_resource("outlive://gotcha/U6")).contents[0].text)
        assert u6["id"] == "U6" and u6["fix"]
        runpod = await agent.session.read_resource("outlive://profile/runpod")
        doc = json.loads(runpod.contents[0].text)
        assert next(iter(doc)) == "danger_clocks" and doc["danger_clocks"]
        assert doc["profile"]["name"] == "runpod"
        # the profiles tool puts the same clocks first too
        tool = await agent.call("profiles", {"name": "runpod"})
        assert [c["name"] for c in tool["danger_clocks"]] == [
            c["name"] for c in doc["danger_clocks"]
        ]

    drive(project, scenario)
