"""The client side of ``outlive run`` on a Slurm target: sync the code, render the batch script,
and have the agent submit it (the agent checks the deploy manifest first, U42). ``launch_array``
fans a list of commands (or a queue file) out as one job array, each cell its own run with its own
run dir, log and durable path, optionally after other runs (``afterok``: staged pipelines).

With ``host`` the code goes to the login host like any push (rsync over the SSH master). Without
it ``sbatch`` is local: the project is copied file by file into the workdir (unless the workdir
is the project itself), since a compute node must read it from the shared filesystem.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from outlive._hashing import hash_file
from outlive.agent.client import AgentClient
from outlive.backends import slurm
from outlive.config import Config, Target
from outlive.errors import UsageError
from outlive.lifecycle.runs import Launched

_DEPENDENCY_JOB = re.compile(r"^[0-9]+(_[0-9]+)?$")


def measured_save_s(cfg: Config, target: str, name: str) -> float | None:
    """The longest TERM → exit (the save on a warning) measured on earlier runs of this name on
    this target, as their last status recorded it; None before any was measured."""
    from outlive.store import Store

    seen: list[float] = []
    for rec in Store(cfg.state_dir).all():
        if rec.target != target or rec.name != name or not rec.status:
            continue
        save_s = (rec.status.get("slurm") or {}).get("save_s")
        if isinstance(save_s, (int, float)) and save_s > 0:
            seen.append(float(save_s))
    return max(seen) if seen else None


def render_for(cfg: Config, target: Target, run_id: str, name: str) -> str:
    save_s = measured_save_s(cfg, target.name, name)
    return slurm.render(slurm.spec_for(target.options, run_id, name, save_s))


def submit(
    cfg: Config, target: Target, agent: AgentClient, request: dict[str, Any], script: str = ""
) -> dict[str, Any]:
    """Launch ``request`` as a Slurm job; returns the agent's reply (run_dir, ckpt_dir, job_id)."""
    request = dict(request)
    request["backend"] = "slurm"
    request["sbatch_script"] = script or render_for(cfg, target, request["run_id"], request["name"])
    if not target.host:
        request["deploy_manifest"] = sync_local(cfg, target)
        reply: dict[str, Any] = agent.call("launch", request)
        return reply
    from outlive.lifecycle.push import launch_deployed

    return launch_deployed(cfg, target, agent, request)


def sync_local(cfg: Config, target: Target) -> dict[str, dict[str, object]]:
    """Copy the project's files into the (local, shared) workdir where they differ; returns the
    deploy manifest the agent checks before submitting."""
    from outlive.lifecycle.push import check_line_endings, manifest, project_files

    files = project_files(cfg)
    check_line_endings(cfg.project_dir, files)
    man = manifest(cfg.project_dir, files)
    dest = Path(os.path.expandvars(os.path.expanduser(target.workdir))).absolute()
    if dest.resolve() == cfg.project_dir.resolve():
        return man
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"workdir {dest} of target {target.name!r} is not a directory")
    for rel in files:
        src, dst = cfg.project_dir / rel, dest / rel
        want = man[rel]
        if (
            dst.is_file()
            and dst.stat().st_size == want["size"]
            and hash_file(dst)[0] == want["sha256"]
        ):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
        os.close(fd)
        try:
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return man


def read_queue_file(path: Path) -> list[list[str]]:
    """One command per line (shell words, as typed), blank lines and ``#`` comments skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        why = exc.strerror or exc
        raise UsageError(f"cannot read queue file {path} ({why}); check the path") from None
    commands = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            commands.append(shlex.split(line))
        except ValueError as exc:
            raise UsageError(f"{path}:{n}: {exc}; fix the quoting on that line") from None
    if not commands:
        raise UsageError(f"queue file {path} holds no command")
    return commands


def launch_array(
    cfg: Config,
    target_name: str,
    commands: Sequence[list[str]],
    name: str | None = None,
    *,
    throttle: int | None = None,
    after: Sequence[str] = (),
) -> list[Launched]:
    """Submit ``commands`` as one Slurm job array (cell i runs commands[i] as run ``<name>-<i>``,
    at most ``throttle`` at once) that starts only after the runs ``after`` succeeded."""
    from outlive.lifecycle.runs import (
        agent_for,
        check_name,
        default_name,
        launch_request,
        new_run_id,
        status,
    )
    from outlive.store import RunRecord, Store

    target = cfg.target(target_name)
    if target.kind != "slurm":
        raise UsageError(f"target {target.name!r} is not a Slurm target; arrays need sbatch")
    if not commands or any(not c or any("\x00" in a for a in c) for c in commands):
        raise UsageError("every cell needs a command (and no NUL bytes in it)")
    if throttle is not None and throttle < 1:
        raise UsageError("the array throttle must be at least 1")
    base_name = check_name(name if name is not None else default_name(list(commands[0])))
    names = [check_name(f"{base_name}-{i}") for i in range(len(commands))]
    dependency = _dependency(cfg, after, status) if after else None
    run_id = new_run_id()
    save_s = max(
        (s for s in (measured_save_s(cfg, target.name, n) for n in names) if s), default=None
    )
    spec = slurm.spec_for(target.options, run_id, base_name, save_s)
    spec = dataclasses.replace(
        spec, array_size=len(commands), array_throttle=throttle, dependency=dependency
    )
    request = launch_request(target, run_id, names[0], list(commands[0]))
    request["cells"] = [
        {"name": n, "command": list(c)} for n, c in zip(names, commands, strict=True)
    ]
    created_at = request["created_at"]
    reply = submit(cfg, target, agent_for(cfg, target), request, slurm.render(spec))
    launched = []
    with Store(cfg.state_dir) as store:
        for i, cell in enumerate(reply["cells"]):
            rec = RunRecord(
                run_id=f"{run_id}-{i}",
                name=names[i],
                target=target.name,
                command=list(commands[i]),
                run_dir=cell["run_dir"],
                ckpt_dir=cell["ckpt_dir"],
                created_at=created_at,
                state="pending",
            )
            store.add(rec)
            launched.append(
                Launched(rec.run_id, rec.name, target.name, rec.run_dir, rec.ckpt_dir, None)
            )
    return launched


def _dependency(cfg: Config, after: Sequence[str], status: Any) -> str:
    """``afterok:J1:J2`` from the Slurm job ids of the runs ``after`` (one look at them)."""
    jobs = []
    for st in status(cfg, list(after)):
        job = (st.get("slurm") or {}).get("job_id")
        if not job or not _DEPENDENCY_JOB.match(str(job)):
            raise UsageError(
                f"run {st['run_id']} has no Slurm job id (state {st['state']}); a dependency "
                "can only wait for Slurm runs on the same cluster"
            )
        jobs.append(str(job))
    return "afterok:" + ":".join(jobs)
