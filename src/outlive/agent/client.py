"""Calls the box-side agent over a transport: one JSON request in, one JSON reply out."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from outlive.errors import BoxError, TransportError
from outlive.transport.base import Transport

AGENT_PATH = Path(__file__).with_name("box.py")
DEFAULT_TIMEOUT_S = 60.0


class AgentClient:
    """One agent on one target; ``argv_prefix`` is how that target starts the agent."""

    def __init__(self, transport: Transport, argv_prefix: list[str]) -> None:
        self.transport = transport
        self.argv_prefix = argv_prefix

    @classmethod
    def local(cls) -> AgentClient:
        from outlive.transport.local import LocalTransport

        return cls(LocalTransport(), [sys.executable, str(AGENT_PATH)])

    def call(
        self, verb: str, request: dict[str, Any], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> Any:
        done = self.transport.run(
            [*self.argv_prefix, verb], stdin=json.dumps(request).encode(), timeout_s=timeout_s
        )
        try:
            reply = json.loads(done.stdout.decode("utf-8", errors="replace") or "null")
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            err = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
            raise TransportError(
                f"the agent on {self.transport.name} gave no answer to {verb!r} "
                f"(exit {done.returncode}: {err[-1] if err else 'no output'}); "
                "check that python3 (>= 3.8) runs there"
            )
        if not reply.get("ok"):
            raise BoxError(f"{self.transport.name}: {reply.get('error', 'unknown agent error')}")
        return reply.get("result")
