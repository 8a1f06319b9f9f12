"""Run ids and run names, below both the backends and the lifecycle (both need them).

A run id is unique per launch and always a safe file name; a run name is what the user sees and
what the durable checkpoint directory is called, so the identical command relaunched under the
same name resumes from its checkpoints. The rules themselves live in :mod:`outlive.wire`, which
the box agent checks against too.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from pathlib import Path

from outlive import wire
from outlive.errors import OutliveError, UsageError


class NameBusy(OutliveError):
    """A run of that name is still pending or running on that target (exit 1)."""


def new_run_id(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
    return f"{stamp}-{secrets.token_hex(3)}"


def default_name(command: list[str]) -> str:
    """A name that is the same for the identical command, so a relaunch resumes its checkpoints."""
    args = command[1:]
    if "-m" in args[:-1]:
        script = args[args.index("-m") + 1]
    elif "-c" in args:
        script = "inline"
    else:
        script = next((a for a in args if not a.startswith("-")), command[0])
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(script).stem).strip("-.") or "run"
    digest = hashlib.sha256(json.dumps(command).encode()).hexdigest()[:6]
    return f"{stem[:40]}-{digest}"


def check_name(name: str) -> str:
    """Run names become a directory under the durable path: refuse what cannot be one."""
    problem = wire.name_problem(name)
    if problem is not None:
        raise UsageError(f"{problem}; choose another --name")
    return name


def check_command(command: list[str]) -> list[str]:
    """A command a box can run: at least the program, and no NUL byte anywhere."""
    if not command:
        raise UsageError("no command given; put it after `--`, e.g. outlive run -- python train.py")
    if command[0] == "":
        raise UsageError(
            "the program to run is an empty argument (`outlive run -- ''`); name it, e.g. "
            "outlive run -- python train.py"
        )
    if any("\x00" in a for a in command):
        raise UsageError("the command contains a NUL byte, which no program can receive")
    return command


_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")  # the agent's SECRET_NAME_RE


def secret_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a secret (it is a file name in the box's secrets dir), or None."""
    if _SECRET_NAME.match(name):
        return None
    return (
        f"secret name {name!r} must start with a letter or '_' and hold only letters, digits, "
        "'_', '.' or '-' (like HF_TOKEN): no '/', '..' or spaces"
    )


def not_utf8(text: str) -> str | None:
    """``text`` shown with its undecodable bytes as ``\\xNN`` when it is not UTF-8 (Python hands
    such argv, paths and names over as lone surrogates), else None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
    return None
