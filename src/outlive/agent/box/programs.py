"""Is a run's program on this box? Checked by ``launch`` before it starts anything, so ``run`` can
warn in the same round trip that `python` is missing where only `python3` exists, or that
`torchrun` is not installed (the job would end ``failed`` with exit 127)."""

from __future__ import annotations

import os
import re
import shutil
from typing import Dict, List

from .common import Rec, expand

MAX_NEAR = 3


def job_path(env: Dict[str, str]) -> str:
    """The PATH the job will search: the target's env, else this agent's (the supervisor starts
    the job with the agent's environment plus the target's)."""
    return env.get("PATH") or os.environ.get("PATH") or os.defpath


def near_names(program: str, path: str) -> List[str]:
    """Programs on ``path`` with the same stem: ``python`` -> ``python3``, ``python3.11``."""
    stem = re.sub(r"[0-9.]+$", "", os.path.basename(program)) or program
    same = re.compile(re.escape(stem) + r"[0-9.]*$")
    found = set()
    for d in path.split(os.pathsep):
        try:
            names = os.listdir(d or ".")
        except OSError:
            continue
        for name in names:
            if name != program and same.match(name) and shutil.which(name, path=d or "."):
                found.add(name)
    return sorted(found, key=lambda n: (len(n), n))[:MAX_NEAR]


def missing_program(command: List[str], env: Dict[str, str], workdir: str) -> Rec | None:
    """``{"program", "near", "path"}`` when ``command[0]`` cannot be started here, else None."""
    if not command or not isinstance(command[0], str) or not command[0]:
        return None
    program = command[0]
    path = job_path(env)
    if "/" in program:
        full = os.path.join(expand(workdir), program)  # an absolute program stays itself
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return None
        return {"program": program, "near": [], "path": None}
    if shutil.which(program, path=path):
        return None
    return {"program": program, "near": near_names(program, path), "path": path}


def missing_programs(commands: List[List[str]], env: Dict[str, str], workdir: str) -> List[Rec]:
    """One entry per distinct program of ``commands`` that is not on this box."""
    out: List[Rec] = []
    seen = set()
    for command in commands:
        program = command[0] if command else None
        if program in seen:
            continue
        seen.add(program)
        found = missing_program(command, env, workdir)
        if found is not None:
            out.append(found)
    return out
