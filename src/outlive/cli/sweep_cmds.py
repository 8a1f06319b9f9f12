"""`sweep FILE`, `sweep status` and `move`: many named runs over several targets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive.cli.grammar import MoveArgs, SweepArgs, SweepStatusArgs
from outlive.cli.output import emit_json, note

if TYPE_CHECKING:
    from outlive.sweep.plan import ItemView


def sweep(args: SweepArgs) -> int:
    """The scheduler loop in the foreground; exit 0 when every item is done."""
    from outlive.errors import UsageError
    from outlive.session import Session
    from outlive.sweep import registry, report, runner
    from outlive.sweep.spec import read_spec

    if args.per_target is not None and args.per_target < 1:
        raise UsageError("--per-target must be at least 1")
    if args.retries < 0:
        raise UsageError("--retries must be 0 or more")
    if args.poll_s <= 0:
        raise UsageError("--poll-s must be more than 0")
    spec = read_spec(Path(args.file), Path(args.items) if args.items is not None else None)
    # looks go through persistent agent channels: a pass every --poll-s costs a request line
    session = Session.open().pooled()
    targets = list(dict.fromkeys(args.targets or ["local"]))
    opts = runner.Options(targets, args.per_target, args.retries, args.poll_s)

    def launched(v: ItemView, target: str, run_id: str) -> None:
        note(f"{v.item.run_name}: run {run_id} on {target}")

    with session:
        views = runner.run(session, spec, opts, on_launch=launched)
    row = next(r for r in registry.sweeps(session.store) if r.name == spec.name)
    doc = report.document(row, views, None)
    _print(doc, args.as_json)
    return 0 if doc["summary"]["done"] == len(views) else 1


def sweep_status(args: SweepStatusArgs) -> int:
    from outlive.session import Session
    from outlive.sweep import report

    doc = report.status_document(Session.open(), args.sweep, args.by, args.highest)
    _print(doc, args.as_json)
    return 0


def _print(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(doc)
        return
    from rich.table import Table

    from outlive.cli._terminal import markup, plain_cells, say
    from outlive.cli.output import console
    from outlive.sweep.report import summary_line

    table = Table(title=markup(f"sweep {doc['sweep']}"), show_lines=False)
    for col in ("item", "state", "target", "step", "metric", "restarts", "note"):
        table.add_column(col)
    for it in doc["items"]:
        state = it["state"] + (" (unreachable)" if it["unreachable"] else "")
        metric = ", ".join(f"{k}={v:.4g}" for k, v in (it["metric"] or {}).items())
        table.add_row(
            *plain_cells(
                it["key"],
                state,
                it["target"] or "-",
                "-" if it["step"] is None else it["step"],
                metric or "-",
                it["restarts"],
                it["note"] or "",
            )
        )
    con = console()
    con.print(table)
    say(con, summary_line(doc["summary"]))
    best = doc["best"]
    if best and best["items"]:
        ranked = ", ".join(f"{b['key']} ({b[best['by']]:.4g})" for b in best["items"])
        say(con, f"best by {best['by']}: {ranked}")


def move(args: MoveArgs) -> int:
    from outlive.session import Session
    from outlive.sweep.move import move_run

    result = move_run(Session.open(), args.run_ref, args.to)
    if args.as_json:
        emit_json(result)
    else:
        from outlive.cli._terminal import printable

        sys.stderr.write(
            printable(
                f"moved {result['name']!r} from {result['from_target']} to "
                f"{result['to_target']} (checkpoint step {result['checkpoint_step']}); new run:"
            )
            + "\n"
        )
        sys.stdout.write(f"{result['run_id']}\n")
    return 0
