"""The transport interface: run a command with stdin, and move files (cf. httpx
``BaseTransport.handle_request``). Only ``transport/`` builds an ssh command line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from outlive._shapes import shape

if TYPE_CHECKING:
    from outlive.transport.files import Direction, RsyncOptions


@shape(frozen=True)
class Completed:
    """The result of one command on a target."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


class Transport(Protocol):
    """Runs an argv on the target with the given stdin (never through a local shell), and says
    how rsync reaches it."""

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

    def rsync_argv(
        self, direction: Direction, here: str, there: str, opts: RsyncOptions
    ) -> list[str]:
        """The rsync argv that moves ``here`` (this machine) to or from ``there`` (the target)."""
        ...

    def close(self) -> None:
        """Drop a shared connection that may have died (the next command starts afresh)."""
        ...
