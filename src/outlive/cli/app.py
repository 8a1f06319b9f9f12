"""Command definitions. Each command parses, calls a lifecycle function, and renders the result:
exactly one JSON document on stdout with ``--json``, rich output otherwise."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from outlive.config import CONFIG_NAME, load_config
from outlive.errors import TransportError, UsageError
from outlive.session import Session

app = typer.Typer(
    name="outlive",
    help="Run long GPU jobs on rented or borrowed machines so the result outlives the machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document.")]


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None, default=str) + "\n")
    sys.stdout.flush()


@app.command()
def init(
    force: Annotated[bool, typer.Option(help="Overwrite an existing outlive.toml.")] = False,
) -> None:
    """Write a commented outlive.toml in the current directory."""
    from outlive.cli.templates import CONFIG_TEMPLATE

    path = Path.cwd() / CONFIG_NAME
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; edit it, or pass --force to overwrite it")
    path.write_text(CONFIG_TEMPLATE.format(name=Path.cwd().name))
    typer.echo(f"wrote {path}")


@app.command()
def targets(as_json: JsonOpt = False) -> None:
    """List configured targets (`local` always exists)."""
    cfg = load_config()
    rows = [
        {
            "name": t.name,
            "profile": t.profile,
            "kind": t.kind,
            "host": t.connection.host,
            "workdir": t.placement.workdir,
            "durable": t.placement.durable,
        }
        for t in cfg.targets.values()
    ]
    if as_json:
        _emit_json({"targets": rows, "config": str(cfg.source) if cfg.source else None})
        return
    from outlive.cli.render import targets_table

    targets_table(rows)


@app.command()
def push(
    target: Annotated[str, typer.Argument(help="Target name.")],
    as_json: JsonOpt = False,
) -> None:
    """Sync the project to TARGET (delta; .gitignore + excludes) and verify it there by hash."""
    from outlive.lifecycle.runs import push_and_verify

    result = push_and_verify(Session.open(), target)
    if as_json:
        _emit_json(result)
    elif result["verified"]:
        typer.echo(
            f"pushed {result['files']} files ({result['size_bytes']} bytes, {result['method']}) "
            f"to {result['target']}; the box's copy matches by SHA-256"
        )
    else:
        sys.stderr.write("outlive: the box's copy differs: " + "; ".join(result["problems"]) + "\n")
    if not result["verified"]:
        raise typer.Exit(1)


@app.command(context_settings={"ignore_unknown_options": True})
def run(
    command: Annotated[list[str] | None, typer.Argument(help="The command, after `--`.")] = None,
    target: Annotated[str, typer.Option("-t", "--target", help="Target name.")] = "local",
    name: Annotated[
        str | None,
        typer.Option("--name", help="Run name; the same name resumes the same checkpoints."),
    ] = None,
    detach_with: Annotated[
        str | None,
        typer.Option("--detach-with", help="setsid (default) or tmux (attachable session)."),
    ] = None,
    array: Annotated[
        int | None, typer.Option("--array", help="Slurm: run CMD as a job array of N cells.")
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option("--queue", help="Slurm: one command per line of FILE, as one job array."),
    ] = None,
    throttle: Annotated[
        int | None, typer.Option("--throttle", help="Slurm: at most K array cells at once.")
    ] = None,
    after: Annotated[
        list[str] | None,
        typer.Option("--after", help="Slurm: start only after RUN succeeded (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Launch CMD detached on TARGET; print the run id and return."""
    from outlive.cli.fast import RunRequest, do_run

    req = RunRequest(
        target,
        name,
        detach_with,
        list(command or []),
        array,
        queue,
        throttle,
        list(after or []),
        as_json,
    )
    raise typer.Exit(do_run(req))


@app.command()
def status(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Run ids or names (default: all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """State of runs, with a diagnosis when one vanished; one round trip per target."""
    from outlive.cli.fast import do_status

    raise typer.Exit(do_status(list(runs or []), as_json))


@app.command("ls")
def ls_(as_json: JsonOpt = False) -> None:
    """All runs known to this project (as last seen; `status` looks again)."""
    from outlive.store import Store

    recs = Store(load_config().state_dir).all()
    rows = [
        {
            "run_id": r.run_id,
            "name": r.name,
            "target": r.target,
            "state": r.state,
            "command": r.command,
            "created_at": r.created_at,
        }
        for r in recs
    ]
    if as_json:
        _emit_json({"runs": rows})
        return
    from outlive.cli.render import ls_table

    ls_table(rows)


@app.command()
def logs(
    run_ref: Annotated[str, typer.Argument(metavar="RUN")],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Follow until the run ends.")
    ] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Lines from the end.")] = 20,
) -> None:
    """Tail a run's log; -f follows it and survives connection drops."""
    from outlive.lifecycle import runs

    session = Session.open()
    out = sys.stdout.buffer
    if not follow:
        out.write(runs.tail(session, run_ref, lines))
        out.flush()
        return
    warned = False
    with session.pooled():  # one open agent channel for the whole follow, not one per poll
        for chunk in runs.follow(session, run_ref, lines):
            if isinstance(chunk, TransportError):
                if not warned:
                    sys.stderr.write(f"outlive: {chunk} — retrying\n")
                    warned = True
                continue
            warned = False
            out.write(chunk)
            out.flush()


@app.command()
def watch(
    run_ref: Annotated[str, typer.Argument(metavar="RUN")],
    interval_s: Annotated[float, typer.Option("--interval-s", help="Seconds between looks.")] = 1.0,
    stall_s: Annotated[
        float, typer.Option("--stall-s", help="Flag a stall when no heartbeat for this long.")
    ] = 300.0,
) -> None:
    """Live view of a run until it ends; flags stalls. Exit 0 only if it succeeded."""
    from outlive.cli.render import watch_live

    with Session.open().pooled() as session:  # each refresh: one request on an open channel
        final = watch_live(session, run_ref, interval_s=interval_s, stall_s=stall_s)
    raise typer.Exit(0 if final == "succeeded" else 1)


@app.command()
def cancel(
    run_ref: Annotated[str, typer.Argument(metavar="RUN")],
    as_json: JsonOpt = False,
) -> None:
    """Send TERM to the job (it may save and exit), then KILL after the target's grace."""
    from outlive.lifecycle.runs import cancel as do_cancel

    result = do_cancel(Session.open(), run_ref)
    if as_json:
        _emit_json(result)
    elif result.get("signalled"):
        typer.echo(
            f"sent TERM to {result['name']!r}; KILL follows after {result.get('grace_s', '?')} s"
        )
    else:
        typer.echo(f"{result['name']!r}: {result.get('note', 'nothing to cancel')}")


@app.command()
def demo(
    steps: Annotated[int, typer.Option(help="Training steps of the toy run.")] = 300,
    keep: Annotated[bool, typer.Option(help="Keep the demo's project directory.")] = False,
) -> None:
    """Kill a toy training run mid-way, relaunch it, and prove the resumed result bit for bit."""
    from outlive.demo import run_demo

    ok = run_demo(steps=steps, keep=keep)
    raise typer.Exit(0 if ok else 1)


# Command groups that live in their own modules register themselves on `app` when imported;
# each imports its heavy dependencies inside the command functions (start-up time).
from outlive.cli import catalog_cmds, diag_cmds, pull_cmds, remote_cmds  # noqa: E402, F401
