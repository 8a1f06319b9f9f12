"""The ``outlive`` command line: one definition per command (``grammar``), parsed with argparse
(``parser``), handlers imported only for the command that runs. Exit codes: 0 ok, 1 the checked
thing failed, 2 usage or configuration error; errors are one sentence on stderr."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported on the hot path (a served look)
if TYPE_CHECKING:
    from outlive.errors import OutliveError


def main() -> None:
    argv = sys.argv[1:]
    if sys.stdout is None or sys.stderr is None or sys.stdin is None:
        _reopen_closed_std_streams()
    try:
        _check_utf8(argv)
        if argv[:1] in (["status"], ["run"]):
            from outlive.daemon import client

            via = client.status_via_daemon if argv[0] == "status" else client.run_via_daemon
            served = via(argv)
            if served is not None:
                _served_exit(served)
        elif argv[:1] in (["pull"], ["logs"], ["cancel"]):  # transport.ahead.COMMANDS
            from outlive.transport import ahead

            ahead.connect_for(argv)  # the box's handshake overlaps the imports below
        from outlive.cli.parser import Help, parse

        parsed = parse(argv)
        if isinstance(parsed, Help):
            sys.stdout.write(parsed.text)
            code = parsed.exit_code
        else:
            code = parsed.run()
    except KeyboardInterrupt:
        _note("interrupted")
        sys.exit(130)
    except _outlive_error() as exc:  # evaluated only when something was raised
        _note(str(exc))
        sys.exit(exc.exit_code)
    sys.exit(code)


def _reopen_closed_std_streams() -> None:
    """A standard stream the shell closed (``outlive run ... >&-``) becomes /dev/null: its output
    is discarded as asked, and no file outlive opens next (the registry) takes its descriptor,
    where a child's output would land."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None:
            continue
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        stream = open(fd, "r" if fd == 0 else "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        setattr(sys, name, stream)  # for the whole process


def _served_exit(code: int) -> None:
    """End a command the daemon answered. Its answer is written and nothing else is open, so
    when outlive is the program (the console script) the process ends at once: an orderly
    shutdown of the interpreter would cost a look ~2 ms. Called from other code, SystemExit."""
    sys.stdout.flush()
    sys.stderr.flush()
    if getattr(sys.modules.get("__main__"), "main", None) is main:
        os._exit(code)
    sys.exit(code)


def _outlive_error() -> type[OutliveError]:
    """outlive's error class, imported only once an exception is being matched (a served look
    never loads outlive.errors)."""
    from outlive.errors import OutliveError

    return OutliveError


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
