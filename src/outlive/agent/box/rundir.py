"""A new run's directory: the checks every launch makes, then ``run.json``, written once (U2).

Every backend's ``launch`` calls :func:`prepare_run` and then starts the run its own way.
"""

from __future__ import annotations

import os
import time
from typing import Dict, List, Tuple

from outlive import wire

from .common import AGENT_VERSION, AgentError, Rec, check_name, check_run_id, expand
from .records import write_json_atomic

DEFAULT_DURABLE = "durable"  # under <workdir>/.outlive/ when the target names no durable path


def check_command(command: object) -> List[str]:
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise AgentError("the command must be a non-empty list of strings")
    if any("\x00" in a for a in command):
        raise AgentError("the command contains a NUL byte, which no program can receive")
    return command


def prepare_run(request: wire.LaunchRequest, extra: Rec) -> Tuple[str, Rec]:
    """Check the request, create the run dir and its checkpoint dir, write ``run.json`` (the
    request's fields plus the backend's ``extra``); return (run dir, spec)."""
    run_id = check_run_id(request.run_id)
    name = check_name(request.name)
    command = check_command(request.command)
    if request.workdir is None:
        raise AgentError("the launch request names no workdir; this is a bug in the client")
    workdir = expand(str(request.workdir))
    if not os.path.isdir(workdir):
        raise AgentError(f"workdir {workdir} does not exist on the box; push the project first")
    if request.deploy_manifest:
        from .deploy import check_deploy

        problems = check_deploy(workdir, request.deploy_manifest)
        if problems:  # never run code other than what the user has locally (U42)
            shown = "; ".join(problems[:3]) + (
                f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
            )
            raise AgentError(
                f"refusing to launch: the box's copy of the project differs from the local tree "
                f"({shown}); run `outlive push` again",
                kind="deploy_mismatch",
            )
    state_dir = os.path.join(workdir, wire.STATE_DIRNAME)
    runs_dir = os.path.join(state_dir, wire.RUNS_DIRNAME)
    os.makedirs(runs_dir, exist_ok=True)
    _ignore_outlive_dir(state_dir)
    run_dir = os.path.join(runs_dir, run_id)
    os.mkdir(run_dir)  # fails if the id exists: a run dir is never reused
    durable_root = expand(str(request.durable or os.path.join(state_dir, DEFAULT_DURABLE)))
    ckpt_dir = os.path.join(durable_root, name)
    os.makedirs(ckpt_dir, exist_ok=True)
    env = {str(k): str(v) for k, v in (request.env or {}).items()}
    spec = {
        "run_id": run_id,
        "name": name,
        "command": command,
        "env": _with_hf_home(env, request.hf_home),
        "workdir": workdir,
        "ckpt_dir": ckpt_dir,
        "target": request.target,
        "profile": request.profile,
        "pythonpath": request.pythonpath or bundle_dir(),
        "secrets": [str(x) for x in request.secrets or []],
        "backend": request.backend,
        "spot_grace_s": request.spot_grace_s,
        "mtbf_s": request.mtbf_s,
        "kill_grace_s": request.kill_grace_s,
        "created_at": request.created_at or time.time(),
        "agent_version": AGENT_VERSION,
        "project_id": request.project_id,
    }
    spec.update(extra)
    run_json = os.path.join(run_dir, wire.RUN_JSON)
    write_json_atomic(run_json, spec)
    os.chmod(run_json, 0o444)  # the spec is written once, never edited (U2)
    return run_dir, spec


def _with_hf_home(env: Dict[str, str], hf_home: str | None) -> Dict[str, str]:
    """HF caches where the profile says (off a small container disk, RP11), unless user-set."""
    if hf_home and "HF_HOME" not in env:
        env["HF_HOME"] = expand(str(hf_home))
    return env


def agent_dir() -> str:
    """The directory of this package (``python3 AGENT_DIR VERB`` runs the agent)."""
    return os.path.dirname(os.path.abspath(__file__))


def bundle_dir() -> str | None:
    """The bundle root when this agent sits in a bundle next to the job library (it goes first
    on the job's PYTHONPATH, so ``from outlive import Checkpointer`` works there)."""
    here = os.path.dirname(agent_dir())
    return here if os.path.isfile(os.path.join(here, "outlive", "__init__.py")) else None


def _ignore_outlive_dir(path: str) -> None:
    gitignore = os.path.join(path, ".gitignore")
    if not os.path.exists(gitignore):
        with open(gitignore, "w", encoding="utf-8") as f:
            f.write("# outlive's run records and local durable checkpoints\n*\n")
