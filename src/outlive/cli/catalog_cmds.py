"""`profiles`, `gotcha` and `explain`: the platform facts and the gotcha catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from outlive.cli.app import JsonOpt, _emit_json, app

if TYPE_CHECKING:
    from outlive.gotchas import Gotcha


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


@app.command()
def explain(
    source: Annotated[
        str, typer.Argument(metavar="FILE|RUN", help="A log file, '-' for stdin, or a run.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Match log text against the gotcha catalog: each known failure with its line and fix."""
    import os
    import sys
    from typing import BinaryIO, cast

    from outlive.gotchas import explain_file, explain_stream

    if source == "-":
        matches = explain_stream(sys.stdin.buffer)
    elif os.path.isfile(source):
        matches = explain_file(source)
    else:
        from outlive.lifecycle.runs import RemoteLog
        from outlive.session import Session

        log = RemoteLog(Session.open(), source)
        matches = explain_stream(cast(BinaryIO, log), platform=log.target.profile)
    if as_json:
        _emit_json({"matches": [m.as_dict() for m in matches]})
        return
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not matches:
        console.print(
            "no known gotcha matched; `outlive gotcha --search WORDS` searches the catalog"
        )
        return
    for m in matches:
        console.print(f"[bold]{m.id}[/bold] line {m.line}: {m.title}")
        console.print(f"  [dim]{m.text.strip()[:200]}[/dim]")
        console.print(f"  fix: {m.fix}")


@app.command()
def gotcha(
    gotcha_id: Annotated[str | None, typer.Argument(metavar="[ID]", help="e.g. U6, RP4.")] = None,
    search_words: Annotated[
        str | None, typer.Option("--search", help="Entries containing all these words.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read the gotcha catalog: one entry, a search, or the whole list."""
    from outlive.errors import UsageError
    from outlive.gotchas import CATALOG, by_id, search

    if gotcha_id is not None:
        try:
            entries = [by_id(gotcha_id)]
        except KeyError:
            raise UsageError(
                f"no gotcha {gotcha_id!r}; IDs look like U6, GEN4 or RP4 (see `outlive gotcha`)"
            ) from None
    elif search_words is not None:
        entries = search(search_words)
    else:
        entries = list(CATALOG)
    if as_json:
        _emit_json({"gotchas": [_gotcha_json(g) for g in entries]})
        return
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    full = gotcha_id is not None
    for g in entries:
        console.print(
            f"[bold]{g.id}[/bold] {g.title}  [dim]({g.handling.value}: {g.handled_by})[/dim]"
        )
        if full:
            console.print(f"  symptom: {g.symptom}\n  cause: {g.cause}\n  fix: {g.fix}")
            console.print(f"  platforms: {', '.join(g.platforms)}")


def _gotcha_json(g: Gotcha) -> dict[str, object]:
    return {
        "id": g.id,
        "title": g.title,
        "symptom": g.symptom,
        "cause": g.cause,
        "fix": g.fix,
        "platforms": list(g.platforms),
        "handling": g.handling.value,
        "handled_by": g.handled_by,
    }
