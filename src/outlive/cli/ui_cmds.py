"""`ui`: the local web dashboard (imports the server only here)."""

from __future__ import annotations

import sys

from outlive.cli.grammar import UiArgs
from outlive.cli.output import emit_json, note


def ui(args: UiArgs) -> int:
    from outlive.config import load_config
    from outlive.errors import UsageError
    from outlive.ui import UiServer

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (0-65535); try --port 0")
    cfg = load_config()
    try:
        server = UiServer(cfg.project_dir, args.port)
    except OSError as exc:
        why = exc.strerror or exc
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port} ({why}); try --port 0") from None
    if args.as_json:
        emit_json({"url": server.url})
    else:
        sys.stdout.write(server.url + "\n")
        note("serving the dashboard on 127.0.0.1 only; Ctrl-C stops it")
    sys.stdout.flush()
    if not args.no_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
