"""The Kaggle fake's machines: each pushed version runs its script as a local process in a fresh
``/kaggle``-like tree (``$OUTLIVE_KAGGLE_ROOT``: ``working/``, ``input/<source>/`` read-only,
``temp/``), with a session limit after which the version is stopped (TERM, grace, KILL) and ends
in ERROR, as a commit that runs out of time does. A version that ends in ERROR keeps no output
(NB2); one that ends well keeps ``working/`` as its output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUEUED, RUNNING, COMPLETE, ERROR = "QUEUED", "RUNNING", "COMPLETE", "ERROR"
CANCEL_REQUESTED, CANCEL_ACKNOWLEDGED = "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"
ENDED = (COMPLETE, ERROR, CANCEL_ACKNOWLEDGED)


@dataclass
class Limits:
    """How the fake's machines behave; set at ``up`` and by the ``config`` control verb."""

    session_limit_s: float = 32400.0  # a GPU commit is stopped at ~9 h (seed 002)
    grace_s: float = 5.0  # TERM → KILL when the limit or a cancel stops a version
    queue_s: float = 0.0  # how long a version stays QUEUED
    gpu_quota_s: float = 108000.0  # 30 GPU-hours a week


@dataclass
class Version:
    """One pushed version of a kernel and the session that runs it."""

    owner: str
    slug: str
    number: int
    session_id: int
    meta: dict[str, Any]
    home: Path  # this version's records: script, log, kept output
    root: Path  # the kernel's machine: its /kaggle, the same path for every version (as on Kaggle)
    pushed_at: float
    status: str = QUEUED
    failure: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float | None = None
    ended_at: float | None = None
    term_at: float | None = None  # when TERM was sent (limit or cancel)
    why_stopped: str | None = None
    sources: dict[str, Path] = field(default_factory=dict)  # mount name → output copied in

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.slug}"

    @property
    def working(self) -> Path:
        return self.root / "working"

    @property
    def log_path(self) -> Path:
        return self.home / "log.txt"

    @property
    def output(self) -> Path:
        """The kept output: ``working/`` of a version that ended well, nothing otherwise."""
        return self.home / "output"

    def gpu_s(self, now: float) -> float:
        if not self.meta.get("enableGpu") or self.started_at is None:
            return 0.0
        return (self.ended_at or now) - self.started_at


def mount(version: Version) -> None:
    """A fresh /kaggle tree for the version, its sources mounted read-only (``input/<name>``)."""
    if version.root.exists():
        for path in version.root.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(version.root)
    for sub in ("working", "input", "temp"):
        (version.root / sub).mkdir(parents=True, exist_ok=True)
    for name, src in version.sources.items():
        dest = version.root / "input" / name
        shutil.copytree(src, dest, symlinks=True)
        _read_only(dest)


def start(version: Version, now: float) -> None:
    mount(version)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(version.root / "temp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "KAGGLE_KERNEL_RUN_TYPE": "Batch",  # what a committed version sees
        "KAGGLE_KERNEL_INTEGRATIONS": "",
        "OUTLIVE_KAGGLE_ROOT": str(version.root),  # the fake's stand-in for /kaggle
    }
    with open(version.log_path, "ab") as log:
        version.proc = subprocess.Popen(
            [sys.executable, str(version.home / "script.py")],
            cwd=version.working,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    version.status, version.started_at = RUNNING, now


def stop(version: Version, now: float, why: str) -> None:
    """TERM the version's process group; ``advance`` KILLs it after the grace."""
    if version.proc is None or version.term_at is not None:
        return
    version.term_at, version.why_stopped = now, why
    _signal(version, signal.SIGTERM)


def advance(version: Version, limits: Limits, now: float) -> None:
    """Move a started version along: the session limit, the grace, the end."""
    proc = version.proc
    if proc is None or version.status in ENDED:
        return
    started = version.started_at or now
    if version.term_at is None and now - started >= limits.session_limit_s:
        stop(version, now, "limit")
    if version.term_at is not None and now - version.term_at >= limits.grace_s:
        _signal(version, signal.SIGKILL)
    rc = proc.poll()
    if rc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # what the script left behind dies with the VM
    version.ended_at = now
    if version.why_stopped == "cancel":
        version.status = CANCEL_ACKNOWLEDGED
    elif version.why_stopped == "limit":
        version.status = ERROR
        version.failure = (
            "Your notebook was stopped because it exceeded the max allowed execution "
            f"duration of {limits.session_limit_s:g} seconds."
        )
    elif rc != 0:
        version.status = ERROR
        version.failure = (
            f"Your notebook hit an unhandled error (exit code {rc}): {_last_line(version)}"
        )
    else:
        version.status = COMPLETE
        shutil.copytree(version.working, version.output, symlinks=False)


def log_json(version: Version) -> str:
    """The session log as Kaggle serves it: a JSON list of stream records."""
    try:
        text = version.log_path.read_text(errors="replace")
    except OSError:
        text = ""
    t0 = version.started_at or version.pushed_at
    records = [
        {"stream_name": "stdout", "time": round(time.time() - t0, 3), "data": line}
        for line in text.splitlines(keepends=True)
    ]
    return json.dumps(records)


def output_files(version: Version) -> list[str]:
    if version.status != COMPLETE or not version.output.is_dir():
        return []  # an ERROR discards the output (NB2)
    return sorted(
        p.relative_to(version.output).as_posix() for p in version.output.rglob("*") if p.is_file()
    )


def _signal(version: Version, sig: signal.Signals) -> None:
    if version.proc is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(version.proc.pid, sig)


def _last_line(version: Version) -> str:
    try:
        lines = version.log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _read_only(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.is_symlink():
            path.chmod(0o555 if path.is_dir() else 0o444)
    root.chmod(0o555)
