"""A notebook session's run (Colab): the generated notebook's run cell calls :func:`resume`, in the
kernel, with the run's launch request and its Drive directory.

Every execution of the cell is one *attempt* of the same run, as every pod is on Kubernetes:

1. The project archive (written to Drive by the setup cell) is unpacked into the workdir on Drive.
2. A run that already ended well does nothing (the cell is idempotent); a run whose supervisor is
   still alive in this session is followed, not started twice; otherwise the last attempt's
   records move to ``attempts/<n>/`` (it died with its session: no signal, NB5) and the same
   supervisor every platform uses runs the job again, which loads its latest checkpoint.
3. While the job runs, its output (the progress heartbeat included) is copied into the cell
   output; each newly committed checkpoint is fsynced and re-listed before it is called durable,
   and ``flush`` is called (NB1); before the session cap the job gets TERM (it saves), and Drive
   is flushed one last time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from typing import IO, Callable, List

from outlive import wire

from .common import AgentError, Rec, check_run_id
from .kubernetes import container_exit_code, next_attempt, unpack_project
from .procfs import boot_id, is_alive
from .records import (
    exit_record,
    fsync_dir,
    read_progress,
    read_record,
    request_cancel,
    write_bytes_atomic,
    write_json_atomic,
)
from .rundir import prepare_run

NB_RUN_FIELDS = {"backend": wire.BACKEND_SETSID, "detach": "drive-checkpoint-loop"}
STOP_JSON = "notebook-stop.json"  # how long the last stop before a limit took: {"stop_s": ...}
Flush = Callable[[bool], None]  # flush(final): after each checkpoint (False), at the end (True)


def run_dir_of(request: wire.LaunchRequest) -> str:
    return os.path.join(
        str(request.workdir), wire.STATE_DIRNAME, wire.RUNS_DIRNAME, check_run_id(request.run_id)
    )


def session_left_s(cap_s: float, now: float | None = None) -> float:
    """Seconds left before the session cap, counted from this VM's first call (a file on local
    disk, which dies with the session; keyed by user and boot id, so a new VM starts a new count
    and another user of this machine has a count of their own).

    A stamp older than the cap, or from the future, cannot belong to a session still running
    (the platform ends a session at its cap): it is left by something else sharing this boot and
    ``/tmp`` (a reused VM, a machine that is not a notebook VM), and the count starts again. So
    does a stamp that is not this user's own plain file (a link, a pipe, another user's file)."""
    now = time.time() if now is None else now
    uid = os.getuid()
    stamp = os.path.join(tempfile.gettempdir(), f"outlive-session-{uid}-{boot_id() or 'unknown'}")
    started = _own_stamp(stamp, uid)
    if not 0.0 <= now - started < cap_s:  # no stamp, a damaged one, a stale one or a future one
        started = now
        write_bytes_atomic(stamp, repr(now).encode(), 0o600)  # AgentError: one sentence
    return cap_s - (now - started)


def time_left_s(cap_s: float, started_at: float, now: float | None = None) -> float:
    """Seconds left of a session that began at ``started_at``: never below zero, and never more
    than the cap (a clock set back since the start puts the start ahead of now)."""
    elapsed = (time.time() if now is None else now) - started_at
    return min(cap_s, max(0.0, cap_s - elapsed))


def _own_stamp(path: str, uid: int) -> float:
    """The time in the stamp at ``path`` if it is ``uid``'s own plain file, else NaN. Never
    follows a link and never waits on a pipe someone planted there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return float("nan")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
            return float("nan")
        return float(os.read(fd, 64).decode("ascii").strip())
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return float("nan")
    finally:
        os.close(fd)


