"""Helpers for running a generated Colab notebook on a real Jupyter kernel."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from outlive.ckpt.directory import committed_steps

EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"
COMMAND = ["python", "train_numpy.py", "--steps", "120", "--save-every", "10",
           "--step-sleep-s", "0.02"]  # fmt: skip
DEADLINE_S = 120.0


def make_project(root: Path) -> Path:
    project = root / "proj"
    project.mkdir(parents=True)
    (project / "outlive.toml").write_text('[project]\nname = "proj"\n')
    (project / "train_numpy.py").write_bytes(EXAMPLE.read_bytes())
    return project


def generate(project: Path, name: str, command: list[str]) -> subprocess.CompletedProcess[str]:
    """``outlive notebook colab --name NAME -- COMMAND`` run in ``project``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    env["OUTLIVE_NO_DAEMON"] = "1"
    return subprocess.run(
        [sys.executable, "-c", "from outlive.cli import main; main()", "notebook", "colab",
         "--name", name, "--", *command],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def execute(path: Path, drive: Path, kill_at_step: int | None = None) -> str:
    """Execute the notebook on a fresh kernel with ``drive`` as Drive; its text output. With
    ``kill_at_step``, the kernel's whole session (kernel, supervisor, job) is SIGKILLed once a
    checkpoint at or past that step is committed: a Colab disconnect, with no signal to catch."""
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, OUTLIVE_DRIVE_DIR=str(drive))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    client = NotebookClient(nb, timeout=int(DEADLINE_S), kernel_name="python3")
    killer = None
    if kill_at_step is not None:
        killer = threading.Thread(
            target=_kill_when, args=(client, drive / "proj" / "checkpoints", kill_at_step)
        )
        killer.start()
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits it
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
        if killer is not None:
            killer.join(DEADLINE_S)
    return "".join(str(out.get("text", "")) for cell in nb.cells for out in cell.get("outputs", []))


def _kill_when(client: NotebookClient, ckpt_root: Path, step: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        dirs = list(ckpt_root.glob("*")) if ckpt_root.is_dir() else []
        if any(max(committed_steps(d), default=-1) >= step for d in dirs):
            break
        time.sleep(0.02)
    km = client.km
    pid = km.provisioner.process.pid if km is not None and km.provisioner else None  # type: ignore[union-attr]
    if pid is None:
        return
    sid = os.getsid(pid)
    if sid == os.getsid(0):
        raise RuntimeError("the kernel shares the test's session; refusing to kill it")
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _sid(entry) == sid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)


def _sid(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])
