"""`pull`, `verify` and `down`: get results off the box, prove them, and gate teardown."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from outlive.cli._terminal import say
from outlive.cli.grammar import DownArgs, PullArgs, VerifyArgs
from outlive.cli.output import console as _console
from outlive.cli.output import emit_json, note
from outlive.cli.output import size as _size

if TYPE_CHECKING:
    from outlive.lifecycle.gate import GateReport
    from outlive.lifecycle.pull_box import BoxManifests
    from outlive.lifecycle.pull_early import EarlyRsync
    from outlive.session import Session


def pull(args: PullArgs) -> int:
    """Pull a run's results (resumable, per directory) and verify them by hash and by load."""
    import gc

    # This process ends with the pull, and what it builds (the roster, the manifest, one
    # record per file) holds no cycles worth collecting: the collector's passes over the
    # imports and those records cost ~15 ms of CPU on the 128 MiB bench, more on big trees.
    gc.disable()
    from outlive.lifecycle.pull_box import BoxManifests
    from outlive.session import Session

    cfg, run_ref = Session.open(), args.run_ref
    # The box's channel (the ssh connection, the agent's start) opens while the rest of the
    # pull is imported, not after.
    sane = args.retries >= 1 and args.parallel >= 1  # else the pull says why at once
    early = BoxManifests.opening(cfg, run_ref, args.target) if sane else None
    head = None
    try:
        from outlive.lifecycle.pull import PullOptions
        from outlive.lifecycle.pull_early import EarlyRsync

        opts = PullOptions(
            dest=args.to,
            outputs=tuple(args.output),
            retries=args.retries,
            stall_timeout_s=args.stall_timeout_s,
            attempt_timeout_s=args.attempt_timeout_s,
            bwlimit_kbps=args.bwlimit_kbps,
            compress=args.compress,
            parallel=args.parallel,
            follow_links=args.follow_links,
            target=args.target,
            require_load_check=args.require_load_check,
            rehash=args.rehash,
        )
        # The checkpoint root's rsync starts as soon as the channel's ssh master listens: its
        # own start (a session, the box's rsync) overlaps the agent's start and the roster
        # instead of following them (lifecycle/pull_early.py).
        head = EarlyRsync.for_pull(cfg, early, opts)
        if args.as_json:
            from outlive.lifecycle.pull import pull as do_pull

            result = do_pull(cfg, run_ref, opts, on_note=note, box=early, early=head)
            emit_json(result)
        else:
            result = _pull_with_bar(cfg, run_ref, opts, note, early, head)
            _print_pull(result)
    finally:
        if head is not None:
            head.discard()
        if early is not None:
            early.close()
    code = 0
    if not result["ok"]:
        note(_pull_failed(result))
        code = 1
    _end_now(code)
    return code


def _end_now(code: int) -> None:
    """End a finished pull at once when outlive is the program (the console script): its
    proof is written and fsynced, its record committed, its threads joined and its channel
    closed, and an orderly shutdown of the interpreter (tearing down the ~400 modules the
    pull imported) cost 20-90 ms after the pull was done (128 MiB bench, load 2-4). The
    atexit handlers still run. Called from other code (tests, the daemon), it returns."""
    from outlive import cli

    if getattr(sys.modules.get("__main__"), "main", None) is not cli.main:
        return
    import atexit
    import os

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _pull_failed(result: dict[str, Any]) -> str:
    """One sentence for a pull that did not verify; the retry hint only where a retry helps
    (not for a checkpoint that could not be load-checked here: installing torch does)."""
    v = result["verify"]
    problems = [f"{u['label']}: {u['error']}" for u in result["transfer"]["units"] if not u["ok"]]
    problems += v["problems"]
    unchecked = _only_unchecked(v)
    if unchecked and not result["transfer"]["failed_units"]:
        return f"the pull of {result['name']!r} matches its manifest, but " + unchecked
    more = f"; and {len(problems) - 1} more" if len(problems) > 1 else ""
    reused = (result.get("hashes_reused") or {}).get("box_files")
    if reused and any("SHA-256 differs" in p for p in v["problems"]):
        # The box's hash of a file unchanged by its stamp came from its cache: the bytes there
        # changed without a write (a disk fault), or the cache was edited.
        return (
            f"the pull of {result['name']!r} did not verify ({problems[0]}{more}); the box "
            f"took {reused} file(s)' hashes from when they were last hashed, unchanged by size, "
            "mtime and ctime, so a file whose bytes changed since without a write (a disk "
            f"fault) differs from them: `outlive pull {result['run_id']} --rehash` reads "
            "every byte again"
        )
    return (
        f"the pull of {result['name']!r} did not verify ({problems[0]}{more}); run the same "
        "pull again: finished files are skipped, half files resume (U12)"
    )


