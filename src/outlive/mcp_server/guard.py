"""What a tool argument must be before anything runs: one sentence when it is not (the CLI's
rules, plus the ones an agent needs: no path outside the project, no secret in a command)."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from outlive.errors import UsageError

MAX_NAME_CHARS = 200
MAX_ARGS = 256
MAX_ARG_CHARS = 8192

# NAME=value where NAME says it is a credential: the value must not travel in a command (U34)
_SECRET_ASSIGN = re.compile(
    r"^-{0,2}(?:[A-Za-z0-9_.-]*[_.-])?"
    r"(?:TOKEN|SECRET(?:[_-]?KEY)?|PASSWORD|PASSWD|API[_-]?KEY|ACCESS[_-]?KEY)=.",
    re.IGNORECASE,
)


def name(value: str, what: str) -> str:
    """A target name, run name or run reference: short, one line, printable."""
    if not value.strip():
        raise UsageError(f"{what} is empty; give a name (see the `targets` or `status` tool)")
    if len(value) > MAX_NAME_CHARS:
        raise UsageError(f"{what} is {len(value)} characters long; at most {MAX_NAME_CHARS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"{what} {value[:40]!r} holds a control character; names are one line")
    return value


def project_path(project: Path, value: str, what: str) -> Path:
    """A path inside the project, given relative to it: never absolute, never through '..'."""
    if not value or "\x00" in value:
        raise UsageError(f"{what} is empty or holds a NUL byte; give a path inside the project")
    if len(value) > 4096:
        raise UsageError(f"{what} is {len(value)} characters long; at most 4096")
    pure = PurePosixPath(value)
    if pure.is_absolute() or value.startswith("~"):
        raise UsageError(
            f"{what} {value[:80]!r} is absolute (or starts with '~'); tools take paths "
            f"relative to the project directory {project}"
        )
    if ".." in pure.parts:
        raise UsageError(
            f"{what} {value[:80]!r} goes up with '..'; it must stay inside the project"
        )
    return project / pure


def command(argv: list[str]) -> list[str]:
    """A command to launch: bounded, and carrying no credential (a human pushes secrets)."""
    if not argv:
        raise UsageError('no command given; pass it as a list, e.g. ["python", "train.py"]')
    if len(argv) > MAX_ARGS:
        raise UsageError(f"the command has {len(argv)} words; at most {MAX_ARGS}")
    for word in argv:
        if len(word) > MAX_ARG_CHARS:
            raise UsageError(
                f"a command word is {len(word)} characters long; at most {MAX_ARG_CHARS}"
            )
        if _SECRET_ASSIGN.match(word):
            key = word.split("=", 1)[0]
            raise UsageError(
                f"the command sets {key}= to a value, which looks like a secret; secrets never "
                "travel through tools or command lines (U34): a human runs `outlive secret push "
                "TARGET NAME` with the value on stdin, and the job reads it on the box"
            )
    return argv
