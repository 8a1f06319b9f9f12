"""`secret push` and `tunnel`: the pieces of a remote box that are not runs."""

from __future__ import annotations

import os
import sys

from outlive.cli.grammar import JsonArgs, SecretPushArgs, TunnelArgs
from outlive.cli.output import echo, emit_json, note
from outlive.errors import UsageError

MAX_SECRET_CHARS = 1 << 20


def secret_push(args: SecretPushArgs) -> int:
    """Store the secret; its value never appears in any command line, log or error (U34)."""
    from outlive.lifecycle.runs import secret_push as push
    from outlive.naming import secret_name_problem
    from outlive.session import Session

    target, name, from_env = args.target, args.name, args.from_env
    problem = secret_name_problem(name)
    if problem:
        raise UsageError(problem)  # before the value is read: a name that is a path never leaves
    if from_env is not None:
        value = os.environ.get(from_env)
        if value is None:
            raise UsageError(f"environment variable {from_env} is not set here; export it first")
    elif sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"value for {name} (not echoed): ")
    else:
        value = sys.stdin.read(MAX_SECRET_CHARS + 1)  # a pipe of /dev/zero ends here
    if len(value) > MAX_SECRET_CHARS:
        raise UsageError(
            f"the secret's value is over {MAX_SECRET_CHARS >> 20} MiB; a secret is a token or "
            "a key: pipe only its value"
        )
    value = value.rstrip("\n")
    if not value:
        raise UsageError("the secret value is empty; pipe it on stdin or use --from-env VAR")
    result = push(Session.open(), target, name, value)
    if args.as_json:
        emit_json(result)
    else:
        echo(f"stored {name} on {target} at {result['path']} (mode 0600, {result['fs']})")
    return 0


def tunnel(args: TunnelArgs) -> int:
    import subprocess

    from outlive.config import load_config
    from outlive.transport.ssh import SshTransport

    target, ports = args.target, args.ports
    remote, _, local = ports.partition(":")
    if not remote.isdigit() or (local and not local.isdigit()):
        raise UsageError(f"{ports!r} is not PORT or PORT:LOCAL (numbers), e.g. 6006 or 6006:16006")
    tgt = load_config().target(target)
    if tgt.is_local:
        raise UsageError("the local target needs no tunnel; open http://localhost:" + remote)
    argv = SshTransport(tgt).forward_argv(int(remote), int(local or remote))
    echo(f"forwarding http://localhost:{local or remote} -> {target}:{remote}; Ctrl-C stops")
    try:
        return subprocess.call(argv)
    except KeyboardInterrupt:
        return 0


def daemon_status(args: JsonArgs) -> int:
    import time

    from outlive.daemon.client import running, unused_because

    why = unused_because()
    if why is not None:
        note(why)  # else "no daemon running" would never say why none ever starts
    found = running()
    if args.as_json:
        emit_json({"daemons": found})
        return 0
    if not found:
        echo("no daemon running; the next `outlive status` starts one")
    for d in found:
        age_s = time.time() - float(d["started_at"])
        if d.get("state") == "not answering":
            echo(
                f"pid {d['pid']}: NOT ANSWERING (stopped or hung; looks go around it), up "
                f"{age_s:.0f} s; `outlive daemon stop` ends it ({d['socket']})"
            )
            continue
        echo(
            f"pid {d['pid']}: up {age_s:.0f} s, {d['channels']} open agent channel(s), "
            f"exits after {d['idle_s']:.0f} s idle ({d['socket']})"
        )
    return 0


def daemon_stop(args: JsonArgs) -> int:
    from outlive.daemon.client import stop_all

    stopped = stop_all()
    if args.as_json:
        emit_json({"stopped": stopped})
    else:
        echo(f"stopped {len(stopped)} daemon(s)")
    return 0
