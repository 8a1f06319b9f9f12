"""The one-method transport interface (cf. httpx ``BaseTransport.handle_request``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Completed:
    """The result of one command on a target."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


class Transport(Protocol):
    """Runs an argv on the target with the given stdin; never through a local shell."""

    name: str

    def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", timeout_s: float | None = None
    ) -> Completed: ...
