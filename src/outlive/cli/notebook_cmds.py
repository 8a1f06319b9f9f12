"""`notebook colab|gradient`: write a resumable notebook for a platform with no shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from outlive.cli.grammar import GradientArgs, NotebookArgs
from outlive.cli.output import echo, write_file


def _checked(args: NotebookArgs | GradientArgs, profile: str) -> dict[str, Any]:
    """``build``'s common arguments (project, name, command, code, agent, env, target), or one
    sentence on what is wrong."""
    from outlive.agent.bundle import zipapp
    from outlive.config import load_config
    from outlive.errors import UsageError
    from outlive.lifecycle.push import project_files
    from outlive.naming import check_command
    from outlive.notebook.common import name_problem, project_zip
    from outlive.wire import name_problem as wire_name_problem

    if args.name is None:
        raise UsageError("give the notebook a name with --name N (it writes N.ipynb)")
    problem = name_problem(args.name)
    if problem:
        raise UsageError(problem)
    command = check_command(list(args.command))
    cfg = load_config()
    if wire_name_problem(cfg.project_name):
        raise UsageError(
            f"project name {cfg.project_name!r} cannot name a directory on durable storage; "
            "set [project] name in outlive.toml"
        )
    env: dict[str, str] = {}
    if args.target is not None:
        target = cfg.targets.get(args.target)
        if target is None or target.profile != profile:
            raise UsageError(
                f"target {args.target!r} is not a {profile} target of this project; "
                f'drop --target, or add one with profile = "{profile}" to outlive.toml'
            )
        env = dict(target.policy.env)
    return {
        "project": cfg.project_name,
        "name": args.name,
        "command": command,
        "code": project_zip(cfg.project_dir, project_files(cfg)),  # what a push sends
        "agent": zipapp(),
        "env": env,
        "target": args.target,
    }


def _write(name: str, doc: dict[str, object], hint: str) -> int:
    from outlive.notebook.cells import dumps

    out = Path.cwd() / f"{name}.ipynb"
    write_file(out, dumps(doc))
    echo(f"wrote {out}: {hint}")
    return 0


def colab(args: NotebookArgs) -> int:
    from outlive.notebook import colab as nb

    doc = nb.build(**_checked(args, nb.PROFILE))
    assert args.name is not None
    return _write(args.name, doc, "open it in Colab and run all cells; run all again to resume")


def gradient(args: GradientArgs) -> int:
    from outlive._textfile import read_text
    from outlive.errors import UsageError
    from outlive.notebook import gradient as nb

    if args.auto_shutdown_h is not None:
        problem = nb.shutdown_problem(args.auto_shutdown_h)
        if problem:
            raise UsageError(problem)
    requirements = ""
    if args.requirements is not None:
        try:
            requirements = read_text(Path(args.requirements), "requirements file")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"cannot read requirements file {args.requirements} ({exc.__class__.__name__}); "
                "give a readable pip requirements file to --requirements"
            ) from None
    base = _checked(args, nb.PROFILE)
    doc = nb.build(**base, requirements=requirements, shutdown_h=args.auto_shutdown_h)
    assert args.name is not None
    return _write(
        args.name,
        doc,
        "upload it to a Gradient notebook and run all cells; after a restart or the "
        "auto-shutdown, run all again to resume",
    )
