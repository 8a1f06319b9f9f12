"""`notebook colab`: write a resumable notebook for a platform with no shell."""

from __future__ import annotations

from pathlib import Path

from outlive.cli.grammar import NotebookArgs
from outlive.cli.output import echo


def colab(args: NotebookArgs) -> int:
    from outlive.agent.bundle import zipapp
    from outlive.config import load_config
    from outlive.errors import UsageError
    from outlive.lifecycle.push import project_files
    from outlive.naming import check_command
    from outlive.notebook import colab as nb
    from outlive.wire import name_problem

    if args.name is None:
        raise UsageError("give the notebook a name with --name N (it writes N.ipynb)")
    problem = nb.name_problem(args.name)
    if problem:
        raise UsageError(problem)
    command = check_command(list(args.command))
    cfg = load_config()
    if name_problem(cfg.project_name):
        raise UsageError(
            f"project name {cfg.project_name!r} cannot name a directory on Drive; "
            "set [project] name in outlive.toml"
        )
    env: dict[str, str] = {}
    if args.target is not None:
        target = cfg.targets.get(args.target)
        if target is None or target.profile != nb.PROFILE:
            raise UsageError(
                f"target {args.target!r} is not a colab target of this project; "
                'drop --target, or add one with profile = "colab" to outlive.toml'
            )
        env = dict(target.policy.env)
    out = Path.cwd() / f"{args.name}.ipynb"
    doc = nb.build(
        project=cfg.project_name,
        name=args.name,
        command=command,
        code=nb.project_zip(cfg.project_dir, project_files(cfg)),
        agent=zipapp(),
        env=env,
        target=args.target,
    )
    from outlive.notebook.cells import dumps

    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(dumps(doc), encoding="utf-8")
    tmp.replace(out)
    echo(f"wrote {out}: open it in Colab and run all cells; run all again to resume")
    return 0
