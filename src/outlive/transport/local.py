"""The local transport: the target is this machine, commands are subprocesses."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from outlive.errors import TransportError
from outlive.transport import files
from outlive.transport.base import Completed
from outlive.transport.files import Direction, RsyncOptions


class LocalTransport:
    """Runs commands here, with the same argv/stdin contract as the SSH transport."""

    is_remote = False  # paths are this machine's

    def __init__(self, name: str = "local") -> None:
        self.name = name  # the target's: errors say `hpc: ...` for a Slurm target run from here

    def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", timeout_s: float | None = None
    ) -> Completed:
        try:
            proc = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise TransportError(
                f"{argv[0]} did not finish within {timeout_s:.0f} s on the local machine; "
                "check its load and try again"
            ) from None
        except OSError as exc:
            raise TransportError(f"cannot run {argv[0]} locally: {exc.strerror}") from None
        return Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def command_argv(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def recover(self, returncode: int, stderr: bytes) -> bool:
        return False

    def failure(self, returncode: int, stderr: bytes) -> Exception | None:
        return None

    def rsync_argv(
        self, direction: Direction, here: str, there: str, opts: RsyncOptions
    ) -> list[str]:
        return files.rsync_argv(direction, here, there, opts)

    def close(self) -> None:
        return None
