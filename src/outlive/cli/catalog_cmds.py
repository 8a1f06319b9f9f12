"""`profiles`, `gotcha` and `explain`: the platform facts and the gotcha catalog."""

from __future__ import annotations

from typing import Annotated

import typer

from outlive.cli.app import JsonOpt, _emit_json, app


@app.command()
def profiles(
    name: Annotated[str | None, typer.Argument(help="Profile name (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Platform profiles: danger clocks first, then the survival matrix and teardown table."""
    from outlive.config import load_config
    from outlive.profiles import list_profiles, load_profile

    dirs = load_config().profile_dirs
    if name is not None:
        prof = load_profile(name, dirs)
        from outlive.profiles.render import render_profile, to_json

        if as_json:
            _emit_json(to_json(prof))
            return
        from rich.console import Console

        console = Console(highlight=False)
        for part in render_profile(prof):
            console.print(part)
        return
    from outlive.profiles.render import overview_json, render_overview

    profs = list_profiles(dirs)
    if as_json:
        _emit_json(overview_json(profs))
        return
    from rich.console import Console

    Console(highlight=False).print(render_overview(profs))
