"""`pull`, `verify` and `down`: get results off the box, prove them, and gate teardown."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from outlive.cli.app import JsonOpt, _emit_json, app

if TYPE_CHECKING:
    from rich.console import Console

    from outlive.session import Session


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _size(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


@app.command()
def pull(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id, name or id prefix.")],
    to: Annotated[
        Path | None,
        typer.Option(
            "--to", help="Local directory (default .outlive/pulled/<run-name>/<run-id>/)."
        ),
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            help="A declared output path, relative to the workdir (repeatable); the durable "
            "checkpoint directory is always pulled.",
        ),
    ] = None,
    retries: Annotated[int, typer.Option(help="Attempts per directory.")] = 6,
    stall_timeout_s: Annotated[
        float, typer.Option("--stall-timeout-s", help="End an attempt after this long idle.")
    ] = 30.0,
    attempt_timeout_s: Annotated[
        float, typer.Option("--attempt-timeout-s", help="Longest one attempt may run.")
    ] = 3600.0,
    bwlimit_kbps: Annotated[
        int | None, typer.Option("--bwlimit-kbps", help="rsync --bwlimit, in KiB/s.")
    ] = None,
    compress: Annotated[
        str, typer.Option(help="auto (by a sample of each file), always or never.")
    ] = "auto",
    parallel: Annotated[int, typer.Option(help="Directories moved at once.")] = 4,
    as_json: JsonOpt = False,
) -> None:
    """Pull a run's results (resumable, per directory) and verify them by hash and by load."""
    from outlive.lifecycle.pull import PullOptions
    from outlive.lifecycle.pull import pull as do_pull
    from outlive.session import Session

    opts = PullOptions(
        dest=to,
        outputs=tuple(output or ()),
        retries=retries,
        stall_timeout_s=stall_timeout_s,
        attempt_timeout_s=attempt_timeout_s,
        bwlimit_kbps=bwlimit_kbps,
        compress=compress,
        parallel=parallel,
    )

    def note(msg: str) -> None:
        sys.stderr.write(f"outlive: {msg}\n")

    cfg = Session.open()
    if as_json:
        result = do_pull(cfg, run_ref, opts, on_note=note)
        _emit_json(result)
    else:
        result = _pull_with_bar(cfg, run_ref, opts, note)
        _print_pull(result)
    if not result["ok"]:
        problems = [
            f"{u['label']}: {u['error']}" for u in result["transfer"]["units"] if not u["ok"]
        ]
        problems += result["verify"]["problems"]
        sys.stderr.write(
            f"outlive: the pull of {result['name']!r} did not verify ({problems[0]}"
            + (f"; and {len(problems) - 1} more" if len(problems) > 1 else "")
            + "); run the same pull again: finished files are skipped, half files resume (U12)\n"
        )
        raise typer.Exit(1)


def _pull_with_bar(cfg: Session, run_ref: str, opts: Any, note: Any) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from outlive.lifecycle.pull import pull as do_pull

    err = Console(stderr=True, highlight=False)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("pull", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total or None, description=what)

        def say(msg: str) -> None:
            bar.console.print(f"outlive: {msg}", markup=False)

        result: dict[str, Any] = do_pull(
            cfg, run_ref, opts, on_progress=progress, on_note=say if err.is_terminal else note
        )
    return result


def _print_pull(result: dict[str, Any]) -> None:
    con = _console()
    v = result["verify"]
    t = result["transfer"]
    where = result["dest"]
    if result["ok"]:
        con.print(
            f"pulled {result['files']} files ({_size(result['size_bytes'])}) of "
            f"{result['name']!r} into {where}; verified against manifest "
            f"{result['manifest_sha256'][:16]}… (SHA-256 of every file, "
            f"{v['checkpoints_loaded']} checkpoint(s) loaded)",
            markup=False,
        )
    else:
        con.print(f"pull of {result['name']!r} into {where} did NOT verify:", markup=False)
        for unit in t["units"]:
            if not unit["ok"]:
                con.print(f"  transfer {unit['label']}: {unit['error']}", markup=False)
        for problem in v["problems"][:50]:
            con.print(f"  {problem}", markup=False)
        if len(v["problems"]) > 50:
            con.print(f"  … and {len(v['problems']) - 50} more", markup=False)
    for msg in v["notes"]:
        con.print(f"  note: {msg}", markup=False)
    con.print(
        f"  {t['attempts']} rsync attempt(s), {_size(t['bytes_received'])} received, "
        f"{result['seconds']:.1f} s",
        markup=False,
    )


@app.command()
def verify(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A directory made by pull.")],
    as_json: JsonOpt = False,
) -> None:
    """Check a pulled directory against its manifest again: roster, sizes, SHA-256, loads."""
    from outlive.verify import verify_dir

    report = verify_dir(directory)
    data = report.as_json()
    if as_json:
        _emit_json(data)
    else:
        con = _console()
        if report.ok:
            con.print(
                f"{directory}: {data['files']} files ({_size(data['size_bytes'])}) match manifest "
                f"{report.manifest_sha256[:16]}…; {data['checkpoints_loaded']} checkpoint(s) "
                "loaded",
                markup=False,
            )
        for msg in report.notes:
            con.print(f"  note: {msg}", markup=False)
    if not report.ok:
        sys.stderr.write(
            f"outlive: {directory} does not match its manifest: {'; '.join(report.problems[:5])}"
            + (f"; and {len(report.problems) - 5} more" if len(report.problems) > 5 else "")
            + "\n"
        )
        raise typer.Exit(1)


