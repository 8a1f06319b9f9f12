"""The supervisor: runs one job in its own process group, forwards signals to it, and records
how it started (``launch.json``) and ended (``exit.json``). Backends subclass it for their extras
(tmux closes its session, Slurm keeps per-attempt records)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from typing import IO, Dict, List, NamedTuple

from outlive import wire

from .common import SECRET_NAME_RE, AgentError, Rec, expand
from .procfs import boot_id, own_cgroups, proc_start_ticks, read_oom_kill, thread_count
from .records import read_json, read_text, write_json_atomic

FORWARDED_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2")
READY_FD_ENV = "OUTLIVE_READY_FD"  # the pipe the launching agent waits on (setsid launch)
SECRETS_DIR = "~/.outlive/secrets"
MAX_GRACE_S = 7 * 24 * 3600  # signal.alarm takes a C unsigned int: clamp whatever a record says
# How often, and how long, a supervisor tries again to write an exit record the disk refused
# (full): it stays up meanwhile, so space freed within the hour shows the run's real end, never
# "vanished"; bounded, as a supervisor kept up holds a Slurm allocation or a pod.
EXIT_RETRY_S = 5.0
EXIT_RETRY_FOR_S = 3600.0


def alarm_seconds(grace_s: object) -> int:
    """A cancel record's grace as whole seconds ``signal.alarm`` accepts: at least 1, at most a
    week; a non-number, NaN or a negative falls back to 30 s, infinity or a huge value to a week."""
    try:
        grace = float(grace_s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        grace = 30.0
    if math.isnan(grace) or grace < 0:
        grace = 30.0
    return max(1, min(MAX_GRACE_S, math.ceil(min(grace, float(MAX_GRACE_S)))))


def job_env(spec: Rec, run_dir: str, threads: int | None) -> Dict[str, str]:
    """The job's environment: the box's, the user's, then outlive's contract (DESIGN.md)."""
    env = dict(os.environ)
    env.pop(READY_FD_ENV, None)
    user_env = spec.get("env") or {}
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if threads is not None and key not in user_env and key not in env:
            env[key] = str(threads)  # the cgroup quota, not the host's cores (U40)
    env.update(user_env)
    env.update(
        {
            wire.ENV_RUN_ID: spec["run_id"],
            wire.ENV_RUN_NAME: spec["name"],
            wire.ENV_CKPT_DIR: spec["ckpt_dir"],
            wire.ENV_PROGRESS_FILE: os.path.join(run_dir, wire.PROGRESS_JSONL),
            wire.ENV_TARGET: str(spec.get("target") or ""),
            wire.ENV_PROFILE: str(spec.get("profile") or ""),
            "PYTHONUNBUFFERED": "1",  # a detached log must not look frozen (U43)
        }
    )
    for key, value in (
        (wire.ENV_SPOT_GRACE_S, spec.get("spot_grace_s")),
        (wire.ENV_MTBF_S, spec.get("mtbf_s")),
    ):
        if value is not None:
            env[key] = str(value)
    secrets_dir = expand(SECRETS_DIR)
    env[wire.ENV_SECRETS_DIR] = secrets_dir
    for name in spec.get("secrets") or []:
        if not isinstance(name, str) or not SECRET_NAME_RE.match(name):
            sys.stderr.write(f"outlive: secret name {name!r} is not a file name; it is unset\n")
            continue  # never a path out of the secrets dir ('../x', 'a/b')
        # Read from the 0600 file into the job's own environment: never onto a command line (U34).
        value = read_text(os.path.join(secrets_dir, name))
        if value is not None:
            env[name] = value
        else:
            sys.stderr.write(f"outlive: secret {name} was not pushed to this box; it is unset\n")
    if spec.get("pythonpath"):
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = spec["pythonpath"] + (os.pathsep + old if old else "")
    return env


class Ending(NamedTuple):
    """How the job ended: its exit code or the signal that killed it, its peak RSS, and why it
    could not start (``error``)."""

    code: int | None
    sig: int | None
    max_rss_bytes: int
    error: str | None = None


class Supervisor:
    """Runs one job and records how it ended. State lives here, not in globals."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.spec = read_json(os.path.join(run_dir, wire.RUN_JSON))
        self.pgid: int | None = None
        self.pending: List[int] = []
        self.forwarded: List[str] = []
        self.cancel_armed = False

    def on_signal(self, signum: int, frame: object) -> None:
        if self.pgid is None:
            self.pending.append(signum)
            return
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        self.forwarded.append(signal.Signals(signum).name)
        try:
            os.killpg(self.pgid, signum)  # type: ignore[arg-type]
        except ProcessLookupError:
            return
        cancel = read_json(os.path.join(self.run_dir, wire.CANCEL_JSON))
        if signum == signal.SIGTERM and isinstance(cancel, dict) and not self.cancel_armed:
            self.cancel_armed = True
            signal.alarm(alarm_seconds(cancel.get("grace_s", 30)))

    def on_alarm(self, signum: int, frame: object) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)  # type: ignore[arg-type]
            self.forwarded.append("SIGKILL")
        except ProcessLookupError:
            pass

    def run(self) -> int:
        spec = self.spec
        if not isinstance(spec, dict) or "command" not in spec:
            return 2
        for name in FORWARDED_SIGNALS:
            signal.signal(getattr(signal, name), self.on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, self.on_alarm)
        cgroups = own_cgroups()
        threads = thread_count()
        env = job_env(spec, self.run_dir, threads)
        log_path = os.path.join(self.run_dir, wire.STDOUT_LOG)
        launch = {
            "supervisor_pid": os.getpid(),
            "supervisor_start_ticks": proc_start_ticks(os.getpid()),
            "boot_id": boot_id(),
            "memory_cgroup": cgroups.get("memory"),
            "oom_kill_baseline": read_oom_kill(cgroups.get("memory")),
            "threads": threads,
            "started_at": time.time(),
        }
        launch_json = os.path.join(self.run_dir, wire.LAUNCH_JSON)
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(
                    spec["command"],
                    cwd=spec["workdir"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=self.job_output(log),
                    stderr=subprocess.STDOUT,
                    preexec_fn=os.setpgrp,  # own process group: signals reach its children too
                )
            except OSError as exc:
                launch.update({"pid": None, "pgid": None, "start_ticks": None})
                write_json_atomic(launch_json, launch)
                msg = "could not start {!r}: {}".format(spec["command"][0], exc.strerror or exc)
                log.write((f"outlive: {msg}\n").encode())
                self._write_exit(Ending(127, None, 0, msg), launch)
                self._report_ready(launch)
                return 0
        self.pgid = proc.pid
        self.job_started(proc, log)
        launch.update(
            {"pid": proc.pid, "pgid": proc.pid, "start_ticks": proc_start_ticks(proc.pid)}
        )
        write_json_atomic(launch_json, launch)
        self._report_ready(launch)
        for signum in self.pending:
            self._forward(signum)
        _, status, rusage = os.wait4(proc.pid, 0)
        signal.alarm(0)
        proc.returncode = status  # reaped here; keep Popen from waiting on it again
        code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else None
        if code is None:
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        exit_code, sig = (None, -code) if code < 0 else (code, None)
        self._write_exit(Ending(exit_code, sig, rusage.ru_maxrss * 1024), launch)
        self.after_exit()
        return 0

    def after_exit(self) -> None:
        """What a backend does once the job's exit is recorded (tmux: close the session)."""

    def job_output(self, log: IO[bytes]) -> IO[bytes] | int:
        """Where the job's stdout and stderr go: the run's log (Kubernetes: a pipe it tees)."""
        return log

    def job_started(self, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        """Called once the job runs (Kubernetes: start copying its output)."""

    def _report_ready(self, launch: Rec) -> None:
        fd = int(os.environ.get(READY_FD_ENV, "-1"))
        if fd < 0:
            return
        try:
            os.write(fd, json.dumps(launch).encode("utf-8"))
            os.close(fd)
        except OSError:
            pass  # the launching agent gave up waiting; the records on disk still tell the truth

    def _write_exit(self, end: Ending, launch: Rec) -> None:
        code, sig, error = end.code, end.sig, end.error
        record = {
            "exit_code": code,
            "signal": sig,
            "signal_name": signal.Signals(sig).name if sig else None,
            "max_rss_bytes": end.max_rss_bytes,
            "ended_at": time.time(),
            "oom_kill_after": read_oom_kill(launch.get("memory_cgroup")),
            "forwarded_signals": self.forwarded,
        }
        if error:
            record["error"] = error
        give_up_at = time.monotonic() + EXIT_RETRY_FOR_S
        while True:
            try:
                write_json_atomic(os.path.join(self.run_dir, wire.EXIT_JSON), record)
                return
            except AgentError:
                if not os.path.isdir(self.run_dir) or time.monotonic() > give_up_at:
                    raise  # the run's directory is gone, or the disk stayed full
                time.sleep(EXIT_RETRY_S)  # a full disk: the record lands once space is freed
