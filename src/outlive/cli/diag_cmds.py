"""`up` (Phase-0 audit of a box) and `doctor` (why a run died or is slow)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outlive.cli.grammar import RunRefArgs, SmokeArgs, UpArgs
from outlive.cli.output import echo, emit_json

if TYPE_CHECKING:
    from outlive.diagnose.model import CheckJson


_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim"}


def up(args: UpArgs) -> int:
    from outlive.diagnose.runner import run_audit
    from outlive.session import Session

    report = run_audit(Session.open(), args.target, probe_torch=args.torch)
    if args.as_json:
        emit_json(report)
    else:
        _render_checks(f"outlive up {report['target']}", report["checks"])
        echo("ok" if report["ok"] else "FAIL: fix the failed checks before paying for a run")
    return 0 if report["ok"] else 1


def doctor(args: RunRefArgs) -> int:
    from outlive.diagnose.runner import run_doctor
    from outlive.session import Session

    report = run_doctor(Session.open(), args.run_ref)
    verdict = report["verdict"]
    failed = any(c["status"] == "FAIL" for c in report["checks"]) or (
        verdict is not None and verdict["status"] == "FAIL"
    )
    if args.as_json:
        emit_json(report)
        return 1 if failed else 0
    diag = report["diagnosis"]
    head = f"run {report['run_id']}: {report['state']}"
    if diag:
        head += f", cause {diag['cause']} ({', '.join(diag.get('gotchas') or [])})"
    echo(head)
    if verdict is not None:
        ids = ", ".join(verdict["gotchas"])
        echo(f"verdict: {verdict['status']}: {verdict['cause']}" + (f" ({ids})" if ids else ""))
        for line in verdict["evidence"]:
            echo(f"  - {line}")
        if verdict["fix"]:
            echo(f"fix: {verdict['fix']}")
        if verdict["also"]:
            echo("also possible: " + "; ".join(verdict["also"]))
    _render_checks("checks", report["checks"])
    if report["could_not_check"]:
        echo("could not check:")
        for line in report["could_not_check"]:
            echo(f"  - {line}")
    return 1 if failed else 0  # like `up`: a FAIL shown is a failed check


def _render_checks(title: str, checks: list[CheckJson]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from outlive.cli._terminal import markup, plain_cells, printable

    table = Table(title=markup(title), title_justify="left", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    table.add_column("gotchas", no_wrap=True)
    for check in checks:
        status = check["status"]
        table.add_row(
            *plain_cells(
                check["name"],
                Text(printable(status), style=_STYLE.get(status, "")),
                check["detail"],
                ", ".join(check["gotchas"]),
            )
        )
    Console(highlight=False, soft_wrap=False).print(table)


def smoke(args: SmokeArgs) -> int:
    import os
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from outlive.errors import UsageError
    from outlive.gotchas import explain_text

    command, timeout_s = args.command, args.timeout_s
    if not command:
        raise UsageError("no command given; put it after `--` (see `outlive smoke --help`)")
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
            raise UsageError(f"cannot start {command[0]!r}: {exc.strerror}") from None
        seconds = time.monotonic() - t0
        text = output.decode("utf-8", errors="replace")
        saved = sorted(p.name for p in (Path(tmp) / "ckpt").glob("step-*")) if code == 0 else []
    ok = code == 0
    matches = [] if ok else [m.as_dict() for m in explain_text(text)]
    if args.as_json:
        emit_json(
            {
                "ok": ok,
                "exit_code": code,
                "seconds": round(seconds, 3),
                "checkpoints": saved,
                "matches": matches,
            }
        )
    else:
        tail = text[-4000:]
        if sys.stdout.isatty():  # as `logs` shows a job's output: no OSC, DCS or APC strings
            from outlive.cli._terminal import StringSequenceGuard

            tail = StringSequenceGuard().feed(tail.encode()).decode("utf-8", errors="replace")
        sys.stdout.write(tail)
        verdict = "passed" if ok else ("timed out" if code is None else f"failed (exit {code})")
        sys.stderr.write(
            f"outlive smoke: {verdict} in {seconds:.1f} s; {len(saved)} checkpoint(s) written\n"
        )
        for m in matches:
            sys.stderr.write(f"  {m['id']} line {m['line']}: {m['title']}\n")
    return 0 if ok else 1
