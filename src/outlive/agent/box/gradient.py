"""A Paperspace Gradient notebook's run: the generated notebook's run cell calls :func:`run`.

Gradient differs from Colab (:mod:`.notebook`, whose resume this uses) in two ways:

- The session ends at a known time: the auto-shutdown timer, counted from the notebook's start
  (PS2). The job is asked to save (TERM: the Checkpointer's preemption flag) a margin before it;
  the margin is the last measured stop, three times over, and never under the floor. No attempt
  starts inside the margin.
- Everything outside ``/storage`` and ``/notebooks`` is wiped on stop, ``pip`` installs included
  (PS3). The run's requirements go into a virtualenv on ``/storage``, named by the hash of the
  requirements and of the interpreter, created once (the time it took kept in a marker file) and
  reused by every later session.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from typing import IO, Iterator

from outlive import wire

from .notebook import STOP_JSON, resume, run_dir_of, time_left_s
from .records import read_record, write_json_atomic

VENV_MARKER = ".outlive-venv.json"  # written last: a venv without it is a cut-short install
STOP_FACTOR = 3.0


def venv_path(root: str, requirements: str) -> str:
    """``<root>/.venv-<hash>``: other requirements or another interpreter, another venv."""
    key = "\0".join((sys.version, sys.executable, requirements))
    return os.path.join(root, ".venv-" + hashlib.sha256(key.encode()).hexdigest()[:16])


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """One installer at a time per venv (``/storage`` is shared by the team's notebooks)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        with contextlib.suppress(OSError):  # a network filesystem without locks: go on unlocked
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_venv(root: str, requirements: str, out: IO[str]) -> str:
    """The venv holding ``requirements`` on durable storage: reused when its marker is there,
    else created (``--system-site-packages``: the image's own stack stays visible) and filled."""
    venv = venv_path(root, requirements)
    marker = os.path.join(venv, VENV_MARKER)
    done = read_record(marker)
    if done is None:
        os.makedirs(root, exist_ok=True)
        with _locked(venv + ".lock"):
            done = read_record(marker) or _install(venv, requirements, out)
            if done.get("fresh"):
                _say(out, f"[outlive] installed venv {venv} in {done['install_s']:.1f} s; "
                     "later sessions reuse it")  # fmt: skip
                return venv
    _say(out, f"[outlive] reusing venv {venv} (first install took {done['install_s']:.1f} s)")
    return venv


def _install(venv: str, requirements: str, out: IO[str]) -> dict[str, object]:
    if os.path.isdir(venv):
        shutil.rmtree(venv)  # a session died mid-install: start that venv over
    _say(out, f"[outlive] creating venv {venv} on storage (pip installs elsewhere vanish: PS3)")
    began = time.monotonic()
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)
    req = os.path.join(venv, "requirements.txt")
    steps = [
        [sys.executable, "-m", "venv", "--system-site-packages", venv],
        [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-r", req],
    ]
    for number, argv in enumerate(steps):
        if number == 1:
            with open(req, "w", encoding="utf-8") as f:
                f.write(requirements)
        code = _stream(argv, env, out)
        if code != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(
                f"outlive: {'pip install' if number else 'python -m venv'} failed (exit {code}, "
                "output above); fix the requirements, regenerate the notebook and run it again"
            )
    record: dict[str, object] = {"install_s": time.monotonic() - began}
    record.update(created_at=time.time(), python=sys.version.split()[0], requirements=requirements)
    write_json_atomic(os.path.join(venv, VENV_MARKER), record)
    return dict(record, fresh=True)


def _stream(argv: list[str], env: dict[str, str], out: IO[str]) -> int:
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        out.write(line.decode("utf-8", errors="replace"))
    out.flush()
    return proc.wait()


def margin_s(run_dir: str, floor_s: float) -> float:
    """Seconds before the auto-shutdown to ask the job to save: three times the last measured
    stop (TERM to exit, the save included), at least ``floor_s``."""
    last = read_record(os.path.join(run_dir, STOP_JSON)) or {}
    stop_s = last.get("stop_s")
    measured = float(stop_s) * STOP_FACTOR if isinstance(stop_s, (int, float)) else 0.0
    return max(floor_s, measured)


def _hm(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _say(out: IO[str], text: str) -> None:
    out.write(text + "\n")
    out.flush()


def run(
    request_doc: dict[str, object],
    agent: str,
    *,
    archive: str,
    root: str,
    requirements: str,
    shutdown_s: float,
    started_at: float,
    margin_floor_s: float,
    poll_s: float = 1.0,
    out: IO[str] | None = None,
) -> str:
    """Run or resume the run (see :func:`.notebook.resume` for the states it returns), with its
    requirements in a venv under ``root`` and a save before the auto-shutdown."""
    out = out or sys.stdout
    if requirements.strip():
        venv = ensure_venv(root, requirements, out)
        bin_dir = os.path.join(venv, "bin")
        os.environ["VIRTUAL_ENV"] = venv  # the supervisor and the job inherit both
        if not os.environ.get("PATH", "").startswith(bin_dir + os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    request = wire.LaunchRequest.from_json(request_doc)
    margin = margin_s(run_dir_of(request), margin_floor_s)
    left = time_left_s(shutdown_s, started_at)
    _say(out, f"[outlive] auto-shutdown in {_hm(left)}: the job is asked to save "
         f"{margin:.0f} s before it")  # fmt: skip
    return resume(
        request_doc,
        agent,
        archive=archive,
        session_cap_s=shutdown_s,
        margin_s=margin,
        poll_s=poll_s,
        out=out,
        started_at=started_at,
        limit="the auto-shutdown",
        start_inside_margin=False,
    )
