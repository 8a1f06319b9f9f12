"""The ``outlive`` command line: one definition per command (``grammar``), parsed with argparse
(``parser``), handlers imported only for the command that runs. Exit codes: 0 ok, 1 the checked
thing failed, 2 usage or configuration error; errors are one sentence on stderr."""

from __future__ import annotations

import sys

from outlive.errors import OutliveError


def main() -> None:
    argv = sys.argv[1:]
    try:
        _check_utf8(argv)
        if argv[:1] == ["status"]:
            from outlive.daemon.client import status_via_daemon

            served = status_via_daemon(argv)
            if served is not None:
                sys.exit(served)
        elif argv[:1] == ["run"]:
            from outlive.daemon.client import run_via_daemon

            served = run_via_daemon(argv)
            if served is not None:
                sys.exit(served)
        from outlive.cli.parser import Help, parse

        parsed = parse(argv)
        if isinstance(parsed, Help):
            sys.stdout.write(parsed.text)
            sys.exit(parsed.exit_code)
        sys.exit(parsed.run())
    except OutliveError as exc:
        _note(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _note("interrupted")
        sys.exit(130)


def _check_utf8(argv: list[str]) -> None:
    """Refuse an argument that is not UTF-8: names, paths and commands travel as JSON text to
    the box and into the registry."""
    for arg in argv:
        if arg.isascii():
            continue  # the common case costs no import
        from outlive.naming import not_utf8

        shown = not_utf8(arg)
        if shown is not None:
            from outlive.errors import UsageError

            raise UsageError(
                f"argument '{shown}' is not valid UTF-8; outlive takes names, paths and "
                "commands as UTF-8 text"
            )


def _note(message: str) -> None:
    from outlive.cli.output import note

    note(message)
