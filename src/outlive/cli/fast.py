"""The hot path for ``run`` and ``status``: the same options as their typer commands, parsed with
argparse so that a launch or a look does not pay typer's and pydantic's import time (~0.3-1 s).

Only the exact grammar below is taken here; anything else (``--help``, an unknown option) falls
through to typer, which owns the full CLI. ``tests/unit/cli/test_fast.py`` checks that the option
sets agree with the typer commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from outlive.wire import State

if TYPE_CHECKING:
    from outlive.agent.channel import ChannelPool

FAST_COMMANDS = ("run", "status")


class _NoExitParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Fallback(message)


class _Fallback(Exception):
    """This command line is typer's to handle (help, a usage error, an unknown option)."""


def _parser(command: str) -> argparse.ArgumentParser:
    p = _NoExitParser(prog=f"outlive {command}", add_help=False)
    p.add_argument("--json", dest="as_json", action="store_true")
    if command == "run":
        p.add_argument("-t", "--target", default="local")
        p.add_argument("--name", default=None)
        p.add_argument("--detach-with", dest="detach_with", default=None)
        p.add_argument("--array", type=int, default=None)
        p.add_argument("--queue", default=None)
        p.add_argument("--throttle", type=int, default=None)
        p.add_argument("--after", action="append", default=[])
    else:
        p.add_argument("runs", nargs="*")
    return p


def option_names(command: str) -> set[str]:
    """Every option string the fast parser accepts (for the agreement test)."""
    return {s for a in _parser(command)._actions for s in a.option_strings}


def try_fast(argv: list[str]) -> int | None:
    """Run ``argv`` on the fast path and return the exit code, or None to let typer run it."""
    if not argv or argv[0] not in FAST_COMMANDS or "--help" in argv or "-h" in argv[:1]:
        return None
    command, rest = argv[0], argv[1:]
    try:
        if command == "run":
            if "--" not in rest:
                ns = _parser("run").parse_args(rest)
                return _run(ns, []) if ns.queue is not None else None
            cut = rest.index("--")
            ns = _parser("run").parse_args(rest[:cut])
            return _run(ns, rest[cut + 1 :])
    except _Fallback:
        return None
    parsed = parse_status(argv)
    return None if parsed is None else do_status(*parsed)


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def _run(ns: argparse.Namespace, command: list[str]) -> int:
    return do_run(
        RunRequest(
            ns.target,
            ns.name,
            ns.detach_with,
            command,
            ns.array,
            ns.queue,
            ns.throttle,
            ns.after,
            ns.as_json,
        )
    )


@dataclass(frozen=True)
class RunRequest:
    """`outlive run` as parsed by either parser."""

    target: str
    name: str | None
    detach_with: str | None
    command: list[str]
    array: int | None
    queue: str | None
    throttle: int | None
    after: list[str]
    as_json: bool


def do_run(req: RunRequest) -> int:
    """Launch one run, or (Slurm) a job array from --array / --queue / --after; print run ids."""
    from outlive.errors import UsageError
    from outlive.session import Session

    session = Session.open()
    fan_out = bool(req.array is not None or req.queue is not None or req.throttle or req.after)
    if not fan_out:
        from outlive.lifecycle.runs import launch

        launched = [launch(session, req.target, req.command, req.name, req.detach_with)]
    else:
        from pathlib import Path

        from outlive.lifecycle.runs import launch_array, read_queue_file

        if req.queue is not None and req.command:
            raise UsageError("give either --queue FILE or a command after `--`, not both")
        if req.queue is not None:
            commands = read_queue_file(Path(req.queue))
        elif req.command:
            commands = [req.command] * (req.array if req.array is not None else 1)
        else:
            raise UsageError("no command given; put it after `--` or use --queue FILE")
        launched = launch_array(
            session, req.target, commands, req.name, throttle=req.throttle, after=req.after
        )
    first = launched[0]
    if req.as_json:
        doc: dict[str, Any] = {"run_id": first.run_id, "name": first.name, "target": first.target}
        if fan_out:
            doc["runs"] = [{"run_id": r.run_id, "name": r.name} for r in launched]
        _emit(doc)
        return 0
    for r in launched:
        where = f"pid {r.pid}" if r.pid is not None else "submitted"
        sys.stderr.write(
            f"launched {r.name!r} on {r.target} ({where}); checkpoints in {r.ckpt_dir}\n"
        )
    sys.stdout.write("".join(r.run_id + "\n" for r in launched))
    return 0


def do_status(
    runs: list[str],
    as_json: bool,
    *,
    start: Path | None = None,
    out: TextIO | None = None,
    pool: ChannelPool | None = None,
) -> int:
    """Look at the runs (all if none given); exit 1 when a named run failed or vanished.

    ``start`` is where the project is looked up (the cwd by default) and ``out`` where the answer
    goes (stdout by default): the daemon runs this same body for a client in another directory.
    """
    from outlive.lifecycle.runs import status
    from outlive.session import Session

    out = sys.stdout if out is None else out
    result = status(Session.open(start, pool=pool), runs)
    if as_json:
        out.write(json.dumps({"runs": [r.to_json() for r in result]}, default=str) + "\n")
        out.flush()
    else:
        from outlive.cli.render import status_table

        status_table(result, out=out)
    return 1 if runs and any(r.state in (State.FAILED, State.VANISHED) for r in result) else 0


def parse_status(argv: list[str]) -> tuple[list[str], bool] | None:
    """``status``'s arguments as (runs, as_json), or None when typer must handle the line."""
    if argv[:1] != ["status"] or "--help" in argv or "-h" in argv:
        return None
    try:
        ns = _parser("status").parse_args(argv[1:])
    except _Fallback:
        return None
    return list(ns.runs), bool(ns.as_json)
