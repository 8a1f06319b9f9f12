"""Every tool answers within its stated timeout: a body that never returns on its own is
answered with one sentence at the deadline (released afterwards, so no thread is left)."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest
from mcp.server.mcpserver.exceptions import ToolError

from outlive.mcp_server.server import TIMEOUTS_S, _bounded, build


def test_a_body_past_its_timeout_is_answered_with_one_sentence() -> None:
    release = threading.Event()

    def stuck() -> str:
        release.wait()
        return "late"

    async def main() -> None:
        with pytest.raises(ToolError, match=r"did not finish within 0\.2 s.*`status`") as err:
            await _bounded("logs", stuck, timeout_s=0.2)
        assert "\n" not in str(err.value)

    try:
        anyio.run(main)
    finally:
        release.set()


def test_a_body_within_its_timeout_returns_its_answer() -> None:
    async def main() -> str:
        return await _bounded("targets", lambda: "ok")

    assert anyio.run(main) == "ok"


def test_every_tool_states_its_timeout(tmp_path: Path) -> None:
    server = build(tmp_path)

    async def main() -> None:
        tools = await server.list_tools()
        assert {t.name for t in tools} == set(TIMEOUTS_S) | {"pull"}
        for tool in tools:
            assert "Times out after" in (tool.description or ""), tool.name

    anyio.run(main)