@app.command()
def down(
    target: Annotated[str, typer.Argument(help="Target name.")],
    confirm: Annotated[
        str | None,
        typer.Option(
            "--confirm", metavar="NAME", help="The target's name, typed (non-interactive)."
        ),
    ] = None,
    abandon_results: Annotated[
        bool,
        typer.Option("--abandon-results", help="Give up results not covered by a verified pull."),
    ] = False,
    confirm_abandon: Annotated[
        str | None,
        typer.Option(
            "--confirm-abandon", metavar="'abandon NAME'", help="Confirms --abandon-results."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The teardown gate (Iron Law): refuses until every result is pulled and verified, shows
    what the platform's verbs stop, keep billing and destroy, and after the target's name is
    typed prints the commands to run. outlive itself stops and deletes nothing."""
    from outlive.errors import GateRefused
    from outlive.lifecycle.gate import decide, inspect
    from outlive.session import Session

    report = inspect(Session.open(), target)
    interactive = not as_json and sys.stdin.isatty() and confirm is None
    if not as_json:
        _print_gate(report)

    def ask(prompt: str) -> str:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        return sys.stdin.readline().rstrip("\n")

    verdict = decide(
        report,
        confirm=confirm,
        abandon=abandon_results,
        confirm_abandon=confirm_abandon,
        ask=ask if interactive else None,
    )
    if as_json:
        _emit_json(verdict)
    elif verdict["allowed"]:
        _print_plan(verdict)
    if not verdict["allowed"]:
        raise GateRefused(str(verdict["refused"]))


def _print_gate(report: dict[str, Any]) -> None:
    from rich.table import Table

    con = _console()
    facts = report["teardown"]
    con.print(f"[bold]outlive down {report['target']}[/bold] ({facts['title']})")
    if facts["clocks"]:
        con.print("[bold red]Danger clocks[/bold red]")
        for c in facts["clocks"]:
            ids = f" ({', '.join(c['gotchas'])})" if c["gotchas"] else ""
            con.print(f"  • {c['name']}: {c['what_happens']}{ids}", markup=False)

    runs = Table(title="Results on the box vs verified pulls", title_justify="left")
    for col in ("run", "state", "files", "size", "covered by a verified pull"):
        runs.add_column(col)
    for r in report["runs"]:
        if r["covered"]:
            verdict = "yes"
        else:
            first = r["uncovered"][0]
            verdict = f"NO: {len(r['uncovered'])} file(s), e.g. {first['path']} ({first['why']})"
        runs.add_row(
            f"{r['name']} {r['run_id']}",
            str(r["state"]),
            str(r["files"] if r["files"] is not None else "?"),
            _size(r["size_bytes"]),
            verdict,
        )
    con.print(runs if report["runs"] else "no runs of outlive's on this target")

    table = Table(title="Teardown verbs (from the profile)", title_justify="left")
    for col in ("verb", "stops billing", "keeps billing", "deletes", "reversible"):
        table.add_column(col)
    for a in facts["actions"]:
        star = (
            " (meter stop)"
            if facts["meter_stop"] and a["verb"] == facts["meter_stop"]["verb"]
            else ""
        )
        table.add_row(
            a["verb"] + star,
            a["stops_billing"],
            a["keeps_billing"],
            a["deletes"],
            "yes" if a["reversible"] else "[bold red]NO[/bold red]",
        )
    con.print(table)
    con.print(f"meter-stop verb: {facts['meter_stop_verb']}", markup=False)
    keeps = [k for k in facts["keeps_billing"] if k["billing"]]
    if keeps:
        con.print("keeps billing afterwards:")
        for k in keeps:
            times = f" ({k['multiplier']:g}× the running rate)" if k["multiplier"] else ""
            con.print(f"  • after {k['after']}: {k['what']}: {k['billing']}{times}", markup=False)
    if report["lost_if_abandoned"]:
        con.print("[bold red]Would be lost[/bold red] (not covered by a verified pull):")
        for item in report["lost_if_abandoned"][:100]:
            con.print(
                f"  • {', '.join(item['names'])}: {item['box_path']} ({_size(item['size_bytes'])}, "
                f"{item['why']})",
                markup=False,
            )
        if len(report["lost_if_abandoned"]) > 100:
            con.print(f"  … and {len(report['lost_if_abandoned']) - 100} more")
    con.print(report["note"], style="dim", markup=False)


def _print_plan(verdict: dict[str, Any]) -> None:
    con = _console()
    con.print(
        "The gate passed. outlive runs none of these; run them yourself, in this order:",
        markup=False,
    )
    for step in verdict["plan"] or []:
        con.print(f"  {step['verb']}: {step['how']}", markup=False)
    if not verdict["plan"]:
        con.print("  (the profile lists no irreversible teardown verb)", markup=False)
