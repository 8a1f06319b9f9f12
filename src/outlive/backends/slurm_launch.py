"""The client side of ``outlive run`` on a Slurm target: sync the code, render the batch script,
and have the agent submit it (the agent checks the deploy manifest first, U42).

With ``host`` the code goes to the login host like any push (rsync over the SSH master). Without
it ``sbatch`` is local: the project is copied file by file into the workdir (unless the workdir
is the project itself), since a compute node must read it from the shared filesystem.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from outlive.agent.client import AgentClient
from outlive.backends import slurm
from outlive.config import Config, Target
from outlive.errors import BoxError, UsageError


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
    cfg: Config, target: Target, agent: AgentClient, request: dict[str, Any]
) -> dict[str, Any]:
    """Launch ``request`` as a Slurm job; returns the agent's reply (run_dir, ckpt_dir, job_id)."""
    request = dict(request)
    request["backend"] = "slurm"
    request["sbatch_script"] = render_for(cfg, target, request["run_id"], request["name"])
    if not target.host:
        request["deploy_manifest"] = sync_local(cfg, target)
        reply: dict[str, Any] = agent.call("launch", request)
        return reply
    from outlive.lifecycle.push import push

    pushed = push(cfg, target, skip_if_unchanged=True)
    request["deploy_manifest"] = pushed.manifest
    try:
        reply = agent.call("launch", request)
    except BoxError as exc:
        if exc.kind != "deploy_mismatch" or pushed.method != "unchanged":
            raise
        push(cfg, target)  # the login host's copy changed behind our back: send it for real
        reply = agent.call("launch", request)
    return reply


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
        if dst.is_file() and dst.stat().st_size == want["size"] and _sha256(dst) == want["sha256"]:
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


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
