"""Helpers for the dashboard's browser tests: a project driven through the real ``outlive``
console script, and ``outlive ui`` started as a user starts it (its URL read from ``--json``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
CLI_TIMEOUT_S = 120.0
UI_START_TIMEOUT_S = 60.0

# A job that writes STEPS progress records (loss, lr, throughput), prints a hostile line, then
# waits until its "go" file exists (or runs forever without one) and exits 0.
PROGRESS_JOB = """\
import math, os, sys, time
from outlive import progress
go, steps = sys.argv[1], int(sys.argv[2])
for i in range(steps):
    progress(i, loss=math.exp(-i / 500) + 0.01 * (i % 7), lr=1e-3, throughput=1000.0 + i % 13)
print("<script>document.title='pwned'</script> & <b>not bold</b>", flush=True)
print("bash: $'\\\\r': command not found", flush=True)
print("progress written:", steps, flush=True)
while not os.path.exists(go):
    time.sleep(0.05)
print("done", flush=True)
"""


def clean_env() -> dict[str, str]:
    """The test's environment without outlive settings that would leak into a job (the
    session's daemon directory stays)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OUTLIVE_") or k == "OUTLIVE_DAEMON_DIR"
    }


@dataclass
class UiProject:
    dir: Path

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [OUTLIVE, *args],
            cwd=self.dir,
            env=dict(clean_env(), **(env or {})),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"outlive {args} -> {done.returncode}\n{done.stderr}"
        return done

    def launch(self, name: str, steps: int, *, target: str = "local") -> str:
        """Launch PROGRESS_JOB as run ``name``; on ``local`` it ends once :meth:`finish`
        is called, elsewhere it runs until killed."""
        job = self.dir / "progress_job.py"
        if not job.exists():
            job.write_text(PROGRESS_JOB)
        go = str(self.go_file(name)) if target == "local" else "/nonexistent/never"
        # Launched by the CLI itself: a warm daemon of another environment (an earlier test's)
        # would otherwise hold a channel to the box of its own, and the tests count channels.
        done = self.cli(
            "run", "--json", "-t", target, "--name", name, "--",
            "python3", "progress_job.py", go, str(steps), env={"OUTLIVE_NO_DAEMON": "1"},
        )  # fmt: skip
        return str(json.loads(done.stdout)["run_id"])

    def go_file(self, name: str) -> Path:
        return self.dir / f"go-{abs(hash(name))}"

    def finish(self, name: str) -> None:
        self.go_file(name).write_text("go")

    def kill_leftovers(self) -> None:
        """SIGKILL the process groups of this project's local runs still alive."""
        for launch in (self.dir / ".outlive" / "runs").glob("*/launch.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                pgid = int(json.loads(launch.read_text())["pgid"])
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)


class Ui:
    """``outlive ui --json --no-browser --port 0`` running for one project."""

    def __init__(self, project_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [OUTLIVE, "ui", "--json", "--no-browser", "--port", "0"],
            cwd=project_dir,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until it listens (or exits)
        if not line:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"outlive ui exited before printing its URL: {err}")
        self.url: str = json.loads(line)["url"]
        parts = urlsplit(self.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.token = parts.query.split("=", 1)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def save_screenshot(page: Any, out_dir: Path, name: str) -> Path:
    """Save a full-page screenshot under the test's own directory; with
    OUTLIVE_UI_SCREENSHOT_DIR set (refreshing docs/img), a copy goes there too."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("OUTLIVE_UI_SCREENSHOT_DIR")
    if extra:
        shutil.copyfile(path, Path(extra) / name)
    return path


def progress_lines(run_dir: Path) -> int:
    """Records in a run's progress file, counted the way ``progress()`` writes them."""
    text = (run_dir / "progress.jsonl").read_text()
    return sum(1 for line in text.splitlines() if line.strip().startswith("{"))
