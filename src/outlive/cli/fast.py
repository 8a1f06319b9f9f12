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
from typing import Any

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
                return None
            cut = rest.index("--")
            ns = _parser("run").parse_args(rest[:cut])
            return _run(ns, rest[cut + 1 :])
        ns = _parser("status").parse_args(rest)
        return _status(ns)
    except _Fallback:
        return None


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def _run(ns: argparse.Namespace, command: list[str]) -> int:
    from outlive.config import load_config
    from outlive.lifecycle.runs import launch

    launched = launch(load_config(), ns.target, command, ns.name, ns.detach_with)
    if ns.as_json:
        _emit({"run_id": launched.run_id, "name": launched.name, "target": launched.target})
        return 0
    sys.stderr.write(
        f"launched {launched.name!r} on {launched.target} (pid {launched.pid}); "
        f"checkpoints in {launched.ckpt_dir}\n"
    )
    sys.stdout.write(launched.run_id + "\n")
    return 0


def _status(ns: argparse.Namespace) -> int:
    from outlive.config import load_config
    from outlive.lifecycle.runs import status

    result = status(load_config(), ns.runs)
    if ns.as_json:
        _emit({"runs": result})
    else:
        from outlive.cli.render import status_table

        status_table(result)
    return 1 if ns.runs and any(r["state"] in ("failed", "vanished") for r in result) else 0