def _only_unchecked(v: dict[str, Any]) -> str | None:
    """When the only failures of a verification are checkpoints that --require-load-check
    wanted loaded and whose loader is not here: the rest of the sentence, naming the fix."""
    failing = [r for r in v["results"] if not r["ok"]]
    if v["extra"] or not failing or any(r.get("load_check") != "skipped" for r in failing):
        return None
    first = failing[0]
    return (
        f"{len(failing)} checkpoint(s) could not be load-checked here (e.g. {first['path']}: "
        f"{first.get('load_skipped')}) and --require-load-check needs them loaded; install "
        f"torch here and run `outlive verify {v['dir']} --require-load-check`"
    )


def _pull_with_bar(
    cfg: Session,
    run_ref: str,
    opts: Any,
    note: Any,
    box: BoxManifests | None,
    head: EarlyRsync | None,
) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from outlive.cli._terminal import markup as esc
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
            # the bar's description is markup: a directory named "[/x]" would stop the pull
            bar.update(task, completed=done, total=total or None, description=esc(what))

        def tell(msg: str) -> None:
            say(bar.console, f"outlive: {msg}")

        result: dict[str, Any] = do_pull(
            cfg,
            run_ref,
            opts,
            on_progress=progress,
            on_note=tell if err.is_terminal else note,
            box=box,
            early=head,
        )
    return result


def _print_pull(result: dict[str, Any]) -> None:
    con = _console()
    v = result["verify"]
    t = result["transfer"]
    where = result["dest"]
    if result["ok"]:
        skipped = v["load_skipped"]
        unchecked = f", {len(skipped)} load check(s) skipped: SHA-256 only" if skipped else ""
        say(
            con,
            f"pulled {result['files']} files ({_size(result['size_bytes'])}) of "
            f"{result['name']!r} into {where}; verified against manifest "
            f"{result['manifest_sha256'][:16]}… (SHA-256 of every file, "
            f"{v['checkpoints_loaded']} checkpoint(s) loaded{unchecked})",
        )
        reused = result.get("hashes_reused") or {}
        if reused.get("box_files") or reused.get("local_files"):
            say(
                con,
                f"  unchanged since an earlier pull, so not read again: {reused['box_files']} "
                f"file(s) ({_size(reused['box_bytes'])}) on the box, {reused['local_files']} "
                f"({_size(reused['local_bytes'])}) here; pull --rehash reads every byte",
            )
        if result.get("snapshot"):
            say(
                con,
                f"SNAPSHOT: run {result['run_id']} was still {result['state']} when pulled; "
                "these files are a snapshot of a run still going, not its final result, and "
                f"`outlive down {result['target']}` will not count them; pull again after it ends",
            )
    else:
        say(con, f"pull of {result['name']!r} into {where} did NOT verify:")
        for unit in t["units"]:
            if not unit["ok"]:
                say(con, f"  transfer {unit['label']}: {unit['error']}")
        for problem in v["problems"][:50]:
            say(con, f"  {problem}")
        if len(v["problems"]) > 50:
            say(con, f"  … and {len(v['problems']) - 50} more")
    for path in result.get("not_pulled") or []:
        say(con, f"  not pulled: {path} (a symlink outside the run's roots)")
    for msg in v["notes"]:
        say(con, f"  note: {msg}")
    how = t.get("method", "rsync")  # a Kaggle version's output comes as one download
    say(
        con,
        f"  {t['attempts']} {how} attempt(s), {_size(t['bytes_received'])} received, "
        f"{result['seconds']:.1f} s",
    )


def verify(args: VerifyArgs) -> int:
    from outlive.verify import verify_dir

    directory = args.directory
    report = verify_dir(directory, require_load=args.require_load_check)
    data = report.as_json()
    if args.as_json:
        emit_json(data)
    else:
        con = _console()
        if report.ok:
            say(
                con,
                f"{directory}: {data['files']} files ({_size(data['size_bytes'])}) match manifest "
                f"{report.manifest_sha256[:16]}…; {data['checkpoints_loaded']} checkpoint(s) "
                "loaded",
            )
        for msg in report.notes:
            say(con, f"  note: {msg}")
    unchecked = _only_unchecked(dict(data))
    if unchecked:
        note(f"{directory} matches its manifest, but {unchecked}")
        return 1
    if not report.ok:
        note(
            f"{directory} does not match its manifest: {'; '.join(report.problems[:5])}"
            + (f"; and {len(report.problems) - 5} more" if len(report.problems) > 5 else "")
        )
        return 1
    return 0


