"""`run`, `status`, `ls`, `logs`, `watch` and `cancel`: launching runs and looking at them.

`run` and `status` are the hot path: this module imports nothing heavy at the top (no rich, no
pydantic); their bodies import what they need.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from outlive.cli._terminal import StringSequenceGuard, printable
from outlive.cli.grammar import JsonArgs, LogsArgs, RunArgs, RunRefArgs, StatusArgs, WatchArgs
from outlive.cli.output import echo, emit_json, note
from outlive.wire import State

if TYPE_CHECKING:
    from outlive.agent.channel import ChannelPool
    from outlive.run_status import RunStatus
    from outlive.session import Session


def is_fan_out(req: RunArgs) -> bool:
    """Whether ``run`` launches a job array (--array / --queue / --after / --throttle)."""
    return bool(req.array is not None or req.queue is not None or req.throttle or req.after)


def do_run(req: RunArgs) -> int:
    """`outlive run` (the CLI's own launch; the daemon calls :func:`run_in` directly)."""
    return run_in(req)


def run_in(
    req: RunArgs,
    *,
    start: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    session: Session | None = None,
) -> int:
    """Launch one run, or (Slurm) a job array from --array / --queue / --after; print run ids.

    ``start``, ``out``, ``err`` and ``session`` are the daemon's: the client's directory, its
    answer's streams, and a session on the daemon's open agent channels."""
    from outlive.errors import UsageError
    from outlive.session import Session

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    session = Session.open(start) if session is None else session
    fan_out = is_fan_out(req)
    if not fan_out:
        from outlive.lifecycle.runs import launch, launch_registry

        # One registry connection for the launch's reads and writes: each connection's close
        # would checkpoint the WAL (an fsync of the database) on its own.
        with launch_registry(session):
            launched = [launch(session, req.target, req.command, req.name, req.detach_with)]
    else:
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
    warnings = [w for r in launched for w in r.warnings]
    for warning in warnings:
        note(f"warning: {warning}", err)
    if req.as_json:
        doc: dict[str, Any] = {"run_id": first.run_id, "name": first.name, "target": first.target}
        doc["warnings"] = warnings  # launched anyway: the box's PATH may differ by then
        if fan_out:
            doc["runs"] = [{"run_id": r.run_id, "name": r.name} for r in launched]
        emit_json(doc, out)
        return 0
    for r in launched:
        where = f"pid {r.pid}" if r.pid is not None else "submitted"
        said = f"launched {r.name!r} on {r.target} ({where}); checkpoints in {r.ckpt_dir}"
        err.write(printable(said) + "\n")
    out.write("".join(r.run_id + "\n" for r in launched))
    return 0


def status(args: StatusArgs) -> int:
    return do_status(args.runs, args.as_json, discover=args.discover)


def do_status(
    runs: list[str],
    as_json: bool,
    *,
    start: Path | None = None,
    out: TextIO | None = None,
    pool: ChannelPool | None = None,
    marks: dict[str, float] | None = None,
    discover: bool = False,
) -> int:
    """Look at the runs (all if none given); exit 1 when a named run failed or vanished.
    ``discover``: also look at the targets with no run known here (``status --discover``).

    ``start`` is where the project is looked up (the cwd by default) and ``out`` where the answer
    goes (stdout by default): the daemon runs this same body for a client in another directory,
    with its ``pool`` of open agent channels, and ``marks`` (``time.perf_counter()`` as the
    session is open, the look done, the answer written) for its breakdown of a look.
    """
    from outlive.lifecycle.runs import Elsewhere, status
    from outlive.session import Session

    out = sys.stdout if out is None else out
    session = Session.open(start, pool=pool)
    if marks is not None:
        marks["session"] = time.perf_counter()
    elsewhere: list[Elsewhere] = []
    unseen: list[tuple[str, str]] = []
    result = status(session, runs, elsewhere=elsewhere, discover=discover, unseen=unseen)
    if marks is not None:
        marks["look"] = time.perf_counter()
    money = _spend(session, result)
    if as_json:
        doc: dict[str, object] = {"runs": [r.to_json() for r in result]}
        if money:
            doc["targets"] = money
        if elsewhere:
            doc["elsewhere"] = [{**e._asdict(), "note": e.sentence()} for e in elsewhere]
        if unseen:
            doc["unseen"] = [{"target": t, "error": why} for t, why in unseen]
        emit_json(doc, out)
    else:
        from outlive.cli.render import spend_lines, status_table

        status_table(result, out=out)
        for line in spend_lines(money):
            out.write(printable(line) + "\n")
        for e in elsewhere:
            out.write(printable(e.sentence()) + "\n")
        for target, why in unseen:
            out.write(printable(f"target {target!r} could not be looked at ({why})") + "\n")
        if not result and not runs and not discover and len(session.cfg.targets) > 1:
            out.write(
                "no run is known in this project; `outlive status --discover` looks at its "
                "targets for runs launched from another copy of it (a clone, a lost .outlive/)\n"
            )
    if marks is not None:
        marks["render"] = time.perf_counter()
    return 1 if runs and any(r.state in (State.FAILED, State.VANISHED) for r in result) else 0


def _spend(session: Session, result: list[RunStatus]) -> dict[str, Any]:
    """Cost and danger clocks of the targets with a ``cloud_id`` (nothing is imported or called
    for a project without one: the status path stays light)."""
    if not any(t.cloud_id for t in session.cfg.targets.values()):
        return {}
    from outlive.cloud.spend import spend

    return dict(spend(session.cfg, result))


def ls(args: JsonArgs) -> int:
    from outlive.session import Session

    recs = Session.open().store.all()
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
    if args.as_json:
        emit_json({"runs": rows})
        return 0
    from outlive.cli.render import ls_table

    ls_table(rows)
    return 0


def logs(args: LogsArgs) -> int:
    from outlive.errors import TransportError
    from outlive.lifecycle import runs
    from outlive.session import Session

    session = Session.open()
    out = sys.stdout.buffer
    # On a terminal, the job's bytes pass but for the sequences that reach past the screen
    # (title, clipboard, hyperlinks); piped or redirected, they are the log exactly.
    guard = StringSequenceGuard() if sys.stdout.isatty() else None

    def shown(data: bytes) -> bytes:
        return guard.feed(data) if guard is not None else data

    if not args.follow:
        out.write(shown(runs.tail(session, args.run_ref, args.lines)))
        out.flush()
        return 0
    warned, code = False, 0
    with session.pooled():  # one open agent channel for the whole follow, not one per poll
        follow = runs.follow(session, args.run_ref, args.lines, follow_name=args.follow_name)
        for chunk in follow:
            if isinstance(chunk, TransportError):
                if not warned:
                    note(f"{chunk} — retrying")
                    warned = True
                continue
            warned = False
            if isinstance(chunk, runs.FollowEnd):
                code = _say_end(chunk.status)
            elif isinstance(chunk, runs.FollowNext):
                note(f"following the next run of this name, {chunk.run_id}")
            else:
                out.write(shown(chunk))
                out.flush()
    return code


def _say_end(st: RunStatus) -> int:
    """One line on stderr when a followed run ended other than by succeeding. The exit code is 1
    when the run vanished (its log cannot say how it ended), else 0: the log was shown whole."""
    if st.state is State.SUCCEEDED:
        return 0
    why = f" ({st.diagnosis.cause}: {'; '.join(st.diagnosis.evidence)})" if st.diagnosis else ""
    code = f" with exit code {st.exit_code}" if st.exit_code not in (None, 0) else ""
    note(f"run {st.name!r} ({st.run_id}) ended {st.state.value}{code}{why}")
    return 1 if st.state is State.VANISHED else 0


def watch(args: WatchArgs) -> int:
    from outlive.cli.render import watch_live
    from outlive.errors import UsageError
    from outlive.session import Session

    if not args.interval_s > 0:  # time.sleep refused a negative one after the first look
        raise UsageError(f"--interval-s {args.interval_s:g} must be more than 0 seconds")

    with Session.open().pooled() as session:  # each refresh: one request on an open channel
        final = watch_live(session, args.run_ref, interval_s=args.interval_s, stall_s=args.stall_s)
    return 0 if final == "succeeded" else 1


def cancel(args: RunRefArgs) -> int:
    from outlive.lifecycle.runs import cancel as do_cancel
    from outlive.session import Session

    result = do_cancel(Session.open(), args.run_ref)
    if args.as_json:
        emit_json(result)
    elif result.get("signalled") and result.get("note"):
        echo(f"{result['name']!r}: {result['note']}")
    elif result.get("signalled"):
        echo(f"sent TERM to {result['name']!r}; KILL follows after {result.get('grace_s', '?')} s")
    else:
        echo(f"{result['name']!r}: {result.get('note', 'nothing to cancel')}")
    return 0
