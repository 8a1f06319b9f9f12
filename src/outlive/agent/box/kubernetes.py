"""A Kubernetes pod's entry point: ``python3 /opt/outlive/agent.pyz k8s-attempt REQUEST_JSON``.

The client applies a Job whose container runs this; every pod the Job controller starts (the
first, and each replacement after a preemption or a requeue) is one *attempt* of the same run:

1. The project tree from the ConfigMap (``project.zip`` next to the request) is unpacked into the
   workdir on the claim, file by file where it differs, and checked against the deploy manifest
   (U42).
2. The first attempt writes the run dir (``run.json``) as any launch does; a later one finds it,
   waits for the attempt before it to write its exit record (on servers without
   ``podReplacementPolicy`` a replacement pod starts while the old one is still saving), and moves
   that attempt's records to ``attempts/<n>/``.
3. :class:`KubernetesSupervisor` runs the job, forwards TERM, copies its output both to the run's
   log on the claim and to the container's stdout (``kubectl logs``), and writes the exit record;
   a small JSON summary of it becomes the container's termination message, which the client reads
   from the API without exec.
4. The container exits 0 on success, 75 when the attempt was interrupted (the job saved and asked
   to run again, or died after a forwarded TERM) so the Job runs another pod, else the job's code.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from typing import IO, Dict, List

from outlive import wire

from .common import Rec, count_of, expand
from .records import exit_record, read_json, write_bytes_atomic, write_json_atomic
from .rundir import prepare_run
from .supervisor import Supervisor

K8S_RUN_FIELDS = {"backend": wire.BACKEND_KUBERNETES, "detach": "k8s-job"}
PREVIOUS_WAIT_MARGIN_S = 15.0
TERMINATION_MESSAGE_MAX_BYTES = 4096  # the kubelet keeps at most this much


def attempt(request_path: str) -> int:
    """Run one attempt of the run the request describes; the container's exit code."""
    doc = read_json(request_path)
    try:
        req = wire.LaunchRequest.from_json(doc if isinstance(doc, dict) else {})
    except TypeError as exc:
        sys.stderr.write(f"outlive: the launch request {request_path} is unreadable ({exc})\n")
        return 2
    workdir = expand(str(req.workdir))
    os.makedirs(workdir, exist_ok=True)
    unpack_project(os.path.join(os.path.dirname(request_path), "project.zip"), workdir)
    run_dir = os.path.join(workdir, wire.STATE_DIRNAME, wire.RUNS_DIRNAME, req.run_id)
    if os.path.isfile(os.path.join(run_dir, wire.RUN_JSON)):
        number = next_attempt(run_dir, float(req.kill_grace_s) + PREVIOUS_WAIT_MARGIN_S)
    else:
        if os.path.isdir(run_dir):  # an attempt died between mkdir and run.json
            shutil.rmtree(run_dir)
        run_dir, _spec = prepare_run(req, K8S_RUN_FIELDS)
        number = 0
    supervisor = KubernetesSupervisor(run_dir, number)
    supervisor.run()
    return supervisor.container_exit


def unpack_project(archive: str, workdir: str) -> None:
    """Write the ConfigMap's project tree into the workdir where a file differs (atomically)."""
    if not os.path.isfile(archive):
        return
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = info.filename
            if info.is_dir() or rel.startswith("/") or ".." in rel.split("/"):
                continue  # the client never writes these; never a path out of the workdir
            dest = os.path.join(workdir, rel)
            data = zf.read(info)
            mode = (info.external_attr >> 16) & 0o777 or 0o644
            try:
                with open(dest, "rb") as f:
                    if f.read() == data:
                        continue
            except OSError:
                pass
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            write_bytes_atomic(dest, data, mode)


def next_attempt(run_dir: str, wait_s: float) -> int:
    """Move the last attempt's records to ``attempts/<n>/`` (after it wrote its exit record, or
    ``wait_s`` passed: it was killed); the number of this attempt."""
    attempts = os.path.join(run_dir, wire.ATTEMPTS_DIRNAME)
    os.makedirs(attempts, exist_ok=True)
    number = len([d for d in os.listdir(attempts) if d.isdigit()]) + 1
    launch = os.path.join(run_dir, wire.LAUNCH_JSON)
    exit_json = os.path.join(run_dir, wire.EXIT_JSON)
    deadline = time.monotonic() + wait_s
    while os.path.exists(launch) and not os.path.exists(exit_json):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    dest = os.path.join(attempts, str(number - 1))
    os.makedirs(dest, exist_ok=True)
    for name in (wire.LAUNCH_JSON, wire.EXIT_JSON):
        if os.path.exists(os.path.join(run_dir, name)):
            os.replace(os.path.join(run_dir, name), os.path.join(dest, name))
    return number


