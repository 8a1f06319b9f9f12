"""The setsid and tmux backends: runs whose supervisor lives on this box, detached from the agent.

This module is the look side (probe, cancel, ended), which every status and pull asks for: it
imports no subprocess, shutil or supervisor code (~5 ms of a cold agent's start on a 2-vCPU VM).
Launching and supervising live in ``process_launch.py``, imported by the two calls that need it.
"""

from __future__ import annotations

import contextlib
import os
import time

from outlive import wire

from .common import Rec
from .procfs import is_alive, processes_of_run
from .records import read_json, request_cancel

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)

if TYPE_CHECKING:
    from typing import Callable, Dict, List

    from .supervisor import Supervisor


def launch(request: wire.LaunchRequest) -> Rec:
    from .process_launch import launch as launch_run

    return launch_run(request)


def supervisor(run_dir: str, launcher: List[str]) -> Supervisor:
    from .process_launch import supervisor as supervisor_of

    return supervisor_of(run_dir, launcher)


def probe(runs: Dict[str, Rec], boot_now: str | None, now: float) -> Dict[str, Rec]:
    from .process_state import probe_process

    return {run_dir: probe_process(run_dir, spec, boot_now, now) for run_dir, spec in runs.items()}


def _already_over(run_dir: str, spec: Rec, what: str) -> Rec:
    """A cancel that found nothing to signal: the run's state as a probe sees it, and why."""
    from .process_state import probe_process
    from .procfs import boot_id

    seen = probe_process(run_dir, spec, boot_id(), time.time())
    state = str(seen.get("state") or "unknown")
    diagnosis = seen.get("diagnosis") if isinstance(seen.get("diagnosis"), dict) else None
    note = f"{what}; the run is {state}"
    if diagnosis:
        evidence = [str(e) for e in diagnosis.get("evidence") or []]
        note += f" (cause: {diagnosis.get('cause')}" + (f"; {evidence[-1]})" if evidence else ")")
    return {"signalled": None, "state": state, "diagnosis": diagnosis, "note": note}


def cancel(run_dir: str, spec: Rec, grace_s: float) -> Rec:
    launch = read_json(os.path.join(run_dir, wire.LAUNCH_JSON))
    if os.path.exists(os.path.join(run_dir, wire.EXIT_JSON)):
        over = _already_over(run_dir, spec, "the run had already ended")
        over["note"] = "the run is not running"
        return over
    if not isinstance(launch, dict):
        if not spec:
            return _cancel_without_records(run_dir, grace_s)
        return {"signalled": None, "note": "the run has not started (no launch record)"}
    request_cancel(run_dir, grace_s)
    if is_alive(launch.get("supervisor_pid"), launch.get("supervisor_start_ticks")):
        import signal

        # The supervisor forwards TERM to the job's group and sends KILL after the grace.
        os.kill(int(launch["supervisor_pid"]), signal.SIGTERM)
        return {"signalled": "supervisor", "grace_s": grace_s}
    if is_alive(launch.get("pid"), launch.get("start_ticks")):
        group = _job_group(launch)
        if group is None:
            return {
                "signalled": None,
                "note": f"the launch record in {run_dir} does not name the job's own process "
                "group (damaged?): nothing was signalled; stop the job by hand",
            }
        escalated = _term_then_kill(
            lambda sig: os.killpg(group, sig),
            lambda: is_alive(launch.get("pid"), launch.get("start_ticks")),
            grace_s,
        )
        return {"signalled": "job", "escalated": escalated}
    return _already_over(run_dir, spec, "neither the supervisor nor the job is alive")


def _term_then_kill(send: Callable[[int], None], alive: Callable[[], bool], grace_s: float) -> bool:
    """TERM, up to ``grace_s`` for ``alive()`` to turn false, then KILL; whether KILL was sent."""
    import signal

    send(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and alive():
        time.sleep(0.1)
    if not alive():
        return False
    send(signal.SIGKILL)
    return True


def _cancel_without_records(run_dir: str, grace_s: float) -> Rec:
    """A run whose directory was deleted while its job runs: the job's processes are found by
    the run id in their environment (``procfs.processes_of_run``); TERM, then KILL after the
    grace, as the supervisor would have done."""
    found = processes_of_run(os.path.basename(run_dir.rstrip("/")))
    if not found:
        return {"signalled": None, "note": f"no run records in {run_dir}; nothing to cancel"}

    def send(sig: int) -> None:
        for pid, ticks in found:
            if is_alive(pid, ticks):  # never a pid reused since it was found
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

    escalated = _term_then_kill(send, lambda: any(is_alive(p, t) for p, t in found), grace_s)
    pids = ", ".join(str(p) for p, _ in found)
    return {
        "signalled": "job",
        "escalated": escalated,
        "grace_s": grace_s,
        "note": f"no run records in {run_dir}; its job's processes (pid {pids}) were stopped",
    }


def _job_group(launch: Rec) -> int | None:
    """The job's process group, which the supervisor made the job lead (pgid == pid); None for
    a record that names any other (a hand edit, a damaged file): never init's, never ours."""
    pid, pgid = launch.get("pid"), launch.get("pgid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or pgid != pid:
        return None
    return None if pid == os.getpgrp() else pid


def ended(run_dir: str, spec: Rec) -> bool:
    """A process run has ended exactly when its exit record exists (the caller checks that)."""
    return False
