"""What every verb module shares: the error reported as one sentence, and the input checks."""

from __future__ import annotations

import os
import re

from outlive import wire

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)
if TYPE_CHECKING:
    from typing import Any, Dict

    Rec = Dict[str, Any]  # a JSON object as read from or written to the run dir
else:
    Rec = dict


def submodule(name: str) -> Any:
    """The agent's module ``box.<name>``, imported on first use (by ``__import__``: the
    ``importlib`` package costs a cold agent ~2 ms more)."""
    import sys

    full = f"{__package__}.{name}"
    __import__(full)
    return sys.modules[full]


AGENT_VERSION = 1

# A secret's name is a file name in the secrets dir: no '/', no leading '.', nothing to escape it.
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


class AgentError(Exception):
    """A failure reported to the client as one sentence, with a kind the client can act on."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


def count_of(value: object) -> int | None:
    """A counter read from a record (an oom_kill count): an int, else None (absent, damaged)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Set by the agent of the embedded local target (client.BOOT_LITERAL): its paths are this
# machine's own, absolute and literal, so a project directory named ``a$HOME`` stays that.
LITERAL_PATHS = False


def expand(path: str) -> str:
    """A path from the client as the box reads it: ~ and $VARS expanded (a profile's
    ``$HOME/run``), made absolute; for the local target only ~ (its paths are literal)."""
    path = os.path.expanduser(path)
    return os.path.abspath(path if LITERAL_PATHS else os.path.expandvars(path))


def check_run_id(run_id: object) -> str:
    problem = wire.run_id_problem(run_id)
    if problem:
        raise AgentError(problem + "; this is a bug in the client")
    return str(run_id)


def check_name(name: object) -> str:
    """A run name becomes a directory name under the durable path, so it must be one."""
    problem = wire.name_problem(name)
    if problem:
        raise AgentError(problem + "; choose another with --name")
    return str(name)
