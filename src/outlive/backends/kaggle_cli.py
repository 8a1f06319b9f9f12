"""The user's official ``kaggle`` CLI, run here: push, status, output, quota; and cancel, which
the CLI lacks, through the SDK it is built on (``CancelKernelSession``), run by the CLI's own
Python. The key stays in the environment (``KAGGLE_USERNAME``/``KAGGLE_KEY`` or the client's own
config file), never on a command line (U34); the CLI's errors come back as one sentence."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from outlive._shapes import shape
from outlive.errors import ConfigError, TransportError

TIMEOUT_S = 600.0
_STATUS_RE = re.compile(r'has status "(?:KernelWorkerStatus\.)?([A-Z_]+)"')
_FAILURE_RE = re.compile(r'Failure message: "(.*)"', re.S)
_VERSION_RE = re.compile(r"Kernel version (\d+) successfully")
CANCEL_TIMEOUT_S = 120.0
# Run by the CLI's own interpreter: the version's session (GetKernel at label vN: its metadata
# id) cancelled with CancelKernelSession, both through the SDK's KernelsApiClient.
_CANCEL = """\
import sys
from kaggle.api.kaggle_api_extended import KaggleApi
from kagglesdk.kernels.types.kernels_api_service import (
    ApiCancelKernelSessionRequest, ApiGetKernelRequest)
owner, slug, number = sys.argv[1:4]
api = KaggleApi()
api.authenticate()
with api.build_kaggle_client() as kaggle:
    kernels = kaggle.kernels.kernels_api_client
    get = ApiGetKernelRequest()
    get.user_name, get.kernel_slug, get.version_label = owner, slug, "v" + number
    cancel = ApiCancelKernelSessionRequest()
    cancel.kernel_session_id = kernels.get_kernel(get).metadata.id
    said = kernels.cancel_kernel_session(cancel).error_message
sys.exit(said or 0)
"""


@shape(frozen=True)
class Status:
    status: str  # QUEUED, RUNNING, COMPLETE, ERROR, CANCEL_REQUESTED, CANCEL_ACKNOWLEDGED
    failure: str | None = None


@shape(frozen=True)
class Quota:
    used_h: float
    total_h: float


class KaggleCli:
    def __init__(self, program: str | None = None) -> None:
        found = program or shutil.which("kaggle") or _next_to_python()
        if found is None:
            raise ConfigError(
                "the kaggle CLI is not installed here; pip install kaggle (Kaggle's official "
                "client) and set KAGGLE_USERNAME and KAGGLE_KEY"
            )
        self.program = found

    def run(self, *args: str) -> str:
        try:
            done = subprocess.run(
                [self.program, *args], capture_output=True, text=True, timeout=TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise TransportError(
                f"kaggle {args[0]} {args[1]} did not answer in {TIMEOUT_S:g} s"
            ) from None
        if done.returncode != 0:
            raise TransportError(
                f"kaggle {' '.join(args[:2])} failed: {_last(done.stderr or done.stdout)}"
            )
        return done.stdout

    def push(self, folder: Path) -> int:
        out = self.run("kernels", "push", "-p", str(folder))
        m = _VERSION_RE.search(out)
        if m is None:
            raise TransportError(f"kaggle kernels push did not push: {_last(out)}")
        return int(m.group(1))

    def status(self, ref: str) -> Status:
        out = self.run("kernels", "status", ref)
        m = _STATUS_RE.search(out)
        if m is None:
            raise TransportError(f"kaggle kernels status said something unexpected: {_last(out)}")
        failure = _FAILURE_RE.search(out)
        return Status(m.group(1), failure.group(1).strip() if failure else None)

    def output(
        self, ref: str, dest: Path, pattern: str | None = None, *, resume: bool = False
    ) -> None:
        """``kaggle kernels output``: a cut connection is resumed by the client itself (HTTP
        Range with If-Range, up to 5 retries); with ``resume`` a file a killed earlier call left
        in ``dest`` is resumed too (the client's own partial marker proves it is the same
        object), else every file is fetched whole (``-o``)."""
        args = ["kernels", "output", ref, "-p", str(dest), "-q", *([] if resume else ["-o"])]
        if pattern is not None:
            args += ["--file-pattern", pattern]
        self.run(*args)

    def cancel(self, ref: str, number: int) -> str | None:
        """Cancel version ``number`` of ``ref`` (``owner/slug``); None when Kaggle took the
        request, else why not, in a few words."""
        python = self._python()
        if python is None:
            return f"{self.program} is not a Python console script, so its SDK cannot be called"
        owner, _, slug = ref.partition("/")
        try:
            done = subprocess.run(
                [python, "-c", _CANCEL, owner, slug, str(number)], capture_output=True, text=True,
                timeout=CANCEL_TIMEOUT_S, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return f"Kaggle did not answer in {CANCEL_TIMEOUT_S:g} s"
        return None if done.returncode == 0 else _last(done.stderr or done.stdout)

    def _python(self) -> str | None:
        """The interpreter of the ``kaggle`` console script (its ``#!`` line)."""
        try:
            with open(self.program, "rb") as f:
                first = f.readline(4096).decode(errors="replace")
        except OSError:
            return None
        words = first[2:].split() if first.startswith("#!") else []
        if words and Path(words[0]).name == "env":
            words = words[1:]
        return words[0] if words and "python" in Path(words[0]).name else None

    def quota(self) -> Quota | None:
        for line in self.run("quota", "--csv").splitlines():
            cells = line.split(",")
            if cells and cells[0] == "GPU" and len(cells) >= 4:
                return Quota(float(cells[1].rstrip("h")), float(cells[3].rstrip("h")))
        return None


def _next_to_python() -> str | None:
    candidate = Path(sys.executable).parent / "kaggle"
    return str(candidate) if os.access(candidate, os.X_OK) else None


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
