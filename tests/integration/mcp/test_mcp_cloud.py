"""The ``cloud_audit`` tool against the RunPod fake: the same document as `outlive cloud audit
--json` in the same project, and it changes nothing at the provider."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp_client import OUTLIVE, Agent, drive

from outlive.testing import providers


def _mutations(fake_url: str) -> list[tuple[str, str]]:
    """The calls to the fake that change something (everything but GET)."""
    exchanges: list[dict[str, Any]] = providers.control(fake_url, "log")["exchanges"]
    return [(str(x["method"]), str(x["path"])) for x in exchanges if x["method"] != "GET"]


def test_cloud_audit_tool_is_the_clis_audit_and_only_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no key file of the user's is read
    monkeypatch.setenv("OUTLIVE_TESTBED_DIR", str(tmp_path / "testbed"))
    for name in ("PAPERSPACE_API_KEY", "OUTLIVE_PAPERSPACE_API_URL", "RUNPOD_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    env = providers.up("runpod", "mcp")["env"]
    try:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        project = tmp_path / "proj"
        project.mkdir()
        (project / "outlive.toml").write_text("[project]\nname = 'audit'\n")
        cli = subprocess.run(
            [OUTLIVE, "cloud", "audit", "--json"], cwd=project, capture_output=True, text=True,
            timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert cli.returncode == 1, cli.stderr  # the seeded inventory has orphans
        expected = json.loads(cli.stdout)
        assert expected["items"]

        async def scenario(agent: Agent) -> None:
            got = await agent.call("cloud_audit")
            assert got == expected

        drive(project, scenario)
        assert _mutations(env["OUTLIVE_RUNPOD_FAKE_URL"]) == []
    finally:
        providers.down("runpod", "mcp")