def down(args: DownArgs) -> int:
    """The teardown gate: refuses until every result is pulled and verified; prints the
    platform's commands after the target's name is typed. With ``--execute`` (and the gate
    passed) it calls the provider's meter-stop verb on the target's pod or machine."""
    from outlive.cli import cloud_cmds as C
    from outlive.errors import GateRefused
    from outlive.lifecycle.gate import decide, inspect
    from outlive.session import Session

    session = Session.open()
    target = session.cfg.target(args.target)
    seen = C.down_look(session.cfg, target, execute=args.execute) if target.cloud_id else None
    if args.execute and seen is not None and C.is_gone(seen):
        # Already gone (an execute cut off before its confirmation, or done by hand): there is
        # nothing left to stop, and nothing of the box left to protect.
        again = C.down_execute(session.cfg, target)
        if args.as_json:
            emit_json({"target": target.name, "allowed": True, "executed": again})
        else:
            C.print_look(again, "already stopped")
        return 0
    if args.execute and seen is None:
        C.down_look(session.cfg, target, execute=True)  # raises the one-sentence reason
    report = inspect(session, args.target, require_load=args.require_load_check)
    interactive = not args.as_json and sys.stdin.isatty() and args.confirm is None
    if not args.as_json:
        _print_gate(report)
        if seen is not None:
            C.print_look(seen, "now")

    def ask(prompt: str) -> str:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        return sys.stdin.readline().rstrip("\n")

    verdict = decide(
        report,
        confirm=args.confirm,
        abandon=args.abandon_results,
        confirm_abandon=args.confirm_abandon,
        ask=ask if interactive else None,
    )
    done = C.down_execute(session.cfg, target) if verdict["allowed"] and args.execute else None
    if args.as_json:
        extra = {"cloud": seen, "executed": done} if target.cloud_id else {}
        emit_json({**verdict, **extra})
    elif done is not None:
        C.print_look(done, f"{done['verb']} {'called' if done['acted'] else 'not needed'}")
    elif verdict["allowed"]:
        _print_plan(verdict)
    if not verdict["allowed"]:
        raise GateRefused(str(verdict["refused"]))
    if done is not None and not done["meter_stopped"]:
        raise GateRefused(
            f"{done['verb']} was called but {done['provider']} still shows {done['cloud_id']} "
            f"as {done['state']}; run the same command again to check"
        )
    return 0


def _print_gate(report: GateReport) -> None:
    from rich.table import Table
    from rich.text import Text

    from outlive.cli._terminal import markup as esc
    from outlive.cli._terminal import plain_cells

    con = _console()
    facts = report["teardown"]
    con.print(f"[bold]outlive down {esc(report['target'])}[/bold] ({esc(facts['title'])})")
    if facts["clocks"]:
        con.print("[bold red]Danger clocks[/bold red]")
        for c in facts["clocks"]:
            ids = f" ({', '.join(c['gotchas'])})" if c["gotchas"] else ""
            say(con, f"  • {c['name']}: {c['what_happens']}{ids}")

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
            *plain_cells(
                f"{r['name']} {r['run_id']}",
                r["state"],
                r["files"] if r["files"] is not None else "?",
                _size(r["size_bytes"]),
                verdict,
            )
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
            *plain_cells(
                a["verb"] + star,
                a["stops_billing"],
                a["keeps_billing"],
                a["deletes"],
                "yes" if a["reversible"] else Text("NO", style="bold red"),
            )
        )
    con.print(table)
    say(con, f"meter-stop verb: {facts['meter_stop_verb']}")
    keeps = [k for k in facts["keeps_billing"] if k["billing"]]
    if keeps:
        con.print("keeps billing afterwards:")
        for k in keeps:
            times = f" ({k['multiplier']:g}× the running rate)" if k["multiplier"] else ""
            say(con, f"  • after {k['after']}: {k['what']}: {k['billing']}{times}")
    if report["lost_if_abandoned"]:
        con.print("[bold red]Would be lost[/bold red] (not covered by a verified pull):")
        for item in report["lost_if_abandoned"][:100]:
            say(
                con,
                f"  • {', '.join(item['names'])}: {item['box_path']} ({_size(item['size_bytes'])}, "
                f"{item['why']})",
            )
        if len(report["lost_if_abandoned"]) > 100:
            con.print(f"  … and {len(report['lost_if_abandoned']) - 100} more")
    say(con, report["note"], style="dim")
    for msg in report["released"]:
        say(con, f"note: {msg}", style="dim")


def _print_plan(verdict: GateReport) -> None:
    con = _console()
    con.print(
        "The gate passed. outlive runs none of these; run them yourself, in this order:",
        markup=False,
    )
    for step in verdict["plan"] or []:
        say(con, f"  {step['verb']}: {step['how']}")
    if not verdict["plan"]:
        con.print("  (the profile lists no irreversible teardown verb)", markup=False)
