"""`up` (Phase-0 audit of a box) and `doctor` (why a run died or is slow)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from outlive.cli.app import JsonOpt, _emit_json, app
from outlive.session import Session

_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim"}


@app.command()
def up(
    target: Annotated[str, typer.Argument(help="Target name.")],
    as_json: JsonOpt = False,
    torch: Annotated[
        bool, typer.Option(help="Probe torch for the CUDA triangle (up to 30 s).")
    ] = True,
) -> None:
    """Phase-0 audit of TARGET: PASS / WARN / FAIL per check with gotcha IDs; exit 1 on FAIL."""
    from outlive.diagnose.runner import run_audit

    report = run_audit(Session.open(), target, probe_torch=torch)
    if as_json:
        _emit_json(report)
    else:
        _render_checks(f"outlive up {report['target']}", report["checks"])
        verdict = "ok" if report["ok"] else "FAIL: fix the failed checks before paying for a run"
        typer.echo(verdict)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def doctor(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id or name.")],
    as_json: JsonOpt = False,
) -> None:
    """Why RUN died or is slow: the vanished ladder, GPU health, disks, threads vs the quota."""
    from outlive.diagnose.runner import run_doctor

    report = run_doctor(Session.open(), run_ref)
    if as_json:
        _emit_json(report)
        return
    diag = report["diagnosis"]
    head = f"run {report['run_id']}: {report['state']}"
    if diag:
        head += f", cause {diag['cause']} ({', '.join(diag.get('gotchas') or [])})"
    typer.echo(head)
    for line in (diag or {}).get("evidence") or []:
        typer.echo(f"  - {line}")
    _render_checks("checks", report["checks"])
    if report["could_not_check"]:
        typer.echo("could not check:")
        for line in report["could_not_check"]:
            typer.echo(f"  - {line}")


def _render_checks(title: str, checks: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    table.add_column("gotchas", no_wrap=True)
    for check in checks:
        status = check["status"]
        table.add_row(
            check["name"],
            Text(status, style=_STYLE.get(status, "")),
            Text(check["detail"]),
            ", ".join(check["gotchas"]),
        )
    Console(highlight=False, soft_wrap=False).print(table)


@app.command(context_settings={"ignore_unknown_options": True})
def smoke(
    command: Annotated[list[str], typer.Argument(help="The command, after `--`.")],
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Give up after this many seconds.")
    ] = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Run CMD here, in the foreground, for 1-2 steps (OUTLIVE_SMOKE=1, a throwaway checkpoint
    dir) before paying for a GPU; on failure, match its output against the gotcha catalog."""
    import os
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from outlive.gotchas import explain_text

    with tempfile.TemporaryDirectory(prefix="outlive-smoke-") as tmp:
        env = dict(os.environ, OUTLIVE_SMOKE="1", PYTHONUNBUFFERED="1")
        env["OUTLIVE_CKPT_DIR"] = str(Path(tmp) / "ckpt")
        env["OUTLIVE_PROGRESS_FILE"] = str(Path(tmp) / "progress.jsonl")
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                command, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s
            )
            code: int | None = proc.returncode
            output = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            code = None
            output = (exc.stdout or b"") + (exc.stderr or b"")
        except OSError as exc:
            from outlive.errors import UsageError

            raise UsageError(f"cannot start {command[0]!r}: {exc.strerror}") from None
        seconds = time.monotonic() - t0
        text = output.decode("utf-8", errors="replace")
        saved = sorted(p.name for p in (Path(tmp) / "ckpt").glob("step-*")) if code == 0 else []
    ok = code == 0
    matches = [] if ok else [m.as_dict() for m in explain_text(text)]
    if as_json:
        _emit_json(
            {
                "ok": ok,
                "exit_code": code,
                "seconds": round(seconds, 3),
                "checkpoints": saved,
                "matches": matches,
            }
        )
    else:
        sys.stdout.write(text[-4000:])
        verdict = "passed" if ok else ("timed out" if code is None else f"failed (exit {code})")
        sys.stderr.write(
            f"outlive smoke: {verdict} in {seconds:.1f} s; {len(saved)} checkpoint(s) written\n"
        )
        for m in matches:
            sys.stderr.write(f"  {m['id']} line {m['line']}: {m['title']}\n")
    raise typer.Exit(0 if ok else 1)