class Attempt:
    """One execution of the run cell: starts or follows the supervisor and mirrors the run."""

    def __init__(self, request: wire.LaunchRequest, agent: str, out: IO[str], flush: Flush):
        self.request, self.agent, self.out, self.flush = request, agent, out, flush
        self.run_dir = run_dir_of(request)
        self.log_offset = 0
        self.durable_steps: List[int] = []
        self.beat_at = 0.0
        self.last_step: object = None
        self.limit = "the session limit"

    def say(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def ckpt_dir(self) -> str:
        spec = read_record(os.path.join(self.run_dir, wire.RUN_JSON)) or {}
        return str(spec.get("ckpt_dir") or "")

    def pending(self) -> str:
        """``ended`` (nothing to do), ``alive`` (follow it) or ``start`` (a new attempt)."""
        exit_rec = exit_record(os.path.join(self.run_dir, wire.EXIT_JSON))
        if (
            exit_rec is not None
            and container_exit_code(
                exit_rec, [str(s) for s in exit_rec.get("forwarded_signals") or []]
            )
            != wire.REQUEUE_EXIT
        ):
            return "ended"
        launch = read_record(os.path.join(self.run_dir, wire.LAUNCH_JSON))
        if exit_rec is None and launch is not None and _alive(launch):
            return "alive"  # the cell was interrupted, the run was not: follow it
        return "start"

    def start(self) -> subprocess.Popen[bytes] | None:
        """The supervisor of this attempt, or None when the run is over or followed."""
        if self.pending() != "start":
            return None
        if os.path.isfile(os.path.join(self.run_dir, wire.RUN_JSON)):
            number = next_attempt(self.run_dir, 0.0)  # the last attempt died with its session
            self.say(f"[outlive] resuming {self.request.name} (attempt {number})")
        else:
            if os.path.isdir(self.run_dir):  # an attempt died between mkdir and run.json
                shutil.rmtree(self.run_dir)
            prepare_run(self.request, NB_RUN_FIELDS)
            self.say(f"[outlive] starting {self.request.name} ({self.request.run_id})")
        return subprocess.Popen(
            [sys.executable, self.agent, "supervise", self.run_dir],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )

    def mirror(self) -> None:
        """Copy new log output to the cell; fsync and re-list new checkpoints (NB1)."""
        try:
            with open(os.path.join(self.run_dir, wire.STDOUT_LOG), "rb") as f:
                f.seek(self.log_offset)
                data = f.read()
        except OSError:
            data = b""
        if data:
            self.log_offset += len(data)
            self.out.write(data.decode("utf-8", errors="replace"))
            self.out.flush()
        self.heartbeat()
        ckpt_dir = self.ckpt_dir()
        steps = sorted(_committed(ckpt_dir))
        new = [s for s in steps if s not in self.durable_steps]
        if not new:
            return
        for name in os.listdir(ckpt_dir):
            if not name.startswith("."):
                _fsync(os.path.join(ckpt_dir, name))
        fsync_dir(ckpt_dir)
        self.flush(False)
        listed = sorted(_committed(ckpt_dir))  # durable only once it is visible again (NB1)
        self.durable_steps = listed
        self.say(f"[outlive] checkpoint step {listed[-1]} flushed to {ckpt_dir}")

    def heartbeat(self, every_s: float = 10.0) -> None:
        """The job's last ``progress()`` record, at most every ``every_s``: the cell shows it
        is alive without anyone opening the log."""
        record, age_s = read_progress(self.run_dir, time.time())
        if not record or record.get("step") == self.last_step:
            return
        if time.monotonic() - self.beat_at < every_s and self.last_step is not None:
            return
        self.beat_at, self.last_step = time.monotonic(), record.get("step")
        shown = ", ".join(f"{k} {v}" for k, v in list(record.items())[:6] if k != "ts")
        self.say(f"[outlive] heartbeat: {shown} ({age_s or 0:.0f} s ago)")

    def follow(
        self,
        proc: subprocess.Popen[bytes] | None,
        left_s: Callable[[], float],
        margin_s: float,
        poll_s: float,
    ) -> None:
        launch = read_record(os.path.join(self.run_dir, wire.LAUNCH_JSON)) or {}
        self.durable_steps = sorted(_committed(self.ckpt_dir()))
        stopping, stop_began = False, 0.0
        while True:
            running = proc.poll() is None if proc is not None else _alive(launch)
            self.mirror()
            if not running:
                break
            if not stopping and left_s() <= margin_s:
                stopping = True  # the session cap comes with no signal (NB5): stop while we can
                stop_began = time.monotonic()
                self.say(f"[outlive] {self.limit} is near: asking the job to save and stop")
                request_cancel(self.run_dir, self.request.kill_grace_s)
                _term(proc, launch)
            time.sleep(poll_s)
        self.mirror()
        if stopping:  # measured, so the next session's margin can fit the save (Gradient)
            took_s = time.monotonic() - stop_began
            try:
                write_json_atomic(os.path.join(self.run_dir, STOP_JSON), {"stop_s": took_s})
            except AgentError as exc:  # the run's end still matters more: flush it below
                self.say(f"[outlive] the stop was not measured for the next session: {exc}")
        self.flush(True)


def resume(
    request_doc: Rec,
    agent: str,
    *,
    archive: str | None = None,
    flush: Flush | None = None,
    session_cap_s: float = 43200.0,
    margin_s: float = 1800.0,
    poll_s: float = 1.0,
    out: IO[str] | None = None,
    started_at: float | None = None,
    limit: str = "the session limit",
    start_inside_margin: bool = True,
) -> str:
    """Run or resume the run; its state when this returns: ``succeeded``, ``failed`` (see the
    log above), or ``stopped`` (the session limit came first: run the notebook again).
    ``started_at``: when this session began, if known; else counted from its first call.
    ``limit`` names the session limit in what the cell says. With ``start_inside_margin`` False,
    no attempt starts once the limit is within ``margin_s``: its job could not save in time.
    What stops the cell (a directory where a record goes, a bad request) is said in one
    sentence, and the state is ``failed``."""
    request = wire.LaunchRequest.from_json(request_doc)
    attempt = Attempt(request, agent, out or sys.stdout, flush or (lambda final: None))
    attempt.limit = limit
    try:
        return _resume(attempt, archive, session_cap_s, margin_s, poll_s, started_at,
                       start_inside_margin)  # fmt: skip
    except AgentError as exc:
        attempt.say(f"[outlive] {exc}")
        return "failed"


def _resume(
    attempt: Attempt,
    archive: str | None,
    session_cap_s: float,
    margin_s: float,
    poll_s: float,
    started_at: float | None,
    start_inside_margin: bool,
) -> str:
    request, limit = attempt.request, attempt.limit

    def left_s() -> float:
        if started_at is None:
            return session_left_s(session_cap_s)
        return time_left_s(session_cap_s, started_at)  # a known start (Kaggle, Gradient)

    _make_dir(str(request.workdir))
    if archive:
        unpack_project(archive, str(request.workdir))
    left_s()  # the clock starts (or cannot be kept: AgentError) before any job does
    if not start_inside_margin and attempt.pending() == "start" and left_s() <= margin_s:
        attempt.say(
            f"[outlive] {limit} is {max(left_s(), 0.0):.0f} s away, inside the {margin_s:.0f} s "
            f"needed to save: not starting {request.name}; run the notebook again after it"
        )
        return "stopped"
    proc = attempt.start()
    exit_rec = exit_record(os.path.join(attempt.run_dir, wire.EXIT_JSON))
    if proc is None and exit_rec is not None:
        state = _state_of(exit_rec)
        attempt.say(f"[outlive] {request.name} already ended ({state}); nothing to do")
        return state
    if proc is None:
        attempt.say(f"[outlive] {request.name} is already running in this session; following it")
    attempt.follow(proc, left_s, margin_s, poll_s)
    exit_rec = exit_record(os.path.join(attempt.run_dir, wire.EXIT_JSON)) or {}
    state = _state_of(exit_rec)
    attempt.say(f"[outlive] {request.name}: {state}")
    return state


def _make_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise AgentError(
            f"cannot make the directory {path} ({exc.strerror or exc}): move aside what is in "
            "the way there or above it, or fix its permissions, and run the cell again"
        ) from None


def _state_of(exit_rec: Rec) -> str:
    code = container_exit_code(exit_rec, [str(s) for s in exit_rec.get("forwarded_signals") or []])
    return {0: "succeeded", wire.REQUEUE_EXIT: "stopped"}.get(code, "failed")


def _committed(ckpt_dir: str) -> List[int]:
    from pathlib import Path

    from outlive.ckpt.directory import committed_steps

    return committed_steps(Path(ckpt_dir)) if ckpt_dir else []


def _alive(launch: Rec) -> bool:
    pid = launch.get("supervisor_pid")
    return (
        isinstance(pid, int)
        and launch.get("boot_id") == boot_id()
        and is_alive(pid, launch.get("supervisor_start_ticks"))
    )


def _term(proc: subprocess.Popen[bytes] | None, launch: Rec) -> None:
    pid = proc.pid if proc is not None else launch.get("supervisor_pid")
    if isinstance(pid, int):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # the supervisor forwards it to the job's group


def _fsync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
