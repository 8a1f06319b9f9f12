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
    is_remote: bool  # False: the target is this machine and its paths are local paths

    def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", timeout_s: float | None = None
    ) -> Completed: ...

    def command_argv(self, argv: Sequence[str]) -> list[str]:
        """The local argv that runs ``argv`` on the target (for a long-lived process)."""
        ...

    def recover(self, returncode: int, stderr: bytes) -> bool:
        """After a failed start: repair what can be repaired here (a stale SSH master) and
        return True if the same command is worth one more try."""
        ...

    def failure(self, returncode: int, stderr: bytes) -> Exception | None:
        """The one-sentence error for a command the transport itself failed to run, else None."""
        ...
