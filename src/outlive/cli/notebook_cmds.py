"""`notebook colab|gradient`: write a resumable notebook for a platform with no shell."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from outlive.cli.grammar import GradientArgs, NotebookArgs
from outlive.cli.output import echo

if TYPE_CHECKING:
    from outlive.config import Config


def _checked(
    args: NotebookArgs | GradientArgs, profile: str
) -> tuple[Config, list[str], dict[str, str]]:
    """The project's config, the command and the target's env, or one sentence on what is wrong."""
    from outlive.config import load_config
    from outlive.errors import UsageError
    from outlive.naming import check_command
    from outlive.notebook.common import name_problem
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
    return cfg, command, env


def _code(cfg: Config) -> bytes:
    from outlive.lifecycle.push import project_files
    from outlive.notebook.common import project_zip

    return project_zip(cfg.project_dir, project_files(cfg))


def _write(name: str, doc: dict[str, object], hint: str) -> int:
    from outlive.notebook.cells import dumps

    out = Path.cwd() / f"{name}.ipynb"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(dumps(doc), encoding="utf-8")
    tmp.replace(out)
    echo(f"wrote {out}: {hint}")
    return 0


def colab(args: NotebookArgs) -> int:
    from outlive.agent.bundle import zipapp
    from outlive.notebook import colab as nb

    cfg, command, env = _checked(args, nb.PROFILE)
    assert args.name is not None
    doc = nb.build(
        project=cfg.project_name,
        name=args.name,
        command=command,
        code=_code(cfg),
        agent=zipapp(),
        env=env,
        target=args.target,
    )
    return _write(args.name, doc, "open it in Colab and run all cells; run all again to resume")


def gradient(args: GradientArgs) -> int:
    from outlive.agent.bundle import zipapp
    from outlive.errors import UsageError
    from outlive.notebook import gradient as nb

    if args.auto_shutdown_h is not None:
        problem = nb.shutdown_problem(args.auto_shutdown_h)
        if problem:
            raise UsageError(problem)
    requirements = ""
    if args.requirements is not None:
        try:
            requirements = Path(args.requirements).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"cannot read requirements file {args.requirements} ({exc.__class__.__name__}); "
                "give a readable pip requirements file to --requirements"
            ) from None
    cfg, command, env = _checked(args, nb.PROFILE)
    assert args.name is not None
    doc = nb.build(
        project=cfg.project_name,
        name=args.name,
        command=command,
        code=_code(cfg),
        agent=zipapp(),
        requirements=requirements,
        shutdown_h=args.auto_shutdown_h,
        env=env,
        target=args.target,
    )
    return _write(
        args.name,
        doc,
        "upload it to a Gradient notebook and run all cells; after a restart or the "
        "auto-shutdown, run all again to resume",
    )
