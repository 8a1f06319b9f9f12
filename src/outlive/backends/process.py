"""Processes on a box the user holds (this machine, or any host over SSH): the agent starts a
supervisor detached with ``setsid`` or in a ``tmux`` window, and every other verb reads the
run's records through the agent."""

from __future__ import annotations

from outlive import wire
from outlive.backends.base import AgentBackend
from outlive.config import ProcessOptions
from outlive.errors import UsageError


class ProcessBackend(AgentBackend):
    name = "process"
    # The supervisor writes exit.json once, atomically, and nothing edits it afterwards.
    ended_is_final = True

    def box_backend(self, detach: str | None) -> str:
        options = self.target.options
        default = options.detach if isinstance(options, ProcessOptions) else wire.BACKEND_SETSID
        choice = detach or default
        if choice not in wire.DETACH_CHOICES:
            known = ", ".join(wire.DETACH_CHOICES)
            raise UsageError(f"--detach-with {choice!r} is not known; use one of {known}")
        return choice
