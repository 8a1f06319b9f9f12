"""Run one external command with a deadline, for fact collectors and the Slurm backend: a
missing command is reported as missing and nothing here raises, so one broken tool never hides
the other facts."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List

from .common import Rec

CMD_OUTPUT_MAX_BYTES = 256 * 1024  # what one command's stdout/stderr may add to a reply
CMD_TAIL_CHARS = 2000  # stderr kept from a failed command


def _clip(data: bytes, limit: int = CMD_OUTPUT_MAX_BYTES) -> str:
    return data[-limit:].decode("utf-8", errors="replace")


def run_cmd(argv: List[str], timeout_s: float, keep_bytes: int = CMD_OUTPUT_MAX_BYTES) -> Rec:
    """Run one command with a deadline: {argv, missing, rc, timed_out, stdout, stderr, error}."""
    out: Rec = {"argv": argv, "missing": False, "rc": None, "timed_out": False}
    out.update({"stdout": "", "stderr": "", "error": None})
    if shutil.which(argv[0]) is None:
        out["missing"] = True
        out["error"] = f"{argv[0]} is not installed (not on PATH)"
        return out
    env = dict(os.environ)
    env["LC_ALL"] = "C"  # error texts in English, numbers with a dot
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        out["timed_out"] = True
        out["stdout"] = _clip(exc.stdout or b"", keep_bytes)
        out["error"] = f"{argv[0]} did not answer within {timeout_s:.0f} s"
        return out
    except OSError as exc:
        out["error"] = f"{argv[0]} could not run: {exc.strerror or exc}"
        return out
    out["rc"] = done.returncode
    out["stdout"] = _clip(done.stdout, keep_bytes)
    out["stderr"] = _clip(done.stderr, CMD_TAIL_CHARS)
    if done.returncode != 0:
        text = (out["stderr"] or out["stdout"]).strip().splitlines()
        out["error"] = f"{argv[0]} exited {done.returncode}" + (f": {text[-1]}" if text else "")
    return out
