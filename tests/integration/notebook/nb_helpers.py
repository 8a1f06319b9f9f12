"""Helpers for running a generated notebook (Colab, Gradient) on a real Jupyter kernel."""

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


def generate(
    project: Path,
    name: str,
    command: list[str],
    platform: str = "colab",
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """``outlive notebook PLATFORM --name NAME [OPTIONS] -- COMMAND`` run in ``project``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    env["OUTLIVE_NO_DAEMON"] = "1"
    return subprocess.run(
        [sys.executable, "-c", "from outlive.cli import main; main()", "notebook", platform,
         "--name", name, *options, "--", *command],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def execute(path: Path, drive: Path, kill_at_step: int | None = None) -> str:
    """Execute the Colab notebook with ``drive`` as Drive (see :func:`run_notebook`). The
    kernel's temporary directory is the test's own, as a Colab VM's local disk is its session's:
    the session clock's stamp never comes from another test or run on this machine."""
    vm_tmp = drive.parent / "vm-tmp"
    vm_tmp.mkdir(exist_ok=True)
    drive.mkdir(exist_ok=True)  # mounted: the setup cell never makes it
    env = {"OUTLIVE_DRIVE_DIR": str(drive), "TMPDIR": str(vm_tmp)}
    return run_notebook(path, env, drive / "proj" / "checkpoints", kill_at_step)


def run_notebook(
    path: Path,
    env: dict[str, str],
    ckpt_root: Path,
    kill_at_step: int | None = None,
    kill_at: float | None = None,
) -> str:
    """Execute the notebook on a fresh kernel with ``env`` added to its environment; its text
    output. With ``kill_at_step``, the kernel's whole session (kernel, supervisor, job) is
    SIGKILLed once a checkpoint at or past that step is committed under ``ckpt_root``: a
    disconnect, with no signal to catch. With ``kill_at`` (epoch seconds), the same happens at
    that time if the kernel is still there: an auto-shutdown."""
    nb = nbformat.read(path, as_version=4)
    full = dict(os.environ, **env)
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    client = NotebookClient(nb, timeout=int(DEADLINE_S), kernel_name="python3")
    killer, done = None, threading.Event()
    if kill_at_step is not None or kill_at is not None:
        killer = threading.Thread(
            target=_kill_when, args=(client, ckpt_root, kill_at_step, kill_at, done)
        )
        killer.start()
    old = dict(os.environ)
    os.environ.update(full)  # the kernel inherits it
    try:
        client.execute()
    finally:
        done.set()
        os.environ.clear()
        os.environ.update(old)
        if killer is not None:
            killer.join(DEADLINE_S)
    return "".join(str(out.get("text", "")) for cell in nb.cells for out in cell.get("outputs", []))


def _kill_when(
    client: NotebookClient,
    ckpt_root: Path,
    step: int | None,
    at: float | None,
    done: threading.Event,
) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and not done.is_set():
        if at is not None and time.time() >= at:
            break
        dirs = list(ckpt_root.glob("*")) if step is not None and ckpt_root.is_dir() else []
        if step is not None and any(max(committed_steps(d), default=-1) >= step for d in dirs):
            break
        time.sleep(0.02)
    if done.is_set():
        return  # the notebook ended first: nothing left to kill
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
