"""The README's first promise, end to end: ``outlive demo`` on a fresh machine kills a toy run,
resumes it from its checkpoint and proves the result bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

OUTLIVE = Path(sys.executable).with_name("outlive")


@pytest.mark.slow
def test_outlive_demo_exits_0_and_prints_pass(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    env["TMPDIR"] = str(tmp_path)  # the demo's throwaway project lands here
    done = subprocess.run(
        [str(OUTLIVE), "demo"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "PASS" in done.stdout and "FAIL" not in done.stdout
    assert "resumed from step" in done.stdout
    # The demo cleans up after itself unless asked to keep its project.
    assert not any(tmp_path.glob("outlive-demo-*"))
