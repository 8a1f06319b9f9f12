"""The daemon's ``run``: one launch for a client, over the daemon's open agent channel.

Served only where the launch reads nothing from the client's environment beyond what the daemon's
socket digest already pins (``client._ENV_KEYS``): a single run (no fan-out) on a plain SSH
target without secrets. Everything else is FALLBACK, and the client launches itself. FALLBACK is
answered only before anything is journaled or sent; from the launch on, every outcome is the
launch's own answer (an error is one sentence saying it may or may not have started), so a
client never launches a second time what the daemon may have launched.
"""

from __future__ import annotations

import io
import traceback
from pathlib import Path

from outlive.agent.channel import ChannelPool
from outlive.daemon.client import FALLBACK, maybe_launched
from outlive.errors import OutliveError


def serve_run(doc: dict[str, object], pool: ChannelPool | None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``outlive run`` for the client's argv and directory."""
    from outlive.cli.grammar import RunArgs
    from outlive.cli.parser import parse
    from outlive.cli.run_cmds import is_fan_out, run_in
    from outlive.session import Session

    argv, cwd = doc.get("argv"), doc.get("cwd")
    try:
        parsed = parse(argv) if isinstance(argv, list) and argv[:1] == ["run"] else None
    except OutliveError:  # a usage error: the client parses again and says so itself
        parsed = None
    args = getattr(parsed, "args", None)
    if not isinstance(args, RunArgs) or not isinstance(cwd, str) or is_fan_out(args):
        return FALLBACK, "", ""
    try:
        session = Session.open(Path(cwd), pool=pool)
        target = session.target(args.target)
    except OutliveError:
        return FALLBACK, "", ""  # no project, an unknown target: the client says so itself
    except Exception:  # nothing is journaled or sent yet: never "may have started"
        traceback.print_exc()  # the log keeps why; the client launches itself, or says why
        return FALLBACK, "", ""
    if target.kind != "ssh" or target.backend != "process" or target.policy.secrets:
        return FALLBACK, "", ""  # its launch may read the client's environment (secrets, ...)
    out, err = io.StringIO(), io.StringIO()
    try:
        code = run_in(args, start=Path(cwd), out=out, err=err, session=session)
    except OutliveError as exc:
        from outlive.cli._terminal import printable

        code = exc.exit_code
        err.write(f"outlive: {printable(exc)}\n")
    except Exception:  # the launch's fate is unknown: the log says why, the client is told so
        traceback.print_exc()
        code = 1
        err.write(maybe_launched("the daemon failed mid-launch"))
    return code, out.getvalue(), err.getvalue()
