"""`init`, `targets`, `push` and `demo`: the project, where it runs, and the proof that it works."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive.cli.grammar import DemoArgs, InitArgs, TargetArgs, TargetsArgs
from outlive.cli.output import echo, emit_json, note, write_file

if TYPE_CHECKING:
    from outlive.config import Config


def init(args: InitArgs) -> int:
    from outlive.cli.templates import config_text
    from outlive.config import CONFIG_NAME
    from outlive.errors import UsageError
    from outlive.wire import name_problem

    path = Path.cwd() / CONFIG_NAME
    if path.exists() and not args.force:
        raise UsageError(f"{path} already exists; edit it, or pass --force to overwrite it")
    project = Path.cwd().name
    problem = name_problem(project, "project name")
    if problem:  # the directory's name is the project's: it goes into workdirs on the boxes
        raise UsageError(f"{problem}; rename this directory, then run `outlive init` again")
    text = config_text(project)
    if args.profile is not None:
        text += "\n" + _profile_target(args.profile, project)
    write_file(path, text)  # --force over a config on a full disk keeps the old one whole
    echo(f"wrote {path}")
    return 0


def _profile_target(name: str, project: str) -> str:
    from outlive.cli.templates import RUNNABLE_KINDS, target_for
    from outlive.errors import UsageError
    from outlive.profiles import load_profile

    profile = load_profile(name)
    if profile.kind not in RUNNABLE_KINDS and profile.detach_primitive != "kaggle-commit":
        raise UsageError(
            f"profile {name!r} is a {profile.kind} platform, which outlive cannot run on yet; "
            f"`outlive profiles {name}` shows its facts, and --profile takes one of the SSH or "
            "Slurm profiles"
        )
    return target_for(profile, project)


def targets(args: TargetsArgs) -> int:
    from outlive.config import load_config

    doc = targets_doc(load_config())
    if args.as_json:
        emit_json(doc)
        return 0
    from outlive.cli.render import targets_table

    targets_table(doc["targets"])
    return 0


def targets_doc(cfg: Config) -> dict[str, Any]:
    """The ``targets --json`` document (the MCP ``targets`` tool returns it too)."""
    rows = [
        {
            "name": t.name,
            "profile": t.profile,
            "kind": t.kind,
            "host": t.connection.host,
            "workdir": t.placement.workdir,
            "durable": t.placement.durable,
            # What `cancel` waits between TERM and KILL (the table's kill_grace_s, else the
            # profile's), and the platform's preemption window the job is told about: cancel
            # never uses the spot grace.
            "kill_grace_s": t.policy.kill_grace_s,
            "spot_grace_s": t.policy.spot_grace_s,
        }
        for t in cfg.targets.values()
    ]
    return {"targets": rows, "config": str(cfg.source) if cfg.source else None}


def push(args: TargetArgs) -> int:
    from outlive.lifecycle.runs import push_and_verify
    from outlive.session import Session

    result = push_and_verify(Session.open(), args.target)
    for warning in result["warnings"]:
        note(warning)
    if args.as_json:
        emit_json(result)
    elif result["verified"]:
        echo(
            f"pushed {result['files']} files ({result['size_bytes']} bytes, {result['method']}) "
            f"to {result['target']}; the box's copy matches by SHA-256"
        )
    else:
        note("the box's copy differs: " + "; ".join(result["problems"]))
    return 0 if result["verified"] else 1


def demo(args: DemoArgs) -> int:
    from outlive.demo import run_demo

    return 0 if run_demo(steps=args.steps, keep=args.keep) else 1
