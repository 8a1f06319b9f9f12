"""`secret push` and `tunnel`: the pieces of a remote box that are not runs."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from outlive.cli.app import JsonOpt, _emit_json, app
from outlive.errors import UsageError

secret_app = typer.Typer(help="Move credentials to a box without putting them on a command line.")
app.add_typer(secret_app, name="secret")


@secret_app.command("push")
def secret_push(
    target: Annotated[str, typer.Argument(help="Target name.")],
    name: Annotated[str, typer.Argument(help="Secret name, e.g. HF_TOKEN.")],
    from_env: Annotated[
        str | None, typer.Option("--from-env", help="Read the value from this local env var.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store NAME on TARGET as a 0600 file on box-local disk; the value comes from stdin or
    --from-env and never appears in any command line, log or error (U34)."""
    from outlive.lifecycle.runs import secret_push as push
    from outlive.session import Session

    if from_env is not None:
        value = os.environ.get(from_env)
        if value is None:
            raise UsageError(f"environment variable {from_env} is not set here; export it first")
    elif sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"value for {name} (not echoed): ")
    else:
        value = sys.stdin.read()
    value = value.rstrip("\n")
    if not value:
        raise UsageError("the secret value is empty; pipe it on stdin or use --from-env VAR")
    result = push(Session.open(), target, name, value)
    if as_json:
        _emit_json(result)
    else:
        typer.echo(f"stored {name} on {target} at {result['path']} (mode 0600, {result['fs']})")


@app.command()
def tunnel(
    target: Annotated[str, typer.Argument(help="Target name.")],
    ports: Annotated[str, typer.Argument(metavar="PORT[:LOCAL]", help="Remote port[:local port].")],
) -> None:
    """Forward localhost:LOCAL to TARGET's PORT (TensorBoard, Jupyter) over the shared master;
    runs until Ctrl-C."""
    import subprocess

    from outlive.config import load_config
    from outlive.transport.ssh import SshTransport

    remote, _, local = ports.partition(":")
    if not remote.isdigit() or (local and not local.isdigit()):
        raise UsageError(f"{ports!r} is not PORT or PORT:LOCAL (numbers), e.g. 6006 or 6006:16006")
    tgt = load_config().target(target)
    if tgt.is_local:
        raise UsageError("the local target needs no tunnel; open http://localhost:" + remote)
    transport = SshTransport(tgt)
    argv = [
        *transport.ssh_argv(),
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        f"127.0.0.1:{local or remote}:127.0.0.1:{remote}",
        "--",
        tgt.connection.host or "",
    ]
    typer.echo(f"forwarding http://localhost:{local or remote} -> {target}:{remote}; Ctrl-C stops")
    try:
        raise typer.Exit(subprocess.call(argv))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


daemon_app = typer.Typer(
    help="The local daemon that answers `status` warm (started by the first look; "
    "OUTLIVE_NO_DAEMON=1 turns it off)."
)
app.add_typer(daemon_app, name="daemon")


@daemon_app.command("status")
def daemon_status(as_json: JsonOpt = False) -> None:
    """List this user's running daemons: pid, age, open agent channels."""
    import time

    from outlive.daemon.client import running

    found = running()
    if as_json:
        _emit_json({"daemons": found})
        return
    if not found:
        typer.echo("no daemon running; the next `outlive status` starts one")
    for d in found:
        age_s = time.time() - float(d["started_at"])
        typer.echo(
            f"pid {d['pid']}: up {age_s:.0f} s, {d['channels']} open agent channel(s), "
            f"exits after {d['idle_s']:.0f} s idle ({d['socket']})"
        )


@daemon_app.command("stop")
def daemon_stop(as_json: JsonOpt = False) -> None:
    """Stop this user's daemons (they close their agent channels; runs are not touched)."""
    from outlive.daemon.client import stop_all

    stopped = stop_all()
    if as_json:
        _emit_json({"stopped": stopped})
    else:
        typer.echo(f"stopped {len(stopped)} daemon(s)")