def container_exit_code(exit_rec: Rec | None, forwarded: List[str]) -> int:
    """The container's exit: 0, 75 (interrupted: run another pod), or the job's own failure."""
    if not isinstance(exit_rec, dict):
        return 1
    code, sig = exit_rec.get("exit_code"), exit_rec.get("signal")
    if code == 0:
        return 0
    if code == wire.REQUEUE_EXIT or (sig and "SIGTERM" in forwarded):
        return wire.REQUEUE_EXIT
    if isinstance(sig, int) and sig > 0:
        return 128 + sig
    return code if isinstance(code, int) and 0 < code < 256 else 1


class KubernetesSupervisor(Supervisor):
    """The supervisor of one pod: tees the job's output, and reports its end through the
    container's termination message and exit code."""

    def __init__(self, run_dir: str, number: int) -> None:
        super().__init__(run_dir)
        self.number = number
        self.term_at: float | None = None
        self.container_exit = 1
        self.pump: threading.Thread | None = None

    def on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGTERM and self.term_at is None:
            self.term_at = time.time()
        super().on_signal(signum, frame)

    def job_output(self, log: IO[bytes]) -> IO[bytes] | int:
        return subprocess.PIPE

    def job_started(self, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        if proc.stdout is None:
            return
        fd = proc.stdout.fileno()
        out = sys.stdout.buffer
        log_path = str(log.name)  # the caller's handle closes once the job has started

        def copy() -> None:
            with open(log_path, "ab") as own_log:
                for chunk in iter(lambda: os.read(fd, 65536), b""):
                    own_log.write(chunk)
                    own_log.flush()
                    self._echo(out, chunk)

        self.pump = threading.Thread(target=copy, daemon=True)
        self.pump.start()

    @staticmethod
    def _echo(out: IO[bytes], chunk: bytes) -> None:
        try:
            out.write(chunk)
            out.flush()
        except (OSError, ValueError):
            pass  # nobody reads the container's stdout: the log on the claim has it

    def after_exit(self) -> None:
        if self.pump is not None:
            self.pump.join(timeout=5.0)
        launch_rec = read_json(os.path.join(self.run_dir, wire.LAUNCH_JSON)) or {}
        exit_rec = exit_record(os.path.join(self.run_dir, wire.EXIT_JSON))
        self.container_exit = container_exit_code(exit_rec, self.forwarded)
        if isinstance(launch_rec, dict):
            launch_rec["attempt"] = self.number
            launch_rec["pod"] = os.environ.get("OUTLIVE_K8S_POD")
            write_json_atomic(os.path.join(self.run_dir, wire.LAUNCH_JSON), launch_rec)
        message = termination_message(
            exit_rec or {},
            launch_rec if isinstance(launch_rec, dict) else {},
            self.number,
            self.term_at,
            self.container_exit,
            last_progress(os.path.join(self.run_dir, wire.PROGRESS_JSONL)),
        )
        path = os.environ.get(wire.ENV_TERMINATION_LOG)
        if not path:
            return  # not in a pod the client rendered
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(message)
        except OSError as exc:
            sys.stderr.write(f"outlive: could not write the termination message ({exc})\n")


def termination_message(
    exit_rec: Rec,
    launch_rec: Rec,
    number: int,
    term_at: float | None,
    container_exit: int,
    progress: Dict[str, object] | None,
) -> str:
    """The exit record in brief, as JSON small enough for the kubelet to keep (4 KiB)."""
    ended = exit_rec.get("ended_at")
    grew = (count_of(exit_rec.get("oom_kill_after")) or 0) > (
        count_of(launch_rec.get("oom_kill_baseline")) or 0
    )
    doc: Rec = {
        "v": 1,
        "attempt": number,
        "exit_code": exit_rec.get("exit_code"),
        "signal": exit_rec.get("signal"),
        "signal_name": exit_rec.get("signal_name"),
        "started_at": launch_rec.get("started_at"),
        "ended_at": ended,
        "max_rss_bytes": exit_rec.get("max_rss_bytes"),
        "oom_kill": bool(grew),
        "container_exit": container_exit,
        "term_to_exit_s": (
            round(float(ended) - term_at, 3) if term_at is not None and ended else None
        ),
        "error": (str(exit_rec["error"])[:300] if exit_rec.get("error") else None),
        "progress": progress,
    }
    text = json.dumps(doc, separators=(",", ":"))
    if len(text.encode("utf-8")) > TERMINATION_MESSAGE_MAX_BYTES:
        doc["progress"] = None
        text = json.dumps(doc, separators=(",", ":"))
    return text


def last_progress(path: str) -> Dict[str, object] | None:
    """The job's last ``progress()`` record (its step and metrics), or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, io.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return {k: v for k, v in list(doc.items())[:12]}
    return None
