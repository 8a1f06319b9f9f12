"""`profiles`, `gotcha` and `explain`: the platform facts and the gotcha catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outlive.cli.grammar import ExplainArgs, GotchaArgs, ProfilesArgs
from outlive.cli.output import console, emit_json

if TYPE_CHECKING:
    from typing import BinaryIO

    from outlive.errors import UsageError
    from outlive.gotchas import Gotcha


def profiles(args: ProfilesArgs) -> int:
    from outlive.config import load_config
    from outlive.profiles import list_profiles, load_profile

    dirs = load_config().profile_dirs
    if args.name is not None:
        prof = load_profile(args.name, dirs)
        from outlive.profiles.render import render_profile, to_json

        if args.as_json:
            emit_json(to_json(prof))
            return 0
        from rich.console import Console

        con = Console(highlight=False)
        for part in render_profile(prof):
            con.print(part)
        return 0
    from outlive.profiles.render import overview_json, render_overview

    profs = list_profiles(dirs)
    if args.as_json:
        emit_json(overview_json(profs))
        return 0
    from rich.console import Console

    Console(highlight=False).print(render_overview(profs))
    return 0


def explain(args: ExplainArgs) -> int:
    import os
    import sys
    from typing import BinaryIO, cast

    from outlive.gotchas import explain_file, explain_stream

    source = args.source
    if source == "-":
        matches = explain_stream(sys.stdin.buffer)
    elif os.path.isfile(source):
        matches = explain_file(source)
    elif _is_pipe(source):  # `outlive explain <(zcat train.log.gz)`, or a named pipe
        with _opened_pipe(source) as stream:
            matches = explain_stream(stream)
    elif os.path.lexists(source):
        raise _not_a_log(source)
    else:
        from outlive.lifecycle.runs import RemoteLog
        from outlive.session import Session

        log = RemoteLog(Session.open(), source)
        matches = explain_stream(cast(BinaryIO, log), platform=log.target.profile)
    if args.as_json:
        emit_json({"matches": [m.as_dict() for m in matches]})
        return 0
    con = console()
    if not matches:
        con.print("no known gotcha matched; `outlive gotcha --search WORDS` searches the catalog")
        return 0
    from outlive.cli._terminal import markup as esc

    for m in matches:
        # the log's own line is shown, never interpreted: it may hold escapes or "[/INST]"
        con.print(f"[bold]{esc(m.id)}[/bold] line {m.line}: {esc(m.title)}")
        con.print(f"  [dim]{esc(m.text.strip()[:200])}[/dim]")
        con.print(f"  fix: {esc(m.fix)}")
    return 0


PIPE_WAIT_S = 30.0  # a pipe nothing writes to is not waited on past this


def _is_pipe(path: str) -> bool:
    import os
    import stat

    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _opened_pipe(path: str, wait_s: float = PIPE_WAIT_S) -> BinaryIO:
    """The pipe at ``path`` to read to its end, once something writes to it: a named pipe
    that nothing opens for writing is one sentence after ``wait_s``, not a wait forever."""
    import os
    import select

    from outlive.errors import UsageError

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never blocks, writer or not
    if not select.select([fd], [], [], wait_s)[0]:
        os.close(fd)
        raise UsageError(
            f"nothing came from the pipe {path} in {wait_s:.0f} s (does anything write to "
            f"it?); start the writer first, or give a file, a run, or `-` for stdin"
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _not_a_log(path: str) -> UsageError:
    """A path that is there but is no file to read to its end: a directory, or one whose
    reading never ends (/dev/zero) or is no stream (a socket)."""
    import os
    import stat

    from outlive.errors import UsageError

    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    try:
        mode = os.stat(path).st_mode
    except OSError:
        kind = "a link to nothing"
    else:
        kind = next((what for test, what in kinds if test(mode)), "not a regular file")
    return UsageError(
        f"{path} is {kind}, not a log file; explain reads a file, a run's log by its name or "
        f"id, or `-` for stdin (e.g. `head -c 10M {path} | outlive explain -`)"
    )


def gotcha(args: GotchaArgs) -> int:
    from outlive.errors import UsageError
    from outlive.gotchas import CATALOG, by_id, search

    gotcha_id, search_words = args.gotcha_id, args.search_words
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
    if args.as_json:
        emit_json({"gotchas": [gotcha_json(g) for g in entries]})
        return 0
    from outlive.cli._terminal import markup as esc

    con = console()
    full = gotcha_id is not None
    for g in entries:
        how = esc(f"({g.handling.value}: {g.handled_by})")
        con.print(f"[bold]{esc(g.id)}[/bold] {esc(g.title)}  [dim]{how}[/dim]")
        if full:
            con.print(f"  symptom: {g.symptom}", markup=False)
            con.print(f"  cause: {g.cause}", markup=False)
            con.print(f"  fix: {g.fix}", markup=False)
            con.print(f"  platforms: {', '.join(g.platforms)}", markup=False)
    return 0


def gotcha_json(g: Gotcha) -> dict[str, object]:
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
