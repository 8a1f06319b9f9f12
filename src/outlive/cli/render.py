"""Human output: rich tables and the live watch view. Imported only when a human reads it."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from outlive.cli._terminal import plain_cells, printable
from outlive.run_status import RunStatus
from outlive.session import Session
from outlive.wire import State

_STATE_STYLE = {
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "vanished": "bold red",
    "cancelled": "yellow",
    "pending": "dim",
    "requeued": "magenta",
}


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _console_for(out: TextIO) -> Console:
    """A console writing to ``out`` as if it were the terminal a daemon's client described."""
    tty = bool(getattr(out, "isatty", lambda: False)())
    return Console(
        file=out,
        highlight=False,
        soft_wrap=True,
        force_terminal=tty,
        width=getattr(out, "columns", None),
        no_color=bool(getattr(out, "no_color", False)),
    )


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    return _duration(time.time() - ts) + " ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _progress_text(progress: Mapping[str, object] | None) -> str:
    if not progress:
        return "-"
    metrics = [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in progress.items()
        if k not in ("ts", "step")
    ]
    return " ".join([f"step {progress.get('step')}", *metrics[:3]])


def _state_text(run: RunStatus) -> Text:
    text = Text(run.state.value, style=_STATE_STYLE.get(run.state.value, ""))
    if run.stale:
        text.append(" (unreachable; last seen)", style="dim")
    if run.exit_code not in (None, 0):
        text.append(printable(f" exit {run.exit_code}"))
    if run.signal:
        text.append(printable(f" signal {run.signal}"))
    if run.kaggle and run.kaggle.get("versions"):
        text.append(f" (kaggle version {len(run.kaggle['versions'])})", style="magenta")
    elif run.restarts:
        text.append(f" (restart {run.restarts})", style="magenta")
    return text


def status_table(runs: list[RunStatus], out: TextIO | None = None) -> None:
    console = _console() if out is None or out is sys.stdout else _console_for(out)
    if not runs:
        console.print("no runs yet; start one with `outlive run -- python train.py`")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("run", no_wrap=True, min_width=22)  # a run id is never cut (copy-paste)
    for col in ("name", "target", "state", "progress", "heartbeat", "started"):
        table.add_column(col)
    notes = []
    for r in runs:
        table.add_row(
            *plain_cells(
                r.run_id,
                r.name,
                r.target,
                _state_text(r),
                _progress_text(r.progress),
                "stale" if r.stale else _duration(r.heartbeat_age_s),  # no fresh-looking 0s
                _ago(r.started_at),
            )
        )
        if r.diagnosis:
            ids = ", ".join(r.diagnosis.gotchas)
            notes.append(
                f"{r.name}: {r.diagnosis.cause} — " + "; ".join(r.diagnosis.evidence) + f" [{ids}]"
            )
        if r.unreachable:
            notes.append(f"{r.name}: {r.unreachable}")
        if r.warning:
            notes.append(f"{r.name}: {r.warning}")
    console.print(table)
    for note in notes:
        console.print(Text(printable(note), style="yellow"))


def ls_table(runs: list[dict[str, Any]]) -> None:
    console = _console()
    table = Table(box=None, pad_edge=False)
    for col in ("run", "name", "target", "state (last seen)", "command"):
        table.add_column(col)
    for r in runs:
        command = " ".join(r["command"])
        table.add_row(*plain_cells(r["run_id"], r["name"], r["target"], r["state"], command))
    console.print(table)


def targets_table(rows: list[dict[str, Any]]) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("target", "profile", "host", "workdir", "durable", "kill grace"):
        table.add_column(col)
    for r in rows:
        grace = f"{r['kill_grace_s']:g} s"
        if r["spot_grace_s"] is not None:
            grace += f" (spot {r['spot_grace_s']:g} s)"
        table.add_row(
            *plain_cells(
                r["name"], r["profile"], r["host"] or "-", r["workdir"], r["durable"], grace
            )
        )
    _console().print(table)


def watch_live(session: Session, ref: str, *, interval_s: float, stall_s: float) -> str:
    """Redraw the run's state until it ends; return the final state."""
    from outlive.lifecycle.runs import status

    console = _console()
    with Live(console=console, auto_refresh=False) as live:
        while True:
            run = status(session, [ref])[0]
            hb = run.heartbeat_age_s
            stalled = run.state is State.RUNNING and hb is not None and hb > stall_s
            line = Text.assemble(
                (printable(f"{run.name} "), "bold"),
                _state_text(run),
                printable(f"  {_progress_text(run.progress)}  heartbeat {_duration(hb)}"),
            )
            parts: list[Text] = [line]
            if stalled:
                parts.append(Text(f"no heartbeat for {_duration(hb)}: stalled?", style="bold red"))
            if run.diagnosis:
                why = f"{run.diagnosis.cause}: " + "; ".join(run.diagnosis.evidence)
                parts.append(Text(printable(why), style="yellow"))
            live.update(Group(*parts), refresh=True)
            if run.ended and not run.stale:
                return run.state.value
            time.sleep(interval_s)


def spend_lines(money: dict[str, Any]) -> list[str]:
    """``status``'s lines about money and danger clocks, per target with a ``cloud_id``."""
    lines: list[str] = []
    for name, t in money.items():
        if t["error"]:
            lines.append(f"{name}: cost unknown ({t['error']})")
            continue
        part = "" if t["rate_complete"] else " + compute at a rate the API does not give"
        billed = "" if t["billed_usd"] is None else f"; billed so far ${t['billed_usd']:.2f}"
        lines.append(
            f"{name}: {t['provider']} {t['cloud_id']} {t['state'] or 'gone'}, "
            f"${t['usd_per_hour']:.4f}/h now{part}{billed}"
        )
        for run_id, usd in t["runs_usd"].items():
            lines.append(f"  {run_id}: ≈ ${usd:.2f} so far (rate now × its time)")
        for w in t["warnings"]:
            ids = f" ({', '.join(w['gotchas'])})" if w["gotchas"] else ""
            lines.append(f"  ⚠ {w['clock']}: {w['what_happens']}{ids}")
    return lines
