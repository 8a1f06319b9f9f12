"""The ``outlive`` command line (typer + rich). Exit codes: 0 ok, 1 the checked thing failed,
2 usage or configuration error; errors are one sentence on stderr."""

from __future__ import annotations

import sys

from outlive.errors import OutliveError


def main() -> None:
    try:
        if sys.argv[1:2] == ["status"]:
            from outlive.daemon.client import status_via_daemon

            served = status_via_daemon(sys.argv[1:])
            if served is not None:
                sys.exit(served)
        from outlive.cli.fast import try_fast

        code = try_fast(sys.argv[1:])
        if code is not None:
            sys.exit(code)
        from outlive.cli.app import app

        app()
    except OutliveError as exc:
        sys.stderr.write(f"outlive: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("outlive: interrupted\n")
        sys.exit(130)
