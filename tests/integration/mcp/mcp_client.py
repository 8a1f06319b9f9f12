"""A real MCP client (the official SDK's, over stdio) against `outlive mcp` in a project.

``Agent.call`` returns a tool's structured output after validating it against the tool's
declared output schema; ``Agent.refused`` returns the one sentence of a tool error.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import jsonschema
from mcp import ClientSession, StdioServerParameters, stdio_client

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
CALL_TIMEOUT_S = 600.0


class Agent:
    """One client session: the tools as the server lists them, and calls that check them."""

    def __init__(self, session: ClientSession, tools: dict[str, Any]) -> None:
        self.session, self.tools = session, tools
        self.progress: list[tuple[str, float, float | None, str | None]] = []

    async def result(self, name: str, args: dict[str, Any] | None = None) -> Any:
        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            self.progress.append((name, done, total, message))

        return await self.session.call_tool(
            name, args or {}, read_timeout_seconds=CALL_TIMEOUT_S, progress_callback=on_progress
        )

    async def call(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        res = await self.result(name, args)
        text = res.content[0].text if res.content else ""
        assert not res.is_error, f"{name}({args}) failed: {text}"
        doc = res.structured_content
        assert isinstance(doc, dict), f"{name} gave no structured output"
        jsonschema.validate(doc, self.tools[name].output_schema)
        return doc

    async def refused(self, name: str, args: dict[str, Any]) -> str:
        res = await self.result(name, args)
        assert res.is_error, f"{name}({args}) was not refused: {res.structured_content}"
        assert res.structured_content is None
        (block,) = res.content
        sentence = str(block.text)
        assert sentence and "\n" not in sentence and "Traceback" not in sentence, sentence
        return sentence

    async def poll(
        self, name: str, args: dict[str, Any], done: Callable[[dict[str, Any]], bool],
        deadline_s: float = 120.0,
    ) -> dict[str, Any]:  # fmt: skip
        """Call a tool until ``done`` says so, within a deadline."""
        end = time.monotonic() + deadline_s
        while True:
            doc = await self.call(name, args)
            if done(doc):
                return doc
            assert time.monotonic() < end, f"{name}({args}) did not get there: {doc}"
            await anyio.sleep(0.2)


@asynccontextmanager
async def connect(project: Path, errlog: Path) -> AsyncIterator[Agent]:
    params = StdioServerParameters(
        command=OUTLIVE, args=["mcp"], cwd=str(project), env=dict(os.environ)
    )
    with open(errlog, "a") as err:
        async with (
            stdio_client(params, errlog=err) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = await session.list_tools()
            yield Agent(session, {t.name: t for t in listed.tools})


def drive(project: Path, scenario: Callable[[Agent], Awaitable[None]]) -> None:
    """Run ``scenario`` against a fresh server in ``project`` (its stderr kept beside it)."""

    async def main() -> None:
        async with connect(project, project.parent / "mcp-server.log") as agent:
            await scenario(agent)

    anyio.run(main)
