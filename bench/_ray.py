"""A throwaway Ray head for ``peers.py``: Ray lives in its own venv under
``~/.cache/outlive/bench/ray-venv`` (made on first use, never a dependency of outlive), the head
runs with its own ports and temp dir, and only the processes it started are stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

VENV = Path.home() / ".cache" / "outlive" / "bench" / "ray-venv"
PORT, DASHBOARD_PORT = 6391, 8276  # not Ray's defaults: a user's own Ray stays untouched
READY_TIMEOUT_S = 240.0  # `ray start` ~5 s on an idle machine; far more on a loaded one


def ray_bin() -> Path:
    exe = VENV / "bin" / "ray"
    if not exe.exists():
        print(f"installing Ray into a throwaway venv for this benchmark: {VENV}")
        subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(VENV)], check=True)
        subprocess.run(["uv", "pip", "install", "-q", "-p", str(VENV), "ray[default]"], check=True)
    return exe


class RayHead:
    """``ray start --head --block`` in its own session; ``stop`` ends that session's processes
    and any process whose command line names this head's temp dir (Ray's daemons do)."""

    def __init__(self) -> None:
        self.ray = str(ray_bin())
        self.temp_dir = tempfile.mkdtemp(prefix="rp", dir="/tmp")  # short: Ray's socket paths
        self.env = dict(os.environ, RAY_ADDRESS=f"http://127.0.0.1:{DASHBOARD_PORT}")
        # The bench itself may run under `uv run`, which Ray would hand on to its workers as
        # their interpreter (a project env without Ray): keep the head's own venv.
        self.env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
        for key in [k for k in self.env if k.startswith("UV_") or k == "VIRTUAL_ENV"]:
            del self.env[key]
        argv = [
            self.ray, "start", "--head", "--block", f"--port={PORT}",
            f"--dashboard-port={DASHBOARD_PORT}", "--dashboard-host=127.0.0.1", "--num-cpus=1",
            f"--temp-dir={self.temp_dir}", "--include-dashboard=true", "--disable-usage-stats",
        ]  # fmt: skip
        self.log = open(Path(self.temp_dir) / "start.log", "wb")  # noqa: SIM115
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        self.ready_s: float | None = None

    def job(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.ray, "job", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def wait_ready(self) -> float:
        """Seconds from ``ray start`` until a job can be submitted (a no-op job is run)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited; see {self.log.name}")
            done = self.job("submit", "--no-wait", "--", "true", timeout_s=60)
            if done.returncode == 0:
                self.ready_s = time.perf_counter() - self.t0
                return self.ready_s
            time.sleep(1.0)
        raise TimeoutError(f"the Ray head did not take jobs within {READY_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # --block tears its daemons down on TERM
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in _pids_naming(self.temp_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _pids_naming(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                pids.append(int(d.name))
    return pids


def job_id_of(submit_stdout: str) -> str:
    """The submission id in ``ray job submit --no-wait``'s output (raysubmit_...)."""
    for word in submit_stdout.replace("'", " ").split():
        if word.startswith("raysubmit_"):
            return word
    raise ValueError(f"no job id in: {submit_stdout[-300:]}")
