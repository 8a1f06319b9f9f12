"""Fixtures shared by the unit tests of pull, verify and the gate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


@pytest.fixture
def local_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A finished local run of the numpy example: real checkpoints and final.npz."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / ".git").mkdir()
    monkeypatch.chdir(proj)
    example = Path(__file__).resolve().parents[2] / "src" / "outlive" / "examples"
    (proj / "train.py").write_bytes((example / "train_numpy.py").read_bytes())
    out = subprocess.run(
        [OUTLIVE, "run", "--name", "loc", "--json", "--",
         sys.executable, "train.py", "--steps", "20", "--save-every", "10"],
        cwd=proj, capture_output=True, text=True, check=True,
    )  # fmt: skip
    run_id = json.loads(out.stdout)["run_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = subprocess.run(
            [OUTLIVE, "status", "--json", run_id], cwd=proj, capture_output=True, text=True
        )
        if json.loads(st.stdout)["runs"][0]["state"] == "succeeded":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the local run did not finish")
    return proj, run_id
