"""The setsid and tmux backends' launch side: the supervisor runs on this box, detached from the
agent (``process.py`` holds the look side: probe, cancel, ended, and imports none of this).

setsid: the agent forks the supervisor into a new session (no second interpreter start) and waits
on a pipe until the job runs. tmux: an attachable session whose 'supervisor' window runs the same
supervisor and whose 'log' window follows the output; the session ends with the run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import List

from outlive import wire

from .common import AgentError, Rec
from .records import read_record, read_text
from .rundir import agent_dir, prepare_run
from .supervisor import READY_FD_ENV, Supervisor

LAUNCH_TIMEOUT_S = 20.0
TMUX_TIMEOUT_S = 10.0


def check_detach(backend: object) -> str:
    if backend not in wire.DETACH_CHOICES:
        raise AgentError(f"unknown detach primitive {backend!r}; use setsid or tmux")
    if backend == wire.BACKEND_TMUX and not shutil.which("tmux"):
        raise AgentError("tmux is not installed on the box; use --detach-with setsid (the default)")
    return str(backend)


def tmux_session(run_id: str) -> str:
    return "outlive-" + run_id


def launch(request: wire.LaunchRequest) -> Rec:
    backend = check_detach(request.backend)
    run_dir, spec = prepare_run(request, {"detach": backend})
    if backend == wire.BACKEND_TMUX:
        ready = _start_in_tmux(run_dir, spec["run_id"])
    else:
        read_fd, write_fd = os.pipe()
        _start_supervisor(run_dir, write_fd)
        os.close(write_fd)
        ready = _read_ready(read_fd, LAUNCH_TIMEOUT_S)
    if ready is None:
        log = (read_text(os.path.join(run_dir, wire.SUPERVISOR_LOG)) or "").strip().splitlines()
        last_line = log[-1] if log else ""
        raise AgentError(
            f"the supervisor did not report the job started within {LAUNCH_TIMEOUT_S:.0f} s "
            f"({last_line or 'no output'}); see {run_dir}"
        )
    ready["run_dir"] = run_dir
    ready["ckpt_dir"] = spec["ckpt_dir"]
    return ready


def _start_in_tmux(run_dir: str, run_id: str) -> Rec | None:
    """An attachable run: window 'log' follows the job's output, window 'supervisor' runs the same
    supervisor as setsid mode; the session ends when the run does. Readiness is launch.json."""
    session = tmux_session(run_id)
    stdout_log = os.path.join(run_dir, wire.STDOUT_LOG)
    open(stdout_log, "ab").close()  # so the log window has a file to follow
    log = shlex.quote(stdout_log)
    sup = " ".join(shlex.quote(a) for a in (sys.executable, agent_dir(), "supervise", run_dir))
    slog = shlex.quote(os.path.join(run_dir, wire.SUPERVISOR_LOG))
    for argv in (
        ["tmux", "new-session", "-d", "-s", session, "-n", "log", f"tail -n +1 -F {log}"],
        ["tmux", "new-window", "-d", "-t", session, "-n", "supervisor", f"{sup} >>{slog} 2>&1"],
    ):
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=TMUX_TIMEOUT_S
        )
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", errors="replace").strip()
            raise AgentError(f"tmux could not start the run ({err}); try --detach-with setsid")
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while time.monotonic() < deadline:
        launch = read_record(os.path.join(run_dir, wire.LAUNCH_JSON))
        if launch is not None:
            launch["tmux_session"] = session
            return launch
        time.sleep(0.01)
    return None


def _start_supervisor(run_dir: str, ready_fd: int) -> None:
    """Fork the supervisor off this agent (no second interpreter start) into a new session with
    stdin from /dev/null, so an SSH hang-up cannot reach it; it reports on ``ready_fd``."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return
    code = 70
    try:
        os.setsid()
        os.chdir(run_dir)
        devnull = os.open(os.devnull, os.O_RDONLY)
        log = os.open(
            os.path.join(run_dir, wire.SUPERVISOR_LOG),
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            0o644,
        )
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, ready_fd)  # nothing of the agent's connection may stay open here
        os.closerange(ready_fd + 1, 1 << 16)
        os.environ[READY_FD_ENV] = str(ready_fd)
        code = Supervisor(run_dir).run()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _read_ready(fd: int, timeout_s: float) -> Rec | None:
    import select

    deadline = time.monotonic() + timeout_s
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        data = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class TmuxSupervisor(Supervisor):
    """The supervisor of a tmux run: the run is over, so is its attachable session."""

    def after_exit(self) -> None:
        if not isinstance(self.spec, dict):
            return
        subprocess.run(
            ["tmux", "kill-session", "-t", tmux_session(self.spec["run_id"])],
            capture_output=True,
            timeout=TMUX_TIMEOUT_S,
            check=False,
        )


def supervisor(run_dir: str, launcher: List[str]) -> Supervisor:
    from .backends import backend_of

    spec = read_record(os.path.join(run_dir, wire.RUN_JSON)) or {}
    if backend_of(spec) == wire.BACKEND_TMUX:
        return TmuxSupervisor(run_dir)
    return Supervisor(run_dir)
